/* auth-protocol.c — see auth-protocol.h.
 *
 * Base64 comes from nettle (Debian libnettle8): it is already on every
 * system that has GnuTLS, it is small (no further dependencies, unlike
 * libgnutls or OpenSSL's libcrypto which would cost start-up time in every
 * auth-checker process, PLATFORM.md), and it is well kept. We only add a
 * strict alphabet/padding check in front, because nettle skips whitespace. */
#include "auth-protocol.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nettle/base64.h>

#include "macro.h"

int sm_auth_split(char *line, size_t len, struct sm_auth_fields *ret) {
    if (!line || len == 0 || memchr(line, 0, len)) return -EINVAL;
    struct sm_auth_fields f = {0};
    char *p = line, *end = line + len;
    for (;;) {
        if (f.n == SM_AUTH_MAX_FIELDS) return -EINVAL;
        f.v[f.n++] = p;
        char *tab = memchr(p, '\t', (size_t)(end - p));
        if (!tab) break;
        *tab = 0;
        p = tab + 1;
    }
    *ret = f;
    return 0;
}

int sm_auth_parse_id(const char *s, unsigned *ret) {
    if (!s || !*s || strlen(s) > 10) return -EINVAL;
    unsigned long long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -EINVAL;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v == 0 || v > UINT_MAX) return -EINVAL;
    *ret = (unsigned)v;
    return 0;
}

/* A small unsigned decimal (version numbers): digits only, at most 9. */
static int parse_small(const char *s, unsigned *ret) {
    if (!s || !*s || strlen(s) > 9) return -EINVAL;
    unsigned v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -EINVAL;
        v = v * 10 + (unsigned)(*p - '0');
    }
    *ret = v;
    return 0;
}

int sm_auth_parse_version(const struct sm_auth_fields *f, unsigned *ret_major, unsigned *ret_minor) {
    unsigned a, b;
    if (f->n != 3 || !streq(f->v[0], "VERSION")) return -EINVAL;
    if (parse_small(f->v[1], &a) < 0 || parse_small(f->v[2], &b) < 0) return -EINVAL;
    *ret_major = a;
    *ret_minor = b;
    return 0;
}

/* Stores the value after PREFIX into *DST unless one is already set. */
static int take(const char *field, const char *prefix, const char **dst, bool *matched) {
    size_t n = strlen(prefix);
    if (strncmp(field, prefix, n) != 0) return 0;
    *matched = true;
    if (*dst) return -EINVAL;
    *dst = field + n;
    return 0;
}

int sm_auth_parse_auth(const struct sm_auth_fields *f, struct sm_auth_request *ret) {
    if (f->n < 3 || !streq(f->v[0], "AUTH")) return -EINVAL;
    struct sm_auth_request r = {0};
    if (sm_auth_parse_id(f->v[1], &r.id) < 0) return -EINVAL;
    r.mech = f->v[2];
    if (!*r.mech) return -EINVAL;
    bool secured_seen = false;
    for (size_t i = 3; i < f->n; i++) {
        const char *p = f->v[i];
        bool m = false;
        if (take(p, "service=", &r.service, &m) < 0 || take(p, "lip=", &r.lip, &m) < 0 ||
            take(p, "rip=", &r.rip, &m) < 0 || take(p, "resp=", &r.resp, &m) < 0)
            return -EINVAL;
        if (m) continue;
        if (streq(p, "secured") || strncmp(p, "secured=", 8) == 0) {
            if (secured_seen) return -EINVAL;
            secured_seen = r.secured = true;
        }
        /* anything else: a parameter we do not use */
    }
    *ret = r;
    return 0;
}

int sm_auth_parse_cont(const struct sm_auth_fields *f, unsigned *ret_id, const char **ret_data) {
    unsigned id;
    if (f->n != 3 || !streq(f->v[0], "CONT")) return -EINVAL;
    if (sm_auth_parse_id(f->v[1], &id) < 0) return -EINVAL;
    *ret_id = id;
    *ret_data = f->v[2];
    return 0;
}

int sm_auth_parse_reply(const struct sm_auth_fields *f, struct sm_auth_reply *ret) {
    struct sm_auth_reply r = {0};
    if (f->n < 1) return -EINVAL;
    if (streq(f->v[0], "OK")) r.kind = SM_AUTH_REPLY_OK;
    else if (streq(f->v[0], "CONT")) r.kind = SM_AUTH_REPLY_CONT;
    else if (streq(f->v[0], "FAIL")) r.kind = SM_AUTH_REPLY_FAIL;
    else return -ENOENT;
    if (f->n < 2 || sm_auth_parse_id(f->v[1], &r.id) < 0) return -EINVAL;
    if (r.kind == SM_AUTH_REPLY_CONT) {
        if (f->n != 3) return -EINVAL;
        r.data = f->v[2];
        *ret = r;
        return 0;
    }
    for (size_t i = 2; i < f->n; i++) {
        const char *p = f->v[i];
        if (strncmp(p, "user=", 5) == 0) r.user = p + 5;
        else if (strncmp(p, "reason=", 7) == 0) r.reason = p + 7;
        else if (streq(p, "temp") || streq(p, "code=temp_fail")) r.temp = true;
    }
    if (r.kind == SM_AUTH_REPLY_OK) r.temp = false;
    *ret = r;
    return 0;
}

