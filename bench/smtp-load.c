/* smtp-load — a small SMTP load generator for bench/run-smtp.
 *
 * Two workloads against one target (host:port or a unix socket path):
 *
 *   delivery (default): N worker processes (fork) send COUNT messages in
 *   total: connect, EHLO, then PER_CONN transactions (MAIL FROM, RCPT TO,
 *   DATA with a fixed message of SIZE bytes, each with its own Message-ID),
 *   QUIT. Commands go one at a time (no pipelining) and every reply code is
 *   checked; an unexpected one counts as an error and drops the connection.
 *   With -w DIR the clock stops only when DIR (a Maildir's new/) holds as
 *   many files as the server accepted messages: a server that answers 250
 *   once the message is queued (Postfix) and one that delivers before the
 *   250 reaches the client (smtp-handler) are timed to the same point.
 *
 *   -T, STARTTLS sessions: connect, EHLO (STARTTLS must be offered),
 *   STARTTLS, a TLS handshake (GnuTLS defaults, no session resumption, the
 *   certificate is not verified: this measures the server's cost, not
 *   trust), EHLO again over TLS, QUIT. COUNT is the number of sessions.
 *
 * Output: a readable summary, then "RESULT key=value ..." for scripts:
 * rate (messages or sessions per second over total_s), msgs, errors,
 * send_s (until the last reply), total_s (until the Maildir is complete
 * when -w is given, else send_s), maildir (files counted), p50/p99 latency
 * per message or session in ms.
 *
 * Every wait is bounded (socket and TLS timeouts, the Maildir wait), reply
 * lines are limited, and the sample arrays have a fixed capacity. */
#include <dirent.h>
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
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>

#include "bench-util.h"
#include "macro.h"

#define MAX_WORKERS 64
#define MAX_SAMPLES (1u << 16)   /* per worker: 256 KiB of uint32 */
#define LINE_MAX_LEN 1024        /* RFC 5321 reply lines are <= 512 */
#define MAX_REPLY_LINES 100

typedef struct {
    uint64_t msgs, errors, conns;
    double last_reply;           /* monotonic time of this worker's last reply */
    uint32_t n_lat;
    uint32_t lat_us[MAX_SAMPLES];
} WorkerStats;

typedef struct {
    const char *target;
    const char *rcpt;
    const char *maildir;         /* -w: count files here */
    unsigned workers;
    unsigned per_conn;
    uint64_t count;
    size_t size;
    double wait_s;
    bool tls;
    bool verbose;
} Options;

typedef struct {
    int fd;
    gnutls_session_t tls;        /* NULL while plain */
    BenchIn in;
    char buf[4096];
} Conn;

static gnutls_certificate_credentials_t client_cred;

/* Connections set TCP_NODELAY (bench_connect's second argument): GnuTLS may
 * write a record's header and body separately, and without NODELAY Nagle
 * holds the second part until the server's delayed ACK (40 ms), which would
 * be the client's cost, not the server's. */

static void conn_init(Conn *c, int fd) {
    c->fd = fd;
    c->tls = NULL;
    bench_in_init(&c->in, c->buf, sizeof c->buf);
}

static void conn_close(Conn *c) {
    if (c->tls) {
        gnutls_deinit(c->tls);
        c->tls = NULL;
    }
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->in.start = c->in.end = 0;
}

