/* pop3-command.c — one POP3 command line into a struct; see pop3-command.h. */
#include "pop3-command.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "macro.h"

enum arg_rule {
    ARG_NONE,     /* STAT, NOOP, RSET, QUIT, CAPA, STLS */
    ARG_MSG_OPT,  /* LIST, UIDL */
    ARG_MSG,      /* RETR, DELE */
    ARG_TOP,      /* msg lines */
    ARG_USER,     /* rest of line, not empty */
    ARG_PASS,     /* rest of line verbatim */
    ARG_AUTH,     /* [mechanism [initial-response]] */
};

struct verb {
    const char *name;
    enum sm_pop3_verb verb;
    enum arg_rule rule;
    const char *syntax;
};

static const struct verb verbs[] = {
    { "USER", SM_POP3_USER, ARG_USER, "-ERR Syntax: USER name" },
    { "PASS", SM_POP3_PASS, ARG_PASS, "-ERR Syntax: PASS password" },
    { "AUTH", SM_POP3_AUTH, ARG_AUTH, "-ERR Syntax: AUTH mechanism [initial-response]" },
    { "STLS", SM_POP3_STLS, ARG_NONE, "-ERR Syntax: STLS" },
    { "CAPA", SM_POP3_CAPA, ARG_NONE, "-ERR Syntax: CAPA" },
    { "QUIT", SM_POP3_QUIT, ARG_NONE, "-ERR Syntax: QUIT" },
    { "STAT", SM_POP3_STAT, ARG_NONE, "-ERR Syntax: STAT" },
    { "LIST", SM_POP3_LIST, ARG_MSG_OPT, "-ERR Syntax: LIST [msg]" },
    { "RETR", SM_POP3_RETR, ARG_MSG, "-ERR Syntax: RETR msg" },
    { "DELE", SM_POP3_DELE, ARG_MSG, "-ERR Syntax: DELE msg" },
    { "NOOP", SM_POP3_NOOP, ARG_NONE, "-ERR Syntax: NOOP" },
    { "RSET", SM_POP3_RSET, ARG_NONE, "-ERR Syntax: RSET" },
    { "TOP", SM_POP3_TOP, ARG_TOP, "-ERR Syntax: TOP msg lines" },
    { "UIDL", SM_POP3_UIDL, ARG_MSG_OPT, "-ERR Syntax: UIDL [msg]" },
};

#define R_NUL "-ERR NUL in command."
#define R_CTRL "-ERR Control character in command."
#define R_LONG "-ERR Line too long."
#define R_UNKNOWN "-ERR Unknown command."
#define R_NOMEM "-ERR [SYS/TEMP] Out of memory."
#define R_MSG_REQUIRED "-ERR Message number required."
#define R_MSG_INVALID "-ERR Invalid message number."
#define R_MSG_NONE "-ERR There's no message with that number."
#define R_LINES_INVALID "-ERR Invalid number of lines."
#define R_MECH "-ERR Unsupported authentication mechanism."

#define MAX_MSG_DIGITS 10
#define MAX_LINES_DIGITS 18
#define MAX_TOKENS 3  /* one more than any command takes, to see extras */

const char *sm_pop3_verb_name(enum sm_pop3_verb verb) {
    for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
        if (verbs[i].verb == verb) return verbs[i].name;
    return "?";
}

void sm_pop3_cmd_clear(struct sm_pop3_cmd *cmd) {
    if (cmd->buf) {
        explicit_zero(cmd->buf, cmd->buf_len);
        free(cmd->buf);
    }
    *cmd = (struct sm_pop3_cmd){0};
}

static bool is_ctrl(unsigned char c) { return c < 0x20 || c == 0x7f; }

/* Splits P (what follows the keyword) into single-space separated tokens.
 * One trailing space is tolerated. Returns the count, or -1 on bad
 * spacing. Tokens are NUL-terminated in place. */
static int tokenize(char *p, char **tok) {
    int n = 0;
    if (!*p) return 0;
    if (*p != ' ') return -1;  /* the keyword did not end here */
    p++;
    while (*p) {
        if (*p == ' ') return -1;  /* two spaces, or a space after a trailing one */
        if (n == MAX_TOKENS) return n + 1;
        tok[n++] = p;
        char *sp = strchr(p, ' ');
        if (!sp) break;
        *sp = 0;
        p = sp + 1;
        if (!*p) break;  /* the one trailing space */
    }
    return n;
}

