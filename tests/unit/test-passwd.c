/* test-passwd.c — password hash verification and generation.
 *
 * The known vectors were made outside libxcrypt at development time:
 * `openssl passwd -6/-5/-1 -salt ...` and `htpasswd -nbB` (APR's own
 * bcrypt, which writes $2y$ like doveadm); the DES and yescrypt vectors
 * come from Python's crypt module. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "passwd.h"
#include "tap.h"

struct vector {
    const char *hash, *password, *scheme;
};

static const struct vector vectors[] = {
    { "$6$saltsaltsalt$Cy2drr8kDRji6smvDcT28wkqtq0R0VzVL5CkrjPQCITc5d/31j94knt9rGTcVSyjLXfjsiIsBh5ee8qR/3QDx1",
      "correct horse", "SHA512-CRYPT" },
    { "$5$pepper12$Kk/E1TuHSoulXle2iz.5tF0nEiNMGjAkGlewV7tL9Z/", "Tr0ub4dor&3", "SHA256-CRYPT" },
    { "$1$md5salt$5fdLHgsZHL5s7Vqi/r.8c/", "hunter2", "MD5-CRYPT" },
    { "$2y$10$u5dXDrmBzpeZ.o.3YyX6Nuj77zJb.7asoM3eyUv5Znb5SlD0xVGMy", "bcrypt pass", "BLF-CRYPT" },
    { "$2y$05$c5XCHjBiup3ZXq.JWaUEGebPMAxc.cRjAFAxKczwKt8POIl.z8/Fu", "cheap", "BLF-CRYPT" },
    { "aby6C85jsbupU", "desPass", "DES-CRYPT" },
    { "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$yatFs4BgbIx2IhbNgWG4puTeqwgqpjXlnWWtEEGgPP5", "yes pass", "YESCRYPT" },
};

/* The Dovecot prefix doveadm writes for each vector's scheme. */
static const char *prefix_of(const char *scheme) {
    if (strcmp(scheme, "YESCRYPT") == 0) return "{CRYPT}";
    static char buf[64];
    snprintf(buf, sizeof buf, "{%s}", scheme);
    return buf;
}

