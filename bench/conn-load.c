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
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "bench-util.h"
#include "macro.h"

#define MAX_WORKERS 256
#define MAX_IDLE 4096
#define MAX_SAMPLES (1u << 19)   /* per worker: 2 MiB of uint32 */
#define LINE_MAX_LEN 1024        /* SMTP reply lines <= 512, POP3 <= 512 */

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
        BenchIn in;
        char buf[1024];
} Conn;

static void conn_init(Conn *c, int fd) {
        c->fd = fd;
        bench_in_init(&c->in, c->buf, sizeof(c->buf));
}

/* Reads one line (without CRLF) into LINE (LINE_MAX_LEN + 1 bytes). */
static int read_line(Conn *c, char *line) {
        return bench_read_line(&c->in, bench_fill_recv, &c->fd, line, LINE_MAX_LEN, true, NULL);
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
        if (bench_write_all(c->fd, "QUIT\r\n", 6) < 0) {
                if (o->verbose)
                        fprintf(stderr, "conn-load: QUIT: %m\n");
                return false;
        }
        return expect(c, o->proto, 221, "reply to QUIT", o->verbose);
}

static void worker(const Options *o, unsigned id, WorkerStats *st) {
        double deadline = bench_now() + o->duration;
        uint64_t my_count = 0;
        if (o->count) {
                my_count = o->count / o->workers + (id < o->count % o->workers ? 1 : 0);
                if (my_count == 0)
                        return;
        }
        unsigned consecutive_errors = 0;
        for (;;) {
                if (o->count ? st->conns + st->errors >= my_count : bench_now() >= deadline)
                        break;
                if (consecutive_errors >= 100)   /* the target is down: stop */
                        break;
                double t0 = bench_now();
                int fd = bench_connect(o->target, false);
                if (fd < 0) {
                        if (o->verbose)
                                fprintf(stderr, "conn-load: connect %s: %s\n", o->target, strerror(-fd));
                        st->errors++;
                        consecutive_errors++;
                        usleep(10000);
                        continue;
                }
                Conn c;
                conn_init(&c, fd);
                bool ok = greet(&c, o) && (o->greet_only || quit(&c, o));
                close(fd);
                if (ok) {
                        st->conns++;
                        consecutive_errors = 0;
                        if (st->n_lat < MAX_SAMPLES)
                                st->lat_us[st->n_lat++] = bench_us_since(t0);
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
        double t0 = bench_now();
        for (unsigned i = 0; i < o->idle; i++) {
                int fd = bench_connect(o->target, false);
                if (fd < 0) {
                        fprintf(stderr, "conn-load: connect %s: %s\n", o->target, strerror(-fd));
                        errors++;
                        break;
                }
                conn_init(&conns[open], fd);
                if (!greet(&conns[open], o)) {
                        close(fd);
                        errors++;
                        break;
                }
                open++;
        }
        double setup = bench_now() - t0;
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

typedef struct {
        const Options *o;
        WorkerStats *stats;
} Job;

static void run_worker(unsigned i, void *userdata) {
        const Job *j = userdata;
        worker(j->o, i, &j->stats[i]);
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
        WorkerStats *stats = bench_map_shared(map_len);
        if (!stats) {
                fprintf(stderr, "conn-load: mmap: %m\n");
                return 1;
        }

        double t0 = bench_now();
        Job job = { .o = &o, .stats = stats };
        int r = bench_run_workers(o.workers, run_worker, &job);
        if (r < 0) {
                fprintf(stderr, "conn-load: fork: %s\n", strerror(-r));
                return 1;
        }
        bool worker_failed = r > 0;
        double elapsed = bench_now() - t0;

        uint64_t conns = 0, errors = 0;
        size_t n_lat = 0;
        for (unsigned i = 0; i < o.workers; i++) {
                conns += stats[i].conns;
                errors += stats[i].errors;
        }
        _cleanup_free_ uint32_t *lat = BENCH_JOIN(stats, o.workers, lat_us, n_lat, &n_lat);
        if (!lat) {
                fprintf(stderr, "conn-load: out of memory\n");
                return 1;
        }
        munmap(stats, map_len);

        double rate = elapsed > 0 ? (double) conns / elapsed : 0;
        printf("target %s (%s), %u client(s): connect, greeting, %sclose\n",
               o.target, proto, o.workers, o.greet_only ? "" : "QUIT, reply, ");
        printf("connections %" PRIu64 ", errors %" PRIu64 ", %.2f s, %.1f connections/s\n",
               conns, errors, elapsed, rate);
        printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n",
               bench_pct_ms(lat, n_lat, 50), bench_pct_ms(lat, n_lat, 90), bench_pct_ms(lat, n_lat, 99),
               n_lat ? lat[n_lat - 1] / 1000.0 : 0);
        printf("RESULT rate=%.1f conns=%" PRIu64 " errors=%" PRIu64 " p50=%.3f p90=%.3f p99=%.3f\n",
               rate, conns, errors, bench_pct_ms(lat, n_lat, 50), bench_pct_ms(lat, n_lat, 90),
               bench_pct_ms(lat, n_lat, 99));
        return errors || worker_failed || conns == 0 ? 1 : 0;
}
