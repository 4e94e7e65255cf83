/* test-pop3-command.c — POP3 command line parsing (pop3-command.h). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3-command.h"
#include "tap.h"

#define MAXL 510

#include <stdio.h>
/* A test name with printf formatting (is_int/is_str take a plain string). */
static char nm[700];
#define N(...) (snprintf(nm, sizeof nm, __VA_ARGS__), nm)

struct tcase {
    const char *line;
    enum sm_pop3_verb verb;
    const char *reply;  /* NULL: accepted */
    int64_t msg;        /* expected message number, -1: none */
    uint64_t lines;
    const char *arg;
    const char *ir;
};

#define NOMSG "-ERR There's no message with that number."
#define BADMSG "-ERR Invalid message number."
#define UNK "-ERR Unknown command."

static const struct tcase cases[] = {
    /* keywords: case-insensitive, exact */
    { "STAT", SM_POP3_STAT, NULL, -1, 0, NULL, NULL },
    { "stat", SM_POP3_STAT, NULL, -1, 0, NULL, NULL },
    { "sTaT ", SM_POP3_STAT, NULL, -1, 0, NULL, NULL },  /* one trailing space */
    { "STAT  ", SM_POP3_STAT, "-ERR Syntax: STAT", -1, 0, NULL, NULL },
    { "STAT 1", SM_POP3_STAT, "-ERR Syntax: STAT", -1, 0, NULL, NULL },
    { "STATS", SM_POP3_UNKNOWN, UNK, -1, 0, NULL, NULL },
    { "STA", SM_POP3_UNKNOWN, UNK, -1, 0, NULL, NULL },
    { "", SM_POP3_UNKNOWN, UNK, -1, 0, NULL, NULL },
    { " STAT", SM_POP3_UNKNOWN, UNK, -1, 0, NULL, NULL },
    { "STAT\t", SM_POP3_UNKNOWN, UNK, -1, 0, NULL, NULL },
    { "APOP alice 0123456789abcdef0123456789abcdef", SM_POP3_UNKNOWN, UNK, -1, 0, NULL, NULL },
    { "NOOP", SM_POP3_NOOP, NULL, -1, 0, NULL, NULL },
    { "NOOP x", SM_POP3_NOOP, "-ERR Syntax: NOOP", -1, 0, NULL, NULL },
    { "RSET", SM_POP3_RSET, NULL, -1, 0, NULL, NULL },
    { "RSET 1", SM_POP3_RSET, "-ERR Syntax: RSET", -1, 0, NULL, NULL },
    { "QUIT", SM_POP3_QUIT, NULL, -1, 0, NULL, NULL },
    { "QUIT now", SM_POP3_QUIT, "-ERR Syntax: QUIT", -1, 0, NULL, NULL },
    { "CAPA", SM_POP3_CAPA, NULL, -1, 0, NULL, NULL },
    { "STLS", SM_POP3_STLS, NULL, -1, 0, NULL, NULL },
    { "STLS x", SM_POP3_STLS, "-ERR Syntax: STLS", -1, 0, NULL, NULL },
    /* message numbers */
    { "RETR 1", SM_POP3_RETR, NULL, 1, 0, NULL, NULL },
    { "retr 42 ", SM_POP3_RETR, NULL, 42, 0, NULL, NULL },
    { "RETR 007", SM_POP3_RETR, NULL, 7, 0, NULL, NULL },
    { "RETR 4294967295", SM_POP3_RETR, NULL, 4294967295LL, 0, NULL, NULL },
    { "RETR 4294967296", SM_POP3_RETR, NOMSG, -1, 0, NULL, NULL },
    { "RETR 9999999999", SM_POP3_RETR, NOMSG, -1, 0, NULL, NULL },
    { "RETR 00000000001", SM_POP3_RETR, BADMSG, -1, 0, NULL, NULL },  /* 11 digits */
    { "RETR 99999999999999999999", SM_POP3_RETR, BADMSG, -1, 0, NULL, NULL },
    { "RETR 0", SM_POP3_RETR, NOMSG, -1, 0, NULL, NULL },
    { "RETR 0000", SM_POP3_RETR, NOMSG, -1, 0, NULL, NULL },
    { "RETR -1", SM_POP3_RETR, BADMSG, -1, 0, NULL, NULL },
    { "RETR +1", SM_POP3_RETR, BADMSG, -1, 0, NULL, NULL },
    { "RETR 1x", SM_POP3_RETR, BADMSG, -1, 0, NULL, NULL },
    { "RETR x", SM_POP3_RETR, BADMSG, -1, 0, NULL, NULL },
    { "RETR 0x10", SM_POP3_RETR, BADMSG, -1, 0, NULL, NULL },
    { "RETR 1e3", SM_POP3_RETR, BADMSG, -1, 0, NULL, NULL },
    { "RETR \xd9\xa1", SM_POP3_RETR, BADMSG, -1, 0, NULL, NULL },  /* Arabic-Indic one */
    { "RETR", SM_POP3_RETR, "-ERR Message number required.", -1, 0, NULL, NULL },
    { "RETR ", SM_POP3_RETR, "-ERR Message number required.", -1, 0, NULL, NULL },
    { "RETR  1", SM_POP3_RETR, "-ERR Syntax: RETR msg", -1, 0, NULL, NULL },
    { "RETR 1  ", SM_POP3_RETR, "-ERR Syntax: RETR msg", -1, 0, NULL, NULL },
    { "RETR 1 2", SM_POP3_RETR, "-ERR Syntax: RETR msg", -1, 0, NULL, NULL },
    { "RETR\t1", SM_POP3_UNKNOWN, UNK, -1, 0, NULL, NULL },
    { "RETR 1\t", SM_POP3_RETR, "-ERR Control character in command.", -1, 0, NULL, NULL },
    { "RETR 1\r", SM_POP3_RETR, "-ERR Control character in command.", -1, 0, NULL, NULL },
    { "DELE 3", SM_POP3_DELE, NULL, 3, 0, NULL, NULL },
    { "DELE 0", SM_POP3_DELE, NOMSG, -1, 0, NULL, NULL },
    { "DELE", SM_POP3_DELE, "-ERR Message number required.", -1, 0, NULL, NULL },
    { "LIST", SM_POP3_LIST, NULL, -1, 0, NULL, NULL },
    { "LIST ", SM_POP3_LIST, NULL, -1, 0, NULL, NULL },
    { "LIST 2", SM_POP3_LIST, NULL, 2, 0, NULL, NULL },
    { "LIST 1 2", SM_POP3_LIST, "-ERR Syntax: LIST [msg]", -1, 0, NULL, NULL },
    { "LIST -5", SM_POP3_LIST, BADMSG, -1, 0, NULL, NULL },
    { "UIDL", SM_POP3_UIDL, NULL, -1, 0, NULL, NULL },
    { "UIDL 3", SM_POP3_UIDL, NULL, 3, 0, NULL, NULL },
    { "UIDL 0", SM_POP3_UIDL, NOMSG, -1, 0, NULL, NULL },
    { "UIDL a b", SM_POP3_UIDL, "-ERR Syntax: UIDL [msg]", -1, 0, NULL, NULL },
    /* TOP msg lines */
    { "TOP 1 0", SM_POP3_TOP, NULL, 1, 0, NULL, NULL },
    { "top 2 10 ", SM_POP3_TOP, NULL, 2, 10, NULL, NULL },
    { "TOP 1 999999999999999999", SM_POP3_TOP, NULL, 1, 999999999999999999ULL, NULL, NULL },
    { "TOP 1 1000000000000000000", SM_POP3_TOP, "-ERR Invalid number of lines.", -1, 0, NULL, NULL },
    { "TOP 1 -1", SM_POP3_TOP, "-ERR Invalid number of lines.", -1, 0, NULL, NULL },
    { "TOP 1 +1", SM_POP3_TOP, "-ERR Invalid number of lines.", -1, 0, NULL, NULL },
    { "TOP 1 x", SM_POP3_TOP, "-ERR Invalid number of lines.", -1, 0, NULL, NULL },
    { "TOP 0 1", SM_POP3_TOP, NOMSG, -1, 0, NULL, NULL },
    { "TOP x 1", SM_POP3_TOP, BADMSG, -1, 0, NULL, NULL },
    { "TOP 1", SM_POP3_TOP, "-ERR Syntax: TOP msg lines", -1, 0, NULL, NULL },
    { "TOP", SM_POP3_TOP, "-ERR Syntax: TOP msg lines", -1, 0, NULL, NULL },
    { "TOP 1 2 3", SM_POP3_TOP, "-ERR Syntax: TOP msg lines", -1, 0, NULL, NULL },
    { "TOP 1  2", SM_POP3_TOP, "-ERR Syntax: TOP msg lines", -1, 0, NULL, NULL },
    /* USER / PASS */
    { "USER alice@example.com", SM_POP3_USER, NULL, -1, 0, "alice@example.com", NULL },
    { "user alice ", SM_POP3_USER, NULL, -1, 0, "alice ", NULL },
    { "USER J\xc3\xbcrgen", SM_POP3_USER, NULL, -1, 0, "J\xc3\xbcrgen", NULL },
    { "USER", SM_POP3_USER, "-ERR Syntax: USER name", -1, 0, NULL, NULL },
    { "USER ", SM_POP3_USER, "-ERR Syntax: USER name", -1, 0, NULL, NULL },
    { "USER a\tb", SM_POP3_USER, "-ERR Control character in command.", -1, 0, NULL, NULL },
    { "PASS my secret  phrase ", SM_POP3_PASS, NULL, -1, 0, "my secret  phrase ", NULL },
    { "PASS  leading", SM_POP3_PASS, NULL, -1, 0, " leading", NULL },
    { "PASS", SM_POP3_PASS, NULL, -1, 0, "", NULL },
    { "PASS ", SM_POP3_PASS, NULL, -1, 0, "", NULL },
    { "PASS tab\there", SM_POP3_PASS, NULL, -1, 0, "tab\there", NULL },
    { "PASSWORD x", SM_POP3_UNKNOWN, UNK, -1, 0, NULL, NULL },
    /* AUTH */
    { "AUTH", SM_POP3_AUTH, NULL, -1, 0, NULL, NULL },
    { "AUTH ", SM_POP3_AUTH, NULL, -1, 0, NULL, NULL },
    { "AUTH plain", SM_POP3_AUTH, NULL, -1, 0, "PLAIN", NULL },
    { "auth Login ", SM_POP3_AUTH, NULL, -1, 0, "LOGIN", NULL },
    { "AUTH PLAIN AGFsaWNlAHNlY3JldA==", SM_POP3_AUTH, NULL, -1, 0, "PLAIN", "AGFsaWNlAHNlY3JldA==" },
    { "AUTH PLAIN =", SM_POP3_AUTH, NULL, -1, 0, "PLAIN", "=" },
    { "AUTH SCRAM-SHA-256", SM_POP3_AUTH, NULL, -1, 0, "SCRAM-SHA-256", NULL },
    { "AUTH X_Y-1", SM_POP3_AUTH, NULL, -1, 0, "X_Y-1", NULL },
    { "AUTH PLAIN a b", SM_POP3_AUTH, "-ERR Syntax: AUTH mechanism [initial-response]", -1, 0, NULL, NULL },
    { "AUTH PLAIN  a", SM_POP3_AUTH, "-ERR Syntax: AUTH mechanism [initial-response]", -1, 0, NULL, NULL },
    { "AUTH  PLAIN", SM_POP3_AUTH, "-ERR Syntax: AUTH mechanism [initial-response]", -1, 0, NULL, NULL },
    { "AUTH PL@IN", SM_POP3_AUTH, "-ERR Unsupported authentication mechanism.", -1, 0, NULL, NULL },
    { "AUTH ABCDEFGHIJKLMNOPQRSTU", SM_POP3_AUTH, "-ERR Unsupported authentication mechanism.", -1, 0, NULL, NULL },
    { "AUTH ABCDEFGHIJKLMNOPQRST", SM_POP3_AUTH, NULL, -1, 0, "ABCDEFGHIJKLMNOPQRST", NULL },
    { "AUTH PLAIN a\x7f", SM_POP3_AUTH, "-ERR Control character in command.", -1, 0, NULL, NULL },
};

