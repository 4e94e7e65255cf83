/* smtp-data.h — read an SMTP/LMTP DATA body into a spool file.
 *
 * The body ends only on CRLF "." CRLF (RFC 5321 §4.1.1.4). A line that ends
 * in a bare LF, or holds a bare CR, never ends the body and is recorded as
 * a fault, so a message cannot be smuggled past a front-end MTA that reads
 * line ends differently. Leading dots are unstuffed; line ends are stored as
 * LF, the way Maildir readers (and Dovecot, mail_save_crlf=no) expect.
 * Lines may be longer than the command limit: they are data.
 *
 * The whole body is always read to its end, even after a fault, so the
 * session stays in step with the client and can answer per recipient. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct sm_io;

struct sm_data_result {
    uint64_t size;       /* bytes stored in the spool */
    bool too_big;        /* passed MAX_SIZE: the rest was read and dropped */
    bool bare_lf;        /* a line ended in LF without CR */
    bool bare_cr;        /* a CR not followed by LF */
    bool nul;            /* a NUL byte */
    int write_error;     /* errno of the first spool write failure, or 0 */
};

/* Reads the body from IO into SPOOL_FD (written from its current offset).
 * Returns SM_IO_OK once the terminator was read, or SM_IO_EOF /
 * SM_IO_TIMEOUT / SM_IO_ERROR when the session is over. */
int sm_data_read(struct sm_io *io, int spool_fd, uint64_t max_size, struct sm_data_result *ret);

/* True when RET allows storing the message. */
static inline bool sm_data_ok(const struct sm_data_result *r) {
    return !r->too_big && !r->bare_lf && !r->bare_cr && !r->nul && !r->write_error;
}
