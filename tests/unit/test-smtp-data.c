/* test-smtp-data.c — sm_data_read: terminator, dot-unstuffing, CRLF → LF,
 * faults (bare LF, bare CR, NUL), size limit, spool write errors, and the
 * session staying in step after the body.
 *
 * Each case runs twice over. Through a scripted in-memory transport the
 * input arrives in reads of an exact size (1, 2, 3, 7 bytes and whole) or is
 * split at one exact position, so every place a terminator or CR LF can be
 * cut is reached deterministically. Through a real socketpair a writer
 * child feeds it, in one write or byte by byte with a pause between writes.
 * After the body, the next line sm_io_getline returns must be the command
 * that followed it. */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "io.h"
#include "macro.h"
#include "smtp-data.h"
#include "tap.h"

#define NEXT "NEXT\r\n"

/* ---- scripted transport: reads of at most PIECE bytes, never across SPLIT ---- */

struct script {
    const char *data;
    size_t len, pos, piece, split;
};

static ssize_t script_read(void *ctx, void *buf, size_t len) {
    struct script *s = ctx;
    size_t n = s->len - s->pos;
    if (n > s->piece) n = s->piece;
    if (s->pos < s->split && n > s->split - s->pos) n = s->split - s->pos;
    if (n > len) n = len;
    memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    return (ssize_t)n;
}
static ssize_t script_write(_unused_ void *ctx, _unused_ const void *buf, size_t len) {
    return (ssize_t)len;
}
static size_t script_pending(_unused_ void *ctx) { return 0; }

/* ---- one run ---- */

struct outcome {
    int r;
    struct sm_data_result res;
    char *stored;          /* spool contents (malloc'd, NUL after) */
    size_t stored_len;
    int next_r;            /* sm_io_getline after an OK body */
    char next[64];
};

static void outcome_free(struct outcome *o) {
    free(o->stored);
    o->stored = NULL;
}

static int new_spool(void) {
    int fd = memfd_create("spool", 0);
    if (fd < 0) {
        perror("memfd_create");
        exit(99);
    }
    return fd;
}

static char *slurp(int fd, size_t *ret_len) {
    struct stat st;
    if (fstat(fd, &st) < 0) return NULL;
    char *b = malloc((size_t)st.st_size + 1);
    if (!b) return NULL;
    ssize_t n = pread(fd, b, (size_t)st.st_size, 0);
    if (n < 0) n = 0;
    b[n] = 0;
    *ret_len = (size_t)n;
    return b;
}

/* Reads the body (and the line after it) from IO into SPOOL. */
static void read_body(struct sm_io *io, int spool, uint64_t max, struct outcome *o) {
    memset(&o->res, 0xa5, sizeof o->res);  /* must be reset by sm_data_read */
    o->r = sm_data_read(io, spool, max, &o->res);
    o->next_r = SM_IO_EOF;
    o->next[0] = 0;
    if (o->r == SM_IO_OK) {
        struct sm_line l;
        o->next_r = sm_io_getline(io, 60, &l);
        if (o->next_r == SM_IO_OK) snprintf(o->next, sizeof o->next, "%s", l.data);
    }
    o->stored = slurp(spool, &o->stored_len);
}

static void run_script(const char *in, size_t len, size_t piece, size_t split, uint64_t max,
                       struct outcome *o) {
    struct script s = { .data = in, .len = len, .piece = piece, .split = split };
    struct sm_io *io = sm_io_new(-1, -1);
    if (!io) exit(99);
    struct sm_transport t = { script_read, script_write, script_pending, NULL, &s };
    sm_io_set_transport(io, &t);
    _cleanup_close_ int spool = new_spool();
    read_body(io, spool, max, o);
    sm_io_free(io);
}

static void sleep_us(long us) {
    struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
}

/* A child writes IN to a socketpair in writes of PIECE bytes (0: one), pausing
 * DELAY_US between them, then closes (unless HOLD: then it waits to be
 * killed). SPOOL -1: a fresh memfd. */
