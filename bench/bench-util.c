/* bench-util — shared pieces of the bench/ load generators; see bench-util.h. */
#include "bench-util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "macro.h"

double bench_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

uint32_t bench_us_since(double t0) {
        double d = (bench_now() - t0) * 1e6;
        return d > UINT32_MAX ? UINT32_MAX : (uint32_t) d;
}

void bench_set_timeouts(int fd) {
        struct timeval tv = { .tv_sec = BENCH_IO_TIMEOUT_S };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int bench_connect_unix(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(path);
        if (len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len + 1);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        bench_set_timeouts(fd);
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

int bench_connect(const char *target, bool nodelay) {
        if (target[0] == '/')
                return bench_connect_unix(target);
        if (strncmp(target, "unix:", 5) == 0)
                return bench_connect_unix(target + 5);

        /* host:port; the last colon splits ([::1]:24 is not supported). */
        const char *colon = strrchr(target, ':');
        if (!colon || colon == target || !colon[1])
                return -EINVAL;
        _cleanup_free_ char *host = strndup(target, (size_t) (colon - target));
        if (!host)
                return -ENOMEM;
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
        if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai)
                return -EHOSTUNREACH;
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                int r = -errno;
                freeaddrinfo(ai);
                return r;
        }
        bench_set_timeouts(fd);
        if (nodelay) {
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
                int r = -errno;
                freeaddrinfo(ai);
                close(fd);
                return r;
        }
        freeaddrinfo(ai);
        return fd;
}

int bench_write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += w;
                n -= (size_t) w;
        }
        return 0;
}

ssize_t bench_fill_recv(void *userdata, char *buf, size_t size) {
        int fd = *(const int *) userdata;
        for (;;) {
                ssize_t r = recv(fd, buf, size, 0);
                if (r < 0 && errno == EINTR)
                        continue;
                return r < 0 ? -errno : r;
        }
}

void bench_in_init(BenchIn *in, char *buf, size_t size) {
        *in = (BenchIn) { .buf = buf, .size = size };
}

bool bench_in_pending(const BenchIn *in) {
        return in->start < in->end;
}

int bench_read_line(BenchIn *in, BenchFill fill, void *userdata, char *line, size_t max,
                    bool strip_cr, size_t *ret_wire) {
        size_t len = 0, wire = 0;
        for (;;) {
                while (in->start < in->end) {
                        char ch = in->buf[in->start++];
                        wire++;
                        if (ch == '\n') {
                                if (strip_cr && len > 0 && line[len - 1] == '\r')
                                        len--;
                                line[len] = '\0';
                                if (ret_wire)
                                        *ret_wire = wire;
                                return 0;
                        }
                        if (len >= max)
                                return -E2BIG;
                        line[len++] = ch;
                }
                ssize_t r = fill(userdata, in->buf, in->size);
                if (r < 0)
                        return (int) r;
                if (r == 0)
                        return -ECONNRESET;
                in->start = 0;
                in->end = (size_t) r;
        }
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
        return x < y ? -1 : x > y;
}

void bench_sort_u32(uint32_t *v, size_t n) {
        if (n > 0)
                qsort(v, n, sizeof(uint32_t), cmp_u32);
}

uint32_t *bench_join_samples(const void *stats, size_t stride, unsigned workers,
                             size_t samples_off, size_t count_off, size_t *ret_n) {
        const char *base = stats;
        size_t n = 0;
        for (unsigned i = 0; i < workers; i++) {
                uint32_t c;
                memcpy(&c, base + i * stride + count_off, sizeof c);
                n += c;
        }
        uint32_t *all = malloc(sizeof(uint32_t) * (n + 1));
        if (!all)
                return NULL;
        size_t at = 0;
        for (unsigned i = 0; i < workers; i++) {
                uint32_t c;
                memcpy(&c, base + i * stride + count_off, sizeof c);
                memcpy(all + at, base + i * stride + samples_off, sizeof(uint32_t) * c);
                at += c;
        }
        bench_sort_u32(all, n);
        *ret_n = n;
        return all;
}

double bench_pct_ms(const uint32_t *sorted, size_t n, double p) {
        if (n == 0)
                return 0;
        size_t i = (size_t) (p / 100.0 * (double) (n - 1) + 0.5);
        return sorted[i < n ? i : n - 1] / 1000.0;
}

void *bench_map_shared(size_t size) {
        /* Anonymous mappings come zeroed. */
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
}

int bench_run_workers(unsigned n, void (*work)(unsigned index, void *userdata), void *userdata) {
        _cleanup_free_ pid_t *pids = calloc(n ? n : 1, sizeof(pid_t));
        if (!pids)
                return -ENOMEM;
        unsigned started = 0;
        int fork_error = 0;
        for (; started < n; started++) {
                pids[started] = fork();
                if (pids[started] < 0) {
                        fork_error = -errno;
                        break;
                }
                if (pids[started] == 0) {
                        work(started, userdata);
                        _exit(0);
                }
        }
        bool failed = false;
        for (unsigned i = 0; i < started; i++) {
                int status;
                while (waitpid(pids[i], &status, 0) < 0) {
                        if (errno != EINTR) {
                                status = -1;
                                break;
                        }
                }
                if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        failed = true;
        }
        return fork_error < 0 ? fork_error : failed ? 1 : 0;
}
