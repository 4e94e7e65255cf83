/* smtp-command.c — one SMTP/LMTP command line into a struct; see smtp-command.h.
 *
 * Enhanced status codes (RFC 3463): X.5.2 syntax error or unrecognized
 * command, X.5.4 invalid arguments, X.1.7 / X.1.3 bad sender / recipient
 * address syntax, X.6.7 non-ASCII address without SMTPUTF8 (RFC 6531). */
#include "smtp-command.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "macro.h"

/* Far above any real command (RFC 5321: 512 octets plus extensions); the
 * caller's line reader has its own, smaller limit. */
#define MAX_COMMAND_LINE 65536

enum arg_rule {
    ARG_NONE,      /* nothing may follow the verb */
    ARG_OPTIONAL,  /* NOOP, HELP */
    ARG_REQUIRED,  /* HELO, VRFY, AUTH... */
    ARG_PATH,      /* MAIL, RCPT */
    ARG_BDAT,      /* chunk size [LAST] */
};

struct verb {
    const char *name;
    enum sm_smtp_verb verb;
    enum arg_rule rule;
    const char *syntax;  /* reply when the argument is wrong */
};

static const struct verb verbs[] = {
    { "HELO", SM_SMTP_HELO, ARG_REQUIRED, "501 5.5.4 Syntax: HELO hostname" },
    { "EHLO", SM_SMTP_EHLO, ARG_REQUIRED, "501 5.5.4 Syntax: EHLO hostname" },
    { "LHLO", SM_SMTP_LHLO, ARG_REQUIRED, "501 5.5.4 Syntax: LHLO hostname" },
    { "MAIL", SM_SMTP_MAIL, ARG_PATH, "501 5.5.4 Syntax: MAIL FROM:<address>" },
    { "RCPT", SM_SMTP_RCPT, ARG_PATH, "501 5.5.4 Syntax: RCPT TO:<address>" },
    { "DATA", SM_SMTP_DATA, ARG_NONE, "501 5.5.4 Syntax: DATA" },
    { "BDAT", SM_SMTP_BDAT, ARG_BDAT, "501 5.5.4 Syntax: BDAT size [LAST]" },
    { "RSET", SM_SMTP_RSET, ARG_NONE, "501 5.5.4 Syntax: RSET" },
    { "NOOP", SM_SMTP_NOOP, ARG_OPTIONAL, NULL },
    { "QUIT", SM_SMTP_QUIT, ARG_NONE, "501 5.5.4 Syntax: QUIT" },
    { "VRFY", SM_SMTP_VRFY, ARG_REQUIRED, "501 5.5.4 Syntax: VRFY address" },
    { "EXPN", SM_SMTP_EXPN, ARG_REQUIRED, "501 5.5.4 Syntax: EXPN list" },
    { "HELP", SM_SMTP_HELP, ARG_OPTIONAL, NULL },
    { "STARTTLS", SM_SMTP_STARTTLS, ARG_NONE, "501 5.5.4 Syntax: STARTTLS" },
    { "AUTH", SM_SMTP_AUTH, ARG_REQUIRED, "501 5.5.4 Syntax: AUTH mechanism [initial-response]" },
};

#define R_NUL "500 5.5.2 NUL byte in command"
#define R_CTRL "500 5.5.2 Control character in command"
#define R_LONG "500 5.5.2 Line too long"
#define R_UNKNOWN "500 5.5.2 Unknown command"
#define R_NOMEM "451 4.3.0 Out of memory"
#define R_BAD_SENDER "501 5.1.7 Bad sender address syntax"
#define R_BAD_RCPT "501 5.1.3 Bad recipient address syntax"
#define R_NULL_RCPT "501 5.1.3 Null recipient not allowed"
#define R_UTF8 "553 5.6.7 Non-ASCII address requires SMTPUTF8"
#define R_PARAM "501 5.5.4 Invalid parameter syntax"
#define R_PARAM_UTF8 "501 5.5.4 Non-ASCII parameter requires SMTPUTF8"
#define R_DUP "501 5.5.4 Duplicate parameter"
#define R_TOO_MANY "501 5.5.4 Too many parameters"

