/* auth-load — a load generator for the Dovecot authentication protocol
 * (1.x, client side), for bench/run-auth.
 *
 * N worker processes (fork) authenticate one user with SASL PLAIN against
 * one auth socket (auth-checker's or Dovecot's `private/auth`) until a
 * duration or a count is reached. A connection is: read the server's
 * handshake up to DONE (VERSION must be 1.x), send VERSION 1 2 and CPID;
 * each authentication is
 *
 *     AUTH <id> PLAIN service=smtp secured resp=<base64 \0user\0password>
 *
 * answered by exactly one line that must be `OK <id> user=<user> ...`; any
 * other reply (FAIL, CONT, a wrong id or user, a close) counts as an error
 * and closes that connection.
 *
 * Two connection modes: default, one connection per authentication (how a
 * per-connection handler asks auth-checker: connect + handshake + process
 * start are inside every authentication); -k, one connection per worker
 * carrying AUTH requests back to back (how Postfix's smtpd keeps its
 * connection to private/auth). -g only connects and reads the handshake.
 *
 * CPID: Dovecot refuses a CPID that an open connection already uses, and a
 * closed connection may not be gone on its side yet, so every connection
 * of a run announces its own (worker + workers * sequence).
 *
 * Output: authentications/s, per-authentication latency percentiles
 * (connect included without -k), the median connect-to-DONE time. The last
 * line, "RESULT key=value ...", is what bench/run-auth parses.
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
#define LINE_MAX_LEN 8192         /* Dovecot's handshake lines are short; OK lines too */
#define MAX_HANDSHAKE_LINES 64
#define MAX_CRED 1024             /* user or password, bytes */

typedef struct {
        uint64_t auths, errors, conns;
        uint32_t n_lat, n_greet;
        uint32_t lat_us[MAX_SAMPLES];
        uint32_t greet_us[MAX_SAMPLES];
} WorkerStats;