/* T's line with control and non-ASCII bytes as \xNN, for TAP names. */
static const char *show(const char *line) {
    static char out[600];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)line; *p && o + 5 < sizeof out; p++)
        o += (size_t)snprintf(out + o, sizeof out - o, *p < 0x20 || *p >= 0x7f ? "\\x%02x" : "%c", *p);
    out[o] = 0;
    return out;
}

static void check(const struct tcase *t, const char *line, size_t len, const char *how) {
    struct sm_pop3_cmd cmd;
    const char *reply = "unset";
    int r = sm_pop3_parse(line, len, MAXL, &cmd, &reply);
    is_int(cmd.verb, t->verb, N("%s '%s': verb", how, show(t->line)));
    if (t->reply) {
        is_int(r, -EINVAL, N("%s '%s': refused", how, show(t->line)));
        is_str(reply, t->reply, N("%s '%s': reply", how, show(t->line)));
        ok(!cmd.arg && !cmd.initial_response && !cmd.has_msg, "%s '%s': no result on error", how, show(t->line));
    } else {
        is_int(r, 0, N("%s '%s': accepted (%s)", how, show(t->line), reply ? reply : ""));
        ok(cmd.has_msg == (t->msg >= 0), "%s '%s': has_msg", how, show(t->line));
        if (t->msg >= 0) is_int((int64_t)cmd.msg, t->msg, N("%s '%s': msg", how, show(t->line)));
        ok(cmd.lines == t->lines, "%s '%s': lines", how, show(t->line));
        if (t->arg) is_str(cmd.arg, t->arg, N("%s '%s': arg", how, show(t->line)));
        else ok(!cmd.arg, "%s '%s': no arg", how, show(t->line));
        if (t->ir) is_str(cmd.initial_response, t->ir, N("%s '%s': initial response", how, show(t->line)));
        else ok(!cmd.initial_response, "%s '%s': no initial response", how, show(t->line));
    }
    sm_pop3_cmd_clear(&cmd);
    ok(!cmd.buf && !cmd.arg && cmd.verb == SM_POP3_UNKNOWN, "%s '%s': cleared", how, show(t->line));
}

