/* address.c — RFC 5321 §4.1.2 mailbox syntax with RFC 6531 UTF-8; see address.h. */
#include "address.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "macro.h"

#define MAX_LOCAL 64
#define MAX_DOMAIN 255
#define MAX_LABEL 63
#define MAX_MAILBOX 254  /* a path is at most 256 octets with its "<" ">" */

static void set_why(const char **why, const char *s) {
    if (why) *why = s;
}

/* Length of the valid UTF-8 sequence of a non-ASCII character at S (N bytes
 * left), or 0: no overlongs, no surrogates, nothing above U+10FFFF, and no
 * C1 control characters (U+0080..U+009F). */
static size_t utf8_char(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0xc2 || c > 0xf4) return 0;  /* ASCII, continuation, overlong C0/C1, too big */
    size_t need = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (n < need) return 0;
    for (size_t i = 1; i < need; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    if (c == 0xc2 && s[1] < 0xa0) return 0;                /* C1 controls */
    if (c == 0xe0 && s[1] < 0xa0) return 0;                /* overlong */
    if (c == 0xed && s[1] > 0x9f) return 0;                /* surrogates */
    if (c == 0xf0 && s[1] < 0x90) return 0;                /* overlong */
    if (c == 0xf4 && s[1] > 0x8f) return 0;                /* above U+10FFFF */
    return need;
}

static bool is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* RFC 5322 atext (ASCII part). */
static bool is_atext(unsigned char c) {
    return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* Checks that S[0..N) is a Dot-string; UTF-8 atext with SM_ADDR_UTF8. */
static int check_dot_string(const char *s, size_t n, unsigned flags, const char **why) {
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0) {
        set_why(why, "local part missing");
        return -EINVAL;
    }
    bool atom_empty = true;
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c == '.') {
            if (atom_empty) {
                set_why(why, i == 0 ? "local part starts with a dot" : "two dots in local part");
                return -EINVAL;
            }
            atom_empty = true;
            i++;
        } else if (c < 0x80) {
            if (!is_atext(c)) {
                set_why(why, c < 0x20 || c == 0x7f ? "control character in local part"
                                                   : "bad character in local part");
                return -EINVAL;
            }
            atom_empty = false;
            i++;
        } else {
            size_t l = utf8_char(u + i, n - i);
            if (!(flags & SM_ADDR_UTF8)) {
                set_why(why, "non-ASCII local part without SMTPUTF8");
                return -EINVAL;
            }
            if (!l) {
                set_why(why, "invalid UTF-8 in local part");
                return -EINVAL;
            }
            atom_empty = false;
            i += l;
        }
    }
    if (atom_empty) {
        set_why(why, "local part ends with a dot");
        return -EINVAL;
    }
    return 0;
}

/* Parses a Quoted-string at S (N bytes available, S[0] == '"'): its
 * unescaped content goes to OUT (room for N bytes), its length to *OUTLEN,
 * the bytes consumed including both quotes to *USED. */
static int parse_quoted(const char *s, size_t n, unsigned flags, char *out, size_t *outlen,
                        size_t *used, const char **why) {
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 1; i < n;) {
        unsigned char c = u[i];
        if (c == '"') {
            *outlen = o;
            *used = i + 1;
            return 0;
        }
        if (c == '\\') {
            if (i + 1 >= n) break;
            unsigned char e = u[i + 1];
            if (e < 32 || e > 126) {
                set_why(why, "bad quoted-pair in local part");
                return -EINVAL;
            }
            out[o++] = (char)e;
            i += 2;
        } else if (c >= 32 && c <= 126) {
            out[o++] = (char)c;
            i++;
        } else if (c >= 0x80) {
            size_t l = utf8_char(u + i, n - i);
            if (!(flags & SM_ADDR_UTF8)) {
                set_why(why, "non-ASCII local part without SMTPUTF8");
                return -EINVAL;
            }
            if (!l) {
                set_why(why, "invalid UTF-8 in local part");
                return -EINVAL;
            }
            memcpy(out + o, s + i, l);
            o += l;
            i += l;
        } else {
            set_why(why, "control character in local part");
            return -EINVAL;
        }
    }
    set_why(why, "unterminated quoted string");
    return -EINVAL;
}

