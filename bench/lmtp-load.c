/* lmtp-load — a small LMTP load generator for bench/run.
 *
 * N worker processes (fork) each run LMTP transactions against one target
 * (a unix socket path or host:port) until a duration or a message count is
 * reached: LHLO, MAIL FROM:<bench@example.org>, RCPT TO:<rcpt>, DATA with a
 * fixed message of SIZE bytes, QUIT. Every reply code is checked; any
 * unexpected reply counts as an error and closes that connection.
 *
 * Two connection modes: one connection per message (default: the cost of
 * accept + process start + LHLO is inside every message), or -k, one
 * connection per worker carrying many messages. -g only connects, reads the
 * greeting and closes (for launcher/start-up cost alone).
 *
 * Output: messages/s, per-message latency percentiles (connect included in
 * the per-message mode), and the median connect-to-greeting time (from the
 * start of connect() until the whole 220 line has arrived). The last line,
 * "RESULT key=value ...", is what bench/run parses.
 *
 * Every wait is bounded (socket timeouts), every reply line is limited, and
 * the sample arrays have a fixed capacity (samples beyond it are counted
 * but not kept for percentiles).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "bench-util.h"
#include "macro.h"

#define MAX_WORKERS 256
#define MAX_SAMPLES (1u << 19)   /* per worker and kind: 2 MiB of uint32 */
#define LINE_MAX_LEN 1024         /* RFC 5321 reply lines are <= 512 */

typedef struct {
        uint64_t msgs, errors, conns;
        uint32_t n_lat, n_greet;
        uint32_t lat_us[MAX_SAMPLES];
        uint32_t greet_us[MAX_SAMPLES];
} WorkerStats;

typedef struct {
        const char *target;
        const char *rcpt;
        unsigned workers;
        double duration;
        uint64_t count;      /* 0: run for duration */
        size_t size;
        bool keep;           /* many messages per connection */
        bool greet_only;     /* connect, read the 220 line, close */
        bool verbose;
} Options;

typedef struct {
        int fd;
        BenchIn in;
        char buf[4096];
} Conn;

static void conn_init(Conn *c, int fd) {
        c->fd = fd;
        bench_in_init(&c->in, c->buf, sizeof(c->buf));
}

/* Reads one line (without CRLF) into LINE (LINE_MAX_LEN + 1 bytes). */
static int read_line(Conn *c, char *line) {
        return bench_read_line(&c->in, bench_fill_recv, &c->fd, line, LINE_MAX_LEN, true, NULL);
}

/* Reads a (possibly multi-line) reply; returns its code or negative errno.
 * LAST gets the final line for error messages. */
static int read_reply(Conn *c, char *last) {
        for (unsigned lines = 0; lines < 100; lines++) {
                int r = read_line(c, last);
                if (r < 0)
                        return r;
                if (strlen(last) < 3 || last[0] < '1' || last[0] > '5' ||
                    last[1] < '0' || last[1] > '9' || last[2] < '0' || last[2] > '9')
                        return -EBADMSG;
                if (last[3] == '-')
                        continue;
                if (last[3] != ' ' && last[3] != '\0')
                        return -EBADMSG;
                return (last[0] - '0') * 100 + (last[1] - '0') * 10 + (last[2] - '0');
        }
        return -E2BIG;
}

static bool expect(Conn *c, const char *cmd, int want, const Options *o) {
        char last[LINE_MAX_LEN + 1];
        if (cmd && bench_write_all(c->fd, cmd, strlen(cmd)) < 0) {
                if (o->verbose)
                        fprintf(stderr, "lmtp-load: write failed: %m\n");
                return false;
        }
        int code = read_reply(c, last);
        if (code == want)
                return true;
        if (o->verbose) {
                if (code < 0)
                        fprintf(stderr, "lmtp-load: after %.*s: %s\n",
                                cmd ? (int) strcspn(cmd, "\r") : 8, cmd ? cmd : "greeting",
                                strerror(-code));
                else
                        fprintf(stderr, "lmtp-load: after %.*s: %s\n",
                                cmd ? (int) strcspn(cmd, "\r") : 8, cmd ? cmd : "greeting", last);
        }
        return false;
}

/* A message of exactly max(SIZE, headers + 3) bytes: CRLF lines of at most
 * 78 characters, none starting with '.', then the ".\r\n" terminator. */
