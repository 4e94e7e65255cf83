/* conn-load — connection-rate and idle-session load for bench/run-listeners.
 *
 * Rate mode (default): N worker processes (fork) each loop over
 * connect, read the greeting, send QUIT, read the reply, close — until a
 * duration or a connection count is reached. Both replies are checked for
 * the protocol (-P smtp: a 220 greeting, possibly multi-line, and 221;
 * -P pop3: "+OK" for both); anything else counts as an error. The figure
 * is completed cycles per second and the per-cycle latency. -g stops
 * after the greeting (no QUIT): for a program that only greets, such as
 * bench/greeter, the launcher's floor.
 *
 * Idle mode (-i N): opens N connections one after another, reads each
 * greeting, prints "READY n" on stdout and then holds them, idle, until
 * stdin reaches end of file (or a line arrives, or -d seconds pass); then
 * sends QUIT on each, checks the replies and closes. bench/run-listeners
 * measures the servers' memory while the sessions are held.
 *
 * Every wait is bounded (socket timeouts, poll timeout), every reply line
 * is limited, the sample arrays have a fixed capacity. The last line,
 * "RESULT key=value ...", is for scripts.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netdb.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "macro.h"

#define MAX_WORKERS 256
#define MAX_IDLE 4096
#define MAX_SAMPLES (1u << 19)   /* per worker: 2 MiB of uint32 */
#define LINE_MAX_LEN 1024        /* SMTP reply lines <= 512, POP3 <= 512 */
#define IO_TIMEOUT_S 30

typedef enum { P_SMTP, P_POP3 } Proto;

typedef struct {
        uint64_t conns, errors;
        uint32_t n_lat;
        uint32_t lat_us[MAX_SAMPLES];
} WorkerStats;

typedef struct {
        const char *target;
        Proto proto;
        unsigned workers;
        double duration;
        uint64_t count;   /* 0: run for duration */
        unsigned idle;    /* > 0: idle mode with that many sessions */
        bool greet_only;  /* connect, greeting, close */
        bool verbose;
} Options;

typedef struct {
        int fd;
        char buf[1024];
        size_t start, end;
} Conn;

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static uint32_t us_since(double t0) {
        double d = (now_s() - t0) * 1e6;
        return d > UINT32_MAX ? UINT32_MAX : (uint32_t) d;
}

static int connect_target(const char *target) {
        struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
        int fd;

        if (target[0] == '/' || strncmp(target, "unix:", 5) == 0) {
                const char *path = target[0] == '/' ? target : target + 5;
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                if (strlen(path) >= sizeof(sa.sun_path))
                        return -ENAMETOOLONG;
                memcpy(sa.sun_path, path, strlen(path) + 1);
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return -errno;
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                        int r = -errno;
                        close(fd);
                        return r;
                }
                return fd;
        }

        /* host:port; the last colon splits. */
        const char *colon = strrchr(target, ':');
        if (!colon || colon == target || !colon[1])
                return -EINVAL;
        _cleanup_free_ char *host = strndup(target, (size_t) (colon - target));
        if (!host)
                return -ENOMEM;
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
        if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai)
                return -EHOSTUNREACH;
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                int r = -errno;
                freeaddrinfo(ai);
                return r;
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
                int r = -errno;
                freeaddrinfo(ai);
                close(fd);
                return r;
        }
        freeaddrinfo(ai);
        return fd;
}