/* Checks a host name (LDH labels; U-labels with SM_ADDR_UTF8) and appends
 * it lower-cased (ASCII only) to OUT. */
static int check_domain(const char *s, size_t n, unsigned flags, char *out, const char **why) {
    const unsigned char *u = (const unsigned char *)s;
    size_t label = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c == '.') {
            if (label == 0) {
                set_why(why, i == 0 ? "domain starts with a dot" : "empty label in domain");
                return -EINVAL;
            }
            if (u[i - 1] == '-') {
                set_why(why, "label ends with a hyphen");
                return -EINVAL;
            }
            label = 0;
            out[i] = '.';
            i++;
            continue;
        }
        size_t l = 1;
        if (c >= 0x80) {
            l = utf8_char(u + i, n - i);
            if (!(flags & SM_ADDR_UTF8)) {
                set_why(why, "non-ASCII domain without SMTPUTF8");
                return -EINVAL;
            }
            if (!l) {
                set_why(why, "invalid UTF-8 in domain");
                return -EINVAL;
            }
            memcpy(out + i, s + i, l);
        } else if (is_alpha(c) || is_digit(c)) {
            out[i] = (char)(is_alpha(c) ? (c | 0x20) : c);
        } else if (c == '-') {
            if (label == 0) {
                set_why(why, "label starts with a hyphen");
                return -EINVAL;
            }
            out[i] = '-';
        } else {
            set_why(why, c < 0x20 || c == 0x7f ? "control character in domain"
                                               : "bad character in domain");
            return -EINVAL;
        }
        label += l;
        i += l;
        if (label > MAX_LABEL) {
            set_why(why, "domain label too long");
            return -EINVAL;
        }
    }
    if (label == 0) {
        set_why(why, "domain ends with a dot");
        return -EINVAL;
    }
    if (u[n - 1] == '-') {
        set_why(why, "label ends with a hyphen");
        return -EINVAL;
    }
    return 0;
}

/* An address literal "[...]" (S[0] == '['): IPv4 dotted quad or IPv6 after
 * the "IPv6:" tag, written back in inet_ntop's canonical form. */
static int check_literal(const char *s, size_t n, char *out, size_t *outlen, const char **why) {
    char text[64];
    if (n < 3 || s[n - 1] != ']') {
        set_why(why, "unterminated address literal");
        return -EINVAL;
    }
    const char *in = s + 1;
    size_t inlen = n - 2;
    int af = AF_INET;
    if (inlen >= 5 && strncasecmp(in, "IPv6:", 5) == 0) {
        af = AF_INET6;
        in += 5;
        inlen -= 5;
    }
    if (inlen == 0 || inlen >= sizeof text || memchr(in, 0, inlen)) {
        set_why(why, "bad address literal");
        return -EINVAL;
    }
    memcpy(text, in, inlen);
    text[inlen] = 0;
    unsigned char bin[16];
    if (inet_pton(af, text, bin) != 1) {
        /* A General-address-literal ("tag:...") we cannot deliver to. */
        set_why(why, af == AF_INET && memchr(text, ':', inlen) ? "unsupported address literal"
                                                               : "bad address literal");
        return -EINVAL;
    }
    char canon[INET6_ADDRSTRLEN];
    if (!inet_ntop(af, bin, canon, sizeof canon)) {
        set_why(why, "bad address literal");
        return -EINVAL;
    }
    int w = snprintf(out, MAX_DOMAIN + 1, "[%s%s]", af == AF_INET6 ? "IPv6:" : "", canon);
    if (w < 0 || w > MAX_DOMAIN) {
        set_why(why, "bad address literal");
        return -EINVAL;
    }
    *outlen = (size_t)w;
    return 0;
}