static char *make_message(const char *rcpt, size_t size, size_t *ret_len) {
        char head[1024];
        int h = snprintf(head, sizeof(head),
                         "From: <bench@example.org>\r\nTo: <%s>\r\n"
                         "Subject: lmtp-load benchmark\r\n"
                         "Message-ID: <lmtp-load@example.org>\r\n\r\n", rcpt);
        if (h < 0 || (size_t) h >= sizeof(head))
                return NULL;
        size_t total = size > (size_t) h + 3 ? size : (size_t) h + 3;
        char *m = malloc(total + 3);
        if (!m)
                return NULL;
        memcpy(m, head, (size_t) h);
        size_t i = (size_t) h;
        while (i < total) {
                size_t left = total - i;
                /* 76 letters + CRLF, the last line takes what is left (3..80). */
                size_t n = left >= 81 ? 76 : left - 2;
                for (size_t k = 0; k < n; k++)
                        m[i++] = (char) ('a' + k % 26);
                m[i++] = '\r';
                m[i++] = '\n';
        }
        memcpy(m + total, ".\r\n", 3);
        *ret_len = total + 3;
        return m;
}

static void record(uint32_t *arr, uint32_t *n, uint32_t v) {
        if (*n < MAX_SAMPLES)
                arr[(*n)++] = v;
}

static void worker(const Options *o, unsigned id, WorkerStats *st, const char *msg, size_t msg_len) {
        double deadline = bench_now() + o->duration;
        uint64_t my_count = 0;
        if (o->count) {
                my_count = o->count / o->workers + (id < o->count % o->workers ? 1 : 0);
                if (my_count == 0)
                        return;
        }
        _cleanup_free_ char *mail = NULL, *rcpt = NULL;
        if (asprintf(&mail, "MAIL FROM:<bench@example.org>\r\n") < 0 ||
            asprintf(&rcpt, "RCPT TO:<%s>\r\n", o->rcpt) < 0)
                _exit(1);

        Conn c = { .fd = -1 };
        unsigned consecutive_errors = 0;
        for (;;) {
                if (o->count ? st->msgs + st->errors >= my_count : bench_now() >= deadline)
                        break;
                if (consecutive_errors >= 100)   /* the target is down: stop */
                        break;
                double t0 = bench_now();
                bool ok = true;
                if (c.fd < 0) {
                        int fd = bench_connect(o->target, false);
                        if (fd < 0) {
                                if (o->verbose)
                                        fprintf(stderr, "lmtp-load: connect %s: %s\n", o->target, strerror(-fd));
                                st->errors++;
                                consecutive_errors++;
                                usleep(10000);
                                continue;
                        }
                        conn_init(&c, fd);
                        st->conns++;
                        ok = expect(&c, NULL, 220, o);
                        if (ok)
                                record(st->greet_us, &st->n_greet, bench_us_since(t0));
                        if (o->greet_only) {
                                close(c.fd);
                                c.fd = -1;
                                if (ok)
                                        st->msgs++;
                                else
                                        st->errors++;
                                continue;
                        }
                        ok = ok && expect(&c, "LHLO lmtp-load.example.org\r\n", 250, o);
                }
                ok = ok && expect(&c, mail, 250, o) && expect(&c, rcpt, 250, o) &&
                     expect(&c, "DATA\r\n", 354, o);
                if (ok && bench_write_all(c.fd, msg, msg_len) < 0)
                        ok = false;
                /* One reply per accepted RCPT after the dot (RFC 2033). */
                ok = ok && expect(&c, NULL, 250, o);
                if (ok && !o->keep) {
                        ok = expect(&c, "QUIT\r\n", 221, o);
                        close(c.fd);
                        c.fd = -1;
                }
                if (ok) {
                        st->msgs++;
                        consecutive_errors = 0;
                        record(st->lat_us, &st->n_lat, bench_us_since(t0));
                } else {
                        st->errors++;
                        consecutive_errors++;
                        if (c.fd >= 0)
                                close(c.fd);
                        c.fd = -1;
                }
        }
        if (c.fd >= 0) {
                expect(&c, "QUIT\r\n", 221, o);
                close(c.fd);
        }
}

typedef struct {
        const Options *o;
        WorkerStats *stats;
        const char *msg;
        size_t msg_len;
} Job;

static void run_worker(unsigned i, void *userdata) {
        const Job *j = userdata;
        worker(j->o, i, &j->stats[i], j->msg, j->msg_len);
}

