/* pop3-load — a POP3 load generator for bench/run-pop3 (pop3-handler
 * against Dovecot's POP3 on the same Maildir).
 *
 *   pop3-load -p PORT -u USER -w PASS [-s] [-m session|fetch|hold] [-c N] [-d SECS | -n COUNT]
 *
 * -s: implicit TLS (POP3S, GnuTLS client, certificate not checked: it is
 * the lab's own). Modes:
 *   session  connect, greeting, USER, PASS, STAT, QUIT — one session after
 *            another in each of -c worker processes (fork)
 *   fetch    connect, USER, PASS, UIDL, RETR of every listed message, QUIT;
 *            checks that every message arrives whole (ends in CRLF.CRLF) and
 *            reports messages and octets per session
 *   hold     log in, STAT, then keep the session open for -d seconds (so
 *            bench/run-pop3 can read the server process's RSS), QUIT
 * Every reply must start with +OK; anything else counts as an error and
 * ends that session. Output: a human line and "RESULT key=value ..."
 * (rate, p50, p99 in ms, errors, msgs, octets).
 *
 * Bounds: socket timeouts on every read and write, a line limit, a fixed
 * sample capacity (later samples are counted, not kept). */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench-util.h"

#define LINE_MAX_LEN 8192
#define MAX_SAMPLES 200000
#define MAX_WORKERS 64

enum mode { M_SESSION, M_FETCH, M_HOLD };

struct opts {
    int port;
    const char *user, *pass;
    bool tls;
    enum mode mode;
    unsigned clients;
    double duration;
    unsigned count;
};

struct stats {
    uint64_t ok, errors, msgs, octets;
    uint32_t n_samples;
    uint32_t samples[MAX_SAMPLES / MAX_WORKERS];
};

struct conn {
    int fd;
    gnutls_session_t tls;
    BenchIn in;
    char buf[65536];
};

static gnutls_certificate_credentials_t creds;

static int conn_open(struct conn *c, const struct opts *o) {
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%d", o->port);
    c->tls = NULL;
    bench_in_init(&c->in, c->buf, sizeof c->buf);
    c->fd = bench_connect(target, true);
    if (c->fd < 0) return c->fd;
    if (!o->tls) return 0;
    if (gnutls_init(&c->tls, GNUTLS_CLIENT) < 0) return -ENOMEM;
    gnutls_set_default_priority(c->tls);
    gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, creds);
    gnutls_transport_set_int(c->tls, c->fd);
    gnutls_handshake_set_timeout(c->tls, BENCH_IO_TIMEOUT_S * 1000);
    int r;
    do r = gnutls_handshake(c->tls); while (r < 0 && !gnutls_error_is_fatal(r));
    return r < 0 ? -EPROTO : 0;
}

static void conn_close(struct conn *c) {
    if (c->tls) {
        gnutls_bye(c->tls, GNUTLS_SHUT_WR);
        gnutls_deinit(c->tls);
    }
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->tls = NULL;
}

