/* test-smtp-command.c — SMTP/LMTP command line parsing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "smtp-command.h"
#include "tap.h"

#define U SM_ADDR_UTF8

struct tcase {
    const char *line;
    unsigned flags;
    enum sm_smtp_verb verb;
    const char *reply;  /* NULL: accepted */
    const char *path;   /* expected path when accepted (NULL: none) */
    const char *arg;    /* expected arg when accepted (NULL: none) */
};

static const struct tcase cases[] = {
    /* verbs, case-insensitive */
    { "HELO client.example", 0, SM_SMTP_HELO, NULL, NULL, "client.example" },
    { "ehlo client.example", 0, SM_SMTP_EHLO, NULL, NULL, "client.example" },
    { "LhLo [192.0.2.1]", 0, SM_SMTP_LHLO, NULL, NULL, "[192.0.2.1]" },
    { "EHLO   spaced.example  ", 0, SM_SMTP_EHLO, NULL, NULL, "spaced.example" },
    { "HELO", 0, SM_SMTP_HELO, "501 5.5.4 Syntax: HELO hostname", NULL, NULL },
    { "EHLO", 0, SM_SMTP_EHLO, "501 5.5.4 Syntax: EHLO hostname", NULL, NULL },
    { "LHLO   ", 0, SM_SMTP_LHLO, "501 5.5.4 Syntax: LHLO hostname", NULL, NULL },
    { "DATA", 0, SM_SMTP_DATA, NULL, NULL, NULL },
    { "data  ", 0, SM_SMTP_DATA, NULL, NULL, NULL },
    { "DATA now", 0, SM_SMTP_DATA, "501 5.5.4 Syntax: DATA", NULL, NULL },
    { "RSET", 0, SM_SMTP_RSET, NULL, NULL, NULL },
    { "RSET x", 0, SM_SMTP_RSET, "501 5.5.4 Syntax: RSET", NULL, NULL },
    { "QUIT", 0, SM_SMTP_QUIT, NULL, NULL, NULL },
    { "QUIT now", 0, SM_SMTP_QUIT, "501 5.5.4 Syntax: QUIT", NULL, NULL },
    { "STARTTLS", 0, SM_SMTP_STARTTLS, NULL, NULL, NULL },
    { "STARTTLS x", 0, SM_SMTP_STARTTLS, "501 5.5.4 Syntax: STARTTLS", NULL, NULL },
    { "NOOP", 0, SM_SMTP_NOOP, NULL, NULL, NULL },
    { "NOOP anything at all", 0, SM_SMTP_NOOP, NULL, NULL, "anything at all" },
    { "HELP", 0, SM_SMTP_HELP, NULL, NULL, NULL },
    { "HELP MAIL", 0, SM_SMTP_HELP, NULL, NULL, "MAIL" },
    { "VRFY user", 0, SM_SMTP_VRFY, NULL, NULL, "user" },
    { "VRFY", 0, SM_SMTP_VRFY, "501 5.5.4 Syntax: VRFY address", NULL, NULL },
    { "EXPN list", 0, SM_SMTP_EXPN, NULL, NULL, "list" },
    { "EXPN", 0, SM_SMTP_EXPN, "501 5.5.4 Syntax: EXPN list", NULL, NULL },
    { "AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", 0, SM_SMTP_AUTH, NULL, NULL, "PLAIN dGVzdAB0ZXN0AHRlc3Q=" },
    { "AUTH", 0, SM_SMTP_AUTH, "501 5.5.4 Syntax: AUTH mechanism [initial-response]", NULL, NULL },
    { "BDAT 1000", 0, SM_SMTP_BDAT, NULL, NULL, "1000" },
    { "BDAT 0 LAST", 0, SM_SMTP_BDAT, NULL, NULL, "0 LAST" },
    { "bdat 12 last", 0, SM_SMTP_BDAT, NULL, NULL, "12 last" },
    { "BDAT", 0, SM_SMTP_BDAT, "501 5.5.4 Syntax: BDAT size [LAST]", NULL, NULL },
    { "BDAT x", 0, SM_SMTP_BDAT, "501 5.5.4 Syntax: BDAT size [LAST]", NULL, NULL },
    { "BDAT 12 FIRST", 0, SM_SMTP_BDAT, "501 5.5.4 Syntax: BDAT size [LAST]", NULL, NULL },
    { "BDAT 99999999999999999999", 0, SM_SMTP_BDAT, "501 5.5.4 Syntax: BDAT size [LAST]", NULL, NULL },
    { "FOO", 0, SM_SMTP_UNKNOWN, "500 5.5.2 Unknown command", NULL, NULL },
    { "", 0, SM_SMTP_UNKNOWN, "500 5.5.2 Unknown command", NULL, NULL },
    { "   ", 0, SM_SMTP_UNKNOWN, "500 5.5.2 Unknown command", NULL, NULL },
    { " HELO x", 0, SM_SMTP_UNKNOWN, "500 5.5.2 Unknown command", NULL, NULL },
    { "DATAX", 0, SM_SMTP_UNKNOWN, "500 5.5.2 Unknown command", NULL, NULL },
    { "MAILFROM:<a@b.example>", 0, SM_SMTP_UNKNOWN, "500 5.5.2 Unknown command", NULL, NULL },
    { "HELO a\rb", 0, SM_SMTP_UNKNOWN, "500 5.5.2 Control character in command", NULL, NULL },
    { "EHLO\tx", 0, SM_SMTP_UNKNOWN, "500 5.5.2 Control character in command", NULL, NULL },
    { "QUIT\t", 0, SM_SMTP_QUIT, NULL, NULL, NULL },  /* trailing white space */
    { "NOOP \x7f", 0, SM_SMTP_UNKNOWN, "500 5.5.2 Control character in command", NULL, NULL },

    /* MAIL */
    { "MAIL FROM:<user@Example.COM>", 0, SM_SMTP_MAIL, NULL, "user@example.com", NULL },
    { "mail from:<user@example.com>", 0, SM_SMTP_MAIL, NULL, "user@example.com", NULL },
    { "MAIL From:<user@example.com>", 0, SM_SMTP_MAIL, NULL, "user@example.com", NULL },
    { "MAIL FROM: <user@example.com>", 0, SM_SMTP_MAIL, NULL, "user@example.com", NULL },
    { "MAIL FROM:<user@example.com>   ", 0, SM_SMTP_MAIL, NULL, "user@example.com", NULL },
    { "MAIL FROM:<>", 0, SM_SMTP_MAIL, NULL, "", NULL },
    { "MAIL FROM:<\"a b\"@example.com>", 0, SM_SMTP_MAIL, NULL, "\"a b\"@example.com", NULL },
    { "MAIL FROM:<\"a>b\"@example.com>", 0, SM_SMTP_MAIL, NULL, "\"a>b\"@example.com", NULL },
    { "MAIL FROM:<\"a\\\">b\"@example.com>", 0, SM_SMTP_MAIL, NULL, "\"a\\\">b\"@example.com", NULL },
    { "MAIL FROM:<\"plain\"@example.com>", 0, SM_SMTP_MAIL, NULL, "plain@example.com", NULL },
    { "MAIL FROM:<@a.example,@b.example:user@d.example>", 0, SM_SMTP_MAIL, NULL, "user@d.example", NULL },
    { "MAIL FROM:<@a.example:user@d.example>", 0, SM_SMTP_MAIL, NULL, "user@d.example", NULL },
    { "MAIL FROM:<user%relay@example.com>", 0, SM_SMTP_MAIL, NULL, "user%relay@example.com", NULL },
    { "MAIL FROM:<host!user@example.com>", 0, SM_SMTP_MAIL, NULL, "host!user@example.com", NULL },
    { "MAIL FROM:<u@[192.0.2.1]>", 0, SM_SMTP_MAIL, NULL, "u@[192.0.2.1]", NULL },
    { "MAIL FROM:<u@[IPv6:2001:DB8::1]>", 0, SM_SMTP_MAIL, NULL, "u@[IPv6:2001:db8::1]", NULL },
    { "MAIL FROM:user@example.com", 0, SM_SMTP_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL, NULL },
    { "MAIL FROM:<user@example.com", 0, SM_SMTP_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL, NULL },
    { "MAIL FROM:  <user@example.com>", 0, SM_SMTP_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL, NULL },
    { "MAIL  FROM:<user@example.com>", 0, SM_SMTP_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL, NULL },
    { "MAIL FROM <user@example.com>", 0, SM_SMTP_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL, NULL },
    { "MAIL TO:<user@example.com>", 0, SM_SMTP_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL, NULL },
    { "MAIL", 0, SM_SMTP_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL, NULL },
    { "MAIL FROM:", 0, SM_SMTP_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL, NULL },
    { "MAIL FROM:<user@example.com>x", 0, SM_SMTP_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL, NULL },
    { "MAIL FROM:<@a.example>", 0, SM_SMTP_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL, NULL },
    { "MAIL FROM:<@a.example:>", 0, SM_SMTP_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL, NULL },
    { "MAIL FROM:<@:user@example.com>", 0, SM_SMTP_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL, NULL },
    { "MAIL FROM:<@a.example,b.example:user@example.com>", 0, SM_SMTP_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL, NULL },
    { "MAIL FROM:<user>", 0, SM_SMTP_MAIL, "501 5.1.7 Bad sender address syntax", NULL, NULL },
    { "MAIL FROM:<postmaster>", 0, SM_SMTP_MAIL, "501 5.1.7 Bad sender address syntax", NULL, NULL },
    { "MAIL FROM:<us..er@example.com>", 0, SM_SMTP_MAIL, "501 5.1.7 Bad sender address syntax", NULL, NULL },
    { "MAIL FROM:<user@-example.com>", 0, SM_SMTP_MAIL, "501 5.1.7 Bad sender address syntax", NULL, NULL },
    { "MAIL FROM:<j\xc3\xb6rg@example.com>", 0, SM_SMTP_MAIL, "553 5.6.7 Non-ASCII address requires SMTPUTF8", NULL, NULL },
    { "MAIL FROM:<j\xc3\xb6rg@example.com> SMTPUTF8", U, SM_SMTP_MAIL, NULL, "j\xc3\xb6rg@example.com", NULL },
    { "MAIL FROM:<j\xc3\x28rg@example.com>", U, SM_SMTP_MAIL, "501 5.1.7 Bad sender address syntax", NULL, NULL },

    /* RCPT */
    { "RCPT TO:<user@example.com>", 0, SM_SMTP_RCPT, NULL, "user@example.com", NULL },
    { "rcpt to:<User@EXAMPLE.com>", 0, SM_SMTP_RCPT, NULL, "User@example.com", NULL },
    { "RCPT TO: <user@example.com>", 0, SM_SMTP_RCPT, NULL, "user@example.com", NULL },
    { "RCPT TO:<Postmaster>", 0, SM_SMTP_RCPT, NULL, "postmaster", NULL },
    { "RCPT TO:<POSTMASTER>", 0, SM_SMTP_RCPT, NULL, "postmaster", NULL },
    { "RCPT TO:<postmaster@Example.com>", 0, SM_SMTP_RCPT, NULL, "postmaster@example.com", NULL },
    { "RCPT TO:<@hop.example:user@example.com>", 0, SM_SMTP_RCPT, NULL, "user@example.com", NULL },
    { "RCPT TO:<>", 0, SM_SMTP_RCPT, "501 5.1.3 Null recipient not allowed", NULL, NULL },
    { "RCPT TO:<postmasterx>", 0, SM_SMTP_RCPT, "501 5.1.3 Bad recipient address syntax", NULL, NULL },
    { "RCPT TO:<@hop.example:postmaster>", 0, SM_SMTP_RCPT, "501 5.1.3 Bad recipient address syntax", NULL, NULL },
    { "RCPT TO:<user>", 0, SM_SMTP_RCPT, "501 5.1.3 Bad recipient address syntax", NULL, NULL },
    { "RCPT FROM:<user@example.com>", 0, SM_SMTP_RCPT, "501 5.5.4 Syntax: RCPT TO:<address>", NULL, NULL },
    { "RCPT TO:user@example.com", 0, SM_SMTP_RCPT, "501 5.5.4 Syntax: RCPT TO:<address>", NULL, NULL },
    { "RCPT", 0, SM_SMTP_RCPT, "501 5.5.4 Syntax: RCPT TO:<address>", NULL, NULL },
    { "RCPT TO:<\xe7\x94\xa8@example.com>", 0, SM_SMTP_RCPT, "553 5.6.7 Non-ASCII address requires SMTPUTF8", NULL, NULL },

    /* parameters */
    { "MAIL FROM:<a@b.example> SIZE=1000", 0, SM_SMTP_MAIL, NULL, "a@b.example", NULL },
    { "MAIL FROM:<a@b.example>  size=1000   body=8BITMIME  ", 0, SM_SMTP_MAIL, NULL, "a@b.example", NULL },
    { "MAIL FROM:<a@b.example> SIZE=", 0, SM_SMTP_MAIL, "501 5.5.4 Invalid parameter syntax", NULL, NULL },
    { "MAIL FROM:<a@b.example> =1", 0, SM_SMTP_MAIL, "501 5.5.4 Invalid parameter syntax", NULL, NULL },
    { "MAIL FROM:<a@b.example> -X=1", 0, SM_SMTP_MAIL, "501 5.5.4 Invalid parameter syntax", NULL, NULL },
    { "MAIL FROM:<a@b.example> X_Y=1", 0, SM_SMTP_MAIL, "501 5.5.4 Invalid parameter syntax", NULL, NULL },
    { "MAIL FROM:<a@b.example> A=b=c", 0, SM_SMTP_MAIL, "501 5.5.4 Invalid parameter syntax", NULL, NULL },
    { "MAIL FROM:<a@b.example> SIZE=1 size=2", 0, SM_SMTP_MAIL, "501 5.5.4 Duplicate parameter", NULL, NULL },
    { "MAIL FROM:<a@b.example> SMTPUTF8 SMTPUTF8", 0, SM_SMTP_MAIL, "501 5.5.4 Duplicate parameter", NULL, NULL },
    { "MAIL FROM:<a@b.example> ENVID=\xc3\xa9", 0, SM_SMTP_MAIL, "501 5.5.4 Non-ASCII parameter requires SMTPUTF8", NULL, NULL },
    { "MAIL FROM:<a@b.example> ENVID=\xc3\xa9", U, SM_SMTP_MAIL, NULL, "a@b.example", NULL },
    { "RCPT TO:<a@b.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40b.example", 0, SM_SMTP_RCPT, NULL, "a@b.example", NULL },
};

