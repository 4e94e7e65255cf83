/* pop3-command.h — parse one POP3 command line (pure, no I/O; built into
 * the static library pop3_command so tests/unit and tests/fuzz link it).
 *
 * Used by pop3-handler. The line comes without its CRLF. RFC 1939: a
 * case-insensitive keyword, then arguments separated by single spaces.
 * This parser is strict about what it interprets and lenient only where
 * real clients need it:
 *   - exactly one space between keyword and arguments and between
 *     arguments; one trailing space after the last token is tolerated
 *     (clients send "LIST "); a leading space, a tab, two spaces, a NUL
 *     or any other control character (except in PASS) is refused;
 *   - message numbers are 1..SM_POP3_MAX_MSG in decimal digits only: no
 *     sign, no "+", no leading spaces, at most 10 digits; 0 and numbers
 *     above the maximum are "no such message", anything else "invalid";
 *   - TOP's line count is 0..SM_POP3_MAX_TOP_LINES, digits only;
 *   - USER takes the rest of the line as the name (not empty); PASS the
 *     rest of the line verbatim, spaces included (may be empty);
 *   - AUTH: none (list mechanisms), a mechanism name (RFC 4422 charset,
 *     upper-cased here), or a mechanism and one initial response token.
 * Range checks against the mailbox (a number above the message count) and
 * state checks are the caller's. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sm_pop3_verb {
    SM_POP3_UNKNOWN = 0,
    SM_POP3_USER, SM_POP3_PASS, SM_POP3_AUTH, SM_POP3_STLS, SM_POP3_CAPA, SM_POP3_QUIT,
    SM_POP3_STAT, SM_POP3_LIST, SM_POP3_RETR, SM_POP3_DELE, SM_POP3_NOOP, SM_POP3_RSET,
    SM_POP3_TOP, SM_POP3_UIDL,
};

#define SM_POP3_MAX_MSG UINT32_MAX
#define SM_POP3_MAX_TOP_LINES 999999999999999999ULL  /* 18 digits: "all of it" */
#define SM_POP3_MAX_MECH 20                          /* RFC 4422 section 3.1 */

struct sm_pop3_cmd {
    enum sm_pop3_verb verb;
    bool has_msg;        /* a message number was given (LIST/UIDL optional; RETR/DELE/TOP always) */
    uint32_t msg;        /* 1..SM_POP3_MAX_MSG when has_msg */
    uint64_t lines;      /* TOP */
    char *arg;           /* USER name, PASS password, AUTH mechanism (upper case), or NULL */
    char *initial_response; /* AUTH, as sent (base64 or "="), or NULL */
    char *buf;           /* owns the strings above */
    size_t buf_len;
};

/* Parses LINE (LEN bytes; NUL bytes are refused). A line longer than
 * MAX_LEN is refused as too long. Returns 0, or -EINVAL with REPLY set to
 * a complete "-ERR ..." line without CRLF (-ENOMEM with
 * "-ERR [SYS/TEMP] Out of memory."). CMD->verb is set whenever the verb
 * was recognized, also on error. CMD must be released with
 * sm_pop3_cmd_clear() in both cases (it wipes the copy: it may hold a
 * password). */
int sm_pop3_parse(const char *line, size_t len, size_t max_len, struct sm_pop3_cmd *cmd,
                  const char **reply);
void sm_pop3_cmd_clear(struct sm_pop3_cmd *cmd);

/* The keyword of VERB in upper case ("?" for SM_POP3_UNKNOWN). */
const char *sm_pop3_verb_name(enum sm_pop3_verb verb);
