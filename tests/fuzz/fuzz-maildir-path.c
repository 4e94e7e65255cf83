/* fuzz-maildir-path.c — sm_maildir_path() on arbitrary templates and
 * addresses. Input: TEMPLATE NUL ADDRESS. Whenever a path comes back, it must
 * be absolute, within PATH_MAX, and the address must not have added a path
 * separator, a `.`/`..` component or a control byte to it. */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maildir.h"

static size_t count_char(const char *s, char c) {
    size_t n = 0;
    for (; *s; s++)
        if (*s == c) n++;
    return n;
}

static bool has_control(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
    return false;
}

/* Independent check of what the address may be when a path was made. */
static bool part_ok(const char *s, size_t n) {
    if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '/' || (unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

/* A `.` or `..` component anywhere in PATH. */
static bool has_dot_component(const char *path) {
    const char *p = path;
    while (*p) {
        while (*p == '/') p++;
        const char *e = strchrnul(p, '/');
        size_t n = (size_t)(e - p);
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) return true;
        p = e;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 8192) return 0;
    const uint8_t *nul = memchr(data, 0, size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    char *tmpl = strndup((const char *)data, tlen);
    char *addr = nul ? strndup((const char *)nul + 1, size - tlen - 1) : strdup("user@example.org");
    if (!tmpl || !addr) abort();

    char *out = NULL;
    int r = sm_maildir_path(tmpl, addr, &out);
    if (r < 0) {
        if (out) abort(); /* nothing returned on failure */
    } else {
        if (r != 0 || !out) abort();
        if (out[0] != '/') abort();
        if (strlen(out) >= PATH_MAX) abort();

        bool dovecot = strncmp(tmpl, "maildir:", 8) == 0;
        const char *t = dovecot ? tmpl + 8 : tmpl;
        const char *at = strrchr(addr, '@');
        if (!at || !part_ok(addr, (size_t)(at - addr)) || !part_ok(at + 1, strlen(at + 1))) abort();
        /* every '/' comes from the template */
        if (count_char(out, '/') > count_char(t, '/')) abort();
        if (!(dovecot && strchr(t, ':')) && count_char(out, '/') != count_char(t, '/')) abort();
        /* control bytes only where the template (trusted) put them */
        if (!has_control(t) && has_control(out)) abort();
        /* with no dots in the template, a dot component could only come
         * from the address */
        if (!strchr(t, '.') && has_dot_component(out)) abort();
    }
    free(out);
    free(tmpl);
    free(addr);
    return 0;
}