static void run_socket(const char *in, size_t len, size_t piece, long delay_us, bool hold,
                       int spool, uint64_t max, unsigned timeout, struct outcome *o) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) exit(99);
    pid_t pid = fork();
    if (pid < 0) exit(99);
    if (pid == 0) {
        close(sv[0]);
        for (size_t off = 0; off < len;) {
            size_t k = piece && len - off > piece ? piece : len - off;
            ssize_t n = write(sv[1], in + off, k);
            if (n <= 0) _exit(1);
            off += (size_t)n;
            if (delay_us && off < len) sleep_us(delay_us);
        }
        if (hold) pause();
        _exit(0);
    }
    close(sv[1]);
    struct sm_io *io = sm_io_new(sv[0], sv[0]);
    if (!io) exit(99);
    sm_io_set_timeout(io, timeout);
    int own = spool == -1 ? new_spool() : -1;
    read_body(io, own >= 0 ? own : spool, max, o);
    sm_io_free(io);
    if (own >= 0) close(own);
    close(sv[0]);
    if (hold) kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
}

/* ---- expectations ---- */

struct expect {
    int r;
    const char *stored;  /* NULL: not checked (EOF cases) */
    size_t stored_len;   /* 0: strlen(stored) */
    bool too_big, bare_lf, bare_cr, nul;
    int write_error;
    const char *next;    /* line after the body; NULL: not checked */
};

static bool matches(const struct outcome *o, const struct expect *e, char *why, size_t whylen) {
    size_t elen = e->stored ? (e->stored_len ? e->stored_len : strlen(e->stored)) : 0;
    if (o->r != e->r)
        snprintf(why, whylen, "result %d, expected %d", o->r, e->r);
    else if (e->r != SM_IO_OK)
        return true;  /* the session is over: nothing else is promised */
    else if (o->res.too_big != e->too_big || o->res.bare_lf != e->bare_lf ||
             o->res.bare_cr != e->bare_cr || o->res.nul != e->nul ||
             o->res.write_error != e->write_error)
        snprintf(why, whylen, "flags too_big=%d bare_lf=%d bare_cr=%d nul=%d write_error=%d",
                 o->res.too_big, o->res.bare_lf, o->res.bare_cr, o->res.nul, o->res.write_error);
    else if (e->stored && !e->write_error &&
             (o->stored_len != elen || memcmp(o->stored, e->stored, elen) != 0 ||
              o->res.size != elen))
        snprintf(why, whylen, "stored %zu bytes (size %llu), expected %zu: \"%.60s\"",
                 o->stored_len, (unsigned long long)o->res.size, elen, o->stored ? o->stored : "");
    else if (e->next && (o->next_r != SM_IO_OK || strcmp(o->next, e->next) != 0))
        snprintf(why, whylen, "next line %d \"%s\", expected \"%s\"", o->next_r, o->next, e->next);
    else
        return true;
    return false;
}

/* Runs IN through every way of feeding it and checks E each time. */
static void check(const char *name, const char *in, size_t len, uint64_t max, const struct expect *e) {
    static const size_t pieces[] = { SIZE_MAX, 1, 2, 3, 7, 4096 };
    char why[256];
    bool good = true;
    for (size_t i = 0; i < ARRAY_SIZE(pieces) && good; i++) {
        struct outcome o = { 0 };
        run_script(in, len, pieces[i], 0, max, &o);
        if (!matches(&o, e, why, sizeof why)) {
            good = false;
            printf("# %s: reads of %zu: %s\n", name, pieces[i], why);
        }
        outcome_free(&o);
    }
    /* split in two reads at every position */
    for (size_t k = 1; k < len && good; k++) {
        struct outcome o = { 0 };
        run_script(in, len, SIZE_MAX, k, max, &o);
        if (!matches(&o, e, why, sizeof why)) {
            good = false;
            printf("# %s: split at %zu: %s\n", name, k, why);
        }
        outcome_free(&o);
    }
    ok(good, "%s (scripted reads)", name);

    struct outcome o = { 0 };
    run_socket(in, len, len ? len : 1, 0, false, -1, max, 10, &o);
    if (!ok(matches(&o, e, why, sizeof why), "%s (socketpair)", name)) printf("# %s\n", why);
    outcome_free(&o);
}

#define S(lit) lit, sizeof(lit) - 1

/* ---- cases ---- */

