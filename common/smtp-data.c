/* smtp-data.c — see smtp-data.h. */
#include "smtp-data.h"

#include "io.h"
#include "macro.h"

#define CHUNK 65536

struct spool {
    int fd;
    char buf[CHUNK];
    size_t len;
    struct sm_data_result *res;
};

static void spool_flush(struct spool *s) {
    size_t off = 0;
    while (off < s->len && !s->res->write_error) {
        ssize_t n = write(s->fd, s->buf + off, s->len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) s->res->write_error = n < 0 ? errno : EIO;
        else off += (size_t)n;
    }
    s->len = 0;
}

static void spool_put(struct spool *s, uint64_t max_size, const char *p, size_t n) {
    struct sm_data_result *r = s->res;
    if (r->too_big) return;
    if (n > max_size - r->size) {
        r->too_big = true;
        return;
    }
    r->size += n;
    if (r->write_error) return;
    while (n) {
        size_t k = n < CHUNK - s->len ? n : CHUNK - s->len;
        memcpy(s->buf + s->len, p, k);
        s->len += k;
        p += k;
        n -= k;
        if (s->len == CHUNK) spool_flush(s);
    }
}

int sm_data_read(struct sm_io *io, int spool_fd, uint64_t max_size, struct sm_data_result *ret) {
    *ret = (struct sm_data_result){0};
    struct spool *s = malloc(sizeof *s);
    if (!s) return SM_IO_ERROR;
    s->fd = spool_fd;
    s->len = 0;
    s->res = ret;

    bool line_start = true;   /* the previous piece ended with CRLF */
    int r;
    for (;;) {
        struct sm_line l;
        r = sm_io_getchunk(io, CHUNK, &l);
        if (r != SM_IO_OK) break;
        const char *p = l.data;
        size_t n = l.len;
        if (line_start && l.eol == SM_EOL_CRLF && n == 1 && p[0] == '.') break;  /* CRLF.CRLF */
        if (line_start && n > 0 && p[0] == '.') {
            p++;
            n--;
        }
        if (memchr(p, '\r', n)) ret->bare_cr = true;
        if (memchr(p, 0, n)) ret->nul = true;
        if (l.eol == SM_EOL_LF) ret->bare_lf = true;
        spool_put(s, max_size, p, n);
        if (l.eol != SM_EOL_NONE) spool_put(s, max_size, "\n", 1);
        /* Only CRLF starts a line where "." may end the body. */
        line_start = l.eol == SM_EOL_CRLF;
    }
    if (r == SM_IO_OK) spool_flush(s);
    free(s);
    return r;
}
