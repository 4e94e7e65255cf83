/* passwd.c — verify and generate password hashes with libxcrypt; see passwd.h. */
#include "passwd.h"

#include <crypt.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "macro.h"

/* A stored hash longer than this is not one we wrote or know. */
#define MAX_STORED 1024

enum kind {
    KIND_CRYPT,  /* crypt(3) hash: any Dovecot *-CRYPT prefix or none */
    KIND_PLAIN,  /* Dovecot {PLAIN} / {CLEARTEXT} */
};

/* Dovecot scheme prefixes. Dovecot checks every *-CRYPT scheme with
 * crypt(3) whatever the hash says, and so do we. */
static const struct {
    const char *name;
    enum kind kind;
} prefixes[] = {
    { "SHA512-CRYPT", KIND_CRYPT }, { "SHA256-CRYPT", KIND_CRYPT },
    { "BLF-CRYPT", KIND_CRYPT },    { "MD5-CRYPT", KIND_CRYPT },
    { "CRYPT", KIND_CRYPT },        { "DES-CRYPT", KIND_CRYPT },
    { "PLAIN", KIND_PLAIN },        { "CLEARTEXT", KIND_PLAIN },
};

/* Splits "{SCHEME}rest" into its kind and the rest; a bare hash is
 * KIND_CRYPT. -EINVAL for an unknown or unterminated prefix. */
static int split_prefix(const char *stored, enum kind *kind, const char **rest) {
    if (stored[0] != '{') {
        *kind = KIND_CRYPT;
        *rest = stored;
        return 0;
    }
    const char *end = strchr(stored, '}');
    if (!end) return -EINVAL;
    size_t n = (size_t)(end - stored - 1);
    for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
        if (strlen(prefixes[i].name) == n && strncasecmp(prefixes[i].name, stored + 1, n) == 0) {
            *kind = prefixes[i].kind;
            *rest = end + 1;
            return 0;
        }
    return -EINVAL;
}

static bool is_b64(char c) {
    return c == '.' || c == '/' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z');
}

/* Traditional DES: exactly 13 characters of crypt's base-64 alphabet. */
static bool is_des(const char *h) {
    size_t n = 0;
    for (; h[n]; n++)
        if (n >= 13 || !is_b64(h[n])) return false;
    return n == 13;
}

/* Equal in time that depends only on the lengths, never on where A and B
 * first differ. */
static bool const_eq(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    size_t n = la > lb ? la : lb;
    volatile unsigned char diff = la != lb;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < la ? (unsigned char)a[i] : 0;
        unsigned char y = i < lb ? (unsigned char)b[i] : 0;
        diff |= x ^ y;
    }
    return diff == 0;
}

int sm_passwd_verify(const char *stored, const char *password) {
    if (!stored || !password) return -EINVAL;
    if (strnlen(stored, MAX_STORED + 1) > MAX_STORED) return -EINVAL;
    enum kind kind;
    const char *hash;
    if (split_prefix(stored, &kind, &hash) < 0) return -EINVAL;
    if (!*hash) return -EINVAL;  /* empty: never a valid login */
    if (kind == KIND_PLAIN) return const_eq(hash, password) ? 1 : 0;

    /* Locked accounts ("!", "*", "!$6$..."), and what is no hash at all. */
    if (hash[0] != '$' && !is_des(hash)) return -EINVAL;
    /* No crypt hash matches a longer pass phrase; say so without hashing. */
    if (strnlen(password, CRYPT_MAX_PASSPHRASE_SIZE) >= CRYPT_MAX_PASSPHRASE_SIZE) return 0;

    /* struct crypt_data is about 32 KiB: on the heap, not the stack. */
    struct crypt_data *data = calloc(1, sizeof *data);
    if (!data) return -ENOMEM;
    const char *out = crypt_rn(password, hash, data, (int)sizeof *data);
    int r;
    if (!out || out[0] == '*')
        r = -EINVAL;  /* malformed or unsupported hash */
    else if (strlen(out) != strlen(hash))
        /* A whole hash reproduces its own length whatever the password; a
         * bare setting ("$6$salt"), a cut or padded hash does not. */
        r = -EINVAL;
    else
        r = const_eq(out, hash) ? 1 : 0;
    explicit_zero(data, sizeof *data);
    free(data);
    return r;
}

