/* test-address.c — RFC 5321/6531 mailbox syntax and normal form. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "tap.h"

struct ok_case {
    const char *in;
    unsigned flags;
    const char *out;
};

struct bad_case {
    const char *in;
    unsigned flags;
    size_t len;  /* 0: strlen */
    const char *why;  /* NULL: any reason */
};

#define U SM_ADDR_UTF8

static const struct ok_case good[] = {
    { "user@example.com", 0, "user@example.com" },
    { "User@Example.COM", 0, "User@example.com" },           /* local part case kept */
    { "first.last@sub.example.org", 0, "first.last@sub.example.org" },
    { "a!#$%&'*+-/=?^_`{|}~b@example.com", 0, "a!#$%&'*+-/=?^_`{|}~b@example.com" },
    { "user%other@example.com", 0, "user%other@example.com" },
    { "bang!path@example.com", 0, "bang!path@example.com" },
    { "x@localhost", 0, "x@localhost" },
    { "x@a-b.c-d.example", 0, "x@a-b.c-d.example" },
    { "x@123.example", 0, "x@123.example" },
    { "x@EXAMPLE", 0, "x@example" },
    /* quoted local parts: unquoted when a dot-string would do */
    { "\"user\"@example.com", 0, "user@example.com" },
    { "\"first.last\"@example.com", 0, "first.last@example.com" },
    { "\"u\\ser\"@example.com", 0, "user@example.com" },   /* needless quoted-pair */
    { "\"with space\"@example.com", 0, "\"with space\"@example.com" },
    { "\"a..b\"@example.com", 0, "\"a..b\"@example.com" },
    { "\".a\"@example.com", 0, "\".a\"@example.com" },
    { "\"a.\"@example.com", 0, "\"a.\"@example.com" },
    { "\"a@b\"@example.com", 0, "\"a@b\"@example.com" },
    { "\"a\\\"b\"@example.com", 0, "\"a\\\"b\"@example.com" },
    { "\"a\\\\b\"@example.com", 0, "\"a\\\\b\"@example.com" },
    { "\"a\\ b\"@example.com", 0, "\"a b\"@example.com" },  /* escaping only where needed */
    { "\"(comment)\"@example.com", 0, "\"(comment)\"@example.com" },
    /* address literals */
    { "x@[192.0.2.1]", 0, "x@[192.0.2.1]" },
    { "x@[IPv6:2001:DB8::1]", 0, "x@[IPv6:2001:db8::1]" },
    { "x@[ipv6:2001:db8:0:0:0:0:0:1]", 0, "x@[IPv6:2001:db8::1]" },
    { "x@[IPv6:::ffff:192.0.2.1]", 0, "x@[IPv6:::ffff:192.0.2.1]" },
    { "x@[IPv6:::1]", 0, "x@[IPv6:::1]" },
    { "x@[IPv6:::ffff:0]", 0, "x@[IPv6:::255.255.0.0]" },  /* found by fuzz-address: grows */
    /* RFC 6531 */
    { "j\xc3\xb6rg@example.com", U, "j\xc3\xb6rg@example.com" },
    { "user@\xc3\xb6sterreich.EXAMPLE", U, "user@\xc3\xb6sterreich.example" },
    { "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", U,
      "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a" },
    { "\"\xc3\xa9 x\"@example.com", U, "\"\xc3\xa9 x\"@example.com" },
    { "\xf0\x9f\x98\x80@example.com", U, "\xf0\x9f\x98\x80@example.com" },
    { "\xf4\x8f\xbf\xbf@example.com", U, "\xf4\x8f\xbf\xbf@example.com" },  /* U+10FFFF */
    { "user@example.com", U, "user@example.com" },
    { "xn--bcher-kva@xn--bcher-kva.example", 0, "xn--bcher-kva@xn--bcher-kva.example" },
};