static _noreturn_ void usage(int code) {
        fprintf(code ? stderr : stdout,
                "usage: lmtp-load -t TARGET [-r RCPT] [-p WORKERS] [-d SECONDS | -n COUNT]\n"
                "                 [-s SIZE] [-k | -g] [-v]\n"
                "  -t TARGET  /path/to/socket, unix:/path or host:port\n"
                "  -r RCPT    recipient (default alice@example.com)\n"
                "  -p N       parallel sessions, one process each (default 1, max %d)\n"
                "  -d SEC     run for SEC seconds (default 10)\n"
                "  -n COUNT   send COUNT messages in total instead\n"
                "  -s SIZE    message size in bytes (default 4096)\n"
                "  -k         many messages per connection (default: one connection per message)\n"
                "  -g         greeting only: connect, read the 220 line, close (counts as a message)\n"
                "  -v         print each failed reply to stderr\n", MAX_WORKERS);
        exit(code);
}

int main(int argc, char **argv) {
        Options o = { .rcpt = "alice@example.com", .workers = 1, .duration = 10, .size = 4096 };
        int ch;
        while ((ch = getopt(argc, argv, "t:r:p:d:n:s:kgvh")) != -1) {
                char *end;
                switch (ch) {
                case 't': o.target = optarg; break;
                case 'r': o.rcpt = optarg; break;
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
                case 's':
                        o.size = (size_t) strtoul(optarg, &end, 10);
                        if (*end || o.size > 64u << 20)
                                usage(2);
                        break;
                case 'k': o.keep = true; break;
                case 'g': o.greet_only = true; break;
                case 'v': o.verbose = true; break;
                case 'h': usage(0);
                default: usage(2);
                }
        }
        if (!o.target || optind != argc || strpbrk(o.rcpt, "<>\r\n ") || (o.keep && o.greet_only))
                usage(2);

        size_t msg_len;
        _cleanup_free_ char *msg = make_message(o.rcpt, o.size, &msg_len);
        if (!msg) {
                fprintf(stderr, "lmtp-load: cannot build the message\n");
                return 1;
        }

        size_t map_len = sizeof(WorkerStats) * o.workers;
        WorkerStats *stats = bench_map_shared(map_len);
        if (!stats) {
                fprintf(stderr, "lmtp-load: mmap: %m\n");
                return 1;
        }
        signal(SIGPIPE, SIG_IGN);

        double t0 = bench_now();
        Job job = { .o = &o, .stats = stats, .msg = msg, .msg_len = msg_len };
        int r = bench_run_workers(o.workers, run_worker, &job);
        if (r < 0) {
                fprintf(stderr, "lmtp-load: fork: %s\n", strerror(-r));
                return 1;
        }
        bool worker_failed = r > 0;
        double elapsed = bench_now() - t0;

        uint64_t msgs = 0, errors = 0, conns = 0;
        size_t n_lat = 0, n_greet = 0;
        for (unsigned i = 0; i < o.workers; i++) {
                msgs += stats[i].msgs;
                errors += stats[i].errors;
                conns += stats[i].conns;
        }
        _cleanup_free_ uint32_t *lat = BENCH_JOIN(stats, o.workers, lat_us, n_lat, &n_lat);
        _cleanup_free_ uint32_t *greet = BENCH_JOIN(stats, o.workers, greet_us, n_greet, &n_greet);
        if (!lat || !greet) {
                fprintf(stderr, "lmtp-load: out of memory\n");
                return 1;
        }
        munmap(stats, map_len);

        double rate = elapsed > 0 ? (double) msgs / elapsed : 0;
        printf("target %s, %u session(s), %s, %zu-byte messages\n", o.target, o.workers,
               o.greet_only ? "greeting only" :
               o.keep ? "many messages per connection" : "one connection per message", msg_len - 3);
        printf("messages %" PRIu64 ", errors %" PRIu64 ", connections %" PRIu64 ", %.2f s\n",
               msgs, errors, conns, elapsed);
        printf("throughput %.1f messages/s\n", rate);
        printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n",
               bench_pct_ms(lat, n_lat, 50), bench_pct_ms(lat, n_lat, 90), bench_pct_ms(lat, n_lat, 99),
               n_lat ? lat[n_lat - 1] / 1000.0 : 0);
        printf("connect-to-greeting ms: median %.3f (%zu connections)\n",
               bench_pct_ms(greet, n_greet, 50), n_greet);
        printf("RESULT rate=%.1f msgs=%" PRIu64 " errors=%" PRIu64 " p50=%.3f p90=%.3f p99=%.3f "
               "greet_p50=%.3f greet_n=%zu\n",
               rate, msgs, errors, bench_pct_ms(lat, n_lat, 50), bench_pct_ms(lat, n_lat, 90),
               bench_pct_ms(lat, n_lat, 99), bench_pct_ms(greet, n_greet, 50), n_greet);
        return errors || worker_failed || msgs == 0 ? 1 : 0;
}