static void test_basic(void) {
    check("simple body", S("Subject: hi\r\n\r\nbody line\r\n.\r\n" NEXT), UINT64_MAX,
          &(struct expect){ .stored = "Subject: hi\n\nbody line\n", .next = "NEXT" });
    check("empty body", S(".\r\n" NEXT), UINT64_MAX,
          &(struct expect){ .stored = "", .next = "NEXT" });
    check("empty body, max 0", S(".\r\n" NEXT), 0,
          &(struct expect){ .stored = "", .next = "NEXT" });
    check("one empty line", S("\r\n.\r\n" NEXT), UINT64_MAX,
          &(struct expect){ .stored = "\n", .next = "NEXT" });
    check("dot-stuffing", S("..x\r\n..\r\n...\r\n.y\r\nx.\r\n. \r\n.\r\n" NEXT), UINT64_MAX,
          &(struct expect){ .stored = ".x\n.\n..\ny\nx.\n \n", .next = "NEXT" });
    check("terminator-like text inside lines", S("a.\r\n .\r\nb\r\n.\r\n" NEXT), UINT64_MAX,
          &(struct expect){ .stored = "a.\n .\nb\n", .next = "NEXT" });
    check("pipelined commands after the body",
          S("x\r\n.\r\nNEXT\r\nMAIL FROM:<a@b>\r\n"), UINT64_MAX,
          &(struct expect){ .stored = "x\n", .next = "NEXT" });
    check("CR at a read boundary", S("ab\r\ncd\r\n\r\n.\r\n" NEXT), UINT64_MAX,
          &(struct expect){ .stored = "ab\ncd\n\n", .next = "NEXT" });
}

static void test_faults(void) {
    check("LF . CRLF is not the end", S("a\n.\r\nb\r\n.\r\n" NEXT), UINT64_MAX,
          &(struct expect){ .stored = "a\n.\nb\n", .bare_lf = true, .next = "NEXT" });
    check("CRLF . LF is not the end", S("a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n" NEXT), UINT64_MAX,
          &(struct expect){ .stored = "a\n\nMAIL FROM:<x@y>\n", .bare_lf = true, .next = "NEXT" });
    check("LF . LF is not the end", S("a\n.\nb\r\n.\r\n" NEXT), UINT64_MAX,
          &(struct expect){ .stored = "a\n.\nb\n", .bare_lf = true, .next = "NEXT" });
    check("CR . CR is not the end", S("a\r.\rb\r\n.\r\n" NEXT), UINT64_MAX,
          &(struct expect){ .stored = "a\r.\rb\n", .bare_cr = true, .next = "NEXT" });
    check("CR . CRLF is not the end", S("a\r.\r\nb\r\n.\r\n" NEXT), UINT64_MAX,
          &(struct expect){ .stored = "a\r.\nb\n", .bare_cr = true, .next = "NEXT" });
    check("CRLF . CR CRLF is not the end", S("a\r\n.\r\r\nb\r\n.\r\n" NEXT), UINT64_MAX,
          &(struct expect){ .stored = "a\n\r\nb\n", .bare_cr = true, .next = "NEXT" });
    check("bare CR before CRLF", S("a\r\r\n.\r\n" NEXT), UINT64_MAX,
          &(struct expect){ .stored = "a\r\n", .bare_cr = true, .next = "NEXT" });
    check("bare LF line", S("a\nb\r\n.\r\n" NEXT), UINT64_MAX,
          &(struct expect){ .stored = "a\nb\n", .bare_lf = true, .next = "NEXT" });
    check("NUL byte", S("a\0b\r\n.\r\n" NEXT), UINT64_MAX,
          &(struct expect){ .stored = "a\0b\n", .stored_len = 4, .nul = true, .next = "NEXT" });
    check("all faults at once", S("\0\r\n\r.\n\r\n.\r\n" NEXT), UINT64_MAX,
          &(struct expect){ .stored = "\0\n\r.\n\n", .stored_len = 6, .nul = true, .bare_cr = true,
                            .bare_lf = true, .next = "NEXT" });
    /* A front end that ends data on LF . LF would see a second message. */
    check("smuggled message is body, then EOF", S("a\r\n.\nMAIL FROM:<x@y>\r\nDATA\r\n"),
          UINT64_MAX, &(struct expect){ .r = SM_IO_EOF });
}

