/* test-auth-protocol.c — the Dovecot auth protocol lines and SASL payloads. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth-protocol.h"
#include "macro.h"
#include "tap.h"

/* Splits a copy of S (which may contain NUL at known places: LEN given). */
static int split(const char *s, size_t len, char **buf, struct sm_auth_fields *f) {
    *buf = malloc(len + 1);
    memcpy(*buf, s, len);
    (*buf)[len] = 0;
    return sm_auth_split(*buf, len, f);
}

static int split_s(const char *s, char **buf, struct sm_auth_fields *f) { return split(s, strlen(s), buf, f); }

static void test_split(void) {
    char *b;
    struct sm_auth_fields f;
    is_int(split_s("VERSION\t1\t2", &b, &f), 0, "split VERSION");
    is_int(f.n, 3, "3 fields");
    is_str(f.v[0], "VERSION", "field 0");
    is_str(f.v[2], "2", "field 2");
    free(b);
    is_int(split_s("CONT\t1\t", &b, &f), 0, "trailing empty field");
    is_int(f.n, 3, "empty last field counted");
    is_str(f.v[2], "", "empty value");
    free(b);
    is_int(split_s("DONE", &b, &f), 0, "single field");
    is_int(f.n, 1, "one field");
    free(b);
    is_int(split_s("", &b, &f), -EINVAL, "empty line refused");
    free(b);
    is_int(split("AUTH\t1\tPL\0AIN", 13, &b, &f), -EINVAL, "NUL inside refused");
    free(b);
    char many[200] = "X";
    for (int i = 0; i < 40; i++) strcat(many, "\ta");
    is_int(split_s(many, &b, &f), -EINVAL, "too many fields refused");
    free(b);
    char exact[200] = "X";
    for (unsigned i = 1; i < SM_AUTH_MAX_FIELDS; i++) strcat(exact, "\ta");
    is_int(split_s(exact, &b, &f), 0, "exactly the maximum of fields");
    is_int(f.n, SM_AUTH_MAX_FIELDS, "max fields counted");
    free(b);
}

static void test_id(void) {
    unsigned id = 0;
    is_int(sm_auth_parse_id("1", &id), 0, "id 1");
    is_int(id, 1, "id value");
    is_int(sm_auth_parse_id("4294967295", &id), 0, "id UINT_MAX");
    is_int(id, 4294967295u, "max value");
    is_int(sm_auth_parse_id("4294967296", &id), -EINVAL, "id overflow");
    is_int(sm_auth_parse_id("99999999999", &id), -EINVAL, "id 11 digits");
    is_int(sm_auth_parse_id("0", &id), -EINVAL, "id 0");
    is_int(sm_auth_parse_id("", &id), -EINVAL, "id empty");
    is_int(sm_auth_parse_id("-1", &id), -EINVAL, "id negative");
    is_int(sm_auth_parse_id("+1", &id), -EINVAL, "id plus");
    is_int(sm_auth_parse_id("1a", &id), -EINVAL, "id trailing junk");
    is_int(sm_auth_parse_id(" 1", &id), -EINVAL, "id leading space");
}

static void test_version(void) {
    char *b;
    struct sm_auth_fields f;
    unsigned ma, mi;
    split_s("VERSION\t1\t2", &b, &f);
    is_int(sm_auth_parse_version(&f, &ma, &mi), 0, "version ok");
    is_int(ma, 1, "major");
    is_int(mi, 2, "minor");
    free(b);
    split_s("VERSION\t1", &b, &f);
    is_int(sm_auth_parse_version(&f, &ma, &mi), -EINVAL, "version missing minor");
    free(b);
    split_s("VERSION\tx\t1", &b, &f);
    is_int(sm_auth_parse_version(&f, &ma, &mi), -EINVAL, "version not numeric");
    free(b);
    split_s("VERSION\t1\t2\t3", &b, &f);
    is_int(sm_auth_parse_version(&f, &ma, &mi), -EINVAL, "version extra field");
    free(b);
    split_s("VERSIONS\t1\t2", &b, &f);
    is_int(sm_auth_parse_version(&f, &ma, &mi), -EINVAL, "not VERSION");
    free(b);
}