/* Decimal digits only, at most MAXD of them. -1 when not a number. */
static int parse_digits(const char *s, unsigned maxd, uint64_t *ret) {
    uint64_t v = 0;
    size_t n = strlen(s);
    if (n == 0 || n > maxd) return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *ret = v;
    return 0;
}

static const char *parse_msg(const char *s, struct sm_pop3_cmd *cmd) {
    uint64_t v;
    if (parse_digits(s, MAX_MSG_DIGITS, &v) < 0) return R_MSG_INVALID;
    if (v == 0 || v > SM_POP3_MAX_MSG) return R_MSG_NONE;
    cmd->has_msg = true;
    cmd->msg = (uint32_t)v;
    return NULL;
}

static bool mech_ok(const char *m) {
    size_t n = strlen(m);
    if (n == 0 || n > SM_POP3_MAX_MECH) return false;
    for (const char *p = m; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return false;
    return true;
}

static const char *parse_args(const struct verb *v, char *rest, struct sm_pop3_cmd *cmd) {
    if (v->rule == ARG_PASS) {
        /* The password is everything after "PASS ", spaces included. */
        if (*rest && *rest != ' ') return R_UNKNOWN;
        cmd->arg = *rest ? rest + 1 : rest;
        return NULL;
    }
    for (const char *p = rest; *p; p++)
        if (is_ctrl((unsigned char)*p)) return R_CTRL;
    if (v->rule == ARG_USER) {
        if (*rest && *rest != ' ') return R_UNKNOWN;
        if (!*rest || !rest[1]) return v->syntax;
        cmd->arg = rest + 1;
        return NULL;
    }
    char *tok[MAX_TOKENS];
    int n = tokenize(rest, tok);
    if (n < 0) return v->syntax;
    switch (v->rule) {
    case ARG_NONE:
        return n == 0 ? NULL : v->syntax;
    case ARG_MSG_OPT:
        if (n == 0) return NULL;
        return n == 1 ? parse_msg(tok[0], cmd) : v->syntax;
    case ARG_MSG:
        if (n == 0) return R_MSG_REQUIRED;
        return n == 1 ? parse_msg(tok[0], cmd) : v->syntax;
    case ARG_TOP: {
        if (n != 2) return v->syntax;
        const char *r = parse_msg(tok[0], cmd);
        if (r) return r;
        if (parse_digits(tok[1], MAX_LINES_DIGITS, &cmd->lines) < 0) return R_LINES_INVALID;
        return NULL;
    }
    case ARG_AUTH:
        if (n == 0) return NULL;
        if (n > 2) return v->syntax;
        if (!mech_ok(tok[0])) return R_MECH;
        for (char *p = tok[0]; *p; p++)
            if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
        cmd->arg = tok[0];
        if (n == 2) cmd->initial_response = tok[1];
        return NULL;
    default:
        return v->syntax;
    }
}

int sm_pop3_parse(const char *line, size_t len, size_t max_len, struct sm_pop3_cmd *cmd,
                  const char **reply) {
    *cmd = (struct sm_pop3_cmd){0};
    *reply = NULL;
    if (len > max_len) { *reply = R_LONG; return -EINVAL; }
    if (memchr(line, 0, len)) { *reply = R_NUL; return -EINVAL; }
    /* The keyword: letters up to the first space or the end. */
    size_t k = 0;
    while (k < len && line[k] != ' ') k++;
    const struct verb *v = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
        if (strlen(verbs[i].name) == k && strncasecmp(line, verbs[i].name, k) == 0) v = &verbs[i];
    if (!v) { *reply = R_UNKNOWN; return -EINVAL; }
    cmd->verb = v->verb;

    cmd->buf = malloc(len + 1);
    if (!cmd->buf) { *reply = R_NOMEM; return -ENOMEM; }
    memcpy(cmd->buf, line, len);
    cmd->buf[len] = 0;
    cmd->buf_len = len;
    const char *r = parse_args(v, cmd->buf + k, cmd);
    if (r) {
        cmd->arg = cmd->initial_response = NULL;
        cmd->has_msg = false;
        cmd->msg = 0;
        cmd->lines = 0;
        *reply = r;
        return -EINVAL;
    }
    return 0;
}
