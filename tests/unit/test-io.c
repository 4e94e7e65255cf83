/* test-io.c — the bounded line reader and buffered writer (common/io.c).
 *
 * Two kinds of input: a real socketpair (a forked child writes, sometimes
 * byte by byte), and an in-memory transport that hands the input over in a
 * chosen schedule of pieces, so every split point is tried deterministically.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "io.h"
#include "tap.h"

/* --- in-memory transport --- */

struct mem {
    const char *data;
    size_t len, pos;
    size_t piece;      /* bytes per read (0: all) */
    size_t split;      /* if set: first read returns exactly this many */
    unsigned calls;
    bool eagain;       /* every other read says EAGAIN first */
};

static ssize_t mem_read(void *ctx, void *buf, size_t len) {
    struct mem *m = ctx;
    m->calls++;
    if (m->eagain && m->calls % 2 == 0) return -EAGAIN;
    size_t n = m->len - m->pos;
    if (m->split && m->pos < m->split) n = m->split - m->pos;
    else if (m->piece && n > m->piece) n = m->piece;
    if (n > len) n = len;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}
static ssize_t mem_write(_unused_ void *ctx, _unused_ const void *buf, size_t len) {
    return (ssize_t)len;
}
static size_t mem_pending(_unused_ void *ctx) { return 0; }

/* An io whose fds are always readable (so a poll after EAGAIN returns at
 * once) and whose transport reads from M. */
static int always_ready[2] = { -1, -1 };
static struct sm_io *mem_io(struct mem *m) {
    if (always_ready[0] < 0) {
        socketpair(AF_UNIX, SOCK_STREAM, 0, always_ready);
        write(always_ready[1], "x", 1);
    }
    struct sm_io *io = sm_io_new(always_ready[0], always_ready[0]);
    struct sm_transport t = { mem_read, mem_write, mem_pending, NULL, m };
    sm_io_set_transport(io, &t);
    return io;
}

/* Reads everything with getline (or getchunk) and renders the results as
 * text: "OK:<data>|eol" per line, "LONG", "EOF" at the end. */
static char *render(struct sm_io *io, size_t max, bool chunk) {
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    for (int guard = 0; guard < 10000; guard++) {
        struct sm_line l;
        int r = chunk ? sm_io_getchunk(io, max, &l) : sm_io_getline(io, max, &l);
        char tmp[256];
        int n;
        if (r == SM_IO_OK) {
            if (l.data[l.len] != '\0' || l.len > max) return strcpy(out, "BROKEN INVARIANT");
            n = snprintf(tmp, sizeof tmp, "[%.*s|%d]", (int)l.len, l.data, l.eol);
        } else
            n = snprintf(tmp, sizeof tmp, "(%d)", r);
        if (len + (size_t)n + 1 > cap) break;
        memcpy(out + len, tmp, (size_t)n);
        len += (size_t)n;
        if (r != SM_IO_OK && r != SM_IO_TOOLONG) break;
    }
    out[len] = '\0';
    return out;
}

/* The same input read in one piece, in every two-piece split, byte by
 * byte and with EAGAIN in between must give the same result. */
static void check_splits(const char *name, const char *in, size_t inlen, size_t max, bool chunk,
                         const char *expect) {
    struct mem m = { .data = in, .len = inlen };
    struct sm_io *io = mem_io(&m);
    char *whole = render(io, max, chunk);
    sm_io_free(io);
    is_str(whole, expect, name);
    bool same = true;
    for (size_t split = 1; split < inlen && same; split++) {
        m = (struct mem){ .data = in, .len = inlen, .split = split };
        io = mem_io(&m);
        char *got = render(io, max, chunk);
        if (strcmp(got, expect) != 0) {
            printf("# split at %zu: %s\n", split, got);
            same = false;
        }
        free(got);
        sm_io_free(io);
    }
    ok(same, "%s: every two-piece split", name);
    m = (struct mem){ .data = in, .len = inlen, .piece = 1, .eagain = true };
    io = mem_io(&m);
    char *got = render(io, max, chunk);
    is_str(got, expect, "byte by byte with EAGAIN");
    free(got);
    free(whole);
    sm_io_free(io);
}

#define S(x) x, sizeof(x) - 1