static void test_auth(void) {
    char *b;
    struct sm_auth_fields f;
    struct sm_auth_request r;
    split_s("AUTH\t7\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.9\tsecured\tresp=AGEAYg==", &b, &f);
    is_int(sm_auth_parse_auth(&f, &r), 0, "Postfix-style AUTH");
    is_int(r.id, 7, "id");
    is_str(r.mech, "PLAIN", "mech");
    is_str(r.service, "smtp", "service");
    is_str(r.lip, "127.0.0.1", "lip");
    is_str(r.rip, "192.0.2.9", "rip");
    is_str(r.resp, "AGEAYg==", "resp");
    ok(r.secured, "secured");
    free(b);

    split_s("AUTH\t1\tLOGIN", &b, &f);
    is_int(sm_auth_parse_auth(&f, &r), 0, "minimal AUTH");
    ok(!r.service && !r.rip && !r.lip && !r.resp && !r.secured, "all optional fields absent");
    free(b);

    split_s("AUTH\t1\tPLAIN\tsecured=tls\tresp=", &b, &f);
    is_int(sm_auth_parse_auth(&f, &r), 0, "secured=tls and empty resp");
    ok(r.secured, "secured=tls counts");
    is_str(r.resp, "", "empty resp present");
    free(b);

    split_s("AUTH\t1\tPLAIN\tservice=a\tservice=b", &b, &f);
    is_int(sm_auth_parse_auth(&f, &r), -EINVAL, "repeated service refused");
    free(b);
    split_s("AUTH\t1\tPLAIN\tresp=a\tresp=b", &b, &f);
    is_int(sm_auth_parse_auth(&f, &r), -EINVAL, "repeated resp refused");
    free(b);
    split_s("AUTH\t1\tPLAIN\tsecured\tsecured", &b, &f);
    is_int(sm_auth_parse_auth(&f, &r), -EINVAL, "repeated secured refused");
    free(b);
    split_s("AUTH\t0\tPLAIN", &b, &f);
    is_int(sm_auth_parse_auth(&f, &r), -EINVAL, "id 0 refused");
    free(b);
    split_s("AUTH\t1", &b, &f);
    is_int(sm_auth_parse_auth(&f, &r), -EINVAL, "no mech refused");
    free(b);
    split_s("AUTH\t1\t", &b, &f);
    is_int(sm_auth_parse_auth(&f, &r), -EINVAL, "empty mech refused");
    free(b);
    split_s("CONT\t1\tPLAIN", &b, &f);
    is_int(sm_auth_parse_auth(&f, &r), -EINVAL, "CONT is no AUTH");
    free(b);
    split_s("AUTH\t1\tPLAIN\tfuture-param=x\tno-penalty", &b, &f);
    is_int(sm_auth_parse_auth(&f, &r), 0, "unknown params ignored");
    free(b);
}

static void test_cont(void) {
    char *b;
    struct sm_auth_fields f;
    unsigned id;
    const char *d;
    split_s("CONT\t3\tYWJj", &b, &f);
    is_int(sm_auth_parse_cont(&f, &id, &d), 0, "CONT ok");
    is_int(id, 3, "CONT id");
    is_str(d, "YWJj", "CONT data");
    free(b);
    split_s("CONT\t3", &b, &f);
    is_int(sm_auth_parse_cont(&f, &id, &d), -EINVAL, "CONT without data");
    free(b);
    split_s("CONT\t3\ta\tb", &b, &f);
    is_int(sm_auth_parse_cont(&f, &id, &d), -EINVAL, "CONT with extra field");
    free(b);
    split_s("CONT\tx\ta", &b, &f);
    is_int(sm_auth_parse_cont(&f, &id, &d), -EINVAL, "CONT bad id");
    free(b);
}

