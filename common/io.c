/* io.c — bounded, buffered line I/O over a pluggable transport; see io.h.
 *
 * Read buffer layout: buf[rstart, rend) holds bytes received but not yet
 * returned. Its capacity is MAX + 2 + 2 * READ_BLOCK for the largest MAX
 * asked for so far, so a whole line with its CR LF always fits, and it
 * never grows further. Compaction (moving the unread rest to the front)
 * happens only when less than READ_BLOCK is free at the end, so at least
 * READ_BLOCK bytes are read between two moves of at most MAX + 2 bytes: the
 * cost per byte is bounded, never quadratic in the stream length.
 *
 * The returned line is NUL-terminated in place. For a line the NUL goes
 * over its (consumed) terminator; for a piece without terminator it goes
 * over the next unread byte, which is saved and put back on the next call.
 */
#include "io.h"

#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <time.h>

#define READ_BLOCK 16384
#define WRITE_BUF 16384

struct sm_io {
    int rfd, wfd;
    unsigned timeout;          /* seconds; 0 = forever */
    struct sm_transport t;
    bool tls;

    char *buf;
    size_t cap, rstart, rend;
    size_t scanned;            /* bytes after rstart known to hold no LF */
    bool skipping;             /* inside an overlong line, until its LF */
    bool eof;
    bool saved;                /* buf[saved_pos] was replaced by NUL */
    size_t saved_pos;
    char saved_ch;

    char wbuf[WRITE_BUF];
    size_t wlen;
    bool werror;               /* a write failed: the session is over */
};

/* --- the plain transport --- */

struct plain {
    int rfd, wfd;
    bool wsock;  /* send(MSG_NOSIGNAL) works: no SIGPIPE on a closed peer */
};

static ssize_t plain_read(void *ctx, void *buf, size_t len) {
    struct plain *p = ctx;
    ssize_t n = read(p->rfd, buf, len);
    return n < 0 ? -errno : n;
}

static ssize_t plain_write(void *ctx, const void *buf, size_t len) {
    struct plain *p = ctx;
    ssize_t n;
    if (p->wsock) {
        n = send(p->wfd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK) {
            p->wsock = false;
            n = write(p->wfd, buf, len);
        }
    } else
        n = write(p->wfd, buf, len);
    return n < 0 ? -errno : n;
}

static size_t plain_pending(_unused_ void *ctx) { return 0; }

static void plain_free(void *ctx) { free(ctx); }

/* --- helpers --- */

static int set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -errno;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
    return 0;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for EVENTS on FD within the io's timeout: 0, SM_IO_TIMEOUT or
 * SM_IO_ERROR. EINTR restarts with the time that is left. */