static const struct bad_case bad[] = {
    { "", 0, 0, "empty address" },
    { "user", 0, 0, "domain missing" },
    { "user@", 0, 0, "domain missing" },
    { "@example.com", 0, 0, "local part missing" },
    { "\"\"@example.com", 0, 0, "local part missing" },
    { ".user@example.com", 0, 0, "local part starts with a dot" },
    { "user.@example.com", 0, 0, "local part ends with a dot" },
    { "us..er@example.com", 0, 0, "two dots in local part" },
    { "us er@example.com", 0, 0, "bad character in local part" },
    { "us(er@example.com", 0, 0, "bad character in local part" },
    { "us\"er@example.com", 0, 0, "bad character in local part" },
    { "us\ter@example.com", 0, 0, "control character in local part" },
    { "us\x7f" "er@example.com", 0, 0, "control character in local part" },
    { "a@b@example.com", 0, 0, "bad character in domain" },
    { "\"unterminated@example.com", 0, 0, "unterminated quoted string" },
    { "\"a\"b@example.com", 0, 0, "bad character after quoted string" },
    { "\"a\tb\"@example.com", 0, 0, "control character in local part" },
    { "\"a\\\tb\"@example.com", 0, 0, "bad quoted-pair in local part" },
    { "\"a\\", 0, 0, "unterminated quoted string" },
    { "user@.example.com", 0, 0, "domain starts with a dot" },
    { "user@example.com.", 0, 0, "domain ends with a dot" },
    { "user@example..com", 0, 0, "empty label in domain" },
    { "user@-example.com", 0, 0, "label starts with a hyphen" },
    { "user@example-.com", 0, 0, "label ends with a hyphen" },
    { "user@example.com-", 0, 0, "label ends with a hyphen" },
    { "user@exa_mple.com", 0, 0, "bad character in domain" },
    { "user@exa mple.com", 0, 0, "bad character in domain" },
    { "user@example.com\r", 0, 0, "control character in domain" },
    { "user@[192.0.2.1", 0, 0, "unterminated address literal" },
    { "user@[]", 0, 0, NULL },
    { "user@[192.0.2.256]", 0, 0, "bad address literal" },
    { "user@[192.0.2]", 0, 0, "bad address literal" },
    { "user@[192.0.2.01]", 0, 0, "bad address literal" },
    { "user@[IPv6:2001:db8::g]", 0, 0, "bad address literal" },
    { "user@[IPv6:192.0.2.1]", 0, 0, "bad address literal" },
    { "user@[2001:db8::1]", 0, 0, "unsupported address literal" },
    { "user@[x-tag:stuff]", 0, 0, "unsupported address literal" },
    { "user@[IPv6:]", 0, 0, "bad address literal" },
    { "user@[192.0.2.1]x", 0, 0, "unterminated address literal" },
    { "us\0er@example.com", 0, 16, "NUL in address" },
    { "user@exa\0mple.com", 0, 17, "NUL in address" },
    /* UTF-8 without SMTPUTF8, and invalid UTF-8 with it */
    { "j\xc3\xb6rg@example.com", 0, 0, "non-ASCII local part without SMTPUTF8" },
    { "user@\xc3\xb6sterreich.example", 0, 0, "non-ASCII domain without SMTPUTF8" },
    { "\"\xc3\xa9\"@example.com", 0, 0, "non-ASCII local part without SMTPUTF8" },
    { "j\xc0\xafrg@example.com", U, 0, "invalid UTF-8 in local part" },     /* overlong '/' */
    { "j\xe0\x80\xafrg@example.com", U, 0, "invalid UTF-8 in local part" }, /* overlong */
    { "j\xf0\x80\x80\xafrg@example.com", U, 0, "invalid UTF-8 in local part" },
    { "j\xed\xa0\x80rg@example.com", U, 0, "invalid UTF-8 in local part" }, /* surrogate */
    { "j\xf4\x90\x80\x80@example.com", U, 0, "invalid UTF-8 in local part" }, /* > U+10FFFF */
    { "j\xf5\x80\x80\x80@example.com", U, 0, "invalid UTF-8 in local part" },
    { "j\xc3@example.com", U, 0, "invalid UTF-8 in local part" },   /* truncated */
    { "j\xb6@example.com", U, 0, "invalid UTF-8 in local part" },   /* lone continuation */
    { "j\xc2\x85@example.com", U, 0, "invalid UTF-8 in local part" }, /* C1 control NEL */
    { "j\xff@example.com", U, 0, "invalid UTF-8 in local part" },
    { "\"\xc3\"@example.com", U, 0, "invalid UTF-8 in local part" },
    { "user@\xc3.example", U, 0, "invalid UTF-8 in domain" },
    { "user@ex\xed\xbf\xbf.example", U, 0, "invalid UTF-8 in domain" },
    { "user@example.\xc3", U, 0, "invalid UTF-8 in domain" },
};