static void test_lines(void) {
    check_splits("CRLF, bare LF, lone CR", S("a\r\nb\nc\rd\r\n\r\n\n"), 10, false,
                 "[a|2][b|1][c\rd|2][|2][|1](-1)");
    check_splits("exactly max, max+1", S("0123456789\r\n0123456789\n0123456789A\nok\r\n"), 10, false,
                 "[0123456789|2][0123456789|1](-2)[ok|2](-1)");
    check_splits("CR at max+1 then LF", S("0123456789\r\n0123456789\rX\r\nnext\n"), 10, false,
                 "[0123456789|2](-2)[next|1](-1)");
    check_splits("overlong then resync",
                 S("this line is far too long for ten\r\nshort\r\nanother very long line\nz\n"), 10,
                 false, "(-2)[short|2](-2)[z|1](-1)");
    check_splits("EOF mid-line drops the tail", S("one\r\ntwo"), 10, false, "[one|2](-1)");
    check_splits("EOF inside an overlong line", S("one\nxxxxxxxxxxxxxxxxxxxxxx"), 5, false,
                 "[one|1](-1)");

    /* NUL inside a line. */
    struct mem m = { .data = "x\0y\r\n", .len = 5 };
    struct sm_io *io = mem_io(&m);
    struct sm_line l;
    is_int(sm_io_getline(io, 10, &l), SM_IO_OK, "NUL line read");
    ok(l.len == 3 && memcmp(l.data, "x\0y", 3) == 0 && l.data[3] == '\0', "NUL kept in the data");
    sm_io_free(io);
}

static void test_chunks(void) {
    check_splits("chunk: short lines whole", S("ab\r\ncd\nef"), 5, true, "[ab|2][cd|1][ef|0](-1)");
    check_splits("chunk: CRLF never split", S("abcd\r\nabcde\r\nabcdef\r\nabcd\rX\n"), 5, true,
                 "[abcd|2][abcde|2][abcde|0][f|2][abcd\r|0][X|1](-1)");
    check_splits("chunk: long line in pieces", S("0123456789abcdefghij\n"), 4, true,
                 "[0123|0][4567|0][89ab|0][cdef|0][ghij|1](-1)");
    check_splits("chunk: CR at the end of the stream", S("ab\r"), 5, true, "[ab\r|0](-1)");
    check_splits("chunk: CR right after max at EOF", S("abcd\r"), 4, true, "[abcd|0][\r|0](-1)");
    check_splits("chunk: bare LF right after max", S("abcde\nX\r\n"), 4, true,
                 "[abcd|0][e|1][X|2](-1)");

    /* A 100 KB line in pieces of 1000, over a real socketpair. */
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    size_t big = 100 * 1024;
    char *line = malloc(big + 2);
    for (size_t i = 0; i < big; i++) line[i] = (char)('a' + i % 26);
    memcpy(line + big, "\r\n", 2);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        for (size_t off = 0; off < big + 2;) {
            ssize_t n = write(sv[1], line + off, big + 2 - off > 777 ? 777 : big + 2 - off);
            if (n <= 0) _exit(1);
            off += (size_t)n;
        }
        _exit(0);
    }
    close(sv[1]);
    struct sm_io *io = sm_io_new(sv[0], sv[0]);
    sm_io_set_timeout(io, 10);
    size_t got = 0, pieces = 0;
    bool same = true;
    struct sm_line l;
    int r;
    while ((r = sm_io_getchunk(io, 1000, &l)) == SM_IO_OK) {
        pieces++;
        if (got + l.len > big || memcmp(l.data, line + got, l.len) != 0) same = false;
        got += l.len;
        if (l.eol != SM_EOL_NONE) {
            is_int(l.eol, SM_EOL_CRLF, "100 KB line: ends with CRLF");
            break;
        }
        if (l.len != 1000) same = false;
    }
    ok(same && got == big, "100 KB line: %zu bytes in %zu pieces", got, pieces);
    is_int(pieces, (big + 999) / 1000, "100 KB line: pieces of 1000");
    is_int(sm_io_getchunk(io, 1000, &l), SM_IO_EOF, "then EOF");
    waitpid(pid, NULL, 0);
    sm_io_free(io);
    close(sv[0]);
    free(line);
}

