/* auth-protocol.h — the Dovecot authentication protocol (1.x), pure parsing
 * and formatting, plus the SASL PLAIN and LOGIN payloads.
 *
 * This is what Postfix's `smtpd_sasl_type = dovecot` client speaks and what
 * our own handlers speak to auth-checker (common/auth-client.h). One line is
 * TAB-separated fields ending in LF:
 *
 *   server → client on connect:  VERSION 1 2 / MECH name props.. / SPID pid /
 *                                CUID n / COOKIE hex / DONE
 *   client → server:             VERSION 1 x / CPID pid /
 *                                AUTH id mech [service=s] [secured] [lip=ip]
 *                                     [rip=ip] [resp=base64] [other params]
 *                                CONT id base64
 *   server → client per request: OK id [user=u] / CONT id base64 /
 *                                FAIL id [user=u] [reason=text] [temp]
 *
 * Nothing here does I/O or allocates except where a function says so; lines
 * are split in place. The caller bounds line length (auth_max_line) before
 * calling. Base64 is nettle's (see auth-protocol.c for why).
 *
 *     struct sm_auth_fields f;
 *     if (sm_auth_split(line, len, &f) < 0) close;
 *     if (streq(f.v[0], "AUTH")) { struct sm_auth_request r;
 *         if (sm_auth_parse_auth(&f, &r) < 0) ... } */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define SM_AUTH_PROTOCOL_MAJOR 1u
#define SM_AUTH_PROTOCOL_MINOR 2u

/* More fields than this in one line is a protocol error (AUTH has about
 * ten in practice). */
#define SM_AUTH_MAX_FIELDS 32u

/* Decoded SASL payloads never exceed this (a user name and a password). */
#define SM_AUTH_MAX_SASL 4096u

struct sm_auth_fields {
    char *v[SM_AUTH_MAX_FIELDS];
    size_t n;
};

/* Splits LINE (LEN bytes, NUL at LINE[LEN], no LF) at TABs in place. An
 * empty line, a NUL byte inside, or more than SM_AUTH_MAX_FIELDS fields is
 * -EINVAL. */
int sm_auth_split(char *line, size_t len, struct sm_auth_fields *ret);

/* A request id: decimal 1..4294967295, digits only. 0 or -EINVAL. */
int sm_auth_parse_id(const char *s, unsigned *ret);

/* "VERSION major minor" (from either side). 0 or -EINVAL. */
int sm_auth_parse_version(const struct sm_auth_fields *f, unsigned *ret_major, unsigned *ret_minor);

struct sm_auth_request {
    unsigned id;
    const char *mech;       /* as sent; compare case-insensitively */
    const char *service;    /* NULL when absent */
    const char *lip, *rip;  /* NULL when absent */
    const char *resp;       /* initial response (base64), NULL when absent */
    bool secured;           /* "secured" or "secured=..." was given (TLS) */
};

/* "AUTH id mech params...". Unknown parameters are ignored (Dovecot adds
 * new ones over time); a repeated known one is -EINVAL. Pointers go into F. */
int sm_auth_parse_auth(const struct sm_auth_fields *f, struct sm_auth_request *ret);

/* "CONT id data": RET_DATA points into F (may be empty). 0 or -EINVAL. */
int sm_auth_parse_cont(const struct sm_auth_fields *f, unsigned *ret_id, const char **ret_data);

/* A server reply as the client sees it. */
enum sm_auth_reply_kind { SM_AUTH_REPLY_OK, SM_AUTH_REPLY_CONT, SM_AUTH_REPLY_FAIL };

struct sm_auth_reply {
    enum sm_auth_reply_kind kind;
    unsigned id;
    const char *user;    /* OK/FAIL: user=, NULL when absent */
    const char *reason;  /* FAIL: reason=, NULL when absent */
    const char *data;    /* CONT: the base64 challenge (may be empty) */
    bool temp;           /* FAIL: "temp" or "code=temp_fail" */
};

/* "OK|CONT|FAIL id ..." into RET (pointers into F). -EINVAL for anything
 * else, -ENOENT for another command (a client ignores those). */
int sm_auth_parse_reply(const struct sm_auth_fields *f, struct sm_auth_reply *ret);

/* True when S may be sent as a field value: no TAB, CR, LF or other
 * control byte (a DB value or reason that breaks the framing is refused). */
bool sm_auth_value_ok(const char *s);

/* Strict base64 (RFC 4648 alphabet, padded, no whitespace) of at most
 * SM_AUTH_MAX_SASL decoded bytes. "" and "=" are the empty payload. On 0,
 * RET (malloc'd, NUL-terminated, may contain NULs) holds RET_LEN bytes;
 * free it with sm_auth_free_secret(). -EINVAL for garbage, -E2BIG when too
 * long, -ENOMEM. */
int sm_auth_b64_decode(const char *in, char **ret, size_t *ret_len);

/* Base64 of LEN bytes into a new NUL-terminated string. 0 or -ENOMEM. */
int sm_auth_b64_encode(const void *in, size_t len, char **ret);

/* Zeroes LEN bytes (or strlen when LEN is SIZE_MAX) of P and frees it. */
void sm_auth_free_secret(char *p, size_t len);

/* SASL PLAIN (RFC 4616): "authzid NUL authcid NUL passwd" of LEN bytes,
 * split in place. -EINVAL: not exactly two NULs, empty authcid or
 * password; -EPERM: an authzid that differs from authcid (we do not let
 * one user act as another; the three pointers are set, for the log). On 0
 * RET_AUTHZID may be "". */
int sm_sasl_plain_parse(char *data, size_t len, const char **ret_authzid,
                        const char **ret_authcid, const char **ret_passwd);

/* SASL PLAIN payload for USER/PASSWORD (empty authzid), base64-encoded.
 * 0, -EINVAL (NUL-free strings required, size limit) or -ENOMEM. */
int sm_sasl_plain_encode(const char *user, const char *password, char **ret_b64);

/* One SASL LOGIN answer (user name or password) of LEN decoded bytes: a
 * NUL inside or an empty value is -EINVAL. */
int sm_sasl_login_check(const char *data, size_t len);

/* The LOGIN challenges, as Dovecot and most servers send them. */
#define SM_SASL_LOGIN_USER "Username:"
#define SM_SASL_LOGIN_PASS "Password:"

/* True when IP (text) is a loopback address (127.0.0.0/8, ::1,
 * ::ffff:127.x.y.z). */
bool sm_auth_ip_is_loopback(const char *ip);

/* Dovecot's disable_plaintext_auth policy for PLAIN/LOGIN: allowed when the
 * request is secured (TLS), when ALLOW_PLAINTEXT is set, when RIP is absent
 * (the client is a local process that authenticates no remote peer), when
 * RIP is loopback, or when RIP equals LIP (client on the same host). */
bool sm_auth_plaintext_allowed(const struct sm_auth_request *r, bool allow_plaintext);
