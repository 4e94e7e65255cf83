/* io.h — buffered, bounded, TLS-transparent line I/O over one connection.
 *
 * A `struct sm_io` reads from one fd and writes to another (fds 0/1 from
 * inetd, or the same socket twice) through a transport: plain read/write, or
 * GnuTLS once sm_tls_start() (tls.h) has switched it. Protocol code never
 * sees which.
 *
 * Reading is bounded: sm_io_getline() never returns more than MAX bytes; a
 * longer line is skipped through its LF and reported as SM_IO_TOOLONG so the
 * protocol can answer "line too long" and go on (Postfix's resynchronise
 * mode). sm_io_getchunk() is for message bodies, where long lines are data:
 * it hands long lines over in pieces.
 *
 * Writing is buffered and flushed automatically before any read that would
 * block, so pipelined commands get their replies in one write (RFC 2920),
 * and explicitly with sm_io_flush(). Every read waits at most the timeout set
 * by sm_io_set_timeout() (per protocol state).
 *
 *     struct sm_io *io = sm_io_new(0, 1);
 *     sm_io_set_timeout(io, 300);
 *     sm_io_printf(io, "220 ready\r\n");
 *     struct sm_line l;
 *     int r = sm_io_getline(io, 512, &l);   // flushes "220 ready"
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "macro.h"

/* Results of the read functions (all < 0 are final for the session except
 * SM_IO_TOOLONG). */
enum {
    SM_IO_OK = 0,
    SM_IO_EOF = -1,      /* peer closed; a partial last line is dropped */
    SM_IO_TOOLONG = -2,  /* line longer than MAX; skipped through its LF */
    SM_IO_TIMEOUT = -3,  /* nothing arrived within the timeout */
    SM_IO_ERROR = -4,    /* read/write/TLS failure */
};

enum sm_eol {
    SM_EOL_NONE = 0,  /* chunk of a longer line (getchunk only) */
    SM_EOL_LF = 1,    /* ended with a bare LF */
    SM_EOL_CRLF = 2,  /* ended with CR LF */
};

/* One line as returned by the reader; DATA points into the reader's buffer
 * and stays valid until the next call on the same io. DATA[LEN] is NUL (the
 * line itself may contain NUL bytes: check with memchr). The terminator is
 * not part of LEN. A CR that is not followed by LF stays in the data. */
struct sm_line {
    char *data;
    size_t len;
    enum sm_eol eol;
};

/* The transport below the buffers. The plain one is built in; tls.c
 * provides the other. Functions return bytes, 0 on EOF, or -errno
 * (-EAGAIN when nothing could be moved without blocking). */
struct sm_transport {
    ssize_t (*read)(void *ctx, void *buf, size_t len);
    ssize_t (*write)(void *ctx, const void *buf, size_t len);
    /* Bytes the transport already holds decrypted (so poll() would lie). */
    size_t (*pending)(void *ctx);
    void (*free)(void *ctx);
    void *ctx;
};

struct sm_io;

/* A plain io on RFD/WFD (may be equal). The fds stay owned by the caller
 * and are switched to non-blocking mode. NULL on out-of-memory. */
struct sm_io *sm_io_new(int rfd, int wfd);
/* Flushes pending output (within the timeout), frees the transport (TLS:
 * sends close_notify) and the io. The fds are not closed. */
void sm_io_free(struct sm_io *io);

int sm_io_rfd(const struct sm_io *io);
int sm_io_wfd(const struct sm_io *io);

/* Seconds every read (and write) may wait; 0 means forever. */
void sm_io_set_timeout(struct sm_io *io, unsigned seconds);

/* The next line of at most MAX bytes (terminator excluded). */
int sm_io_getline(struct sm_io *io, size_t max, struct sm_line *ret);

/* The next piece of the stream: a whole line of at most MAX bytes, or the
 * first MAX bytes of a longer one (eol = SM_EOL_NONE). A CR at the end of a
 * piece that might be followed by LF is held back, so CRLF is never split.
 * At EOF an unterminated tail is returned as SM_EOL_NONE pieces first (the
 * caller decides whether that is an error), then SM_IO_EOF. */
int sm_io_getchunk(struct sm_io *io, size_t max, struct sm_line *ret);

/* Up to MAX raw bytes of input (at least one; what is buffered first),
 * for byte-counted data such as BDAT chunks: *RET points into the reader's
 * buffer and stays valid until the next call on IO. SM_IO_OK, or
 * SM_IO_EOF / SM_IO_TIMEOUT / SM_IO_ERROR. */
int sm_io_read(struct sm_io *io, size_t max, const char **ret, size_t *ret_len);

/* Bytes received but not yet returned; used to refuse pipelining where it
 * is not allowed (e.g. before a STARTTLS reply). */
size_t sm_io_buffered(const struct sm_io *io);

/* Discards everything received but not yet returned; returns how much. */
size_t sm_io_discard_input(struct sm_io *io);

/* Queue output. Return 0 or SM_IO_ERROR. Output beyond the buffer is
 * written through at once. */
int sm_io_write(struct sm_io *io, const void *buf, size_t len);
int sm_io_printf(struct sm_io *io, const char *fmt, ...) _printf_(2, 3);
int sm_io_flush(struct sm_io *io);

/* Replaces the transport (STARTTLS). The old one is freed. Call only with
 * an empty input buffer (use sm_io_discard_input first). */
void sm_io_set_transport(struct sm_io *io, const struct sm_transport *t);

/* True when the transport is not the plain one. */
bool sm_io_is_tls(const struct sm_io *io);