static void test_eof(void) {
    check("EOF in a line", S("abc\r\nde"), UINT64_MAX, &(struct expect){ .r = SM_IO_EOF });
    check("EOF after a line", S("abc\r\n"), UINT64_MAX, &(struct expect){ .r = SM_IO_EOF });
    check("EOF after CRLF .", S("abc\r\n."), UINT64_MAX, &(struct expect){ .r = SM_IO_EOF });
    check("EOF after CRLF . CR", S("abc\r\n.\r"), UINT64_MAX, &(struct expect){ .r = SM_IO_EOF });
    check("EOF at once", "", 0, UINT64_MAX, &(struct expect){ .r = SM_IO_EOF });
    check("EOF after LF . CRLF", S("a\n.\r\n"), UINT64_MAX, &(struct expect){ .r = SM_IO_EOF });

    /* Nothing arrives and the peer stays: the timeout ends it. */
    struct outcome o = { 0 };
    run_socket(S("abc\r\n"), 64, 0, true, -1, UINT64_MAX, 1, &o);
    is_int(o.r, SM_IO_TIMEOUT, "silent peer: SM_IO_TIMEOUT");
    outcome_free(&o);
}

static void test_size(void) {
    /* stored: "abc\ndef\n" = 8 bytes */
    check("max = size passes", S("abc\r\ndef\r\n.\r\n" NEXT), 8,
          &(struct expect){ .stored = "abc\ndef\n", .next = "NEXT" });
    check("max = size - 1 is too big", S("abc\r\ndef\r\n.\r\n" NEXT), 7,
          &(struct expect){ .stored = "abc\ndef", .too_big = true, .next = "NEXT" });
    check("max 5: a line that does not fit is dropped whole", S("abc\r\ndef\r\n.\r\n" NEXT), 5,
          &(struct expect){ .stored = "abc\n", .too_big = true, .next = "NEXT" });
    check("too big, then more that would fit", S("abcdefgh\r\na\r\nb\r\n.\r\n" NEXT), 4,
          &(struct expect){ .stored = "", .too_big = true, .next = "NEXT" });
    check("max 0, one empty line", S("\r\n.\r\n" NEXT), 0,
          &(struct expect){ .stored = "", .too_big = true, .next = "NEXT" });

    /* 300 KB after the limit is read and dropped; the session stays in step. */
    size_t n = 300000;
    char *in = malloc(n + 64);
    if (!in) exit(99);
    memcpy(in, "hello\r\n", 7);
    for (size_t i = 7; i < n; i++) in[i] = (i % 80 == 78) ? '\r' : (i % 80 == 79) ? '\n' : 'z';
    memcpy(in + n, "\r\n.\r\n" NEXT, 11);
    struct outcome o = { 0 };
    run_socket(in, n + 11, 4096, 0, false, -1, 6, 10, &o);
    ok(o.r == SM_IO_OK && o.res.too_big && o.res.size == 6 && o.stored_len == 6 &&
           memcmp(o.stored, "hello\n", 6) == 0 && streq(o.next, "NEXT"),
       "300 KB over a 6-byte limit: read to the end, \"hello\\n\" stored, in step");
    outcome_free(&o);
    free(in);
}

/* LEN bytes of a repeating pattern, with CR LF and "." placed by the caller. */
static char *pattern(size_t len) {
    char *p = malloc(len + 1);
    if (!p) exit(99);
    for (size_t i = 0; i < len; i++) p[i] = (char)('a' + i % 26);
    p[len] = 0;
    return p;
}