static int wait_fd(struct sm_io *io, int fd, short events) {
    int64_t deadline = io->timeout ? now_ms() + (int64_t)io->timeout * 1000 : 0;
    for (;;) {
        int ms = -1;
        if (deadline) {
            int64_t left = deadline - now_ms();
            if (left <= 0) return SM_IO_TIMEOUT;
            ms = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        struct pollfd pfd = { .fd = fd, .events = events };
        int r = poll(&pfd, 1, ms);
        if (r > 0) return 0;  /* ready, or POLLHUP/POLLERR: the I/O call tells */
        if (r == 0) return SM_IO_TIMEOUT;
        if (errno != EINTR) return SM_IO_ERROR;
    }
}

static int write_all(struct sm_io *io, const char *p, size_t len) {
    if (io->werror) return SM_IO_ERROR;
    while (len > 0) {
        ssize_t n = io->t.write(io->t.ctx, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n == -EINTR) {
            continue;
        } else if (n == -EAGAIN || n == -EWOULDBLOCK) {
            if (wait_fd(io, io->wfd, POLLOUT) < 0) goto fail;
        } else
            goto fail;
    }
    return 0;
fail:
    io->werror = true;
    return SM_IO_ERROR;
}

static void restore_saved(struct sm_io *io) {
    if (io->saved) {
        io->buf[io->saved_pos] = io->saved_ch;
        io->saved = false;
    }
}

/* Makes room for a line of MAX bytes plus terminator. */
static int ensure_cap(struct sm_io *io, size_t max) {
    if (max > SIZE_MAX / 2 - 2 * READ_BLOCK) return SM_IO_ERROR;
    size_t want = max + 2 + 2 * READ_BLOCK;
    if (io->cap >= want) return 0;
    char *n = realloc(io->buf, want);
    if (!n) return SM_IO_ERROR;
    io->buf = n;
    io->cap = want;
    return 0;
}

/* Reads more input into the buffer: SM_IO_OK (something arrived), or
 * SM_IO_EOF/TIMEOUT/ERROR. Output is flushed before waiting, so replies to
 * pipelined commands leave together and a client that waits for them does
 * not deadlock with us. */
static int fill(struct sm_io *io) {
    if (io->eof) return SM_IO_EOF;
    if (io->rstart == io->rend) io->rstart = io->rend = 0;
    if (io->cap - io->rend < READ_BLOCK && io->rstart > 0) {
        memmove(io->buf, io->buf + io->rstart, io->rend - io->rstart);
        io->rend -= io->rstart;
        io->rstart = 0;
    }
    /* One byte stays free for the NUL after a piece that ends at rend. */
    size_t room = io->cap - io->rend - 1;
    if (room == 0) return SM_IO_ERROR;  /* cannot happen: callers bound lines */
    bool flushed = false;
    for (;;) {
        ssize_t n = io->t.read(io->t.ctx, io->buf + io->rend, room);
        if (n > 0) {
            io->rend += (size_t)n;
            return SM_IO_OK;
        }
        if (n == 0) {
            io->eof = true;
            return SM_IO_EOF;
        }
        if (n == -EINTR) continue;
        if (n != -EAGAIN && n != -EWOULDBLOCK) return SM_IO_ERROR;
        if (!flushed) {
            flushed = true;
            if (sm_io_flush(io) < 0) return SM_IO_ERROR;
        }
        int r = wait_fd(io, io->rfd, POLLIN);
        if (r < 0) return r;
    }
}

/* Index (from rstart) of the first LF among the first LIMIT unread bytes,
 * or -1. Bytes already scanned are not scanned again. */
static ssize_t find_lf(struct sm_io *io, size_t limit) {
    size_t avail = io->rend - io->rstart;
    if (limit > avail) limit = avail;
    if (io->scanned >= limit) return -1;
    char *s = io->buf + io->rstart;
    char *lf = memchr(s + io->scanned, '\n', limit - io->scanned);
    if (lf) return lf - s;
    io->scanned = limit;
    return -1;
}

static void consume(struct sm_io *io, size_t n) {
    io->rstart += n;
    io->scanned = 0;
    if (io->rstart == io->rend) io->rstart = io->rend = 0;
}

/* Returns the line ending at LF index I (from rstart) and consumes it. */
static void take_line(struct sm_io *io, size_t i, struct sm_line *ret) {
    char *s = io->buf + io->rstart;
    size_t len = i;
    enum sm_eol eol = SM_EOL_LF;
    if (i > 0 && s[i - 1] == '\r') {
        len = i - 1;
        eol = SM_EOL_CRLF;
    }
    s[len] = '\0';
    *ret = (struct sm_line){ .data = s, .len = len, .eol = eol };
    consume(io, i + 1);
}

/* Returns the first LEN unread bytes as a piece without terminator. */
static void take_piece(struct sm_io *io, size_t len, struct sm_line *ret) {
    char *s = io->buf + io->rstart;
    io->saved = true;
    io->saved_pos = io->rstart + len;
    io->saved_ch = s[len];
    s[len] = '\0';
    *ret = (struct sm_line){ .data = s, .len = len, .eol = SM_EOL_NONE };
    consume(io, len);
}

/* Drops input through the next LF: 0 when the LF was found. */
static int skip_line(struct sm_io *io) {
    for (;;) {
        ssize_t i = find_lf(io, SIZE_MAX);
        if (i >= 0) {
            consume(io, (size_t)i + 1);
            io->skipping = false;
            return 0;
        }
        consume(io, io->rend - io->rstart);
        int r = fill(io);
        if (r < 0) return r;
    }
}

/* --- public --- */

struct sm_io *sm_io_new(int rfd, int wfd) {
    struct sm_io *io = calloc(1, sizeof *io);
    struct plain *p = calloc(1, sizeof *p);
    if (!io || !p) {
        free(io);
        free(p);
        return NULL;
    }
    /* A failure here (e.g. EBADF) shows up at the first read or write. */
    (void)set_nonblock(rfd);
    if (wfd != rfd) (void)set_nonblock(wfd);
    *p = (struct plain){ .rfd = rfd, .wfd = wfd, .wsock = true };
    io->rfd = rfd;
    io->wfd = wfd;
    io->t = (struct sm_transport){ plain_read, plain_write, plain_pending, plain_free, p };
    return io;
}

void sm_io_free(struct sm_io *io) {
    if (!io) return;
    (void)sm_io_flush(io);
    if (io->t.free) io->t.free(io->t.ctx);
    free(io->buf);
    free(io);
}

int sm_io_rfd(const struct sm_io *io) { return io->rfd; }
int sm_io_wfd(const struct sm_io *io) { return io->wfd; }

void sm_io_set_timeout(struct sm_io *io, unsigned seconds) { io->timeout = seconds; }

int sm_io_getline(struct sm_io *io, size_t max, struct sm_line *ret) {
    restore_saved(io);
    if (ensure_cap(io, max) < 0) return SM_IO_ERROR;
    if (io->skipping) {
        int r = skip_line(io);
        if (r < 0) return r;
    }
    for (;;) {
        /* A line of MAX bytes needs at most MAX + 2 with its CR LF. */
        ssize_t i = find_lf(io, max + 2);
        if (i >= 0) {
            take_line(io, (size_t)i, ret);
            if (ret->len > max) {
                *ret = (struct sm_line){ 0 };
                return SM_IO_TOOLONG;
            }
            return SM_IO_OK;
        }
        if (io->rend - io->rstart >= max + 2) {
            io->skipping = true;
            int r = skip_line(io);
            return r < 0 ? r : SM_IO_TOOLONG;
        }
        int r = fill(io);
        if (r < 0) return r;  /* EOF: a partial last line is dropped */
    }
}

int sm_io_getchunk(struct sm_io *io, size_t max, struct sm_line *ret) {
    restore_saved(io);
    if (max == 0 || ensure_cap(io, max) < 0) return SM_IO_ERROR;
    for (;;) {
        size_t avail = io->rend - io->rstart;
        ssize_t i = find_lf(io, max + 2);
        if (i >= 0) {
            size_t len = (size_t)i;
            if (len > 0 && io->buf[io->rstart + len - 1] == '\r') len--;
            if (len <= max)
                take_line(io, (size_t)i, ret);
            else
                take_piece(io, max, ret);  /* byte MAX is known and not LF */
            return SM_IO_OK;
        }
        /* Byte MAX is known and not LF, and when it is CR the byte after
         * it is known too (and not LF): the line is longer than MAX, and
         * the first MAX bytes end neither inside nor before a CR LF. */
        if (avail >= max + 2 || (avail == max + 1 && io->buf[io->rstart + max] != '\r')) {
            take_piece(io, max, ret);
            return SM_IO_OK;
        }
        int r = fill(io);
        if (r == SM_IO_EOF && avail > 0) {
            /* The unterminated tail of the stream (at most MAX at a
             * time: it may be MAX + 1 bytes ending in CR), then EOF. */
            take_piece(io, avail > max ? max : avail, ret);
            return SM_IO_OK;
        }
        if (r < 0) return r;
    }
}

int sm_io_read(struct sm_io *io, size_t max, const char **ret, size_t *ret_len) {
    restore_saved(io);
    if (max == 0 || ensure_cap(io, 0) < 0) return SM_IO_ERROR;
    if (io->rstart == io->rend) {
        int r = fill(io);
        if (r < 0) return r;
    }
    size_t n = io->rend - io->rstart;
    if (n > max) n = max;
    *ret = io->buf + io->rstart;
    *ret_len = n;
    io->rstart += n;
    io->scanned = 0;
    /* Not reset to 0 when empty: RET must stay valid until the next call
     * (fill() compacts only then). */
    return SM_IO_OK;
}

size_t sm_io_buffered(const struct sm_io *io) {
    size_t n = io->rend - io->rstart;
    if (io->t.pending) n += io->t.pending(io->t.ctx);
    return n;
}

size_t sm_io_discard_input(struct sm_io *io) {
    restore_saved(io);
    size_t n = io->rend - io->rstart;
    io->rstart = io->rend = io->scanned = 0;
    io->skipping = false;
    /* What the transport already decrypted is input as well; reading it
     * cannot block. */
    char tmp[4096];
    while (io->t.pending && io->t.pending(io->t.ctx) > 0) {
        ssize_t r = io->t.read(io->t.ctx, tmp, sizeof tmp);
        if (r <= 0) break;
        n += (size_t)r;
    }
    return n;
}

int sm_io_write(struct sm_io *io, const void *buf, size_t len) {
    if (io->werror) return SM_IO_ERROR;
    if (len <= WRITE_BUF - io->wlen) {
        memcpy(io->wbuf + io->wlen, buf, len);
        io->wlen += len;
        return 0;
    }
    if (sm_io_flush(io) < 0) return SM_IO_ERROR;
    if (len >= WRITE_BUF) return write_all(io, buf, len);
    memcpy(io->wbuf, buf, len);
    io->wlen = len;
    return 0;
}

int sm_io_printf(struct sm_io *io, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    /* Format straight into the free part of the output buffer when it fits. */
    size_t room = WRITE_BUF - io->wlen;
    int n = vsnprintf(io->wbuf + io->wlen, room, fmt, ap);
    va_end(ap);
    if (n < 0) return SM_IO_ERROR;
    if ((size_t)n < room) {
        if (io->werror) return SM_IO_ERROR;
        io->wlen += (size_t)n;
        return 0;
    }
    _cleanup_free_ char *s = malloc((size_t)n + 1);
    if (!s) return SM_IO_ERROR;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return sm_io_write(io, s, (size_t)n);
}

int sm_io_flush(struct sm_io *io) {
    if (io->wlen == 0) return io->werror ? SM_IO_ERROR : 0;
    int r = write_all(io, io->wbuf, io->wlen);
    io->wlen = 0;
    return r;
}

void sm_io_set_transport(struct sm_io *io, const struct sm_transport *t) {
    /* Input received under the old transport must never be read as if it
     * came through the new one (STARTTLS command injection). */
    (void)sm_io_discard_input(io);
    io->eof = false;
    if (io->t.free) io->t.free(io->t.ctx);
    io->t = *t;
    io->tls = t->read != plain_read;
}

bool sm_io_is_tls(const struct sm_io *io) { return io->tls; }
