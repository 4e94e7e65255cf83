/* tap.h — the smallest Test Anything Protocol emitter, for meson's
 * `protocol : 'tap'`. ok() prints one result; tap_done() prints the plan and
 * returns the exit code. */
#pragma once

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

static inline int tap_ok(int cond, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    tap_n++;
    printf("%sok %d - ", cond ? "" : "not ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond) {
        tap_failed++;
        printf("# failed at %s:%d\n", file, line);
    }
    fflush(stdout);
    return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(a, b, name)                                                              \
    do {                                                                                \
        long long _a = (long long)(a), _b = (long long)(b);                             \
        if (!ok(_a == _b, "%s", name)) printf("#   got %lld, expected %lld\n", _a, _b); \
    } while (0)
#define is_str(a, b, name)                                                          \
    do {                                                                            \
        const char *_a = (a), *_b = (b);                                            \
        int _eq = _a && _b && strcmp(_a, _b) == 0;                                  \
        if (!ok(_eq, "%s", name))                                                   \
            printf("#   got \"%s\", expected \"%s\"\n", _a ? _a : "(null)", _b ? _b : "(null)"); \
    } while (0)

static inline int tap_done(void) {
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
