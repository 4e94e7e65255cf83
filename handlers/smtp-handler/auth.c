/* auth.c — AUTH PLAIN and LOGIN (RFC 4954), relayed to auth-checker.
 *
 * The handler never sees a password hash (DESIGN.md "Who may read what"):
 * it passes the client's base64 lines to auth-checker over the Dovecot auth
 * protocol (common/auth-client.h) and gets the canonical user name back.
 * auth-checker delays every failed login ([auth] failure_delay); here the
 * failures of one session are counted and the session is closed after
 * [auth] max_attempts. */
#include <ctype.h>
#include <strings.h>

#include "auth-client.h"
#include "config.h"
#include "io.h"
#include "log.h"
#include "macro.h"
#include "smtp.h"

static bool may_auth_here(const struct smtp_session *s) {
    return s->mode == SMTP_MODE_SUBMISSION || s->cfg->smtp_mx_auth;
}

bool smtp_auth_offered(const struct smtp_session *s) {
    return may_auth_here(s) && (sm_io_is_tls(s->io) || s->cfg->auth_allow_plaintext);
}

static void auth_failed(struct smtp_session *s, const char *user_hint, const char *reason) {
    char e1[256], e2[256];
    s->auth_failures++;
    log_info("event=auth_failed user=%s reason=\"%s\" failures=%u",
             sm_log_escape(user_hint ? user_hint : "", 100, e1, sizeof e1),
             sm_log_escape(reason ? reason : "", 200, e2, sizeof e2), s->auth_failures);
    smtp_reply(s, "535 5.7.8 Error: authentication failed");
    if (s->auth_failures >= s->cfg->auth_max_attempts) {
        smtp_reply(s, "421 4.7.0 Too many failed authentication attempts, closing connection");
        s->quit = true;
    }
}

void smtp_cmd_auth(struct smtp_session *s, const char *arg) {
    if (!may_auth_here(s)) { smtp_bad(s, "503 5.5.1 Error: authentication not enabled"); return; }
    if (!smtp_auth_offered(s))
        { smtp_bad(s, "538 5.7.11 Encryption required for requested authentication mechanism"); return; }
    if (s->auth_user) { smtp_bad(s, "503 5.5.1 Error: already authenticated"); return; }
    if (s->mail_from) { smtp_bad(s, "503 5.5.1 Error: MAIL transaction in progress"); return; }
    if (!arg || !*arg) { smtp_bad(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]"); return; }

    _cleanup_free_ char *copy = strdup(arg);
    if (!copy) { smtp_reply(s, "454 4.7.0 Temporary authentication failure"); return; }
    char *ir = strchr(copy, ' ');
    if (ir) *ir++ = 0;
    for (char *p = copy; *p; p++) *p = (char)toupper((unsigned char)*p);
    if (strcasecmp(copy, "PLAIN") && strcasecmp(copy, "LOGIN"))
        { smtp_bad(s, "504 5.5.4 Unrecognized authentication type"); return; }
    if (ir && (!*ir || strchr(ir, ' ')))
        { smtp_bad(s, "501 5.5.2 Syntax: AUTH mechanism [initial-response]"); return; }

    struct sm_auth_client *c = NULL;
    int r = sm_auth_connect(s->cfg->auth_socket, (unsigned)s->cfg->auth_timeout, &c);
    if (r < 0) {
        log_warning("event=auth_unavailable socket=%s error=\"%s\"", s->cfg->auth_socket, strerror(-r));
        smtp_reply(s, "454 4.7.0 Temporary authentication failure");
        return;
    }
    const char *rip = s->conn.is_socket && !s->conn.is_unix ? s->conn.peer_ip : NULL;
    const char *lip = s->conn.is_socket && !s->conn.is_unix ? s->conn.local_ip : NULL;
    struct sm_auth_result res = {0};
    /* RFC 4954: "=" is an empty initial response; auth-client takes it. */
    r = sm_auth_begin(c, copy, "smtp", ir, sm_io_is_tls(s->io), rip, lip, &res);
    size_t max = (size_t)s->cfg->auth_max_line;
    sm_io_set_timeout(s->io, (unsigned)s->cfg->auth_timeout);
    while (r == 0 && res.kind == SM_AUTH_REPLY_CONT) {
        sm_io_printf(s->io, "334 %s\r\n", res.challenge ? res.challenge : "");
        struct sm_line l;
        int g = sm_io_getline(s->io, max, &l);
        if (g == SM_IO_TOOLONG) {
            smtp_bad(s, "500 5.5.6 Authentication exchange line is too long");
            goto out;
        }
        if (g != SM_IO_OK) {
            s->quit = true;
            goto out;
        }
        if (l.len == 1 && l.data[0] == '*') {
            smtp_bad(s, "501 5.0.0 Authentication cancelled");
            goto out;
        }
        if (memchr(l.data, 0, l.len) || memchr(l.data, '\t', l.len)) {
            auth_failed(s, NULL, "bad characters in response");
            goto out;
        }
        sm_auth_result_clear(&res);
        r = sm_auth_continue(c, l.data, &res);
    }
    if (r < 0) {
        log_warning("event=auth_unavailable error=\"%s\"", strerror(-r));
        smtp_reply(s, "454 4.7.0 Temporary authentication failure");
    } else if (res.kind == SM_AUTH_REPLY_OK && res.user) {
        s->auth_user = TAKE_PTR(res.user);
        char e1[256];
        log_info("event=auth_ok user=%s mech=%s", sm_log_escape(s->auth_user, 200, e1, sizeof e1), copy);
        smtp_reply(s, "235 2.7.0 Authentication successful");
    } else if (res.kind == SM_AUTH_REPLY_FAIL && res.temp) {
        log_warning("event=auth_tempfail reason=\"%s\"", res.reason ? res.reason : "");
        smtp_reply(s, "454 4.7.0 Temporary authentication failure");
    } else {
        auth_failed(s, res.user, res.reason);
    }
out:
    sm_io_set_timeout(s->io, (unsigned)s->cfg->smtp.timeout_command);
    sm_auth_result_clear(&res);
    sm_auth_close(c);
}