/* A child writes IN byte by byte with pauses; the reader sees the same lines. */
static void test_byte_by_byte_socket(void) {
    static const char in[] = "HELO x\r\nlong line here\r\nNOOP\nA\rB\r\n";
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        for (size_t i = 0; i < sizeof in - 1; i++) {
            if (write(sv[1], in + i, 1) != 1) _exit(1);
            struct timespec ts = { 0, 300000 };
            nanosleep(&ts, NULL);
        }
        _exit(0);
    }
    close(sv[1]);
    struct sm_io *io = sm_io_new(sv[0], sv[0]);
    sm_io_set_timeout(io, 10);
    char *got = render(io, 8, false);
    is_str(got, "[HELO x|2](-2)[NOOP|1][A\rB|2](-1)", "socket fed byte by byte");
    free(got);
    waitpid(pid, NULL, 0);
    sm_io_free(io);
    close(sv[0]);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_timeout(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct sm_io *io = sm_io_new(sv[0], sv[0]);
    sm_io_set_timeout(io, 1);
    write(sv[1], "partial", 7);
    double t0 = now_s();
    struct sm_line l;
    is_int(sm_io_getline(io, 100, &l), SM_IO_TIMEOUT, "timeout with a partial line");
    double dt = now_s() - t0;
    ok(dt > 0.9 && dt < 3, "timeout took %.2f s", dt);
    write(sv[1], " line\n", 6);
    is_int(sm_io_getline(io, 100, &l), SM_IO_OK, "line completes after the timeout");
    is_str(l.data, "partial line", "nothing lost across the timeout");
    sm_io_free(io);
    close(sv[0]);
    close(sv[1]);
}

/* Replies to pipelined commands stay buffered until the reader would block. */
static void test_pipelining(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct sm_io *io = sm_io_new(sv[0], sv[0]);
    sm_io_set_timeout(io, 1);
    write(sv[1], "A\r\nB\r\n", 6);
    struct sm_line l;
    is_int(sm_io_getline(io, 100, &l), SM_IO_OK, "pipelined A");
    sm_io_printf(io, "reply %s\r\n", l.data);
    is_int(sm_io_getline(io, 100, &l), SM_IO_OK, "pipelined B");
    sm_io_printf(io, "reply %s\r\n", l.data);
    char buf[64];
    ssize_t n = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
    ok(n < 0 && errno == EAGAIN, "no reply sent while input is buffered");
    is_int(sm_io_getline(io, 100, &l), SM_IO_TIMEOUT, "then the reader blocks");
    n = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
    ok(n == 18 && memcmp(buf, "reply A\r\nreply B\r\n", 18) == 0, "both replies flushed before blocking");

    /* sm_io_buffered and discard_input */
    write(sv[1], "C\r\nD\r\nE\r\n", 9);
    is_int(sm_io_getline(io, 100, &l), SM_IO_OK, "C read");
    is_int(sm_io_buffered(io), 6, "D and E buffered");
    is_int(sm_io_discard_input(io), 6, "discard_input drops 6 bytes");
    is_int(sm_io_buffered(io), 0, "nothing buffered");
    write(sv[1], "F\r\n", 3);
    is_int(sm_io_getline(io, 100, &l), SM_IO_OK, "next read after discard");
    is_str(l.data, "F", "it is the new line");

    /* discard after a chunk piece: the saved byte must be restored first */
    write(sv[1], "GHIJ\r\n", 6);
    is_int(sm_io_getchunk(io, 2, &l), SM_IO_OK, "chunk GH");
    is_int(sm_io_discard_input(io), 4, "discard the rest of the line");
    sm_io_free(io);
    close(sv[0]);
    close(sv[1]);
}

/* Output larger than the buffer is written through; a closed peer gives
 * SM_IO_ERROR (not SIGPIPE). */
