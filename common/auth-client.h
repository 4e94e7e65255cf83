/* auth-client.h — the client side of auth-checker's protocol, for the
 * handlers that authenticate their clients (smtp, imap, pop3).
 *
 * DESIGN.md "Who may read what": only auth-checker reads password hashes.
 * A handler relays its client's SASL exchange over auth-checker's UNIX
 * socket (cfg->auth_socket) with the Dovecot auth protocol
 * (auth-protocol.h) and gets back the canonical user name, so it needs no
 * database access for login. Every read and write is bounded by the
 * timeout given at connect; the library never logs.
 *
 * Relaying a client's exchange step by step:
 *
 *     struct sm_auth_client *c;
 *     if (sm_auth_connect(cfg->auth_socket, cfg->auth_timeout, &c) < 0) -> 454/NO [UNAVAILABLE]
 *     if (!sm_auth_has_mech(c, "PLAIN")) ...
 *     struct sm_auth_result r = {0};
 *     int e = sm_auth_begin(c, "PLAIN", "smtp", ir_b64_or_NULL, tls, rip, lip, &r);
 *     while (e == 0 && r.kind == SM_AUTH_REPLY_CONT) {
 *         send "334 " r.challenge, read the client's base64 line into resp;
 *         e = sm_auth_continue(c, resp, &r);
 *     }
 *     e < 0             -> temporary failure (connection lost / protocol error)
 *     r.kind == OK      -> logged in as r.user
 *     r.kind == FAIL    -> r.temp ? temporary : refused (r.reason for the log)
 *     sm_auth_result_clear(&r); sm_auth_close(c);
 *
 * Or, for a user name and password already in hand (POP3 USER/PASS,
 * IMAP LOGIN): sm_auth_plain_login(). */
#pragma once

#include <stdbool.h>

#include "auth-protocol.h"

struct sm_config;
struct sm_auth_client;

/* Longest line the client accepts from the server (Dovecot's limit). */
#define SM_AUTH_CLIENT_MAX_LINE 16384u

/* Connects to the UNIX socket PATH, sends VERSION and CPID and reads the
 * server's handshake up to DONE, every step within TIMEOUT seconds (0:
 * none). -EPROTO when the server's VERSION major is not 1 or the handshake
 * is malformed, -ETIMEDOUT, -ECONNREFUSED/-ENOENT/... from connect(). */
int sm_auth_connect(const char *path, unsigned timeout, struct sm_auth_client **ret);

/* Closes the connection and frees C (NULL is fine). */
void sm_auth_close(struct sm_auth_client *c);

/* True when the server announced mechanism MECH (case-insensitive). */
bool sm_auth_has_mech(const struct sm_auth_client *c, const char *mech);

/* The announced mechanisms, space-separated ("PLAIN LOGIN"), for EHLO or
 * CAPABILITY. Valid until sm_auth_close(). */
const char *sm_auth_mech_list(const struct sm_auth_client *c);

/* One answer of the server; strings are malloc'd, NULL when absent. */
struct sm_auth_result {
    enum sm_auth_reply_kind kind;
    char *user;       /* OK: the canonical user name */
    char *challenge;  /* CONT: base64 to relay to the client ("" = empty) */
    char *reason;     /* FAIL: for the log */
    bool temp;        /* FAIL: temporary (database down) */
};

/* Frees the strings of R and zeroes it. */
void sm_auth_result_clear(struct sm_auth_result *r);

/* Starts a request: MECH, SERVICE ("smtp", "imap", "pop3"), the client's
 * initial response in base64 (NULL: none; "" or "=": empty), whether the
 * client connection is TLS, and the client's and our IP (NULL: omitted).
 * On 0, RET holds the server's answer (clear it before reuse). A negative
 * errno means the connection is unusable: treat as a temporary failure.
 * -EINVAL: an argument contains TAB/LF, or a request is still running. */
int sm_auth_begin(struct sm_auth_client *c, const char *mech, const char *service,
                  const char *initial_b64, bool secured, const char *rip, const char *lip,
                  struct sm_auth_result *ret);

/* Sends the client's base64 answer to the last CONT; as sm_auth_begin. */
int sm_auth_continue(struct sm_auth_client *c, const char *response_b64, struct sm_auth_result *ret);

/* Checks USER/PASSWORD with one PLAIN request on a fresh connection to
 * cfg->auth_socket (timeout cfg->auth_timeout). SM_FOUND: accepted, and
 * RET_USER (if not NULL) gets the canonical name (malloc'd); SM_NOTFOUND:
 * refused; SM_TEMPFAIL: auth-checker unreachable, database down, or a
 * protocol error. The failure delay is auth-checker's, so this call takes
 * that long on a refusal. */
int sm_auth_plain_login(const struct sm_config *cfg, const char *service, const char *user,
                        const char *password, bool secured, const char *rip, const char *lip,
                        char **ret_user);