static int conn_write(struct conn *c, const char *p, size_t n) {
    if (!c->tls) return bench_write_all(c->fd, p, n);
    while (n) {
        ssize_t w = gnutls_record_send(c->tls, p, n);
        if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) continue;
        if (w <= 0) return -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A BenchFill for a conn, plain or TLS; any failure reads as a reset. */
static ssize_t conn_fill(void *userdata, char *buf, size_t size) {
    struct conn *c = userdata;
    for (;;) {
        ssize_t r = c->tls ? gnutls_record_recv(c->tls, buf, size) : bench_fill_recv(&c->fd, buf, size);
        if (c->tls && (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)) continue;
        return r < 0 ? -ECONNRESET : r;
    }
}

/* One line (CRLF stripped) into LINE (LINE_MAX_LEN + 1 bytes); *LEN its
 * length on the wire including the terminator. */
static int conn_line(struct conn *c, char *line, size_t *len) {
    return bench_read_line(&c->in, conn_fill, c, line, LINE_MAX_LEN, true, len);
}

static bool cmd(struct conn *c, const char *text, char *line) {
    char out[600];
    int n = snprintf(out, sizeof out, "%s\r\n", text);
    if (n < 0 || (size_t)n >= sizeof out || conn_write(c, out, (size_t)n) < 0) return false;
    return conn_line(c, line, NULL) == 0 && strncmp(line, "+OK", 3) == 0;
}

/* The body of a multi-line reply up to "."; counts lines and octets. */
static bool multiline(struct conn *c, char *line, uint64_t *lines, uint64_t *octets) {
    for (unsigned guard = 0; guard < 10000000; guard++) {
        size_t len;
        if (conn_line(c, line, &len) < 0) return false;
        if (line[0] == '.' && line[1] == 0) return true;
        if (lines) (*lines)++;
        if (octets) *octets += len;
    }
    return false;
}

static bool login(struct conn *c, const struct opts *o, char *line) {
    char t[600];
    if (conn_line(c, line, NULL) < 0 || strncmp(line, "+OK", 3) != 0) return false;
    snprintf(t, sizeof t, "USER %s", o->user);
    if (!cmd(c, t, line)) return false;
    snprintf(t, sizeof t, "PASS %s", o->pass);
    return cmd(c, t, line);
}

/* One session of the chosen mode; true when every reply was +OK. */
static bool session(const struct opts *o, struct stats *st, char *line) {
    struct conn c = { .fd = -1 };
    bool good = false;
    if (conn_open(&c, o) < 0 || !login(&c, o, line)) goto out;
    if (o->mode == M_FETCH) {
        uint64_t n = 0;
        if (!cmd(&c, "UIDL", line) || !multiline(&c, line, &n, NULL) || n == 0) goto out;
        for (uint64_t i = 1; i <= n; i++) {
            char t[64];
            snprintf(t, sizeof t, "RETR %llu", (unsigned long long)i);
            if (!cmd(&c, t, line) || !multiline(&c, line, NULL, &st->octets)) goto out;
            st->msgs++;
        }
    } else {
        if (!cmd(&c, "STAT", line)) goto out;
        if (o->mode == M_HOLD) {
            printf("HOLDING\n");
            fflush(stdout);
            usleep((useconds_t)(o->duration * 1e6));
        }
    }
    good = cmd(&c, "QUIT", line);
out:
    conn_close(&c);
    return good;
}

static void worker(const struct opts *o, unsigned idx, struct stats *st) {
    char *line = malloc(LINE_MAX_LEN + 1);
    if (!line) _exit(1);
    double end = bench_now() + o->duration;
    for (unsigned i = 0;; i++) {
        if (o->count ? i >= (o->count + o->clients - 1 - idx) / o->clients : bench_now() >= end) break;
        double t0 = bench_now();
        bool good = session(o, st, line);
        uint32_t us = bench_us_since(t0);
        if (good) {
            st->ok++;
            if (st->n_samples < MAX_SAMPLES / MAX_WORKERS) st->samples[st->n_samples++] = us;
        } else {
            st->errors++;
            if (st->errors == 1) fprintf(stderr, "pop3-load: worker %u: failed, last line: %.200s\n", idx, line);
        }
        if (o->mode == M_HOLD) break;
    }
    free(line);
}

typedef struct {
    const struct opts *o;
    struct stats *st;
} Job;

static void run_worker(unsigned i, void *userdata) {
    const Job *j = userdata;
    worker(j->o, i, &j->st[i]);
}

static void usage(int code) {
    fprintf(code ? stderr : stdout,
            "usage: pop3-load -p PORT -u USER -w PASS [-s] [-m session|fetch|hold] [-c N] [-d SECS | -n COUNT]\n");
    exit(code);
}

int main(int argc, char **argv) {
    struct opts o = { .mode = M_SESSION, .clients = 1, .duration = 5 };
    int ch;
    while ((ch = getopt(argc, argv, "p:u:w:sm:c:d:n:h")) != -1) {
        switch (ch) {
        case 'p': o.port = atoi(optarg); break;
        case 'u': o.user = optarg; break;
        case 'w': o.pass = optarg; break;
        case 's': o.tls = true; break;
        case 'm':
            if (!strcmp(optarg, "session")) o.mode = M_SESSION;
            else if (!strcmp(optarg, "fetch")) o.mode = M_FETCH;
            else if (!strcmp(optarg, "hold")) o.mode = M_HOLD;
            else usage(2);
            break;
        case 'c': o.clients = (unsigned)atoi(optarg); break;
        case 'd': o.duration = atof(optarg); break;
        case 'n': o.count = (unsigned)atoi(optarg); break;
        case 'h': usage(0); break;
        default: usage(2);
        }
    }
    if (o.port <= 0 || o.port > 65535 || !o.user || !o.pass || o.clients < 1 || o.clients > MAX_WORKERS ||
        o.duration <= 0 || o.duration > 3600 || strlen(o.user) > 500 || strlen(o.pass) > 500)
        usage(2);
    signal(SIGPIPE, SIG_IGN);
    if (o.tls && (gnutls_global_init() < 0 || gnutls_certificate_allocate_credentials(&creds) < 0)) return 1;

    struct stats *st = bench_map_shared(sizeof *st * o.clients);
    if (!st) return 1;
    double t0 = bench_now();
    /* A worker's exit status does not count: its errors are in its stats. */
    Job job = { .o = &o, .st = st };
    if (bench_run_workers(o.clients, run_worker, &job) < 0) return 1;
    double elapsed = bench_now() - t0;

    struct stats sum = {0};
    uint32_t *all = malloc(sizeof(uint32_t) * MAX_SAMPLES);
    size_t n = 0;
    for (unsigned i = 0; i < o.clients; i++) {
        sum.ok += st[i].ok;
        sum.errors += st[i].errors;
        sum.msgs += st[i].msgs;
        sum.octets += st[i].octets;
        for (uint32_t j = 0; j < st[i].n_samples; j++) all[n++] = st[i].samples[j];
    }
    bench_sort_u32(all, n);
    double p50 = bench_pct_ms(all, n, 50), p99 = bench_pct_ms(all, n, 99);
    double rate = (double)sum.ok / elapsed;
    printf("%llu sessions in %.2f s (%.1f/s), p50 %.3f ms, p99 %.3f ms, %llu errors, %llu messages, %llu octets\n",
           (unsigned long long)sum.ok, elapsed, rate, p50, p99, (unsigned long long)sum.errors,
           (unsigned long long)sum.msgs, (unsigned long long)sum.octets);
    printf("RESULT rate=%.1f p50=%.3f p99=%.3f ok=%llu errors=%llu msgs=%llu octets=%llu\n", rate, p50, p99,
           (unsigned long long)sum.ok, (unsigned long long)sum.errors, (unsigned long long)sum.msgs,
           (unsigned long long)sum.octets);
    free(all);
    return sum.errors ? 1 : 0;
}