static void test_write(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    size_t total = 300 * 1024;
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        size_t got = 0, bad = 0;
        char buf[4096];
        ssize_t n;
        while ((n = read(sv[1], buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < n; i++)
                if (buf[i] != (char)('0' + (got + (size_t)i) % 10)) bad++;
            got += (size_t)n;
        }
        _exit(got == 300 * 1024 && bad == 0 ? 0 : 1);
    }
    close(sv[1]);
    struct sm_io *io = sm_io_new(sv[0], sv[0]);
    sm_io_set_timeout(io, 10);
    char *data = malloc(total);
    for (size_t i = 0; i < total; i++) data[i] = (char)('0' + i % 10);
    int r = 0;
    /* small writes, one big write-through, then a printf */
    r |= sm_io_write(io, data, 100);
    r |= sm_io_write(io, data + 100, 200 * 1024 - 100);
    for (size_t off = 200 * 1024; off < total - 10; off += 1000)
        r |= sm_io_write(io, data + off, off + 1000 <= total - 10 ? 1000 : total - 10 - off);
    r |= sm_io_printf(io, "%.*s", 10, data + total - 10);
    r |= sm_io_flush(io);
    is_int(r, 0, "300 KB written");
    shutdown(sv[0], SHUT_WR);
    int st;
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "peer got every byte in order");
    sm_io_free(io);
    free(data);

    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    close(sv[1]);
    io = sm_io_new(sv[0], sv[0]);
    sm_io_printf(io, "hello\r\n");
    is_int(sm_io_flush(io), SM_IO_ERROR, "write to a closed peer fails");
    is_int(sm_io_printf(io, "again\r\n"), SM_IO_ERROR, "and stays failed");
    sm_io_free(io);
    close(sv[0]);

    /* Separate read and write fds (inetd style) over pipes. */
    int in[2], out[2];
    pipe(in);
    pipe(out);
    io = sm_io_new(in[0], out[1]);
    write(in[1], "ping\n", 5);
    close(in[1]);
    struct sm_line l;
    is_int(sm_io_getline(io, 10, &l), SM_IO_OK, "pipe: read");
    sm_io_printf(io, "pong %s\n", l.data);
    is_int(sm_io_getline(io, 10, &l), SM_IO_EOF, "pipe: EOF");
    is_int(sm_io_flush(io), 0, "pipe: flush");
    char buf[32] = "";
    ssize_t n = read(out[0], buf, sizeof buf - 1);
    ok(n == 10 && memcmp(buf, "pong ping\n", 10) == 0, "pipe: reply on the write fd");
    ok(sm_io_rfd(io) == in[0] && sm_io_wfd(io) == out[1] && !sm_io_is_tls(io), "fds and plain");
    sm_io_free(io);
    close(in[0]);
    close(out[0]);
    close(out[1]);
}

/* A 30 MiB body through getchunk must be fast (no per-byte syscalls, no
 * quadratic moves). */
static void test_big_body(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    const size_t total = 30u << 20;
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        char block[65536];
        /* lines of 77 bytes + CRLF, and every 1000th line 5000 bytes long */
        size_t sent = 0, col = 0, lineno = 0;
        while (sent < total) {
            size_t n = 0;
            while (n < sizeof block && sent + n < total) {
                size_t linelen = lineno % 1000 == 999 ? 5000 : 77;
                if (col < linelen) block[n++] = 'x', col++;
                else if (col == linelen) block[n++] = '\r', col++;
                else block[n++] = '\n', col = 0, lineno++;
            }
            for (size_t off = 0; off < n;) {
                ssize_t w = write(sv[1], block + off, n - off);
                if (w <= 0) _exit(1);
                off += (size_t)w;
            }
            sent += n;
        }
        _exit(0);
    }
    close(sv[1]);
    struct sm_io *io = sm_io_new(sv[0], sv[0]);
    sm_io_set_timeout(io, 20);
    double t0 = now_s();
    size_t bytes = 0, lines = 0;
    struct sm_line l;
    int r;
    while ((r = sm_io_getchunk(io, 998, &l)) == SM_IO_OK) {
        bytes += l.len + (l.eol == SM_EOL_CRLF ? 2 : l.eol == SM_EOL_LF ? 1 : 0);
        if (l.eol == SM_EOL_CRLF) lines++;
    }
    double dt = now_s() - t0;
    is_int(r, SM_IO_EOF, "30 MiB: ends with EOF");
    is_int(bytes, total, "30 MiB: every byte accounted for");
    ok(lines > 300000, "30 MiB: %zu lines", lines);
    ok(dt < 5.0, "30 MiB read in %.2f s", dt);
    waitpid(pid, NULL, 0);
    sm_io_free(io);
    close(sv[0]);
}

static void test_huge_line_bounded(void) {
    /* 5 MiB without LF at max 100 then a line: skipped, then resynced. */
    size_t n = 5u << 20;
    char *in = malloc(n + 8);
    memset(in, 'y', n);
    memcpy(in + n, "\nhello\n", 7);
    struct mem m = { .data = in, .len = n + 7, .piece = 4096 };
    struct sm_io *io = mem_io(&m);
    char *got = render(io, 100, false);
    is_str(got, "(-2)[hello|1](-1)", "5 MiB line skipped, then resync");
    free(got);
    sm_io_free(io);
    free(in);
}

int main(void) {
    signal(SIGPIPE, SIG_DFL);  /* the io must not raise it */
    test_lines();
    test_chunks();
    test_byte_by_byte_socket();
    test_timeout();
    test_pipelining();
    test_write();
    test_big_body();
    test_huge_line_bounded();
    return tap_done();
}