static void test_reply(void) {
    char *b;
    struct sm_auth_fields f;
    struct sm_auth_reply r;
    split_s("OK\t5\tuser=alice@example.com", &b, &f);
    is_int(sm_auth_parse_reply(&f, &r), 0, "OK parsed");
    is_int(r.kind, SM_AUTH_REPLY_OK, "kind OK");
    is_int(r.id, 5, "id");
    is_str(r.user, "alice@example.com", "user");
    free(b);
    split_s("FAIL\t5\tuser=x\ttemp\treason=db down", &b, &f);
    is_int(sm_auth_parse_reply(&f, &r), 0, "FAIL parsed");
    is_int(r.kind, SM_AUTH_REPLY_FAIL, "kind FAIL");
    ok(r.temp, "temp flag");
    is_str(r.reason, "db down", "reason");
    free(b);
    split_s("FAIL\t5\tcode=temp_fail", &b, &f);
    sm_auth_parse_reply(&f, &r);
    ok(r.temp, "code=temp_fail is temp");
    free(b);
    split_s("FAIL\t5", &b, &f);
    is_int(sm_auth_parse_reply(&f, &r), 0, "bare FAIL");
    ok(!r.temp && !r.reason && !r.user, "no fields");
    free(b);
    split_s("CONT\t5\t", &b, &f);
    is_int(sm_auth_parse_reply(&f, &r), 0, "CONT with empty challenge");
    is_str(r.data, "", "empty challenge");
    free(b);
    split_s("CONT\t5", &b, &f);
    is_int(sm_auth_parse_reply(&f, &r), -EINVAL, "CONT without data field");
    free(b);
    split_s("SPID\t5", &b, &f);
    is_int(sm_auth_parse_reply(&f, &r), -ENOENT, "other command: ENOENT");
    free(b);
    split_s("OK", &b, &f);
    is_int(sm_auth_parse_reply(&f, &r), -EINVAL, "OK without id");
    free(b);
}

static void test_b64(void) {
    char *out;
    size_t n;
    is_int(sm_auth_b64_decode("AGFsaWNlAHNlY3JldA==", &out, &n), 0, "decode PLAIN payload");
    is_int(n, 13, "decoded length");
    ok(memcmp(out, "\0alice\0secret", 13) == 0, "decoded bytes");
    sm_auth_free_secret(out, n);
    is_int(sm_auth_b64_decode("", &out, &n), 0, "empty decodes");
    is_int(n, 0, "empty length");
    free(out);
    is_int(sm_auth_b64_decode("=", &out, &n), 0, "= is the empty payload");
    is_int(n, 0, "= length");
    free(out);
    is_int(sm_auth_b64_decode("YQ==", &out, &n), 0, "two pad");
    is_str(out, "a", "YQ== is a");
    free(out);
    is_int(sm_auth_b64_decode("YWI=", &out, &n), 0, "one pad");
    is_str(out, "ab", "YWI= is ab");
    free(out);
    is_int(sm_auth_b64_decode("YWJj", &out, &n), -0, "no pad");
    free(out);
    is_int(sm_auth_b64_decode("YWJ", &out, &n), -EINVAL, "length not multiple of 4");
    is_int(sm_auth_b64_decode("YW J", &out, &n), -EINVAL, "space refused");
    is_int(sm_auth_b64_decode("YW\nJ", &out, &n), -EINVAL, "newline refused");
    is_int(sm_auth_b64_decode("Y=Jj", &out, &n), -EINVAL, "pad in the middle");
    is_int(sm_auth_b64_decode("Y===", &out, &n), -EINVAL, "three pads");
    is_int(sm_auth_b64_decode("YWJj!!!!", &out, &n), -EINVAL, "bad alphabet");
    is_int(sm_auth_b64_decode("====", &out, &n), -EINVAL, "only padding");
    is_int(sm_auth_b64_decode("-_-_", &out, &n), -EINVAL, "url alphabet refused");
    /* the limit */
    size_t big = (SM_AUTH_MAX_SASL / 3 + 2) * 4;
    char *s = malloc(big + 1);
    memset(s, 'A', big);
    s[big] = 0;
    is_int(sm_auth_b64_decode(s, &out, &n), -E2BIG, "over the SASL limit");
    size_t fit = SM_AUTH_MAX_SASL / 3 * 4;
    s[fit] = 0;
    is_int(sm_auth_b64_decode(s, &out, &n), 0, "just under the limit");
    free(out);
    free(s);

    char *e;
    is_int(sm_auth_b64_encode("Username:", 9, &e), 0, "encode");
    is_str(e, "VXNlcm5hbWU6", "Username: challenge");
    free(e);
    is_int(sm_auth_b64_encode("", 0, &e), 0, "encode empty");
    is_str(e, "", "empty");
    free(e);
    /* round trip of every length with all byte values */
    unsigned char raw[300];
    for (size_t i = 0; i < sizeof raw; i++) raw[i] = (unsigned char)(i * 7);
    int good = 1;
    for (size_t len = 0; len < sizeof raw; len++) {
        if (sm_auth_b64_encode(raw, len, &e) < 0 || sm_auth_b64_decode(e, &out, &n) < 0) {
            good = 0;
            break;
        }
        if (n != len || memcmp(out, raw, len) != 0) good = 0;
        free(e);
        free(out);
    }
    ok(good, "encode/decode round trip, lengths 0..299");
}