static bool is_alnum(unsigned char c) {
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

static int fail(const char **reply, const char *text, int r) {
    if (reply) *reply = text;
    return r;
}

/* One ESMTP parameter `KEY[=VALUE]` (RFC 5321 esmtp-param; RFC 6531 lets
 * the value carry UTF-8). */
static int parse_param(const char *s, size_t n, unsigned flags, struct sm_smtp_cmd *cmd,
                       const char **reply) {
    const unsigned char *u = (const unsigned char *)s;
    size_t k = 0;
    if (!n || !is_alnum(u[0])) return fail(reply, R_PARAM, -EINVAL);
    while (k < n && (is_alnum(u[k]) || u[k] == '-')) k++;
    const char *value = NULL;
    size_t vlen = 0;
    if (k < n) {
        if (u[k] != '=' || k + 1 == n) return fail(reply, R_PARAM, -EINVAL);
        value = s + k + 1;
        vlen = n - k - 1;
        for (size_t i = 0; i < vlen; i++) {
            unsigned char c = (unsigned char)value[i];
            if (c >= 0x80 && !(flags & SM_ADDR_UTF8)) return fail(reply, R_PARAM_UTF8, -EINVAL);
            if (c == '=' || c <= ' ' || c == 0x7f) return fail(reply, R_PARAM, -EINVAL);
        }
    }
    for (size_t i = 0; i < cmd->n_params; i++)
        if (strlen(cmd->params[i].key) == k && strncasecmp(cmd->params[i].key, s, k) == 0)
            return fail(reply, R_DUP, -EINVAL);
    if (cmd->n_params >= SM_SMTP_MAX_PARAMS) return fail(reply, R_TOO_MANY, -EINVAL);

    _cleanup_free_ char *key = strndup(s, k);
    _cleanup_free_ char *val = value ? strndup(value, vlen) : NULL;
    if (!key || (value && !val)) return fail(reply, R_NOMEM, -ENOMEM);
    for (char *p = key; *p; p++)
        if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
    cmd->params[cmd->n_params].key = TAKE_PTR(key);
    cmd->params[cmd->n_params].value = TAKE_PTR(val);
    cmd->n_params++;
    return 0;
}

/* A source route `@a.example,@b.example:` at S; returns its length
 * including the colon, or 0 when it is malformed. Its content is dropped
 * (RFC 5321 §4.1.2: the route is to be ignored). */
static size_t skip_route(const char *s, size_t n) {
    size_t i = 0;
    for (;;) {
        if (i >= n || s[i] != '@') return 0;
        i++;
        size_t start = i;
        while (i < n && (is_alnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '.' ||
                         s[i] == '[' || s[i] == ']'))
            i++;
        if (i == start || i >= n) return 0;
        if (s[i] == ':') return i + 1;
        if (s[i] != ',') return 0;
        i++;
    }
}

/* "FROM:<path> params" / "TO:<path> params" after the verb's space. */
static int parse_path(const char *s, size_t n, unsigned flags, struct sm_smtp_cmd *cmd,
                      const char *syntax, const char **reply) {
    bool mail = cmd->verb == SM_SMTP_MAIL;
    const char *kw = mail ? "FROM:" : "TO:";
    size_t kwlen = strlen(kw);
    if (n < kwlen || strncasecmp(s, kw, kwlen) != 0) return fail(reply, syntax, -EINVAL);
    size_t i = kwlen;
    if (i < n && s[i] == ' ') i++;  /* the common "MAIL FROM: <x>" quirk */
    if (i >= n || s[i] != '<') return fail(reply, syntax, -EINVAL);
    i++;

    size_t route = skip_route(s + i, n - i);
    if (i < n && s[i] == '@' && route == 0) return fail(reply, syntax, -EINVAL);
    i += route;

    /* The mailbox ends at the first '>' outside a quoted string. */
    size_t start = i;
    bool in_quote = false;
    bool non_ascii = false;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) non_ascii = true;
        if (in_quote) {
            if (c == '\\' && i + 1 < n) i++;
            else if (c == '"') in_quote = false;
        } else if (c == '"') {
            in_quote = true;
        } else if (c == '>') {
            break;
        }
    }
    if (i >= n) return fail(reply, syntax, -EINVAL);
    size_t box_len = i - start;
    i++;  /* '>' */

    if (box_len == 0) {
        if (route) return fail(reply, syntax, -EINVAL);
        if (!mail) return fail(reply, R_NULL_RCPT, -EINVAL);
        cmd->path = strdup("");
        if (!cmd->path) return fail(reply, R_NOMEM, -ENOMEM);
    } else if (!mail && !route && box_len == 10 && strncasecmp(s + start, "postmaster", 10) == 0) {
        /* RFC 5321 §4.5.1: <Postmaster> without a domain must be accepted. */
        cmd->path = strdup("postmaster");
        if (!cmd->path) return fail(reply, R_NOMEM, -ENOMEM);
    } else {
        if (non_ascii && !(flags & SM_ADDR_UTF8)) return fail(reply, R_UTF8, -EINVAL);
        const char *why;
        int r = sm_addr_normalize(s + start, box_len, flags, &cmd->path, &why);
        if (r == -ENOMEM) return fail(reply, R_NOMEM, r);
        if (r < 0) return fail(reply, mail ? R_BAD_SENDER : R_BAD_RCPT, -EINVAL);
    }

    /* Parameters, separated by one or more spaces. */
    if (i < n && s[i] != ' ') return fail(reply, syntax, -EINVAL);
    while (i < n) {
        while (i < n && s[i] == ' ') i++;
        if (i >= n) break;
        size_t p = i;
        while (i < n && s[i] != ' ') i++;
        int r = parse_param(s + p, i - p, flags, cmd, reply);
        if (r < 0) return r;
    }
    return 0;
}