int main(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct tcase *t = &cases[i];
        size_t len = strlen(t->line);
        check(t, t->line, len, "whole");
        /* An exact-size heap copy: ASan catches any read past LEN. */
        char *copy = malloc(len ? len : 1);
        memcpy(copy, t->line, len);
        check(t, copy, len, "unterminated");
        free(copy);
    }

    struct sm_pop3_cmd cmd;
    const char *reply;
    /* NUL anywhere */
    is_int(sm_pop3_parse("RETR 1\0", 7, MAXL, &cmd, &reply), -EINVAL, "NUL refused");
    is_str(reply, "-ERR NUL in command.", "NUL reply");
    sm_pop3_cmd_clear(&cmd);
    is_int(sm_pop3_parse("PASS a\0b", 8, MAXL, &cmd, &reply), -EINVAL, "NUL in PASS refused");
    sm_pop3_cmd_clear(&cmd);
    is_int(sm_pop3_parse("\0STAT", 5, MAXL, &cmd, &reply), -EINVAL, "leading NUL refused");
    sm_pop3_cmd_clear(&cmd);

    /* line length: exactly MAX accepted, MAX + 1 refused */
    char *big = malloc(MAXL + 2);
    memcpy(big, "PASS ", 5);
    memset(big + 5, 'p', MAXL - 5 + 1);
    is_int(sm_pop3_parse(big, MAXL, MAXL, &cmd, &reply), 0, "PASS of MAX bytes accepted");
    is_int((long)strlen(cmd.arg), MAXL - 5, "whole password kept");
    sm_pop3_cmd_clear(&cmd);
    is_int(sm_pop3_parse(big, MAXL + 1, MAXL, &cmd, &reply), -EINVAL, "MAX + 1 refused");
    is_str(reply, "-ERR Line too long.", "too long reply");
    sm_pop3_cmd_clear(&cmd);
    free(big);

    /* the parsed strings are a copy: changing the input afterwards does
     * not change them (the session reuses its line buffer during AUTH) */
    char line[] = "AUTH plain dGVzdA==";
    is_int(sm_pop3_parse(line, strlen(line), MAXL, &cmd, &reply), 0, "AUTH parsed");
    memset(line, 'X', strlen(line));
    is_str(cmd.arg, "PLAIN", "mechanism survives input reuse");
    is_str(cmd.initial_response, "dGVzdA==", "initial response survives input reuse");
    sm_pop3_cmd_clear(&cmd);

    /* every prefix of every case is either accepted or refused with a
     * reply, never anything else */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].line);
        int bad = 0;
        for (size_t n = 0; n <= len; n++) {
            char *p = malloc(n ? n : 1);
            memcpy(p, cases[i].line, n);
            int r = sm_pop3_parse(p, n, MAXL, &cmd, &reply);
            if (!(r == 0 || (r == -EINVAL && reply && strncmp(reply, "-ERR ", 5) == 0))) bad++;
            sm_pop3_cmd_clear(&cmd);
            free(p);
        }
        ok(!bad, "prefixes of '%s'", show(cases[i].line));
    }

    is_str(sm_pop3_verb_name(SM_POP3_TOP), "TOP", "verb name");
    is_str(sm_pop3_verb_name(SM_POP3_UNKNOWN), "?", "unknown verb name");
    return tap_done();
}
