/* output.c — JSON for --json, and the findings of `sockmail check`. */
#include <stdarg.h>

#include "sockmail.h"

/* Length of the valid UTF-8 sequence at S (1..4), or 0 if it is not one
 * (overlong forms, surrogates and values above U+10FFFF are invalid). */
static size_t utf8_len(const unsigned char *s) {
    unsigned char c = s[0];
    size_t n;
    unsigned cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07;
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;   /* also stops at the NUL */
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void json_escape(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
            p++;
        } else if (c < 0x20 || c == 0x7f) {
            switch (c) {
            case '\n': fputs("\\n", f); break;
            case '\r': fputs("\\r", f); break;
            case '\t': fputs("\\t", f); break;
            default: fprintf(f, "\\u%04x", c); break;
            }
            p++;
        } else {
            size_t n = utf8_len(p);
            if (n == 0) {
                fputs("\\ufffd", f);
                p++;
            } else {
                fwrite(p, 1, n, f);
                p += n;
            }
        }
    }
    fputc('"', f);
}

void json_begin(struct json *j, FILE *f) { *j = (struct json){ .f = f }; }

/* Before a value: a comma after a sibling (not after a key). */
static void value_start(struct json *j) {
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (j->need_comma[j->depth]) fputc(',', j->f);
    j->need_comma[j->depth] = true;
}

static void open_(struct json *j, char c) {
    value_start(j);
    fputc(c, j->f);
    if (j->depth + 1 < JSON_MAX_DEPTH) j->depth++;
    j->need_comma[j->depth] = false;
}

static void close_(struct json *j, char c) {
    fputc(c, j->f);
    if (j->depth > 0) j->depth--;
}

void json_object(struct json *j) { open_(j, '{'); }
void json_object_end(struct json *j) { close_(j, '}'); }
void json_array(struct json *j) { open_(j, '['); }
void json_array_end(struct json *j) { close_(j, ']'); }

void json_key(struct json *j, const char *key) {
    value_start(j);
    json_escape(j->f, key);
    fputc(':', j->f);
    j->after_key = true;
}

void json_str(struct json *j, const char *s) {
    value_start(j);
    if (s) json_escape(j->f, s);
    else fputs("null", j->f);
}

void json_uint(struct json *j, unsigned long long n) {
    value_start(j);
    fprintf(j->f, "%llu", n);
}

void json_bool(struct json *j, bool b) {
    value_start(j);
    fputs(b ? "true" : "false", j->f);
}

void json_end(struct json *j) { fputc('\n', j->f); }

void finding(struct findings *f, enum finding_level level, const char *fix, const char *fmt, ...) {
    static const char *const names[] = { "ok", "warning", "error" };
    _cleanup_free_ char *what = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&what, fmt, ap) < 0) what = NULL;
    va_end(ap);
    switch (level) {
    case FINDING_OK: f->ok++; break;
    case FINDING_WARNING: f->warnings++; break;
    case FINDING_ERROR: f->errors++; break;
    }
    if (f->json) {
        json_object(f->json);
        json_key(f->json, "level");
        json_str(f->json, names[level]);
        json_key(f->json, "what");
        json_str(f->json, what ? what : "?");
        json_key(f->json, "fix");
        json_str(f->json, fix);
        json_object_end(f->json);
        return;
    }
    printf("%s: %s", names[level], what ? what : "?");
    if (fix) printf(" — fix: %s", fix);
    putchar('\n');
}