int sm_addr_normalize(const char *s, size_t len, unsigned flags, char **ret, const char **why) {
    if (!s || !ret) return -EINVAL;
    if (len == 0) {
        set_why(why, "empty address");
        return -EINVAL;
    }
    if (len > MAX_MAILBOX) {
        set_why(why, "address too long");
        return -EINVAL;
    }
    if (memchr(s, 0, len)) {
        set_why(why, "NUL in address");
        return -EINVAL;
    }

    /* The local part as given, and where the domain starts. */
    char content[MAX_MAILBOX];
    size_t content_len, local_len;
    bool quoted = s[0] == '"';
    if (quoted) {
        int r = parse_quoted(s, len, flags, content, &content_len, &local_len, why);
        if (r < 0) return r;
        if (content_len == 0) {
            set_why(why, "local part missing");
            return -EINVAL;
        }
    } else {
        const char *at = memchr(s, '@', len);
        local_len = at ? (size_t)(at - s) : len;
        int r = check_dot_string(s, local_len, flags, why);
        if (r < 0) return r;
        memcpy(content, s, local_len);
        content_len = local_len;
    }
    if (local_len > MAX_LOCAL) {
        set_why(why, "local part too long");
        return -EINVAL;
    }
    if (local_len >= len || s[local_len] != '@') {
        set_why(why, local_len >= len ? "domain missing" : "bad character after quoted string");
        return -EINVAL;
    }
    const char *dom = s + local_len + 1;
    size_t dom_len = len - local_len - 1;
    if (dom_len == 0) {
        set_why(why, "domain missing");
        return -EINVAL;
    }
    if (dom_len > MAX_DOMAIN) {
        set_why(why, "domain too long");
        return -EINVAL;
    }

    char domain[MAX_DOMAIN + 1];
    size_t domain_len = dom_len;
    int r = dom[0] == '[' ? check_literal(dom, dom_len, domain, &domain_len, why)
                          : check_domain(dom, dom_len, flags, domain, why);
    if (r < 0) return r;

    /* Unquote when the content is a plain dot-string; else minimal escaping. */
    bool keep_quotes = quoted && check_dot_string(content, content_len, flags, NULL) < 0;
    size_t need = content_len + 1 + domain_len + 1;
    if (keep_quotes) need += 2 + content_len;  /* worst case: every byte escaped */
    char *out = malloc(need);
    if (!out) return -ENOMEM;
    size_t o = 0;
    if (keep_quotes) {
        out[o++] = '"';
        for (size_t i = 0; i < content_len; i++) {
            if (content[i] == '"' || content[i] == '\\') out[o++] = '\\';
            out[o++] = content[i];
        }
        out[o++] = '"';
    } else {
        memcpy(out, content, content_len);
        o = content_len;
    }
    out[o++] = '@';
    memcpy(out + o, domain, domain_len);
    o += domain_len;
    out[o] = 0;
    if (o > MAX_MAILBOX) {
        /* inet_ntop can write an IPv6 literal longer than it came
         * ("::ffff:0" -> "::255.255.0.0"): the limit holds for the result too. */
        free(out);
        set_why(why, "address too long");
        return -EINVAL;
    }
    *ret = out;
    return 0;
}

int sm_addr_split(const char *address, char **ret_local, char **ret_domain) {
    if (!address || !ret_local || !ret_domain) return -EINVAL;
    const char *at = strrchr(address, '@');
    if (!at || at == address || !at[1]) return -EINVAL;
    _cleanup_free_ char *l = strndup(address, (size_t)(at - address));
    _cleanup_free_ char *d = strdup(at + 1);
    if (!l || !d) return -ENOMEM;
    *ret_local = TAKE_PTR(l);
    *ret_domain = TAKE_PTR(d);
    return 0;
}