static int conn_write(Conn *c, const char *p, size_t n) {
    if (!c->tls) return bench_write_all(c->fd, p, n);
    while (n > 0) {
        ssize_t w = gnutls_record_send(c->tls, p, n);
        if (w == GNUTLS_E_INTERRUPTED || w == GNUTLS_E_AGAIN) continue;
        if (w < 0) return -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A BenchFill for a Conn, plain or TLS. */
static ssize_t conn_fill(void *userdata, char *buf, size_t size) {
    Conn *c = userdata;
    if (!c->tls) return bench_fill_recv(&c->fd, buf, size);
    double deadline = bench_now() + BENCH_IO_TIMEOUT_S;
    for (;;) {
        ssize_t r = gnutls_record_recv(c->tls, buf, size);
        if (r == GNUTLS_E_INTERRUPTED) continue;
        /* AGAIN also comes after a TLS 1.3 post-handshake message (a
         * session ticket from OpenSSL) with no data yet: read on until
         * the timeout has really passed. */
        if (r == GNUTLS_E_AGAIN && bench_now() < deadline) continue;
        if (r < 0) return r == GNUTLS_E_AGAIN ? -ETIMEDOUT : -EIO;
        return r;
    }
}

/* Reads one line (without CRLF) into LINE (LINE_MAX_LEN + 1 bytes). */
static int read_line(Conn *c, char *line) {
    return bench_read_line(&c->in, conn_fill, c, line, LINE_MAX_LEN, true, NULL);
}

/* Reads a (possibly multi-line) reply; returns its code or negative errno.
 * LAST gets the final line; *SAW_STARTTLS (may be NULL) is set when a
 * line of the reply is the STARTTLS capability. */
static int read_reply(Conn *c, char *last, bool *saw_starttls) {
    for (unsigned lines = 0; lines < MAX_REPLY_LINES; lines++) {
        int r = read_line(c, last);
        if (r < 0) return r;
        if (strlen(last) < 3 || last[0] < '1' || last[0] > '5' || last[1] < '0' || last[1] > '9' ||
            last[2] < '0' || last[2] > '9')
            return -EBADMSG;
        if (saw_starttls && strcasecmp(last + 3 + (last[3] != '\0'), "STARTTLS") == 0)
            *saw_starttls = true;
        if (last[3] == '-') continue;
        if (last[3] != ' ' && last[3] != '\0') return -EBADMSG;
        return (last[0] - '0') * 100 + (last[1] - '0') * 10 + (last[2] - '0');
    }
    return -E2BIG;
}

static bool expect_full(Conn *c, const char *cmd, int want, const Options *o, bool *saw_starttls) {
    char last[LINE_MAX_LEN + 1];
    if (cmd && conn_write(c, cmd, strlen(cmd)) < 0) {
        if (o->verbose) fprintf(stderr, "smtp-load: write failed\n");
        return false;
    }
    int code = read_reply(c, last, saw_starttls);
    if (code == want) return true;
    if (o->verbose)
        fprintf(stderr, "smtp-load: after %.*s: %s\n", cmd ? (int)strcspn(cmd, "\r") : 8,
                cmd ? cmd : "greeting", code < 0 ? strerror(-code) : last);
    return false;
}

static bool expect(Conn *c, const char *cmd, int want, const Options *o) {
    return expect_full(c, cmd, want, o, NULL);
}

#define MSGID_DIGITS 20

/* A message of exactly max(SIZE, headers + 3) bytes: CRLF lines of at most
 * 78 characters, none starting with '.', then the ".\r\n" terminator.
 * *RET_MSGID points at MSGID_DIGITS digits inside the Message-ID that the
 * worker overwrites for every message. */
static char *make_message(const char *rcpt, size_t size, size_t *ret_len, size_t *ret_msgid) {
    char head[1024];
    int h = snprintf(head, sizeof head,
                     "From: <bench@example.org>\r\nTo: <%s>\r\n"
                     "Subject: smtp-load benchmark\r\n"
                     "Message-ID: <%0*d@smtp-load.example.org>\r\n\r\n",
                     rcpt, MSGID_DIGITS, 0);
    if (h < 0 || (size_t)h >= sizeof head) return NULL;
    const char *at = strstr(head, "@smtp-load.example.org>");
    size_t total = size > (size_t)h + 3 ? size : (size_t)h + 3;
    char *m = malloc(total + 3);
    if (!m || !at) {
        free(m);
        return NULL;
    }
    memcpy(m, head, (size_t)h);
    size_t i = (size_t)h;
    while (i < total) {
        size_t left = total - i;
        size_t n = left >= 81 ? 76 : left - 2;   /* the last line takes 3..80 */
        for (size_t k = 0; k < n; k++) m[i++] = (char)('a' + k % 26);
        m[i++] = '\r';
        m[i++] = '\n';
    }
    memcpy(m + total, ".\r\n", 3);
    *ret_len = total + 3;
    *ret_msgid = (size_t)(at - head) - MSGID_DIGITS;
    return m;
}

static void record(WorkerStats *st, uint32_t v) {
    if (st->n_lat < MAX_SAMPLES) st->lat_us[st->n_lat++] = v;
}

/* GnuTLS transport: recv with TCP_QUICKACK set before every read. An
 * OpenSSL server (Postfix) writes its first TLS 1.3 session ticket and the
 * first reply as two small segments; the second waits (server Nagle) for
 * the ACK of the first, which a client that has nothing to send delays by
 * 40 ms. Acknowledging at once keeps that client artefact out of the
 * server's figure. QUICKACK is not sticky, hence per read. */
static ssize_t pull_quickack(gnutls_transport_ptr_t p, void *buf, size_t n) {
    int fd = (int)(intptr_t)p, one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    return recv(fd, buf, n, 0);
}

static int pull_timeout(gnutls_transport_ptr_t p, unsigned int ms) {
    struct pollfd pfd = { .fd = (int)(intptr_t)p, .events = POLLIN };
    return poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
}

static bool tls_start(Conn *c, const Options *o) {
    int r = gnutls_init(&c->tls, GNUTLS_CLIENT);
    if (r < 0) {
        c->tls = NULL;
        return false;
    }
    if (gnutls_set_default_priority(c->tls) < 0 ||
        gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, client_cred) < 0)
        return false;
    gnutls_transport_set_int(c->tls, c->fd);
    gnutls_transport_set_pull_function(c->tls, pull_quickack);
    gnutls_transport_set_pull_timeout_function(c->tls, pull_timeout);
    gnutls_handshake_set_timeout(c->tls, BENCH_IO_TIMEOUT_S * 1000);
    /* Bounded: non-fatal codes (interrupts, warnings) are retried a few times. */
    for (unsigned tries = 0; tries < 100; tries++) {
        r = gnutls_handshake(c->tls);
        if (r >= 0) return true;
        if (gnutls_error_is_fatal(r)) break;
    }
    if (o->verbose) fprintf(stderr, "smtp-load: TLS handshake: %s\n", gnutls_strerror(r));
    return false;
}

/* One STARTTLS session; true when every reply was as expected. */
static bool tls_session(const Options *o, WorkerStats *st) {
    int fd = bench_connect(o->target, true);
    if (fd < 0) {
        if (o->verbose) fprintf(stderr, "smtp-load: connect %s: %s\n", o->target, strerror(-fd));
        return false;
    }
    Conn c;
    conn_init(&c, fd);
    st->conns++;
    bool starttls = false;
    bool ok = expect(&c, NULL, 220, o) &&
              expect_full(&c, "EHLO smtp-load.example.org\r\n", 250, o, &starttls);
    if (ok && !starttls) {
        if (o->verbose) fprintf(stderr, "smtp-load: STARTTLS not offered\n");
        ok = false;
    }
    ok = ok && expect(&c, "STARTTLS\r\n", 220, o);
    /* Nothing may follow the 220 in plaintext (RFC 3207). */
    ok = ok && !bench_in_pending(&c.in) && tls_start(&c, o);
    ok = ok && expect(&c, "EHLO smtp-load.example.org\r\n", 250, o) &&
         expect(&c, "QUIT\r\n", 221, o);
    if (ok && c.tls) gnutls_bye(c.tls, GNUTLS_SHUT_WR);
    conn_close(&c);
    return ok;
}

static void worker(const Options *o, unsigned id, WorkerStats *st, char *msg, size_t msg_len,
                   size_t msgid_off) {
    uint64_t mine = o->count / o->workers + (id < o->count % o->workers ? 1 : 0);
    _cleanup_free_ char *rcpt = NULL;
    if (asprintf(&rcpt, "RCPT TO:<%s>\r\n", o->rcpt) < 0) _exit(1);

    Conn c = { .fd = -1 };
    unsigned in_conn = 0, consecutive_errors = 0;
    uint64_t serial = 0;
    while (st->msgs + st->errors < mine && consecutive_errors < 20) {
        double t0 = bench_now();
        bool ok;
        if (o->tls) {
            ok = tls_session(o, st);
        } else {
            ok = true;
            if (c.fd < 0) {
                int fd = bench_connect(o->target, true);
                if (fd < 0) {
                    if (o->verbose)
                        fprintf(stderr, "smtp-load: connect %s: %s\n", o->target, strerror(-fd));
                    st->errors++;
                    consecutive_errors++;
                    usleep(10000);
                    continue;
                }
                conn_init(&c, fd);
                in_conn = 0;
                st->conns++;
                ok = expect(&c, NULL, 220, o) && expect(&c, "EHLO smtp-load.example.org\r\n", 250, o);
            }
            /* A Message-ID of its own per message: worker id and serial. */
            char digits[MSGID_DIGITS + 1];
            snprintf(digits, sizeof digits, "%04u%016" PRIu64, id % 10000, serial++ % 10000000000000000u);
            memcpy(msg + msgid_off, digits, MSGID_DIGITS);
            ok = ok && expect(&c, "MAIL FROM:<bench@example.org>\r\n", 250, o) &&
                 expect(&c, rcpt, 250, o) && expect(&c, "DATA\r\n", 354, o);
            if (ok && conn_write(&c, msg, msg_len) < 0) ok = false;
            ok = ok && expect(&c, NULL, 250, o);
            if (ok && ++in_conn >= o->per_conn) {
                ok = expect(&c, "QUIT\r\n", 221, o);
                conn_close(&c);
            }
            if (!ok) conn_close(&c);
        }
        st->last_reply = bench_now();
        if (ok) {
            st->msgs++;
            consecutive_errors = 0;
            record(st, bench_us_since(t0));
        } else {
            st->errors++;
            consecutive_errors++;
        }
    }
    if (c.fd >= 0) {
        expect(&c, "QUIT\r\n", 221, o);
        conn_close(&c);
    }
}

/* Entries of DIR that are not dot files; 0 when DIR does not exist yet. */
static uint64_t count_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    uint64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

typedef struct {
    const Options *o;
    WorkerStats *stats;
    char *msg;
    size_t msg_len, msgid_off;
} Job;

static void run_worker(unsigned i, void *userdata) {
    const Job *j = userdata;
    worker(j->o, i, &j->stats[i], j->msg, j->msg_len, j->msgid_off);
}

static _noreturn_ void usage(int code) {
    fprintf(code ? stderr : stdout,
            "usage: smtp-load -t TARGET -n COUNT [-r RCPT] [-p WORKERS] [-m PER_CONN]\n"
            "                 [-s SIZE] [-w MAILDIR_NEW [-W SECONDS]] [-T] [-v]\n"
            "  -t TARGET   host:port, /path/to/socket or unix:/path\n"
            "  -n COUNT    messages (or with -T, sessions) in total\n"
            "  -r RCPT     recipient (default alice@example.com)\n"
            "  -p N        parallel connections, one process each (default 1, max %d)\n"
            "  -m N        messages per connection (default 1)\n"
            "  -s SIZE     message size in bytes (default 4096)\n"
            "  -w DIR      stop the clock when DIR holds as many files as messages were\n"
            "              accepted (DIR must start empty or absent)\n"
            "  -W SEC      give up waiting for DIR after SEC seconds (default 120)\n"
            "  -T          STARTTLS sessions: EHLO, STARTTLS, EHLO, QUIT\n"
            "  -v          print each failure to stderr\n",
            MAX_WORKERS);
    exit(code);
}

int main(int argc, char **argv) {
    Options o = { .rcpt = "alice@example.com", .workers = 1, .per_conn = 1, .size = 4096,
                  .wait_s = 120 };
    int ch;
    while ((ch = getopt(argc, argv, "t:n:r:p:m:s:w:W:Tvh")) != -1) {
        char *end;
        switch (ch) {
        case 't': o.target = optarg; break;
        case 'r': o.rcpt = optarg; break;
        case 'w': o.maildir = optarg; break;
        case 'n':
            o.count = strtoull(optarg, &end, 10);
            if (*end || o.count < 1 || o.count > 10000000) usage(2);
            break;
        case 'p':
            o.workers = (unsigned)strtoul(optarg, &end, 10);
            if (*end || o.workers < 1 || o.workers > MAX_WORKERS) usage(2);
            break;
        case 'm':
            o.per_conn = (unsigned)strtoul(optarg, &end, 10);
            if (*end || o.per_conn < 1 || o.per_conn > 1000000) usage(2);
            break;
        case 's':
            o.size = (size_t)strtoul(optarg, &end, 10);
            if (*end || o.size > 64u << 20) usage(2);
            break;
        case 'W':
            o.wait_s = strtod(optarg, &end);
            if (*end || !(o.wait_s > 0 && o.wait_s <= 3600)) usage(2);
            break;
        case 'T': o.tls = true; break;
        case 'v': o.verbose = true; break;
        case 'h': usage(0);
        default: usage(2);
        }
    }
    if (!o.target || !o.count || optind != argc || strpbrk(o.rcpt, "<>\r\n ") ||
        (o.tls && o.maildir))
        usage(2);
    if (o.maildir && count_files(o.maildir) != 0) {
        fprintf(stderr, "smtp-load: %s is not empty\n", o.maildir);
        return 1;
    }

    size_t msg_len = 0, msgid_off = 0;
    _cleanup_free_ char *msg = make_message(o.rcpt, o.size, &msg_len, &msgid_off);
    if (!msg) {
        fprintf(stderr, "smtp-load: cannot build the message\n");
        return 1;
    }
    if (o.tls && (gnutls_global_init() < 0 ||
                  gnutls_certificate_allocate_credentials(&client_cred) < 0)) {
        fprintf(stderr, "smtp-load: GnuTLS initialisation failed\n");
        return 1;
    }

    size_t map_len = sizeof(WorkerStats) * o.workers;
    WorkerStats *stats = bench_map_shared(map_len);
    if (!stats) {
        fprintf(stderr, "smtp-load: mmap: %m\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    double t0 = bench_now();
    Job job = { .o = &o, .stats = stats, .msg = msg, .msg_len = msg_len, .msgid_off = msgid_off };
    int r = bench_run_workers(o.workers, run_worker, &job);
    if (r < 0) fprintf(stderr, "smtp-load: fork: %s\n", strerror(-r));
    bool worker_failed = r != 0;

    uint64_t msgs = 0, errors = 0, conns = 0;
    size_t n_lat = 0;
    double last_reply = t0;
    for (unsigned i = 0; i < o.workers; i++) {
        msgs += stats[i].msgs;
        errors += stats[i].errors;
        conns += stats[i].conns;
        if (stats[i].last_reply > last_reply) last_reply = stats[i].last_reply;
    }
    double send_s = last_reply - t0, total_s = send_s;

    /* Postfix answers 250 when the message is in its queue; the Maildir
     * copy comes later. Poll every 2 ms (a readdir of a few hundred names
     * costs far less than that) until every accepted message is there. */
    uint64_t in_maildir = 0;
    bool maildir_short = false;
    if (o.maildir) {
        double deadline = bench_now() + o.wait_s;
        for (;;) {
            in_maildir = count_files(o.maildir);
            double t = bench_now();
            if (in_maildir >= msgs) {
                total_s = t - t0;
                break;
            }
            if (t >= deadline) {
                maildir_short = true;
                total_s = t - t0;
                break;
            }
            usleep(2000);
        }
    }

    _cleanup_free_ uint32_t *lat = BENCH_JOIN(stats, o.workers, lat_us, n_lat, &n_lat);
    if (!lat) {
        fprintf(stderr, "smtp-load: out of memory\n");
        return 1;
    }
    munmap(stats, map_len);

    double rate = total_s > 0 ? (double)msgs / total_s : 0;
    const char *unit = o.tls ? "sessions" : "messages";
    if (o.tls)
        printf("target %s, %u connection(s), STARTTLS sessions\n", o.target, o.workers);
    else
        printf("target %s, %u connection(s), %u message(s) per connection, %zu-byte messages\n",
               o.target, o.workers, o.per_conn, msg_len - 3);
    printf("%s %" PRIu64 ", errors %" PRIu64 ", connections %" PRIu64 "\n", unit, msgs, errors, conns);
    printf("last reply after %.3f s", send_s);
    if (o.maildir)
        printf(", %" PRIu64 " file(s) in %s after %.3f s%s", in_maildir, o.maildir, total_s,
               maildir_short ? " (GAVE UP WAITING)" : "");
    printf("\nthroughput %.1f %s/s\n", rate, unit);
    printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", bench_pct_ms(lat, n_lat, 50),
           bench_pct_ms(lat, n_lat, 90), bench_pct_ms(lat, n_lat, 99), n_lat ? lat[n_lat - 1] / 1000.0 : 0);
    printf("RESULT rate=%.1f msgs=%" PRIu64 " errors=%" PRIu64 " send_s=%.3f total_s=%.3f "
           "maildir=%" PRIu64 " p50=%.3f p99=%.3f\n",
           rate, msgs, errors, send_s, total_s, in_maildir, bench_pct_ms(lat, n_lat, 50),
           bench_pct_ms(lat, n_lat, 99));
    return errors || worker_failed || msgs == 0 || maildir_short ? 1 : 0;
}