typedef struct {
        const char *target;
        const char *user;
        const char *password;
        unsigned workers;
        double duration;
        uint64_t count;      /* 0: run for duration */
        bool keep;           /* many authentications per connection */
        bool greet_only;     /* connect, read the handshake, close */
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

/* Reads one LF-terminated line (without the LF) into LINE (LINE_MAX_LEN + 1
 * bytes). */
static int read_line(Conn *c, char *line) {
        return bench_read_line(&c->in, bench_fill_recv, &c->fd, line, LINE_MAX_LEN, false, NULL);
}

static void complain(const Options *o, const char *what, int r, const char *line) {
        if (!o->verbose)
                return;
        if (r < 0)
                fprintf(stderr, "auth-load: %s: %s\n", what, strerror(-r));
        else
                fprintf(stderr, "auth-load: %s: %.200s\n", what, line);
}

/* The server's handshake up to DONE; VERSION must come first with major 1. */
static bool read_handshake(Conn *c, const Options *o) {
        char line[LINE_MAX_LEN + 1];
        for (unsigned i = 0; i < MAX_HANDSHAKE_LINES; i++) {
                int r = read_line(c, line);
                if (r < 0) {
                        complain(o, "handshake", r, NULL);
                        return false;
                }
                if (i == 0 && strncmp(line, "VERSION\t1\t", 10) != 0) {
                        complain(o, "handshake does not start with VERSION 1", 0, line);
                        return false;
                }
                if (strcmp(line, "DONE") == 0)
                        return true;
        }
        complain(o, "handshake", -E2BIG, NULL);
        return false;
}

/* One AUTH request and its reply: true when it is OK for our id and user. */
static bool authenticate(Conn *c, unsigned id, const char *b64, const Options *o) {
        char req[64 + 4 * ((2 * MAX_CRED + 2 + 2) / 3)], line[LINE_MAX_LEN + 1];
        int n = snprintf(req, sizeof(req), "AUTH\t%u\tPLAIN\tservice=smtp\tsecured\tresp=%s\n", id, b64);
        if (n < 0 || (size_t) n >= sizeof(req))
                return false;
        int r = bench_write_all(c->fd, req, (size_t) n);
        if (r < 0) {
                complain(o, "AUTH write", r, NULL);
                return false;
        }
        r = read_line(c, line);
        if (r < 0) {
                complain(o, "AUTH reply", r, NULL);
                return false;
        }
        char want[32];
        snprintf(want, sizeof(want), "OK\t%u", id);
        size_t wl = strlen(want);
        if (strncmp(line, want, wl) != 0 || (line[wl] != '\t' && line[wl] != '\0')) {
                complain(o, "AUTH not OK", 0, line);
                return false;
        }
        /* The canonical user must be ours (both servers send user=). */
        for (char *f = line + wl; f && *f; f = strchr(f + 1, '\t')) {
                if (strncmp(f, "\tuser=", 6) != 0)
                        continue;
                size_t ul = strcspn(f + 6, "\t");
                if (ul == strlen(o->user) && strncmp(f + 6, o->user, ul) == 0)
                        return true;
                break;
        }
        complain(o, "OK without our user=", 0, line);
        return false;
}

static void record(uint32_t *arr, uint32_t *n, uint32_t v) {
        if (*n < MAX_SAMPLES)
                arr[(*n)++] = v;
}

static void worker(const Options *o, unsigned widx, WorkerStats *st, const char *b64) {
        double deadline = bench_now() + o->duration;
        uint64_t my_count = 0;
        if (o->count) {
                my_count = o->count / o->workers + (widx < o->count % o->workers ? 1 : 0);
                if (my_count == 0)
                        return;
        }
        Conn c = { .fd = -1 };
        unsigned consecutive_errors = 0, id = 0;
        uint64_t seq = 0;
        for (;;) {
                if (o->count ? st->auths + st->errors >= my_count : bench_now() >= deadline)
                        break;
                if (consecutive_errors >= 100)   /* the target is down: stop */
                        break;
                double t0 = bench_now();
                bool ok = true;
                if (c.fd < 0) {
                        int fd = bench_connect_unix(strncmp(o->target, "unix:", 5) == 0 ? o->target + 5 : o->target);
                        if (fd < 0) {
                                complain(o, "connect", fd, NULL);
                                st->errors++;
                                consecutive_errors++;
                                usleep(10000);
                                continue;
                        }
                        conn_init(&c, fd);
                        st->conns++;
                        ok = read_handshake(&c, o);
                        if (ok)
                                record(st->greet_us, &st->n_greet, bench_us_since(t0));
                        if (o->greet_only) {
                                close(c.fd);
                                c.fd = -1;
                                if (ok) {
                                        st->auths++;
                                        consecutive_errors = 0;
                                } else {
                                        st->errors++;
                                        consecutive_errors++;
                                }
                                continue;
                        }
                        /* A CPID no other connection of this run uses. */
                        uint32_t cpid = (uint32_t) ((100000u + widx + (uint64_t) o->workers * seq++) % 0x7fffffffu) + 1;
                        char hello[64];
                        int n = snprintf(hello, sizeof(hello), "VERSION\t1\t2\nCPID\t%" PRIu32 "\n", cpid);
                        if (ok && bench_write_all(c.fd, hello, (size_t) n) < 0)
                                ok = false;
                        id = 0;
                }
                ok = ok && authenticate(&c, ++id, b64, o);
                if (ok && !o->keep) {
                        close(c.fd);
                        c.fd = -1;
                }
                if (ok) {
                        st->auths++;
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
        if (c.fd >= 0)
                close(c.fd);
}

/* RFC 4648 base64 of N bytes into a new string. */
static char *base64(const unsigned char *p, size_t n) {
        static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char *out = malloc(4 * ((n + 2) / 3) + 1), *q = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t) p[i] << 16;
                if (i + 1 < n)
                        v |= (uint32_t) p[i + 1] << 8;
                if (i + 2 < n)
                        v |= p[i + 2];
                *q++ = tab[v >> 18 & 63];
                *q++ = tab[v >> 12 & 63];
                *q++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
                *q++ = i + 2 < n ? tab[v & 63] : '=';
        }
        *q = '\0';
        return out;
}

typedef struct {
        const Options *o;
        WorkerStats *stats;
        const char *b64;
} Job;

static void run_worker(unsigned i, void *userdata) {
        const Job *j = userdata;
        worker(j->o, i, &j->stats[i], j->b64);
}

static _noreturn_ void usage(int code) {
        fprintf(code ? stderr : stdout,
                "usage: auth-load -t SOCKET [-u USER] [-w PASSWORD] [-p WORKERS]\n"
                "                 [-d SECONDS | -n COUNT] [-k | -g] [-v]\n"
                "  -t SOCKET  /path/to/socket or unix:/path (Dovecot auth protocol 1.x)\n"
                "  -u USER    user (default alice@example.com)\n"
                "  -w PASS    password (default alice-secret)\n"
                "  -p N       parallel clients, one process each (default 1, max %d)\n"
                "  -d SEC     run for SEC seconds (default 10)\n"
                "  -n COUNT   COUNT authentications in total instead\n"
                "  -k         many authentications per connection (default: one connection each)\n"
                "  -g         handshake only: connect, read up to DONE, close (counts as one)\n"
                "  -v         print each failure to stderr\n", MAX_WORKERS);
        exit(code);
}

int main(int argc, char **argv) {
        Options o = { .user = "alice@example.com", .password = "alice-secret", .workers = 1, .duration = 10 };
        int ch;
        while ((ch = getopt(argc, argv, "t:u:w:p:d:n:kgvh")) != -1) {
                char *end;
                switch (ch) {
                case 't': o.target = optarg; break;
                case 'u': o.user = optarg; break;
                case 'w': o.password = optarg; break;
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
                case 'k': o.keep = true; break;
                case 'g': o.greet_only = true; break;
                case 'v': o.verbose = true; break;
                case 'h': usage(0);
                default: usage(2);
                }
        }
        size_t ul = strlen(o.user), pl = strlen(o.password);
        if (!o.target || optind != argc || (o.keep && o.greet_only) ||
            ul == 0 || ul > MAX_CRED || pl > MAX_CRED || strpbrk(o.user, "\t\n"))
                usage(2);

        /* SASL PLAIN: authzid (empty) NUL authcid NUL password. */
        _cleanup_free_ unsigned char *plain = malloc(ul + pl + 2);
        if (!plain) {
                fprintf(stderr, "auth-load: out of memory\n");
                return 1;
        }
        plain[0] = '\0';
        memcpy(plain + 1, o.user, ul + 1);
        memcpy(plain + 2 + ul, o.password, pl);
        _cleanup_free_ char *b64 = base64(plain, ul + pl + 2);
        if (!b64) {
                fprintf(stderr, "auth-load: out of memory\n");
                return 1;
        }

        size_t map_len = sizeof(WorkerStats) * o.workers;
        WorkerStats *stats = bench_map_shared(map_len);
        if (!stats) {
                fprintf(stderr, "auth-load: mmap: %m\n");
                return 1;
        }
        signal(SIGPIPE, SIG_IGN);

        double t0 = bench_now();
        Job job = { .o = &o, .stats = stats, .b64 = b64 };
        int r = bench_run_workers(o.workers, run_worker, &job);
        if (r < 0) {
                fprintf(stderr, "auth-load: fork: %s\n", strerror(-r));
                return 1;
        }
        bool worker_failed = r > 0;
        double elapsed = bench_now() - t0;

        uint64_t auths = 0, errors = 0, conns = 0;
        size_t n_lat = 0, n_greet = 0;
        for (unsigned i = 0; i < o.workers; i++) {
                auths += stats[i].auths;
                errors += stats[i].errors;
                conns += stats[i].conns;
        }
        _cleanup_free_ uint32_t *lat = BENCH_JOIN(stats, o.workers, lat_us, n_lat, &n_lat);
        _cleanup_free_ uint32_t *greet = BENCH_JOIN(stats, o.workers, greet_us, n_greet, &n_greet);
        if (!lat || !greet) {
                fprintf(stderr, "auth-load: out of memory\n");
                return 1;
        }
        munmap(stats, map_len);

        double rate = elapsed > 0 ? (double) auths / elapsed : 0;
        printf("target %s, %u client(s), %s, user %s\n", o.target, o.workers,
               o.greet_only ? "handshake only" :
               o.keep ? "many authentications per connection" : "one connection per authentication",
               o.user);
        printf("authentications %" PRIu64 ", errors %" PRIu64 ", connections %" PRIu64 ", %.2f s\n",
               auths, errors, conns, elapsed);
        printf("throughput %.1f authentications/s\n", rate);
        printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n",
               bench_pct_ms(lat, n_lat, 50), bench_pct_ms(lat, n_lat, 90), bench_pct_ms(lat, n_lat, 99),
               n_lat ? lat[n_lat - 1] / 1000.0 : 0);
        printf("connect-to-DONE ms: median %.3f (%zu connections)\n",
               bench_pct_ms(greet, n_greet, 50), n_greet);
        printf("RESULT rate=%.1f auths=%" PRIu64 " errors=%" PRIu64 " p50=%.3f p90=%.3f p99=%.3f "
               "greet_p50=%.3f greet_n=%zu\n",
               rate, auths, errors, bench_pct_ms(lat, n_lat, 50), bench_pct_ms(lat, n_lat, 90),
               bench_pct_ms(lat, n_lat, 99), bench_pct_ms(greet, n_greet, 50), n_greet);
        return errors || worker_failed || auths == 0 ? 1 : 0;
}