static char *cat(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void test_vectors(void) {
    for (size_t i = 0; i < sizeof vectors / sizeof *vectors; i++) {
        const struct vector *v = &vectors[i];
        is_int(sm_passwd_verify(v->hash, v->password), 1, v->hash);
        is_int(sm_passwd_verify(v->hash, "wrong"), 0, "wrong password");
        is_int(sm_passwd_verify(v->hash, ""), 0, "empty password");
        is_str(sm_passwd_scheme(v->hash), v->scheme, "scheme of bare hash");

        char *p = cat(prefix_of(v->scheme), v->hash);
        is_int(sm_passwd_verify(p, v->password), 1, p);
        is_int(sm_passwd_verify(p, "wrong"), 0, "prefixed, wrong password");
        is_str(sm_passwd_scheme(p), v->scheme, "scheme of prefixed hash");
        free(p);
        p = cat("{CRYPT}", v->hash);
        is_int(sm_passwd_verify(p, v->password), 1, "{CRYPT} takes any crypt hash");
        free(p);
        p = cat("{sha512-crypt}", v->hash);
        is_int(sm_passwd_verify(p, v->password), 1, "prefix is case-insensitive (Dovecot)");
        free(p);

        /* one character of the hash changed: no match (or not a hash) */
        char *t = strdup(v->hash);
        size_t n = strlen(t);
        t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A';
        ok(sm_passwd_verify(t, v->password) != 1, "altered hash does not verify");
        t[n - 2] = 0;
        ok(sm_passwd_verify(t, v->password) != 1, "truncated hash does not verify");
        free(t);
        /* the password with one more byte, or one less */
        char *longer = cat(v->password, "x");
        is_int(sm_passwd_verify(v->hash, longer), 0, "password with an extra byte");
        free(longer);
        char *shorter = strdup(v->password);
        shorter[strlen(shorter) - 1] = 0;
        is_int(sm_passwd_verify(v->hash, shorter), 0, "password one byte short");
        free(shorter);
    }
}

static void test_refused(void) {
    static const char *bad[] = {
        "", "!", "*", "!!", "*LK*", "!$6$saltsaltsalt$Cy2drr8kDRji6smvDcT28wkqtq0R0VzVL5CkrjPQCITc5d/31j94knt9rGTcVSyjLXfjsiIsBh5ee8qR/3QDx1",
        "{SHA512-CRYPT}", "{PLAIN}", "{CRYPT}!", "{CRYPT}*", "{FOO}$6$abc$def", "{FOO}secret",
        "{SHA512-CRYPT$6$abc", "$6$", "$6$salt", "$6$salt$short", "$9$whatever$abc", "$2y$99$abcdefghijklmnopqrstuu",
        "plaintext-in-db", "{SSHA}abcdef", "{MD5}1bc29b36f623ba82aaf6724fd3b16718",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (!ok(sm_passwd_verify(bad[i], "") < 0 && sm_passwd_verify(bad[i], "secret") < 0,
                "refused as no checkable hash: \"%s\"", bad[i]))
            printf("#   got %d\n", sm_passwd_verify(bad[i], "secret"));
    is_int(sm_passwd_verify(NULL, "x"), -EINVAL, "NULL stored");
    is_int(sm_passwd_verify("$1$md5salt$5fdLHgsZHL5s7Vqi/r.8c/", NULL), -EINVAL, "NULL password");
    is_str(sm_passwd_scheme("{FOO}x"), "UNKNOWN", "unknown prefix");
    is_str(sm_passwd_scheme("hello"), "UNKNOWN", "not a hash");
    is_str(sm_passwd_scheme(NULL), "UNKNOWN", "NULL");
    is_str(sm_passwd_scheme("{PLAIN}x"), "PLAIN", "PLAIN");
    is_str(sm_passwd_scheme("$7$CU..../....abc"), "SCRYPT", "scrypt");
    is_str(sm_passwd_scheme("$gy$j9T$abc$def"), "GOST-YESCRYPT", "gost-yescrypt");

    /* a long pass phrase: no match, no error */
    char *huge = malloc(5000);
    memset(huge, 'a', 4999);
    huge[4999] = 0;
    is_int(sm_passwd_verify(vectors[0].hash, huge), 0, "5000-byte password does not match");
    free(huge);
    char *hugehash = malloc(5000);
    memcpy(hugehash, "$6$", 3);
    memset(hugehash + 3, 'a', 4996);
    hugehash[4999] = 0;
    is_int(sm_passwd_verify(hugehash, "x"), -EINVAL, "5000-byte stored hash refused");
    free(hugehash);
}

static void test_plain(void) {
    is_int(sm_passwd_verify("{PLAIN}secret", "secret"), 1, "{PLAIN} matches");
    is_int(sm_passwd_verify("{CLEARTEXT}secret", "secret"), 1, "{CLEARTEXT} matches");
    is_int(sm_passwd_verify("{plain}secret", "secret"), 1, "{plain} lower case");
    is_int(sm_passwd_verify("{PLAIN}secret", "Secret"), 0, "{PLAIN} is case-sensitive");
    is_int(sm_passwd_verify("{PLAIN}secret", "secre"), 0, "{PLAIN} prefix of it");
    is_int(sm_passwd_verify("{PLAIN}secret", "secrets"), 0, "{PLAIN} longer");
    is_int(sm_passwd_verify("{PLAIN}secret", ""), 0, "{PLAIN} empty password");
    is_int(sm_passwd_verify("{PLAIN}", ""), -EINVAL, "{PLAIN} with empty stored password");
    is_int(sm_passwd_verify("{PLAIN}{SHA512-CRYPT}x", "{SHA512-CRYPT}x"), 1, "{PLAIN} content is literal");
    is_int(sm_passwd_verify("secret", "secret"), -EINVAL, "a bare plaintext is not a hash");
}

static void test_generate(void) {
    static const struct {
        const char *scheme, *prefix;
    } gens[] = {
        { "SHA512-CRYPT", "{SHA512-CRYPT}$6$" },
        { "SHA256-CRYPT", "{SHA256-CRYPT}$5$" },
        { "BLF-CRYPT", "{BLF-CRYPT}$2y$10$" },
        { "YESCRYPT", "{CRYPT}$y$" },
        { "sha512-crypt", "{SHA512-CRYPT}$6$" },
    };
    for (size_t i = 0; i < sizeof gens / sizeof *gens; i++) {
        char *h = NULL, *h2 = NULL;
        is_int(sm_passwd_hash(gens[i].scheme, "n3w p\xc3\xa4ss", &h), 0, gens[i].scheme);
        ok(h && strncmp(h, gens[i].prefix, strlen(gens[i].prefix)) == 0, "prefix %s: %s",
           gens[i].prefix, h ? h : "(null)");
        /* doveadm writes default rounds without "rounds=" */
        ok(h && !strstr(h, "rounds="), "no rounds= at the default cost");
        is_int(sm_passwd_verify(h, "n3w p\xc3\xa4ss"), 1, "generated hash verifies");
        is_int(sm_passwd_verify(h, "n3w pass"), 0, "and refuses another password");
        is_int(sm_passwd_hash(gens[i].scheme, "n3w p\xc3\xa4ss", &h2), 0, "second hash");
        ok(h && h2 && strcmp(h, h2) != 0, "fresh salt every time");
        free(h), free(h2);
    }
    char *h = NULL;
    is_int(sm_passwd_hash("FOO", "x", &h), -EINVAL, "unknown scheme");
    is_int(sm_passwd_hash("PLAIN", "x", &h), -EINVAL, "no PLAIN generation");
    ok(h == NULL, "no output on failure");
    char *huge = malloc(1000);
    memset(huge, 'a', 999);
    huge[999] = 0;
    ok(sm_passwd_hash("SHA512-CRYPT", huge, &h) < 0 && h == NULL, "999-byte password refused");
    free(huge);
    is_int(sm_passwd_hash("SHA512-CRYPT", "", &h), 0, "empty password can be hashed");
    is_int(sm_passwd_verify(h, ""), 1, "and verified");
    free(h);
}

static void test_dummy(void) {
    static const char *names[] = { "SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "MD5-CRYPT",
                                   "DES-CRYPT", "YESCRYPT" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *d = sm_passwd_dummy(names[i]);
        is_str(sm_passwd_scheme(d), names[i], "dummy has the scheme asked for");
        is_int(sm_passwd_verify(d, "password"), 0, "dummy is a valid hash that does not match");
    }
    is_str(sm_passwd_scheme(sm_passwd_dummy(vectors[3].hash)), "BLF-CRYPT", "dummy for a stored $2y$");
    is_str(sm_passwd_scheme(sm_passwd_dummy("{SHA256-CRYPT}$5$x$y")), "SHA256-CRYPT", "dummy for a prefixed hash");
    is_str(sm_passwd_scheme(sm_passwd_dummy("{CRYPT}$y$j9T$a$b")), "YESCRYPT", "dummy for {CRYPT}$y$");
    is_str(sm_passwd_scheme(sm_passwd_dummy("CRYPT")), "YESCRYPT", "dummy for CRYPT");
    is_str(sm_passwd_scheme(sm_passwd_dummy("NOPE")), "SHA512-CRYPT", "unknown: SHA512-CRYPT");
    is_str(sm_passwd_scheme(sm_passwd_dummy(NULL)), "SHA512-CRYPT", "NULL: SHA512-CRYPT");
}

/* Not a pass/fail check: the cost of one verification per scheme, so
 * the numbers can be compared with PLATFORM.md. */
static void measure(void) {
    static const char *names[] = { "SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "MD5-CRYPT",
                                   "DES-CRYPT", "YESCRYPT" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *d = sm_passwd_dummy(names[i]);
        int rounds = 5;
        double best = 1e9;
        for (int k = 0; k < rounds; k++) {
            double t0 = now_ms();
            sm_passwd_verify(d, "password");
            double t = now_ms() - t0;
            if (t < best) best = t;
        }
        printf("# verify %-13s %8.3f ms (best of %d)\n", names[i], best, rounds);
    }
    double t0 = now_ms();
    sm_passwd_verify("{PLAIN}secret", "secret");
    printf("# verify %-13s %8.3f ms\n", "PLAIN", now_ms() - t0);
}

int main(void) {
    test_vectors();
    test_refused();
    test_plain();
    test_generate();
    test_dummy();
    measure();
    return tap_done();
}