/* BDAT chunk-size [SP "LAST"] (RFC 3030). */
static bool bdat_ok(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == 0 || i > 19) return false;
    if (i == n) return true;
    return n - i == 5 && s[i] == ' ' && strncasecmp(s + i + 1, "LAST", 4) == 0;
}

int sm_smtp_parse(const char *line, size_t len, unsigned flags, struct sm_smtp_cmd *cmd,
                  const char **reply) {
    if (!cmd) return -EINVAL;
    memset(cmd, 0, sizeof *cmd);
    if (!line) return fail(reply, R_UNKNOWN, -EINVAL);
    if (memchr(line, 0, len)) return fail(reply, R_NUL, -EINVAL);
    if (len > MAX_COMMAND_LINE) return fail(reply, R_LONG, -EINVAL);

    /* Trailing white space is tolerated everywhere; other control bytes
     * (a bare CR above all) are not. */
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t')) len--;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f) return fail(reply, R_CTRL, -EINVAL);
    }

    size_t vlen = 0;
    while (vlen < len && line[vlen] != ' ') vlen++;
    const struct verb *v = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
        if (strlen(verbs[i].name) == vlen && strncasecmp(verbs[i].name, line, vlen) == 0)
            v = &verbs[i];
    if (!v) return fail(reply, R_UNKNOWN, -EINVAL);
    cmd->verb = v->verb;

    /* After the verb: nothing, or one space and the argument. */
    const char *arg = line + vlen;
    size_t alen = len - vlen;
    if (alen) {
        arg++;
        alen--;
    }

    switch (v->rule) {
    case ARG_PATH:
        return parse_path(arg, alen, flags, cmd, v->syntax, reply);
    case ARG_NONE:
        if (alen) return fail(reply, v->syntax, -EINVAL);
        return 0;
    case ARG_BDAT:
        if (!bdat_ok(arg, alen)) return fail(reply, v->syntax, -EINVAL);
        break;
    case ARG_REQUIRED:
    case ARG_OPTIONAL:
        /* HELO/EHLO/AUTH tolerate extra spaces before the argument. */
        while (alen && *arg == ' ') arg++, alen--;
        if (!alen && v->rule == ARG_REQUIRED) return fail(reply, v->syntax, -EINVAL);
        break;
    }
    if (alen) {
        cmd->arg = strndup(arg, alen);
        if (!cmd->arg) return fail(reply, R_NOMEM, -ENOMEM);
    }
    return 0;
}

void sm_smtp_cmd_clear(struct sm_smtp_cmd *cmd) {
    if (!cmd) return;
    free(cmd->arg);
    free(cmd->path);
    for (size_t i = 0; i < cmd->n_params && i < SM_SMTP_MAX_PARAMS; i++) {
        free(cmd->params[i].key);
        free(cmd->params[i].value);
    }
    memset(cmd, 0, sizeof *cmd);
}

const char *sm_smtp_param(const struct sm_smtp_cmd *cmd, const char *key, bool *present) {
    if (present) *present = false;
    if (!cmd || !key) return NULL;
    for (size_t i = 0; i < cmd->n_params; i++)
        if (strcasecmp(cmd->params[i].key, key) == 0) {
            if (present) *present = true;
            return cmd->params[i].value;
        }
    return NULL;
}