static void test_table(void) {
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const struct tcase *t = &cases[i];
        struct sm_smtp_cmd cmd;
        const char *reply = NULL;
        int r = sm_smtp_parse(t->line, strlen(t->line), t->flags, &cmd, &reply);
        if (t->reply) {
            if (!ok(r == -EINVAL, "refused: %s", t->line)) printf("#   got %d\n", r);
            is_str(reply, t->reply, "reply");
        } else {
            if (!ok(r == 0, "accepted: %s", t->line)) printf("#   reply: %s\n", reply ? reply : "");
            if (t->path)
                is_str(cmd.path, t->path, "path");
            else
                ok(cmd.path == NULL, "no path");
            if (t->arg)
                is_str(cmd.arg, t->arg, "arg");
            else
                ok(cmd.arg == NULL, "no arg");
        }
        is_int(cmd.verb, t->verb, "verb");
        sm_smtp_cmd_clear(&cmd);
        ok(cmd.path == NULL && cmd.arg == NULL && cmd.n_params == 0, "clear empties the struct");
    }
}

static void test_params(void) {
    struct sm_smtp_cmd cmd;
    const char *reply = NULL;
    const char *line = "MAIL FROM:<a@b.example>  size=1000   Body=8BITMIME SMTPUTF8 x-Thing=v";
    is_int(sm_smtp_parse(line, strlen(line), U, &cmd, &reply), 0, "MAIL with parameters");
    is_int(cmd.n_params, 4, "four parameters");
    is_str(cmd.params[0].key, "SIZE", "key upper-cased");
    is_str(cmd.params[0].value, "1000", "value kept");
    is_str(cmd.params[1].key, "BODY", "second key");
    is_str(cmd.params[1].value, "8BITMIME", "value case kept");
    is_str(cmd.params[2].key, "SMTPUTF8", "key without value");
    ok(cmd.params[2].value == NULL, "no '=': value NULL");
    is_str(cmd.params[3].key, "X-THING", "key with hyphen");
    is_str(cmd.params[3].value, "v", "its value");
    bool present = false;
    is_str(sm_smtp_param(&cmd, "SIZE", &present), "1000", "sm_smtp_param finds SIZE");
    ok(present, "SIZE present");
    present = true;
    ok(sm_smtp_param(&cmd, "SMTPUTF8", &present) == NULL && present, "SMTPUTF8 present, no value");
    ok(sm_smtp_param(&cmd, "RET", &present) == NULL && !present, "RET absent");
    ok(sm_smtp_param(&cmd, "body", NULL) != NULL, "PRESENT may be NULL");
    sm_smtp_cmd_clear(&cmd);

    /* exactly the maximum, then one more */
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "RCPT TO:<a@b.example>");
    for (int i = 0; i < SM_SMTP_MAX_PARAMS; i++) n += snprintf(buf + n, sizeof buf - (size_t)n, " P%d=%d", i, i);
    is_int(sm_smtp_parse(buf, (size_t)n, 0, &cmd, &reply), 0, "SM_SMTP_MAX_PARAMS parameters accepted");
    is_int(cmd.n_params, SM_SMTP_MAX_PARAMS, "all of them kept");
    sm_smtp_cmd_clear(&cmd);
    n += snprintf(buf + n, sizeof buf - (size_t)n, " EXTRA");
    is_int(sm_smtp_parse(buf, (size_t)n, 0, &cmd, &reply), -EINVAL, "one parameter more refused");
    is_str(reply, "501 5.5.4 Too many parameters", "too many parameters reply");
    sm_smtp_cmd_clear(&cmd);  /* frees the ones parsed before the error (ASan) */
}