/* A body of one line of LINE bytes (content CONTENT) + CR LF + terminator. */
static void check_long(const char *name, const char *content, size_t clen, const char *want,
                       size_t wlen, bool bare_cr) {
    size_t len = clen + 5 + 6;
    char *in = malloc(len);
    if (!in) exit(99);
    memcpy(in, content, clen);
    memcpy(in + clen, "\r\n.\r\n" NEXT, 11);
    struct expect e = { .stored = want, .stored_len = wlen, .bare_cr = bare_cr, .next = "NEXT" };
    char why[256];
    bool good = true;
    static const size_t pieces[] = { SIZE_MAX, 1000, 65535, 65536, 65537 };
    for (size_t i = 0; i < ARRAY_SIZE(pieces) && good; i++) {
        struct outcome o = { 0 };
        run_script(in, len, pieces[i], 0, UINT64_MAX, &o);
        if (!matches(&o, &e, why, sizeof why)) {
            good = false;
            printf("# reads of %zu: %s\n", pieces[i], why);
        }
        outcome_free(&o);
    }
    /* split near the 64 KB piece boundary and the end of the line */
    for (size_t k = 65530; k < 65542 && k < len && good; k++) {
        struct outcome o = { 0 };
        run_script(in, len, SIZE_MAX, k, UINT64_MAX, &o);
        if (!matches(&o, &e, why, sizeof why)) {
            good = false;
            printf("# split at %zu: %s\n", k, why);
        }
        outcome_free(&o);
    }
    for (size_t k = clen - 3; k < clen + 6 && good; k++) {
        struct outcome o = { 0 };
        run_script(in, len, SIZE_MAX, k, UINT64_MAX, &o);
        if (!matches(&o, &e, why, sizeof why)) {
            good = false;
            printf("# split at %zu: %s\n", k, why);
        }
        outcome_free(&o);
    }
    ok(good, "%s (scripted reads)", name);
    struct outcome o = { 0 };
    run_socket(in, len, 8192, 0, false, -1, UINT64_MAX, 10, &o);
    if (!ok(matches(&o, &e, why, sizeof why), "%s (socketpair)", name)) printf("# %s\n", why);
    outcome_free(&o);
    free(in);
}

static void test_long_lines(void) {
    size_t n = 200 * 1024;
    char *c = pattern(n);
    char *w = malloc(n + 2);
    if (!w) exit(99);

    memcpy(w, c, n);
    w[n] = '\n';
    check_long("200 KB line kept intact", c, n, w, n + 1, false);

    /* a leading dot is unstuffed once; a dot at a piece boundary is data */
    c[0] = '.';
    c[65536] = '.';
    c[65537] = '.';
    memcpy(w, c + 1, n - 1);
    w[n - 1] = '\n';
    check_long("200 KB line with dots at its start and at 64 KB", c, n, w, n, false);

    /* lines just below, at and above the 64 KB piece size */
    for (size_t len = 65534; len <= 65538; len++) {
        char *l = pattern(len);
        memcpy(w, l, len);
        w[len] = '\n';
        char name[64];
        snprintf(name, sizeof name, "line of %zu bytes", len);
        check_long(name, l, len, w, len + 1, false);
        free(l);
    }

    /* a bare CR right at the piece boundary is data and a fault */
    for (size_t at = 65534; at <= 65537; at++) {
        char *l = pattern(70000);
        l[at] = '\r';
        memcpy(w, l, 70000);
        w[70000] = '\n';
        char name[64];
        snprintf(name, sizeof name, "bare CR at offset %zu of a long line", at);
        check_long(name, l, 70000, w, 70001, true);
        free(l);
    }

    /* "." CR LF as the next piece after 64 KB of a line is not the end */
    for (size_t len = 65535; len <= 65537; len++) {
        char *l = pattern(len + 1);
        l[len] = '.';
        memcpy(w, l, len + 1);
        w[len + 1] = '\n';
        char name[80];
        snprintf(name, sizeof name, "\".\" CR LF after %zu bytes of a line is data", len);
        check_long(name, l, len + 1, w, len + 2, false);
        free(l);
    }

    free(c);
    free(w);
}

static void test_byte_by_byte_socket(void) {
    static const char in[] = "a\r\n..b\r\n.\r\n" NEXT;
    struct outcome o = { 0 };
    run_socket(in, sizeof in - 1, 1, 2000, false, -1, UINT64_MAX, 10, &o);
    struct expect e = { .stored = "a\n.b\n", .next = "NEXT" };
    char why[256];
    if (!ok(matches(&o, &e, why, sizeof why), "byte by byte over a socket, 2 ms apart"))
        printf("# %s\n", why);
    outcome_free(&o);

    static const char smug[] = "a\r\n.\nb\n.\r\nc\r\n.\r\n" NEXT;
    run_socket(smug, sizeof smug - 1, 1, 1000, false, -1, UINT64_MAX, 10, &o);
    e = (struct expect){ .stored = "a\n\nb\n.\nc\n", .bare_lf = true, .next = "NEXT" };
    if (!ok(matches(&o, &e, why, sizeof why), "smuggling attempt byte by byte over a socket"))
        printf("# %s\n", why);
    outcome_free(&o);
}