const char *sm_passwd_scheme(const char *stored) {
    if (!stored) return "UNKNOWN";
    enum kind kind;
    const char *h;
    if (split_prefix(stored, &kind, &h) < 0) return "UNKNOWN";
    if (kind == KIND_PLAIN) return "PLAIN";
    static const struct {
        const char *prefix, *name;
    } ids[] = {
        { "$y$", "YESCRYPT" },     { "$gy$", "GOST-YESCRYPT" }, { "$7$", "SCRYPT" },
        { "$2b$", "BLF-CRYPT" },   { "$2y$", "BLF-CRYPT" },     { "$2a$", "BLF-CRYPT" },
        { "$6$", "SHA512-CRYPT" }, { "$5$", "SHA256-CRYPT" },   { "$1$", "MD5-CRYPT" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(ids); i++)
        if (strncmp(h, ids[i].prefix, strlen(ids[i].prefix)) == 0) return ids[i].name;
    if (is_des(h)) return "DES-CRYPT";
    return "UNKNOWN";
}

/* How each scheme we generate is written: gensalt prefix and cost, and
 * the Dovecot prefix `doveadm pw -s SCHEME` prints. */
static const struct {
    const char *scheme, *gensalt, *label;
    unsigned long cost;
} generators[] = {
    { "SHA512-CRYPT", "$6$", "{SHA512-CRYPT}", 5000 },  /* doveadm's default rounds */
    { "SHA256-CRYPT", "$5$", "{SHA256-CRYPT}", 5000 },
    { "BLF-CRYPT", "$2y$", "{BLF-CRYPT}", 10 },  /* libxcrypt would pick 5 */
    { "YESCRYPT", "$y$", "{CRYPT}", 0 },         /* 0: libxcrypt's default cost */
};

int sm_passwd_hash(const char *scheme, const char *password, char **ret) {
    if (!scheme || !password || !ret) return -EINVAL;
    size_t g = ARRAY_SIZE(generators);
    for (size_t i = 0; i < ARRAY_SIZE(generators); i++)
        if (strcasecmp(generators[i].scheme, scheme) == 0) g = i;
    if (g == ARRAY_SIZE(generators)) return -EINVAL;
    if (strnlen(password, CRYPT_MAX_PASSPHRASE_SIZE) >= CRYPT_MAX_PASSPHRASE_SIZE) return -ERANGE;

    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    errno = 0;
    if (!crypt_gensalt_rn(generators[g].gensalt, generators[g].cost, NULL, 0, setting,
                          (int)sizeof setting))
        return errno ? -errno : -EIO;

    struct crypt_data *data = calloc(1, sizeof *data);
    if (!data) return -ENOMEM;
    errno = 0;
    const char *out = crypt_rn(password, setting, data, (int)sizeof *data);
    int r = 0;
    char *s = NULL;
    if (!out || out[0] == '*') {
        r = errno ? -errno : -EIO;
    } else {
        size_t ll = strlen(generators[g].label), lo = strlen(out);
        s = malloc(ll + lo + 1);
        if (!s) {
            r = -ENOMEM;
        } else {
            memcpy(s, generators[g].label, ll);
            memcpy(s + ll, out, lo + 1);
        }
    }
    explicit_zero(data, sizeof *data);
    free(data);
    if (r < 0) return r;
    *ret = s;
    return 0;
}

/* Hashes of a random pass phrase nobody kept, at the default costs. */
static const struct {
    const char *scheme, *hash;
} dummies[] = {
    { "SHA512-CRYPT", "$6$Khe71TD4GNAzC35Z$LEFBHNNvHJG3lpZvBlcNlcUeqk.x5iJEwd9RE4atLyFm7HmTBBowbMtzN18CcghQXQJIy5eVV7.atYfueFU9h." },
    { "SHA256-CRYPT", "$5$opF6iU..GBs4Na6G$QbE8uDzaAU/44OCw3DOiiTZAFAGvMObUJrI4Jm3GEz6" },
    { "BLF-CRYPT", "$2y$10$z2g7GKLuQbf6ljP6LZxPmelMRU8mYSaVMx7iPdtkmDeA0Cbhy1cya" },
    { "MD5-CRYPT", "$1$.sXorrv5$ltDsemBWNwIJC39tmqVmL1" },
    { "DES-CRYPT", "cqTrkOTbn2e8I" },
    { "YESCRYPT", "$y$j9T$Qa8dM1vPzGZ4kX0s2LrNw.$EPgdr3LQ5WTYmI7PJk9W2o1jbugRENqz8ynnVFNNgX/" },
};

const char *sm_passwd_dummy(const char *scheme) {
    /* Either a scheme name or a stored hash whose scheme is to be matched. */
    const char *name = scheme;
    if (scheme && (scheme[0] == '{' || scheme[0] == '$')) name = sm_passwd_scheme(scheme);
    if (name && strcasecmp(name, "CRYPT") == 0) name = "YESCRYPT";
    for (size_t i = 0; name && i < ARRAY_SIZE(dummies); i++)
        if (strcasecmp(dummies[i].scheme, name) == 0) return dummies[i].hash;
    return dummies[0].hash;
}
