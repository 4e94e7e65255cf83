/* fuzz-auth-protocol.c — every parser of auth-protocol.h on arbitrary lines:
 * split, then AUTH/CONT/VERSION/reply parsing, base64 decoding of each
 * field and PLAIN/LOGIN payload parsing of what decodes; checks that a
 * decoded payload re-encodes to the same text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth-protocol.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void payloads(const char *b64) {
    char *dec;
    size_t n;
    if (sm_auth_b64_decode(b64, &dec, &n) < 0) return;
    char *enc;
    if (sm_auth_b64_encode(dec, n, &enc) == 0) {
        /* strict decoding means one canonical text per payload, except "=" */
        if (!streq(b64, "=") && !streq(enc, b64) && n > 0) {
            /* nettle accepts non-zero trailing bits; the text then differs */
            char *again;
            size_t m;
            if (sm_auth_b64_decode(enc, &again, &m) < 0 || m != n || memcmp(again, dec, n)) abort();
            free(again);
        }
        free(enc);
    }
    const char *z, *c, *p;
    char *copy = malloc(n + 1);
    memcpy(copy, dec, n + 1);
    if (sm_sasl_plain_parse(copy, n, &z, &c, &p) == 0) {
        if (!*c || !*p || (*z && !streq(z, c))) abort();
    }
    (void)sm_sasl_login_check(dec, n);
    free(copy);
    sm_auth_free_secret(dec, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536) return 0;
    char *line = malloc(size + 1);
    memcpy(line, data, size);
    line[size] = 0;
    struct sm_auth_fields f;
    if (sm_auth_split(line, size, &f) == 0) {
        if (f.n == 0 || f.n > SM_AUTH_MAX_FIELDS) abort();
        struct sm_auth_request r;
        if (sm_auth_parse_auth(&f, &r) == 0) {
            if (r.id == 0 || !*r.mech) abort();
            (void)sm_auth_plaintext_allowed(&r, false);
            if (r.resp) payloads(r.resp);
        }
        unsigned id, ma, mi;
        const char *d;
        if (sm_auth_parse_cont(&f, &id, &d) == 0) payloads(d);
        (void)sm_auth_parse_version(&f, &ma, &mi);
        struct sm_auth_reply rep;
        (void)sm_auth_parse_reply(&f, &rep);
        for (size_t i = 0; i < f.n; i++) {
            (void)sm_auth_value_ok(f.v[i]);
            (void)sm_auth_ip_is_loopback(f.v[i]);
            payloads(f.v[i]);
        }
    }
    free(line);
    return 0;
}