static int write_all(int fd, const char *p, size_t n) {
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

/* Reads one line (without CRLF) into LINE (LINE_MAX_LEN + 1 bytes). */
static int read_line(Conn *c, char *line) {
        size_t len = 0;
        for (;;) {
                while (c->start < c->end) {
                        char ch = c->buf[c->start++];
                        if (ch == '\n') {
                                if (len > 0 && line[len - 1] == '\r')
                                        len--;
                                line[len] = '\0';
                                return 0;
                        }
                        if (len >= LINE_MAX_LEN)
                                return -E2BIG;
                        line[len++] = ch;
                }
                ssize_t r = recv(c->fd, c->buf, sizeof(c->buf), 0);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (r == 0)
                        return -ECONNRESET;
                c->start = 0;
                c->end = (size_t) r;
        }
}

/* Reads one reply and says whether it is the expected one: for SMTP the
 * code WANT (continuation lines "NNN-" skipped, at most 100), for POP3 a
 * line starting with "+OK". */
static bool expect(Conn *c, Proto proto, int want, const char *what, bool verbose) {
        char line[LINE_MAX_LEN + 1];
        int r = 0;
        bool ok = false;
        for (unsigned lines = 0; lines < 100; lines++) {
                r = read_line(c, line);
                if (r < 0)
                        break;
                if (proto == P_POP3) {
                        ok = strncmp(line, "+OK", 3) == 0 && (line[3] == ' ' || line[3] == '\0');
                        break;
                }
                if (strlen(line) < 3 || line[0] != '0' + want / 100 ||
                    line[1] != '0' + want / 10 % 10 || line[2] != '0' + want % 10)
                        break;
                if (line[3] == '-')
                        continue;
                ok = line[3] == ' ' || line[3] == '\0';
                break;
        }
        if (!ok && verbose)
                fprintf(stderr, "conn-load: %s: %s\n", what, r < 0 ? strerror(-r) : line);
        return ok;
}

static bool greet(Conn *c, const Options *o) {
        return expect(c, o->proto, 220, "greeting", o->verbose);
}

static bool quit(Conn *c, const Options *o) {
        if (write_all(c->fd, "QUIT\r\n", 6) < 0) {
                if (o->verbose)
                        fprintf(stderr, "conn-load: QUIT: %m\n");
                return false;
        }
        return expect(c, o->proto, 221, "reply to QUIT", o->verbose);
}

static void worker(const Options *o, unsigned id, WorkerStats *st) {
        double deadline = now_s() + o->duration;
        uint64_t my_count = 0;
        if (o->count) {
                my_count = o->count / o->workers + (id < o->count % o->workers ? 1 : 0);
                if (my_count == 0)
                        return;
        }
        unsigned consecutive_errors = 0;
        for (;;) {
                if (o->count ? st->conns + st->errors >= my_count : now_s() >= deadline)
                        break;
                if (consecutive_errors >= 100)   /* the target is down: stop */
                        break;
                double t0 = now_s();
                int fd = connect_target(o->target);
                if (fd < 0) {
                        if (o->verbose)
                                fprintf(stderr, "conn-load: connect %s: %s\n", o->target, strerror(-fd));
                        st->errors++;
                        consecutive_errors++;
                        usleep(10000);
                        continue;
                }
                Conn c = { .fd = fd };
                bool ok = greet(&c, o) && (o->greet_only || quit(&c, o));
                close(fd);
                if (ok) {
                        st->conns++;
                        consecutive_errors = 0;
                        if (st->n_lat < MAX_SAMPLES)
                                st->lat_us[st->n_lat++] = us_since(t0);
                } else {
                        st->errors++;
                        consecutive_errors++;
                }
        }
}

/* Idle mode: see the top of the file. Returns the exit status. */
static int run_idle(const Options *o) {
        _cleanup_free_ Conn *conns = calloc(o->idle, sizeof(Conn));
        if (!conns) {
                fprintf(stderr, "conn-load: out of memory\n");
                return 1;
        }
        unsigned open = 0, errors = 0;
        double t0 = now_s();
        for (unsigned i = 0; i < o->idle; i++) {
                int fd = connect_target(o->target);
                if (fd < 0) {
                        fprintf(stderr, "conn-load: connect %s: %s\n", o->target, strerror(-fd));
                        errors++;
                        break;
                }
                conns[open] = (Conn) { .fd = fd };
                if (!greet(&conns[open], o)) {
                        close(fd);
                        errors++;
                        break;
                }
                open++;
        }
        double setup = now_s() - t0;
        printf("READY %u\n", open);
        fflush(stdout);

        /* Hold until stdin says so, bounded by the duration. */
        struct pollfd p = { .fd = 0, .events = POLLIN };
        int ms = o->duration * 1000 > 86400000 ? 86400000 : (int) (o->duration * 1000);
        if (poll(&p, 1, ms) < 0)
                fprintf(stderr, "conn-load: poll: %m\n");

        unsigned quit_ok = 0;
        for (unsigned i = 0; i < open; i++) {
                if (quit(&conns[i], o))
                        quit_ok++;
                else
                        errors++;
                close(conns[i].fd);
        }
        printf("RESULT idle=%u quit_ok=%u errors=%u setup_s=%.3f\n", open, quit_ok, errors, setup);
        return errors || open != o->idle ? 1 : 0;
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
        return x < y ? -1 : x > y;
}

static double pct_ms(const uint32_t *sorted, size_t n, double p) {
        if (n == 0)
                return 0;
        size_t i = (size_t) (p / 100.0 * (double) (n - 1) + 0.5);
        return sorted[i < n ? i : n - 1] / 1000.0;
}

static _noreturn_ void usage(int code) {
        fprintf(code ? stderr : stdout,
                "usage: conn-load -t TARGET -P smtp|pop3 [-p WORKERS] [-d SECONDS | -n COUNT] [-g] [-v]\n"
                "       conn-load -t TARGET -P smtp|pop3 -i SESSIONS [-d SECONDS] [-v]\n"
                "  -t TARGET  host:port, /path/to/socket or unix:/path\n"
                "  -P PROTO   smtp (220 greeting, 221 after QUIT) or pop3 (+OK both)\n"
                "  -p N       parallel clients, one process each (default 1, max %d)\n"
                "  -d SEC     run for SEC seconds (default 10); in idle mode the longest hold\n"
                "  -n COUNT   COUNT connection cycles in total instead\n"
                "  -i N       idle mode: open N greeted sessions (max %d), print READY, hold them\n"
                "             until stdin has input or EOF, then QUIT each\n"
                "  -g         greeting only: connect, read the greeting, close (no QUIT)\n"
                "  -v         print each failure to stderr\n", MAX_WORKERS, MAX_IDLE);
        exit(code);
}

int main(int argc, char **argv) {
        Options o = { .workers = 1, .duration = 10 };
        const char *proto = NULL;
        int ch;
        while ((ch = getopt(argc, argv, "t:P:p:d:n:i:gvh")) != -1) {
                char *end;
                switch (ch) {
                case 't': o.target = optarg; break;
                case 'P': proto = optarg; break;
                case 'p':
                        o.workers = (unsigned) strtoul(optarg, &end, 10);
                        if (*end || o.workers < 1 || o.workers > MAX_WORKERS)
                                usage(2);
                        break;
                case 'd':
                        o.duration = strtod(optarg, &end);
                        if (*end || !(o.duration > 0 && o.duration <= 86400))
                                usage(2);
                        break;
                case 'n':
                        o.count = strtoull(optarg, &end, 10);
                        if (*end || o.count < 1)
                                usage(2);
                        break;
                case 'i':
                        o.idle = (unsigned) strtoul(optarg, &end, 10);
                        if (*end || o.idle < 1 || o.idle > MAX_IDLE)
                                usage(2);
                        break;
                case 'g': o.greet_only = true; break;
                case 'v': o.verbose = true; break;
                case 'h': usage(0);
                default: usage(2);
                }
        }
        if (!o.target || !proto || optind != argc || (o.idle && o.greet_only))
                usage(2);
        if (streq(proto, "smtp"))
                o.proto = P_SMTP;
        else if (streq(proto, "pop3"))
                o.proto = P_POP3;
        else
                usage(2);
        signal(SIGPIPE, SIG_IGN);
        if (o.idle)
                return run_idle(&o);

        size_t map_len = sizeof(WorkerStats) * o.workers;
        WorkerStats *stats = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
                                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (stats == MAP_FAILED) {
                fprintf(stderr, "conn-load: mmap: %m\n");
                return 1;
        }

        double t0 = now_s();
        pid_t pids[MAX_WORKERS];
        for (unsigned i = 0; i < o.workers; i++) {
                pids[i] = fork();
                if (pids[i] < 0) {
                        fprintf(stderr, "conn-load: fork: %m\n");
                        return 1;
                }
                if (pids[i] == 0) {
                        worker(&o, i, &stats[i]);
                        _exit(0);
                }
        }
        bool worker_failed = false;
        for (unsigned i = 0; i < o.workers; i++) {
                int status;
                while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR)
                        ;
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        worker_failed = true;
        }
        double elapsed = now_s() - t0;

        uint64_t conns = 0, errors = 0;
        size_t n_lat = 0;
        for (unsigned i = 0; i < o.workers; i++) {
                conns += stats[i].conns;
                errors += stats[i].errors;
                n_lat += stats[i].n_lat;
        }
        _cleanup_free_ uint32_t *lat = malloc(sizeof(uint32_t) * (n_lat + 1));
        if (!lat) {
                fprintf(stderr, "conn-load: out of memory\n");
                return 1;
        }
        size_t a = 0;
        for (unsigned i = 0; i < o.workers; i++) {
                memcpy(lat + a, stats[i].lat_us, sizeof(uint32_t) * stats[i].n_lat);
                a += stats[i].n_lat;
        }
        qsort(lat, n_lat, sizeof(uint32_t), cmp_u32);
        munmap(stats, map_len);

        double rate = elapsed > 0 ? (double) conns / elapsed : 0;
        printf("target %s (%s), %u client(s): connect, greeting, %sclose\n",
               o.target, proto, o.workers, o.greet_only ? "" : "QUIT, reply, ");
        printf("connections %" PRIu64 ", errors %" PRIu64 ", %.2f s, %.1f connections/s\n",
               conns, errors, elapsed, rate);
        printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n",
               pct_ms(lat, n_lat, 50), pct_ms(lat, n_lat, 90), pct_ms(lat, n_lat, 99),
               n_lat ? lat[n_lat - 1] / 1000.0 : 0);
        printf("RESULT rate=%.1f conns=%" PRIu64 " errors=%" PRIu64 " p50=%.3f p90=%.3f p99=%.3f\n",
               rate, conns, errors, pct_ms(lat, n_lat, 50), pct_ms(lat, n_lat, 90),
               pct_ms(lat, n_lat, 99));
        return errors || worker_failed || conns == 0 ? 1 : 0;
}
