/* fuzz-io-line.c — sm_io_getline / sm_io_getchunk over an in-memory
 * transport that hands the input over in pieces of a fuzzed size.
 *
 * Input: byte 0 picks getline or getchunk and MAX (1..64), byte 1 the
 * piece size; the rest is the stream. Checked: no line longer than MAX,
 * DATA[LEN] is NUL, and what the reader returns (data + terminators, and
 * the skipped overlong lines) is exactly the input consumed, in order. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "mem-transport.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    bool chunk = data[0] & 0x80;
    size_t max = (data[0] & 0x3f) + 1;
    struct mem m = { .data = data + 2, .len = size - 2, .piece = (size_t)data[1] % 17 + 1 };
    const uint8_t *in = m.data;
    size_t inlen = m.len, pos = 0;

    struct sm_io *io = sm_io_new(-1, -1);
    if (!io) return 0;
    struct sm_transport t = mem_transport(&m);
    sm_io_set_transport(io, &t);

    for (size_t guard = 0; guard <= inlen + 1; guard++) {
        struct sm_line l;
        int r = chunk ? sm_io_getchunk(io, max, &l) : sm_io_getline(io, max, &l);
        if (r == SM_IO_EOF) break;
        if (r == SM_IO_TOOLONG) {
            if (chunk) abort();
            /* the skipped line runs through the next LF and is too long */
            const uint8_t *lf = memchr(in + pos, '\n', inlen - pos);
            if (!lf) abort();
            size_t linelen = (size_t)(lf - (in + pos));
            if (linelen > 0 && in[pos + linelen - 1] == '\r') linelen--;
            if (linelen <= max) abort();
            pos = (size_t)(lf - in) + 1;
            continue;
        }
        if (r != SM_IO_OK) abort();
        if (l.len > max || l.data[l.len] != '\0') abort();
        size_t term = l.eol == SM_EOL_CRLF ? 2 : l.eol == SM_EOL_LF ? 1 : 0;
        if (pos + l.len + term > inlen) abort();
        if (memcmp(in + pos, l.data, l.len) != 0) abort();
        if (l.eol == SM_EOL_CRLF && memcmp(in + pos + l.len, "\r\n", 2) != 0) abort();
        if (l.eol == SM_EOL_LF && (in[pos + l.len] != '\n' || (l.len && l.data[l.len - 1] == '\r')))
            abort();
        if (l.eol == SM_EOL_NONE) {
            /* a piece never ends where a CR LF is split, and (getchunk)
             * is either MAX long or the tail of the stream */
            if (!chunk) abort();
            if (memchr(l.data, '\n', l.len)) abort();
            if (l.len < max && pos + l.len != inlen) abort();
            if (l.len && l.data[l.len - 1] == '\r' && pos + l.len < inlen && in[pos + l.len] == '\n')
                abort();
        } else if (memchr(l.data, '\n', l.len))
            abort();
        pos += l.len + term;
    }
    /* getchunk consumes everything; getline drops only an unterminated tail */
    if (chunk && pos != inlen) abort();
    if (!chunk && memchr(in + pos, '\n', inlen - pos)) abort();
    sm_io_free(io);
    return 0;
}