static void test_plain(void) {
    const char *z, *c, *p;
    char a[] = "\0alice@example.com\0pw";
    is_int(sm_sasl_plain_parse(a, sizeof a - 1, &z, &c, &p), 0, "PLAIN empty authzid");
    is_str(z, "", "authzid empty");
    is_str(c, "alice@example.com", "authcid");
    is_str(p, "pw", "password");
    char b[] = "alice@example.com\0alice@example.com\0pw";
    is_int(sm_sasl_plain_parse(b, sizeof b - 1, &z, &c, &p), 0, "authzid equal to authcid");
    char d[] = "bob@example.com\0alice@example.com\0pw";
    z = c = p = NULL;
    is_int(sm_sasl_plain_parse(d, sizeof d - 1, &z, &c, &p), -EPERM, "authzid differs: EPERM");
    is_str(z, "bob@example.com", "EPERM still sets authzid (for the log)");
    is_str(c, "alice@example.com", "EPERM still sets authcid");
    char e[] = "\0alice\0pw\0extra";
    is_int(sm_sasl_plain_parse(e, sizeof e - 1, &z, &c, &p), -EINVAL, "third NUL refused");
    char f[] = "\0alice";
    is_int(sm_sasl_plain_parse(f, sizeof f - 1, &z, &c, &p), -EINVAL, "one NUL refused");
    char g[] = "\0\0pw";
    is_int(sm_sasl_plain_parse(g, sizeof g - 1, &z, &c, &p), -EINVAL, "empty authcid refused");
    char h[] = "\0alice\0";
    is_int(sm_sasl_plain_parse(h, sizeof h - 1, &z, &c, &p), -EINVAL, "empty password refused");
    char i[] = "alice";
    is_int(sm_sasl_plain_parse(i, sizeof i - 1, &z, &c, &p), -EINVAL, "no NUL refused");
    char empty[1] = "";
    is_int(sm_sasl_plain_parse(empty, 0, &z, &c, &p), -EINVAL, "empty payload refused");

    char *enc, *dec;
    size_t n;
    is_int(sm_sasl_plain_encode("alice@example.com", "alice-secret", &enc), 0, "encode PLAIN");
    is_int(sm_auth_b64_decode(enc, &dec, &n), 0, "decodes");
    is_int(sm_sasl_plain_parse(dec, n, &z, &c, &p), 0, "parses back");
    is_str(c, "alice@example.com", "user back");
    is_str(p, "alice-secret", "password back");
    free(enc);
    sm_auth_free_secret(dec, n);
    is_int(sm_sasl_plain_encode("", "x", &enc), -EINVAL, "empty user refused");
}

static void test_login(void) {
    is_int(sm_sasl_login_check("alice", 5), 0, "LOGIN user ok");
    is_int(sm_sasl_login_check("al\0ce", 5), -EINVAL, "LOGIN NUL refused");
    is_int(sm_sasl_login_check("", 0), -EINVAL, "LOGIN empty refused");
}

