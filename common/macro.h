/* macro.h — small helpers every module uses: cleanup attributes, sizes.
 *
 * Resources are released by scope (`_cleanup_free_ char *s = ...;`), the way
 * systemd does it, so early returns cannot leak. Every destructor accepts
 * NULL / -1. */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _noreturn_ __attribute__((noreturn))

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd) {
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}
static inline void fclosep(FILE **f) {
    if (*f) fclose(*f);
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Hand a cleaned-up resource to the caller: returns it and disarms cleanup. */
#define TAKE_PTR(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })
#define TAKE_FD(fd) ({ int _t = (fd); (fd) = -1; _t; })

#define streq(a, b) (strcmp((a), (b)) == 0)

/* Zero a secret so the compiler cannot drop the store. */
static inline void explicit_zero(void *p, size_t n) {
    if (p && n) explicit_bzero(p, n);
}

/* Lookups answer one of these (DESIGN.md: a database that is down is never
 * "user unknown"). */
enum sm_lookup {
    SM_FOUND = 0,
    SM_NOTFOUND = 1,
    SM_TEMPFAIL = 2,
};

/* Exit codes shared by our programs (STYLE.md point 7). */
enum {
    SM_EXIT_OK = 0,
    SM_EXIT_REFUSED = 1,
    SM_EXIT_USAGE = 2,
    SM_EXIT_TEMPFAIL = 75,   /* EX_TEMPFAIL, for sendmail-style callers */
    SM_EXIT_CP_TEMPFAIL = 111, /* checkpassword's temporary failure */
};