bool sm_auth_value_ok(const char *s) {
    if (!s) return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return false;
    return true;
}

static bool b64_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

void sm_auth_free_secret(char *p, size_t len) {
    if (!p) return;
    if (len == SIZE_MAX) len = strlen(p);
    explicit_zero(p, len);
    free(p);
}

int sm_auth_b64_decode(const char *in, char **ret, size_t *ret_len) {
    size_t n = strlen(in);
    if (n == 0 || (n == 1 && in[0] == '=')) {
        char *e = calloc(1, 1);
        if (!e) return -ENOMEM;
        *ret = e;
        *ret_len = 0;
        return 0;
    }
    /* Strict form: groups of four, '=' only as the last one or two bytes. */
    if (n % 4 != 0) return -EINVAL;
    size_t pad = 0;
    if (in[n - 1] == '=') pad++;
    if (pad && in[n - 2] == '=') pad++;
    for (size_t i = 0; i < n - pad; i++)
        if (!b64_char(in[i])) return -EINVAL;
    if (n / 4 * 3 - pad > SM_AUTH_MAX_SASL) return -E2BIG;

    char *out = malloc(BASE64_DECODE_LENGTH(n) + 1);
    if (!out) return -ENOMEM;
    struct base64_decode_ctx ctx;
    size_t outlen = BASE64_DECODE_LENGTH(n);
    base64_decode_init(&ctx);
    if (!base64_decode_update(&ctx, &outlen, (uint8_t *)out, n, in) || !base64_decode_final(&ctx)) {
        sm_auth_free_secret(out, BASE64_DECODE_LENGTH(n));
        return -EINVAL;
    }
    out[outlen] = 0;
    *ret = out;
    *ret_len = outlen;
    return 0;
}

int sm_auth_b64_encode(const void *in, size_t len, char **ret) {
    if (len > SIZE_MAX / 2) return -ENOMEM;
    char *out = malloc(BASE64_ENCODE_RAW_LENGTH(len) + 1);
    if (!out) return -ENOMEM;
    base64_encode_raw(out, len, (const uint8_t *)in);
    out[BASE64_ENCODE_RAW_LENGTH(len)] = 0;
    *ret = out;
    return 0;
}

int sm_sasl_plain_parse(char *data, size_t len, const char **ret_authzid,
                        const char **ret_authcid, const char **ret_passwd) {
    char *end = data + len;
    char *nul1 = memchr(data, 0, len);
    if (!nul1) return -EINVAL;
    char *nul2 = memchr(nul1 + 1, 0, (size_t)(end - nul1 - 1));
    if (!nul2) return -EINVAL;
    if (memchr(nul2 + 1, 0, (size_t)(end - nul2 - 1))) return -EINVAL;
    /* data[len] is NUL (sm_auth_b64_decode), so the password is a string. */
    const char *authzid = data, *authcid = nul1 + 1, *passwd = nul2 + 1;
    if (!*authcid || !*passwd) return -EINVAL;
    /* Set on -EPERM too, so the caller can log who tried to be whom. */
    *ret_authzid = authzid;
    *ret_authcid = authcid;
    *ret_passwd = passwd;
    if (*authzid && !streq(authzid, authcid)) return -EPERM;
    return 0;
}

int sm_sasl_plain_encode(const char *user, const char *password, char **ret_b64) {
    size_t u = strlen(user), p = strlen(password);
    if (u == 0 || u + p + 2 > SM_AUTH_MAX_SASL) return -EINVAL;
    size_t n = u + p + 2;
    char *buf = malloc(n);
    if (!buf) return -ENOMEM;
    buf[0] = 0;
    memcpy(buf + 1, user, u);
    buf[1 + u] = 0;
    memcpy(buf + 2 + u, password, p);
    int r = sm_auth_b64_encode(buf, n, ret_b64);
    sm_auth_free_secret(buf, n);
    return r;
}

int sm_sasl_login_check(const char *data, size_t len) {
    if (len == 0 || memchr(data, 0, len)) return -EINVAL;
    return 0;
}

bool sm_auth_ip_is_loopback(const char *ip) {
    struct in_addr a4;
    struct in6_addr a6;
    if (!ip) return false;
    if (inet_pton(AF_INET, ip, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, ip, &a6) == 1) {
        static const unsigned char lo[16] = {[15] = 1};
        if (memcmp(a6.s6_addr, lo, 16) == 0) return true;
        static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
        return memcmp(a6.s6_addr, mapped, 12) == 0 && a6.s6_addr[12] == 127;
    }
    return false;
}

bool sm_auth_plaintext_allowed(const struct sm_auth_request *r, bool allow_plaintext) {
    if (r->secured || allow_plaintext) return true;
    if (!r->rip || !*r->rip) return true;
    if (sm_auth_ip_is_loopback(r->rip)) return true;
    return r->lip && *r->lip && strcasecmp(r->lip, r->rip) == 0;
}
