/* fuzz-smtp-data.c — sm_data_read over an in-memory transport that hands
 * the input over in reads of a fuzzed size, spooling to a memfd (or to
 * /dev/full), checked against a small reference model.
 *
 * Input: byte 0 picks MAX_SIZE (0..254, or 255 = no limit), byte 1 the read
 * size (1..64, bit 7: spool to /dev/full); the rest is the stream.
 *
 * The model splits the stream at LF: a line ending in CR LF or a bare LF,
 * CR/NUL inside a line, the first dot unstuffed when the previous line
 * ended in CR LF, the body ended only by "." CR LF at such a line start,
 * each line stored as content then LF, all-or-nothing against MAX_SIZE.
 * Checked: the return (OK exactly when the model finds the terminator, EOF
 * otherwise), every flag, the size, the spool bytes (equal to size when
 * nothing failed), no CR stored unless bare_cr, the write error on
 * /dev/full, and that the bytes after the terminator are still unread. */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "mem-transport.h"
#include "smtp-data.h"


struct model {
    int r;
    bool too_big, bare_lf, bare_cr, nul;
    uint64_t size;
    uint8_t *out;       /* what should be in the spool */
    size_t end;         /* input offset just after the terminator */
};

static void model_put(struct model *m, uint64_t max, const uint8_t *p, size_t n) {
    if (m->too_big) return;
    if (n > max - m->size) {
        m->too_big = true;
        return;
    }
    memcpy(m->out + m->size, p, n);
    m->size += n;
}

static void model_run(const uint8_t *in, size_t len, uint64_t max, struct model *m) {
    bool line_start = true;
    size_t pos = 0;
    m->r = SM_IO_EOF;
    for (;;) {
        const uint8_t *lf = memchr(in + pos, '\n', len - pos);
        if (!lf) return;  /* EOF, with or without an unterminated tail */
        size_t n = (size_t)(lf - (in + pos));
        const uint8_t *p = in + pos;
        bool crlf = n > 0 && p[n - 1] == '\r';
        if (crlf) n--;
        pos = (size_t)(lf - in) + 1;
        if (line_start && crlf && n == 1 && p[0] == '.') {
            m->r = SM_IO_OK;
            m->end = pos;
            return;
        }
        if (line_start && n > 0 && p[0] == '.') p++, n--;
        if (memchr(p, '\r', n)) m->bare_cr = true;
        if (memchr(p, 0, n)) m->nul = true;
        if (!crlf) m->bare_lf = true;
        model_put(m, max, p, n);
        model_put(m, max, (const uint8_t *)"\n", 1);
        line_start = crlf;
    }
}

static int spool_fd = -1, full_fd = -1;
static uint8_t *out_buf, *got_buf;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Lines stay below the reader's 64 KB pieces, where the model and the
     * reader split a line the same way. */
    if (size < 2 || size > 60000) return 0;
    if (spool_fd < 0) {
        spool_fd = memfd_create("fuzz-spool", 0);
        full_fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
        out_buf = malloc(65536);
        got_buf = malloc(65536);
        if (spool_fd < 0 || !out_buf || !got_buf) abort();
    }
    uint64_t max = data[0] == 255 ? UINT64_MAX : data[0];
    bool full = (data[1] & 0x80) && full_fd >= 0;
    const uint8_t *in = data + 2;
    size_t len = size - 2;

    struct model m = { .out = out_buf };
    model_run(in, len, max, &m);

    if (ftruncate(spool_fd, 0) < 0 || lseek(spool_fd, 0, SEEK_SET) < 0) abort();
    struct mem mem = { .data = in, .len = len, .piece = (size_t)(data[1] & 0x3f) + 1 };
    struct sm_io *io = sm_io_new(-1, -1);
    if (!io) return 0;
    struct sm_transport t = mem_transport(&mem);
    sm_io_set_transport(io, &t);

    struct sm_data_result res;
    int r = sm_data_read(io, full ? full_fd : spool_fd, max, &res);
    if (r != m.r) abort();
    if (r == SM_IO_OK) {
        if (res.too_big != m.too_big || res.bare_lf != m.bare_lf || res.bare_cr != m.bare_cr ||
            res.nul != m.nul || res.size != m.size || res.size > max)
            abort();
        /* the whole input was scanned for the terminator: CRLF.CRLF, or .CRLF first */
        if (m.end < 3 || memcmp(in + m.end - 3, ".\r\n", 3) != 0) abort();
        if (m.end > 3 && (m.end < 5 || in[m.end - 5] != '\r' || in[m.end - 4] != '\n')) abort();
        if (full) {
            if (res.write_error != (res.size ? ENOSPC : 0)) abort();
        } else {
            if (res.write_error) abort();
            struct stat st;
            if (fstat(spool_fd, &st) < 0 || (uint64_t)st.st_size != res.size) abort();
            if (pread(spool_fd, got_buf, res.size, 0) != (ssize_t)res.size) abort();
            if (memcmp(got_buf, m.out, res.size) != 0) abort();
            if (!res.bare_cr && memchr(got_buf, '\r', res.size)) abort();
        }
        /* the session is in step: the rest of the input is still to be read */
        size_t pos = m.end;
        for (;;) {
            struct sm_line l;
            int k = sm_io_getchunk(io, 100, &l);
            if (k == SM_IO_EOF) break;
            if (k != SM_IO_OK) abort();
            size_t term = l.eol == SM_EOL_CRLF ? 2 : l.eol == SM_EOL_LF ? 1 : 0;
            if (pos + l.len + term > len || memcmp(in + pos, l.data, l.len) != 0) abort();
            pos += l.len + term;
        }
        if (pos != len) abort();
    }
    sm_io_free(io);
    return 0;
}