static void test_values_and_policy(void) {
    ok(sm_auth_value_ok("alice@example.com"), "plain value ok");
    ok(sm_auth_value_ok("Ünïcode@exämple.com"), "UTF-8 value ok");
    ok(!sm_auth_value_ok("a\tb"), "TAB refused");
    ok(!sm_auth_value_ok("a\nb"), "LF refused");
    ok(!sm_auth_value_ok("a\rb"), "CR refused");
    ok(!sm_auth_value_ok("a\x7f"), "DEL refused");
    ok(!sm_auth_value_ok(NULL), "NULL refused");

    ok(sm_auth_ip_is_loopback("127.0.0.1"), "127.0.0.1");
    ok(sm_auth_ip_is_loopback("127.9.8.7"), "127/8");
    ok(sm_auth_ip_is_loopback("::1"), "::1");
    ok(sm_auth_ip_is_loopback("::ffff:127.0.0.1"), "v4-mapped loopback");
    ok(!sm_auth_ip_is_loopback("128.0.0.1"), "128.0.0.1 is not");
    ok(!sm_auth_ip_is_loopback("::2"), "::2 is not");
    ok(!sm_auth_ip_is_loopback("::ffff:192.0.2.1"), "v4-mapped remote");
    ok(!sm_auth_ip_is_loopback("localhost"), "names are not addresses");
    ok(!sm_auth_ip_is_loopback(""), "empty");

    struct sm_auth_request r = {.rip = "192.0.2.1", .lip = "192.0.2.2"};
    ok(!sm_auth_plaintext_allowed(&r, false), "remote, not secured: refused");
    ok(sm_auth_plaintext_allowed(&r, true), "allow_plaintext allows");
    r.secured = true;
    ok(sm_auth_plaintext_allowed(&r, false), "secured allows");
    r.secured = false;
    r.rip = "127.0.0.1";
    ok(sm_auth_plaintext_allowed(&r, false), "loopback allows");
    r.rip = "192.0.2.2";
    ok(sm_auth_plaintext_allowed(&r, false), "rip == lip allows");
    r.rip = NULL;
    ok(sm_auth_plaintext_allowed(&r, false), "no rip (local client) allows");
    r.rip = "";
    ok(sm_auth_plaintext_allowed(&r, false), "empty rip as absent");
    r.rip = "2001:db8::1";
    r.lip = NULL;
    ok(!sm_auth_plaintext_allowed(&r, false), "IPv6 remote refused");
}

/* A whole client transcript fed in pieces: every split point of the input
 * gives the same lines (the reader is io.c's; here we check that splitting
 * works on each line however it was assembled). */
static void test_pieces(void) {
    const char *script = "VERSION\t1\t0\nCPID\t42\nAUTH\t1\tPLAIN\tservice=smtp\tresp=AGEAYg==\nCONT\t1\tYWJj\n";
    size_t len = strlen(script);
    int good = 1;
    for (size_t cut = 1; cut < len; cut++) {
        /* assemble lines from two pieces split at CUT */
        char buf[256];
        size_t have = 0, lines = 0;
        for (int piece = 0; piece < 2; piece++) {
            const char *p = piece ? script + cut : script;
            size_t n = piece ? len - cut : cut;
            for (size_t i = 0; i < n; i++) {
                if (p[i] != '\n') {
                    buf[have++] = p[i];
                    continue;
                }
                buf[have] = 0;
                struct sm_auth_fields f;
                if (sm_auth_split(buf, have, &f) < 0) good = 0;
                else if (lines == 2) {
                    struct sm_auth_request r;
                    if (sm_auth_parse_auth(&f, &r) < 0 || !streq(r.resp, "AGEAYg==")) good = 0;
                } else if (lines == 3) {
                    unsigned id;
                    const char *d;
                    if (sm_auth_parse_cont(&f, &id, &d) < 0 || id != 1) good = 0;
                }
                lines++;
                have = 0;
            }
        }
        if (lines != 4) good = 0;
    }
    ok(good, "transcript split at every byte gives the same lines");
}

int main(void) {
    test_split();
    test_id();
    test_version();
    test_auth();
    test_cont();
    test_reply();
    test_b64();
    test_plain();
    test_login();
    test_values_and_policy();
    test_pieces();
    return tap_done();
}