/* A string of N copies of C. */
static char *rep(char c, size_t n) {
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = 0;
    return s;
}

static char *cat3(const char *a, const char *b, const char *c) {
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = malloc(la + lb + lc + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

static int norm(const char *s, unsigned flags, char **out, const char **why) {
    *out = NULL;
    *why = NULL;
    return sm_addr_normalize(s, strlen(s), flags, out, why);
}

static void test_lengths(void) {
    char *out;
    const char *why;
    /* local part: 64 octets ok, 65 not */
    char *l64 = rep('a', 64), *l65 = rep('a', 65);
    char *a = cat3(l64, "@example.com", ""), *b = cat3(l65, "@example.com", "");
    is_int(norm(a, 0, &out, &why), 0, "64-octet local part accepted");
    free(out);
    is_int(norm(b, 0, &out, &why), -EINVAL, "65-octet local part refused");
    is_str(why, "local part too long", "reason for long local part");
    free(a), free(b), free(l64), free(l65);

    /* quoted: the 64 counts the quotes */
    char *q62 = rep('b', 62), *q63 = rep('b', 63);
    a = cat3("\"", q62, "\"@x.example");
    b = cat3("\"", q63, "\"@x.example");
    is_int(norm(a, 0, &out, &why), 0, "quoted local part of 64 octets accepted");
    free(out);
    is_int(norm(b, 0, &out, &why), -EINVAL, "quoted local part of 65 octets refused");
    is_str(why, "local part too long", "reason for long quoted local part");
    free(a), free(b), free(q62), free(q63);

    /* labels: 63 ok, 64 not */
    char *lab63 = rep('c', 63), *lab64 = rep('c', 64);
    a = cat3("u@", lab63, ".example");
    b = cat3("u@", lab64, ".example");
    is_int(norm(a, 0, &out, &why), 0, "63-octet label accepted");
    free(out);
    is_int(norm(b, 0, &out, &why), -EINVAL, "64-octet label refused");
    is_str(why, "domain label too long", "reason for long label");
    free(a), free(b);

    /* a UTF-8 label counts octets, not characters: 32 x "ö" = 64 octets */
    char ulabel[65];
    for (int i = 0; i < 32; i++) memcpy(ulabel + 2 * i, "\xc3\xb6", 2);
    ulabel[64] = 0;
    a = cat3("u@", ulabel, ".example");
    is_int(norm(a, U, &out, &why), -EINVAL, "UTF-8 label of 64 octets refused");
    is_str(why, "domain label too long", "UTF-8 label counts octets");
    ulabel[62] = 0;
    free(a);
    a = cat3("u@", ulabel, ".example");
    is_int(norm(a, U, &out, &why), 0, "UTF-8 label of 62 octets accepted");
    free(out);
    free(a);

    /* whole mailbox: 254 octets ok, 255 not (a path is <= 256 with brackets) */
    char dom[256];
    size_t d = 0;
    /* "u@" + 3 x (63 + ".") + tail: 2 + 192 + tail */
    for (int i = 0; i < 3; i++) {
        memcpy(dom + d, lab63, 63);
        d += 63;
        dom[d++] = '.';
    }
    size_t tail = 254 - 2 - d;
    memset(dom + d, 'e', tail);
    dom[d + tail] = 0;
    a = cat3("u@", dom, "");
    is_int((long long)strlen(a), 254, "test address is 254 octets");
    is_int(norm(a, 0, &out, &why), 0, "254-octet mailbox accepted");
    free(out);
    b = cat3("u@", dom, "e");
    is_int(norm(b, 0, &out, &why), -EINVAL, "255-octet mailbox refused");
    is_str(why, "address too long", "reason for long mailbox");
    free(a), free(b);
    free(lab63), free(lab64);

    char *huge = rep('x', 100000);
    is_int(norm(huge, 0, &out, &why), -EINVAL, "100000-byte input refused");
    free(huge);
}

static void test_split(void) {
    char *l = NULL, *d = NULL;
    is_int(sm_addr_split("user@example.com", &l, &d), 0, "split plain");
    is_str(l, "user", "split local");
    is_str(d, "example.com", "split domain");
    free(l), free(d);
    l = d = NULL;
    is_int(sm_addr_split("\"a@b\"@example.com", &l, &d), 0, "split quoted with @");
    is_str(l, "\"a@b\"", "split at the last @");
    is_str(d, "example.com", "split domain after quoted");
    free(l), free(d);
    l = d = NULL;
    is_int(sm_addr_split("nodomain", &l, &d), -EINVAL, "split without @");
    is_int(sm_addr_split("@example.com", &l, &d), -EINVAL, "split with empty local");
    is_int(sm_addr_split("user@", &l, &d), -EINVAL, "split with empty domain");
    ok(l == NULL && d == NULL, "split leaves outputs alone on failure");
}

/* Every prefix and every single-byte change of a few good addresses is
 * either refused or normalizes to something that normalizes to itself. */
static void test_mutations(void) {
    const char *seeds[] = { "\"a b\\\"c\"@Ex-ample.COM", "x@[IPv6:2001:DB8::1]",
                            "j\xc3\xb6rg.x@\xc3\xb6.example" };
    static const char bytes[] = { 0, '"', '\\', '@', '.', '[', ']', ' ', '-', 'A', (char)0xc3,
                                  (char)0x80, (char)0xff, '\t', ':' };
    size_t tried = 0, unstable = 0;
    for (size_t si = 0; si < sizeof seeds / sizeof *seeds; si++) {
        size_t n = strlen(seeds[si]);
        char buf[64];
        for (size_t cut = 0; cut <= n; cut++) {
            for (size_t pos = 0; pos < n; pos++) {
                for (size_t bi = 0; bi < sizeof bytes; bi++) {
                    memcpy(buf, seeds[si], n);
                    buf[pos] = bytes[bi];
                    size_t len = cut;
                    char *out = NULL, *again = NULL;
                    const char *why = NULL;
                    tried++;
                    if (sm_addr_normalize(buf, len, U, &out, &why) < 0) {
                        if (!why) unstable++;
                        continue;
                    }
                    if (sm_addr_normalize(out, strlen(out), U, &again, &why) < 0 ||
                        strcmp(out, again) != 0)
                        unstable++;
                    free(out), free(again);
                }
            }
        }
    }
    ok(tried > 1000 && unstable == 0, "%zu mutated inputs: refused with a reason or stable (%zu not)",
       tried, unstable);
}

int main(void) {
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        char *out = NULL, *again = NULL;
        const char *why = NULL;
        int r = norm(good[i].in, good[i].flags, &out, &why);
        if (!ok(r == 0, "accepts %s", good[i].in)) printf("#   reason: %s\n", why ? why : "(none)");
        is_str(out, good[i].out, "normal form");
        if (out) {
            is_int(norm(out, good[i].flags, &again, &why), 0, "normal form is accepted again");
            is_str(again, out, "normalizing is idempotent");
        }
        free(out), free(again);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *out = NULL;
        const char *why = NULL;
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].in);
        int r = sm_addr_normalize(bad[i].in, len, bad[i].flags, &out, &why);
        if (!ok(r == -EINVAL, "refuses case %zu (%s)", i, bad[i].why ? bad[i].why : "any"))
            printf("#   got %d\n", r);
        ok(out == NULL, "no output on failure");
        if (bad[i].why)
            is_str(why, bad[i].why, "reason");
        else
            ok(why != NULL, "a reason is given");
        free(out);
    }
    {
        char *out = NULL;
        const char *why = NULL;
        is_int(sm_addr_normalize("user@example.com", 16, 0, &out, NULL), 0, "WHY may be NULL");
        free(out);
        out = NULL;
        is_int(sm_addr_normalize("user", 4, 0, &out, NULL), -EINVAL, "WHY may be NULL on failure");
        /* LEN is honoured: the bytes after it are not read */
        is_int(sm_addr_normalize("user@example.comXYZ", 16, 0, &out, &why), 0, "LEN bounds input");
        is_str(out, "user@example.com", "only LEN bytes used");
        free(out);
    }
    test_lengths();
    test_split();
    test_mutations();
    return tap_done();
}