static void test_nul_and_length(void) {
    struct sm_smtp_cmd cmd;
    const char *reply = NULL;
    static const char *lines[] = { "MAIL FROM:<a\0b@example.com>", "\0", "QUIT\0",
                                   "RCPT TO:<a@b.example> X=\0" };
    static const size_t lens[] = { 27, 1, 5, 25 };
    for (size_t i = 0; i < 4; i++) {
        is_int(sm_smtp_parse(lines[i], lens[i], 0, &cmd, &reply), -EINVAL, "line with NUL refused");
        is_str(reply, "500 5.5.2 NUL byte in command", "NUL reply");
        sm_smtp_cmd_clear(&cmd);
    }
    /* LEN is honoured: bytes past it are not part of the command */
    is_int(sm_smtp_parse("QUITXYZ", 4, 0, &cmd, &reply), 0, "only LEN bytes parsed");
    is_int(cmd.verb, SM_SMTP_QUIT, "QUIT from a longer buffer");
    sm_smtp_cmd_clear(&cmd);

    size_t big = 70000;
    char *huge = malloc(big);
    memcpy(huge, "NOOP ", 5);
    memset(huge + 5, 'x', big - 5);
    is_int(sm_smtp_parse(huge, big, 0, &cmd, &reply), -EINVAL, "70000-byte line refused");
    is_str(reply, "500 5.5.2 Line too long", "line too long reply");
    sm_smtp_cmd_clear(&cmd);
    free(huge);

    /* a clear of a zeroed struct and a double clear are harmless */
    struct sm_smtp_cmd z = { 0 };
    sm_smtp_cmd_clear(&z);
    sm_smtp_cmd_clear(&z);
    sm_smtp_cmd_clear(NULL);
    ok(1, "clear tolerates empty structs and NULL");
}