static void test_spool(void) {
    /* the spool is written from its current offset */
    _cleanup_close_ int spool = new_spool();
    if (write(spool, "Received: x\n", 12) != 12) exit(99);
    struct outcome o = { 0 };
    run_socket(S("body\r\n.\r\n" NEXT), 0, 0, false, spool, UINT64_MAX, 10, &o);
    ok(o.r == SM_IO_OK && o.res.size == 5 && o.stored_len == 17 &&
           memcmp(o.stored, "Received: x\nbody\n", 17) == 0,
       "spool written after what it already held");
    outcome_free(&o);

    /* 200 KB so the spool is written during the body, not only at its end */
    size_t n = 200000;
    char *in = malloc(n + 11);
    if (!in) exit(99);
    for (size_t i = 0; i < n; i++) in[i] = (i % 100 == 98) ? '\r' : (i % 100 == 99) ? '\n' : 'q';
    memcpy(in + n, ".\r\n" NEXT, 9);

    _cleanup_close_ int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
    if (full >= 0) {
        run_socket(in, n + 9, 4096, 0, false, full, UINT64_MAX, 10, &o);
        ok(o.r == SM_IO_OK && o.res.write_error == ENOSPC && streq(o.next, "NEXT") &&
               o.res.size == n - n / 100,
           "/dev/full: write_error ENOSPC, body read to its end, in step");
        ok(!sm_data_ok(&o.res), "/dev/full: sm_data_ok is false");
        outcome_free(&o);
    } else
        ok(1, "# SKIP no /dev/full");

    /* a read-only fd */
    char path[] = "/tmp/test-smtp-data.XXXXXX";
    _cleanup_close_ int tmp = mkstemp(path);
    if (tmp < 0) exit(99);
    _cleanup_close_ int ro = open(path, O_RDONLY | O_CLOEXEC);
    unlink(path);
    if (ro < 0) exit(99);
    run_socket(in, n + 9, 4096, 0, false, ro, UINT64_MAX, 10, &o);
    ok(o.r == SM_IO_OK && o.res.write_error == EBADF && streq(o.next, "NEXT"),
       "read-only spool: write_error EBADF, body read to its end, in step");
    outcome_free(&o);

    /* a small body on a read-only fd: the error shows at the final flush */
    run_socket(S("x\r\n.\r\n" NEXT), 0, 0, false, ro, UINT64_MAX, 10, &o);
    ok(o.r == SM_IO_OK && o.res.write_error == EBADF && streq(o.next, "NEXT"),
       "read-only spool, small body: write_error EBADF");
    outcome_free(&o);

    /* an empty body writes nothing, so nothing fails */
    run_socket(S(".\r\n" NEXT), 0, 0, false, ro, UINT64_MAX, 10, &o);
    ok(o.r == SM_IO_OK && o.res.write_error == 0 && o.res.size == 0 && sm_data_ok(&o.res),
       "read-only spool, empty body: no write, no error");
    outcome_free(&o);

    /* no spool at all: lmtp passes -errno when it could not open one */
    run_socket(S("x\r\n.\r\n" NEXT), 0, 0, false, -EACCES, UINT64_MAX, 10, &o);
    ok(o.r == SM_IO_OK && o.res.write_error == EBADF && streq(o.next, "NEXT"),
       "negative spool fd: write_error EBADF, in step");
    outcome_free(&o);

    /* a pipe whose reader is gone (SIGPIPE ignored, as a handler would) */
    int p[2];
    if (pipe(p) < 0) exit(99);
    close(p[0]);
    struct sigaction old, ign = { .sa_handler = SIG_IGN };
    sigaction(SIGPIPE, &ign, &old);
    run_socket(in, n + 9, 4096, 0, false, p[1], UINT64_MAX, 10, &o);
    sigaction(SIGPIPE, &old, NULL);
    close(p[1]);
    ok(o.r == SM_IO_OK && o.res.write_error == EPIPE && streq(o.next, "NEXT"),
       "pipe without reader: write_error EPIPE, body read to its end, in step");
    outcome_free(&o);
    free(in);
}

int main(void) {
    test_basic();
    test_faults();
    test_eof();
    test_size();
    test_long_lines();
    test_byte_by_byte_socket();
    test_spool();
    return tap_done();
}
