/* mem-transport.h — an sm_io transport that reads a fuzz input from memory
 * in pieces of at most PIECE bytes (so every split of a line is reached)
 * and discards what is written. For the fuzz targets only. */
#pragma once

#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "io.h"

struct mem {
    const uint8_t *data;
    size_t len, pos, piece;
};

static inline ssize_t mem_read(void *ctx, void *buf, size_t len) {
    struct mem *m = ctx;
    size_t n = m->len - m->pos;
    if (n > m->piece) n = m->piece;
    if (n > len) n = len;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}

static inline ssize_t mem_write(void *ctx, const void *buf, size_t len) {
    (void)ctx, (void)buf;
    return (ssize_t)len;
}

static inline size_t mem_pending(void *ctx) {
    (void)ctx;
    return 0;
}

/* The transport for M. */
static inline struct sm_transport mem_transport(struct mem *m) {
    return (struct sm_transport){ mem_read, mem_write, mem_pending, NULL, m };
}