/* Every prefix of these lines, fed the way a reader would cut them, parses
 * to success or to an error with a reply; a successful path normalizes. */
static void test_prefixes(void) {
    static const char *lines[] = {
        "MAIL FROM:<@a.example,@b.example:\"q \\\" x\"@Example.com> SIZE=12 BODY=8BITMIME",
        "RCPT TO:<Postmaster> NOTIFY=NEVER",
        "EHLO [IPv6:2001:db8::1]",
        "BDAT 123 LAST",
    };
    size_t total = 0, bad = 0;
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        size_t n = strlen(lines[i]);
        for (size_t cut = 0; cut <= n; cut++) {
            struct sm_smtp_cmd cmd;
            const char *reply = NULL;
            int r = sm_smtp_parse(lines[i], cut, 0, &cmd, &reply);
            total++;
            if (r < 0 && !reply) bad++;
            if (r == 0 && cmd.path && *cmd.path && strcmp(cmd.path, "postmaster") != 0) {
                char *again = NULL;
                if (sm_addr_normalize(cmd.path, strlen(cmd.path), 0, &again, NULL) < 0 ||
                    strcmp(again, cmd.path) != 0)
                    bad++;
                free(again);
            }
            sm_smtp_cmd_clear(&cmd);
        }
    }
    ok(bad == 0, "%zu prefixes: each accepted with a normal path or refused with a reply", total);
    struct sm_smtp_cmd cmd;
    const char *reply;
    const char *full = lines[0];
    is_int(sm_smtp_parse(full, strlen(full), 0, &cmd, &reply), 0, "the full route line");
    is_str(cmd.path, "\"q \\\" x\"@example.com", "route dropped, quoted local part kept");
    is_int(cmd.n_params, 2, "its two parameters");
    sm_smtp_cmd_clear(&cmd);
}

int main(void) {
    test_table();
    test_params();
    test_nul_and_length();
    test_prefixes();
    return tap_done();
}
