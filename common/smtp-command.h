/* smtp-command.h — parse one SMTP/LMTP command line (pure, no I/O).
 *
 * Used by lmtp-handler now and smtp-handler later. The line comes without
 * its CRLF. Verbs are case-insensitive. MAIL FROM:<path> and RCPT TO:<path>
 * are parsed strictly (RFC 5321 §4.1.2): angle brackets required, no space
 * between the colon and `<` tolerated only as the common client quirk of a
 * single space, source routes (`<@a,@b:user@d>`) accepted and dropped,
 * `<>` allowed for MAIL only; ESMTP parameters `KEY[=VALUE]` after the path,
 * at most SM_SMTP_MAX_PARAMS, keys unique and upper-cased, values
 * xtext-checked only for printable ASCII (the caller interprets them). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum sm_smtp_verb {
    SM_SMTP_UNKNOWN = 0,
    SM_SMTP_HELO, SM_SMTP_EHLO, SM_SMTP_LHLO,
    SM_SMTP_MAIL, SM_SMTP_RCPT, SM_SMTP_DATA, SM_SMTP_BDAT,
    SM_SMTP_RSET, SM_SMTP_NOOP, SM_SMTP_QUIT, SM_SMTP_VRFY, SM_SMTP_EXPN,
    SM_SMTP_HELP, SM_SMTP_STARTTLS, SM_SMTP_AUTH,
};

#define SM_SMTP_MAX_PARAMS 16

struct sm_smtp_param {
    char *key;    /* upper-cased */
    char *value;  /* NULL when the parameter has no '=' */
};

struct sm_smtp_cmd {
    enum sm_smtp_verb verb;
    char *arg;        /* text after the verb (HELO/EHLO/LHLO domain, AUTH, BDAT, VRFY...), or NULL */
    char *path;       /* MAIL/RCPT: normalized address, "" for <> */
    struct sm_smtp_param params[SM_SMTP_MAX_PARAMS];
    size_t n_params;
};

/* Parses LINE (LEN bytes; may contain NUL, which is refused). FLAGS are
 * address.h's SM_ADDR_* flags. Returns 0, or -EINVAL with REPLY set to a
 * complete reply line without CRLF, e.g. "501 5.5.4 Syntax: MAIL FROM:<address>"
 * or "500 5.5.2 Unknown command" (-ENOMEM with "451 4.3.0 Out of memory").
 * CMD->verb is set whenever the verb was recognized, also on error.
 * RCPT TO:<Postmaster> (any case, no domain) gives the path "postmaster".
 * CMD must be released with sm_smtp_cmd_clear() in both cases. */
int sm_smtp_parse(const char *line, size_t len, unsigned flags, struct sm_smtp_cmd *cmd,
                  const char **reply);
void sm_smtp_cmd_clear(struct sm_smtp_cmd *cmd);

/* The value of parameter KEY (upper-case) or NULL; *PRESENT tells whether
 * the key appeared at all (may be NULL). */
const char *sm_smtp_param(const struct sm_smtp_cmd *cmd, const char *key, bool *present);
