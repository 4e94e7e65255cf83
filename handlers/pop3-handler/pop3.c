/* pop3.c — the POP3 state machine and its commands; see pop3.h. */
#include "pop3.h"

#include <fcntl.h>
#include <strings.h>

#include "auth-client.h"
#include "config.h"
#include "io.h"
#include "log.h"
#include "macro.h"
#include "maildir.h"
#include "pop3-command.h"
#include "tls.h"

static void reply(struct pop3_session *s, const char *line) { sm_io_printf(s->io, "%s\r\n", line); }

static void bad(struct pop3_session *s, const char *line) {
    reply(s, line);
    if (++s->bad_commands >= s->cfg->pop3.max_bad_commands) {
        reply(s, "-ERR Too many bad commands, closing connection.");
        s->quit = true;
    }
}

static bool plaintext_ok(const struct pop3_session *s) {
    return sm_io_is_tls(s->io) || s->cfg->auth_allow_plaintext;
}

static bool stls_offered(const struct pop3_session *s) {
    return s->state == POP3_AUTHORIZATION && !sm_io_is_tls(s->io) && *s->cfg->tls_cert &&
           *s->cfg->tls_key;
}

static void cmd_capa(struct pop3_session *s, struct sm_pop3_cmd *c _unused_) {
    reply(s, "+OK Capability list follows");
    reply(s, "CAPA");
    reply(s, "TOP");
    reply(s, "UIDL");
    reply(s, "RESP-CODES");
    reply(s, "AUTH-RESP-CODE");
    reply(s, "PIPELINING");
    if (s->state == POP3_AUTHORIZATION && plaintext_ok(s)) {
        reply(s, "USER");
        reply(s, "SASL PLAIN LOGIN");
    }
    if (stls_offered(s)) reply(s, "STLS");
    reply(s, "IMPLEMENTATION sockmail");
    reply(s, ".");
}

/* After auth-checker accepted USER: open the mailbox, enter TRANSACTION. */
static void logged_in(struct pop3_session *s, char *user, const char *mech) {
    char e1[256];
    _cleanup_free_ char *dir = NULL;
    int r = sm_maildir_path(s->cfg->mail_location, user, &dir);
    if (r < 0) {
        log_error("event=mailbox_path_error user=%s error=\"%s\"",
                  sm_log_escape(user, 200, e1, sizeof e1), strerror(-r));
        reply(s, "-ERR [SYS/PERM] Mailbox unavailable.");
        free(user);
        return;
    }
    r = sm_maildir_create(dir);
    if (r >= 0) r = pop3_mailbox_open(dir, (unsigned)s->cfg->pop3_lock_timeout, &s->mbox);
    if (r < 0) {
        log_error("event=mailbox_error user=%s error=\"%s\"",
                  sm_log_escape(user, 200, e1, sizeof e1), strerror(-r));
        reply(s, r == -ETIMEDOUT ? "-ERR [SYS/TEMP] Mailbox is locked by another process, try again later."
                                 : "-ERR [SYS/TEMP] Mailbox unavailable, try again later.");
        free(user);
        s->quit = true;
        return;
    }
    s->user = user;
    s->state = POP3_TRANSACTION;
    log_info("event=login user=%s mech=%s messages=%zu", sm_log_escape(user, 200, e1, sizeof e1),
             mech, s->mbox.count);
    reply(s, "+OK Logged in.");
}

static void login_failed(struct pop3_session *s, const char *user, const char *reason) {
    char e1[256], e2[256];
    s->auth_failures++;
    log_info("event=auth_failed user=%s reason=\"%s\" failures=%u",
             sm_log_escape(user ? user : "", 100, e1, sizeof e1),
             sm_log_escape(reason ? reason : "", 200, e2, sizeof e2), s->auth_failures);
    reply(s, "-ERR [AUTH] Authentication failed.");
    if (s->auth_failures >= s->cfg->auth_max_attempts) {
        reply(s, "-ERR [AUTH] Too many failed logins, closing connection.");
        s->quit = true;
    }
}

static const char *rip(const struct pop3_session *s) {
    return s->conn.is_socket && !s->conn.is_unix ? s->conn.peer_ip : NULL;
}
static const char *lip(const struct pop3_session *s) {
    return s->conn.is_socket && !s->conn.is_unix ? s->conn.local_ip : NULL;
}

static const char *const plaintext_refused =
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.";

static void cmd_user(struct pop3_session *s, struct sm_pop3_cmd *c) {
    if (!plaintext_ok(s)) { bad(s, plaintext_refused); return; }
    free(s->user_arg);
    s->user_arg = strdup(c->arg);
    reply(s, s->user_arg ? "+OK" : "-ERR [SYS/TEMP] Out of memory.");
}

static void cmd_pass(struct pop3_session *s, struct sm_pop3_cmd *c) {
    if (!plaintext_ok(s)) { bad(s, plaintext_refused); return; }
    if (!s->user_arg) { bad(s, "-ERR No USER given."); return; }
    _cleanup_free_ char *user = TAKE_PTR(s->user_arg);
    char *canon = NULL;
    /* The parser's copy of the password is wiped by sm_pop3_cmd_clear(). */
    int r = sm_auth_plain_login(s->cfg, "pop3", user, c->arg, sm_io_is_tls(s->io), rip(s), lip(s), &canon);
    if (r == SM_FOUND) logged_in(s, canon, "USER");
    else if (r == SM_TEMPFAIL) {
        log_warning("event=auth_tempfail socket=%s", s->cfg->auth_socket);
        reply(s, "-ERR [SYS/TEMP] Temporary authentication failure, try again later.");
    } else login_failed(s, user, "refused");
}

static void cmd_auth(struct pop3_session *s, struct sm_pop3_cmd *cmd) {
    if (!cmd->arg) {
        /* Pre-RFC 5034 clients list mechanisms this way. */
        reply(s, "+OK");
        if (plaintext_ok(s)) { reply(s, "PLAIN"); reply(s, "LOGIN"); }
        reply(s, ".");
        return;
    }
    if (!plaintext_ok(s)) { bad(s, plaintext_refused); return; }
    /* The parser upper-cased the mechanism and checked the syntax. */
    if (!streq(cmd->arg, "PLAIN") && !streq(cmd->arg, "LOGIN")) { bad(s, "-ERR Unsupported authentication mechanism."); return; }
    const char *mech = streq(cmd->arg, "PLAIN") ? "PLAIN" : "LOGIN";
    const char *ir = cmd->initial_response;

    struct sm_auth_client *c = NULL;
    int r = sm_auth_connect(s->cfg->auth_socket, (unsigned)s->cfg->auth_timeout, &c);
    if (r < 0) {
        log_warning("event=auth_unavailable socket=%s error=\"%s\"", s->cfg->auth_socket, strerror(-r));
        reply(s, "-ERR [SYS/TEMP] Temporary authentication failure, try again later.");
        return;
    }
    struct sm_auth_result res = {0};
    r = sm_auth_begin(c, mech, "pop3", ir, sm_io_is_tls(s->io), rip(s), lip(s), &res);
    sm_io_set_timeout(s->io, (unsigned)s->cfg->auth_timeout);
    while (r == 0 && res.kind == SM_AUTH_REPLY_CONT) {
        sm_io_printf(s->io, "+ %s\r\n", res.challenge ? res.challenge : "");
        struct sm_line l;
        int g = sm_io_getline(s->io, (size_t)s->cfg->auth_max_line, &l);
        if (g == SM_IO_TOOLONG) { bad(s, "-ERR Authentication line too long."); goto out; }
        if (g != SM_IO_OK) { s->quit = true; goto out; }
        if (l.len == 1 && l.data[0] == '*') { bad(s, "-ERR Authentication aborted."); goto out; }
        if (memchr(l.data, 0, l.len) || memchr(l.data, '\t', l.len)) {
            login_failed(s, NULL, "bad characters in response");
            goto out;
        }
        sm_auth_result_clear(&res);
        r = sm_auth_continue(c, l.data, &res);
    }
    if (r < 0) {
        log_warning("event=auth_unavailable error=\"%s\"", strerror(-r));
        reply(s, "-ERR [SYS/TEMP] Temporary authentication failure, try again later.");
    } else if (res.kind == SM_AUTH_REPLY_OK && res.user) {
        logged_in(s, TAKE_PTR(res.user), mech);
    } else if (res.kind == SM_AUTH_REPLY_FAIL && res.temp) {
        log_warning("event=auth_tempfail reason=\"%s\"", res.reason ? res.reason : "");
        reply(s, "-ERR [SYS/TEMP] Temporary authentication failure, try again later.");
    } else {
        login_failed(s, res.user, res.reason);
    }
out:
    sm_io_set_timeout(s->io, (unsigned)s->cfg->pop3.timeout_command);
    sm_auth_result_clear(&res);
    sm_auth_close(c);
}

static void cmd_stls(struct pop3_session *s, struct sm_pop3_cmd *c _unused_) {
    if (sm_io_is_tls(s->io)) { bad(s, "-ERR TLS is already active."); return; }
    if (!stls_offered(s)) { reply(s, "-ERR TLS support isn't enabled."); return; }
    char err[256];
    if (!s->tls && sm_tls_server_new(s->cfg, &s->tls, err, sizeof err) < 0) {
        s->tls = NULL;
        log_error("event=tls_config_error reason=\"%s\"", err);
        reply(s, "-ERR [SYS/TEMP] TLS not available due to a local problem.");
        return;
    }
    reply(s, "+OK Begin TLS negotiation now.");
    if (sm_io_flush(s->io) < 0) { s->quit = true; return; }
    /* RFC 2595 / CVE-2011-0411: nothing sent before the handshake counts. */
    size_t dropped = sm_io_discard_input(s->io);
    if (dropped) log_info("event=stls_pipelined_discarded bytes=%zu", dropped);
    if (sm_tls_start(s->tls, s->io, err, sizeof err) < 0) {
        log_info("event=tls_failed reason=\"%s\"", err);
        s->quit = true;
        return;
    }
    free(s->user_arg);
    s->user_arg = NULL;
    char desc[256];
    log_info("event=stls %s", sm_tls_describe(s->io, desc, sizeof desc));
}

/* The message C names (the parser checked 1..SM_POP3_MAX_MSG). NULL when
 * it is above the count or deleted (the reply is sent). */
static struct pop3_msg *msg_arg(struct pop3_session *s, const struct sm_pop3_cmd *c) {
    if (c->msg == 0 || c->msg > s->mbox.count) {
        bad(s, "-ERR There's no message with that number.");
        return NULL;
    }
    struct pop3_msg *m = &s->mbox.msgs[c->msg - 1];
    if (m->deleted) {
        reply(s, "-ERR Message is deleted.");
        return NULL;
    }
    return m;
}

static void cmd_stat(struct pop3_session *s, struct sm_pop3_cmd *c _unused_) {
    uint64_t n = 0, size = 0;
    for (size_t i = 0; i < s->mbox.count; i++)
        if (!s->mbox.msgs[i].deleted) { n++; size += s->mbox.msgs[i].size; }
    sm_io_printf(s->io, "+OK %llu %llu\r\n", (unsigned long long)n, (unsigned long long)size);
}

static void cmd_list_or_uidl(struct pop3_session *s, struct sm_pop3_cmd *c, bool uidl) {
    if (c->has_msg) {
        struct pop3_msg *m = msg_arg(s, c);
        if (!m) return;
        size_t i = (size_t)(m - s->mbox.msgs) + 1;
        char buf[17];
        if (uidl) sm_io_printf(s->io, "+OK %zu %s\r\n", i, pop3_msg_uidl(m, s->mbox.uidvalidity, buf));
        else sm_io_printf(s->io, "+OK %zu %llu\r\n", i, (unsigned long long)m->size);
        return;
    }
    reply(s, "+OK");
    for (size_t i = 0; i < s->mbox.count; i++) {
        struct pop3_msg *m = &s->mbox.msgs[i];
        if (m->deleted) continue;
        char buf[17];
        if (uidl) sm_io_printf(s->io, "%zu %s\r\n", i + 1, pop3_msg_uidl(m, s->mbox.uidvalidity, buf));
        else sm_io_printf(s->io, "%zu %llu\r\n", i + 1, (unsigned long long)m->size);
    }
    reply(s, ".");
}

static void cmd_list(struct pop3_session *s, struct sm_pop3_cmd *c) { cmd_list_or_uidl(s, c, false); }
static void cmd_uidl(struct pop3_session *s, struct sm_pop3_cmd *c) { cmd_list_or_uidl(s, c, true); }

/* Sends the message: bare LF as CRLF, dot-stuffed, then ".". BODY_LINES
 * < 0: all; else the header, the blank line and that many body lines.
 * True when it went out whole. */
static bool send_message(struct pop3_session *s, struct pop3_msg *m, int64_t body_lines) {
    _cleanup_close_ int fd = pop3_mailbox_open_msg(&s->mbox, m);
    if (fd < 0) {
        char e1[256];
        log_warning("event=message_unreadable uid=%u path=%s error=\"%s\"", m->uid,
                    sm_log_escape(m->path, 200, e1, sizeof e1), strerror(-fd));
        reply(s, fd == -ENOENT ? "-ERR Message was removed by another session."
                               : "-ERR [SYS/TEMP] Message could not be read.");
        return false;
    }
    if (body_lines < 0) sm_io_printf(s->io, "+OK %llu octets\r\n", (unsigned long long)m->size);
    else reply(s, "+OK");
    char buf[65536];
    bool bol = true, in_body = false, prev_cr = false, done = false;
    bool line_empty = true;  /* the current line has had no byte but CR */
    int64_t left = body_lines;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            /* Mid-message: the client cannot tell; close without "." */
            log_warning("event=read_error uid=%u error=\"%s\"", m->uid, strerror(errno));
            s->quit = true;
            return false;
        }
        if (n == 0) break;
        size_t start = 0;
        for (size_t i = 0; i < (size_t)n && !done; i++) {
            char c = buf[i];
            if (bol && c == '.') {
                sm_io_write(s->io, buf + start, i - start);
                sm_io_write(s->io, ".", 1);
                start = i;
            }
            bol = false;
            if (c == '\n') {
                if (!prev_cr) {
                    sm_io_write(s->io, buf + start, i - start);
                    sm_io_write(s->io, "\r", 1);
                    start = i;
                }
                bol = true;
                if (body_lines >= 0) {
                    /* TOP: stop after the blank line when LEFT is 0, else
                     * after the LEFT-th body line. */
                    if (in_body) left--;
                    else if (line_empty) in_body = true;
                    if (in_body && left <= 0) {
                        sm_io_write(s->io, buf + start, i + 1 - start);
                        start = i + 1;
                        done = true;
                    }
                }
                line_empty = true;
            } else if (c != '\r') {
                line_empty = false;
            }
            prev_cr = c == '\r';
        }
        if (done) break;
        sm_io_write(s->io, buf + start, (size_t)n - start);
    }
    if (!bol) sm_io_write(s->io, "\r\n", 2);
    reply(s, ".");
    return true;
}

static void cmd_retr(struct pop3_session *s, struct sm_pop3_cmd *c) {
    struct pop3_msg *m = msg_arg(s, c);
    if (m && send_message(s, m, -1)) m->retrieved = true;
}

static void cmd_top(struct pop3_session *s, struct sm_pop3_cmd *c) {
    struct pop3_msg *m = msg_arg(s, c);
    if (m) (void)send_message(s, m, (int64_t)c->lines);
}

static void cmd_dele(struct pop3_session *s, struct sm_pop3_cmd *c) {
    struct pop3_msg *m = msg_arg(s, c);
    if (!m) return;
    m->deleted = true;
    reply(s, "+OK Marked to be deleted.");
}

static void cmd_noop(struct pop3_session *s, struct sm_pop3_cmd *c _unused_) { reply(s, "+OK"); }

static void cmd_rset(struct pop3_session *s, struct sm_pop3_cmd *c _unused_) {
    for (size_t i = 0; i < s->mbox.count; i++) s->mbox.msgs[i].deleted = false;
    reply(s, "+OK");
}

static void cmd_quit(struct pop3_session *s, struct sm_pop3_cmd *c _unused_) {
    s->quit = true;
    if (s->state != POP3_TRANSACTION) {
        reply(s, "+OK Logging out.");
        return;
    }
    /* UPDATE state: only now are messages removed. */
    size_t removed = 0, failed = 0;
    for (size_t i = 0; i < s->mbox.count; i++) {
        struct pop3_msg *m = &s->mbox.msgs[i];
        if (!m->deleted) continue;
        int r = pop3_mailbox_remove(&s->mbox, m);
        if (r < 0) {
            failed++;
            log_error("event=delete_failed uid=%u error=\"%s\"", m->uid, strerror(-r));
        } else {
            removed++;
        }
    }
    /* Then the rest leaves new/ for cur/, retrieved ones marked seen, as
     * Dovecot's POP3 leaves them (an IMAP client later sees the same). A
     * message that cannot be renamed is still there: logged, no error. */
    size_t settled = 0;
    for (size_t i = 0; s->cfg->pop3_mark_seen && i < s->mbox.count; i++) {
        struct pop3_msg *m = &s->mbox.msgs[i];
        if (m->deleted) continue;
        int r = pop3_mailbox_settle(&s->mbox, m, m->retrieved);
        if (r > 0) settled++;
        else if (r < 0)
            log_warning("event=flag_update_failed uid=%u error=\"%s\"", m->uid, strerror(-r));
    }
    log_info("event=logout deleted=%zu failed=%zu renamed=%zu", removed, failed, settled);
    if (failed) sm_io_printf(s->io, "-ERR [SYS/TEMP] %zu messages could not be deleted.\r\n", failed);
    else sm_io_printf(s->io, "+OK Logging out, %zu messages deleted.\r\n", removed);
}

enum { IN_AUTH = 1, IN_TRANS = 2 };

struct command {
    enum sm_pop3_verb verb;
    unsigned states;
    bool plaintext;  /* refused without TLS unless allowed (checked before the syntax) */
    void (*run)(struct pop3_session *s, struct sm_pop3_cmd *c);
};

static const struct command commands[] = {
    { SM_POP3_CAPA, IN_AUTH | IN_TRANS, false, cmd_capa },
    { SM_POP3_USER, IN_AUTH, true, cmd_user },
    { SM_POP3_PASS, IN_AUTH, true, cmd_pass },
    { SM_POP3_AUTH, IN_AUTH, false, cmd_auth },
    { SM_POP3_STLS, IN_AUTH, false, cmd_stls },
    { SM_POP3_QUIT, IN_AUTH | IN_TRANS, false, cmd_quit },
    { SM_POP3_STAT, IN_TRANS, false, cmd_stat },
    { SM_POP3_LIST, IN_TRANS, false, cmd_list },
    { SM_POP3_RETR, IN_TRANS, false, cmd_retr },
    { SM_POP3_DELE, IN_TRANS, false, cmd_dele },
    { SM_POP3_NOOP, IN_TRANS, false, cmd_noop },
    { SM_POP3_RSET, IN_TRANS, false, cmd_rset },
    { SM_POP3_TOP, IN_TRANS, false, cmd_top },
    { SM_POP3_UIDL, IN_TRANS, false, cmd_uidl },
};

void pop3_session_clear(struct pop3_session *s) {
    free(s->user_arg);
    free(s->user);
    s->user_arg = s->user = NULL;
    pop3_mailbox_clear(&s->mbox);
}

void pop3_run(struct pop3_session *s) {
    sm_io_set_timeout(s->io, (unsigned)s->cfg->pop3.timeout_command);
    reply(s, "+OK sockmail POP3 ready.");
    size_t max = (size_t)s->cfg->pop3.max_line;
    while (!s->quit) {
        struct sm_line l;
        int r = sm_io_getline(s->io, max > 2 ? max - 2 : max, &l);
        if (r == SM_IO_TOOLONG) { bad(s, "-ERR Line too long."); continue; }
        if (r == SM_IO_TIMEOUT) {
            reply(s, "-ERR Disconnected for inactivity.");
            log_info("event=timeout");
            break;
        }
        if (r != SM_IO_OK) {
            log_info("event=disconnect state=%s", s->state == POP3_TRANSACTION ? "transaction" : "authorization");
            break;
        }
        struct sm_pop3_cmd cmd;
        const char *err = NULL;
        int pr = sm_pop3_parse(l.data, l.len, max > 2 ? max - 2 : max, &cmd, &err);
        const struct command *c = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
            if (commands[i].verb == cmd.verb) c = &commands[i];
        unsigned st = s->state == POP3_TRANSACTION ? IN_TRANS : IN_AUTH;
        if (!c) bad(s, err ? err : "-ERR Unknown command.");
        else if (!(c->states & st))
            bad(s, st == IN_AUTH ? "-ERR Not logged in." : "-ERR Command not allowed after login.");
        else if (pr == -ENOMEM) reply(s, err);
        else if ((c->plaintext || (cmd.verb == SM_POP3_AUTH && pr < 0)) && !plaintext_ok(s))
            bad(s, plaintext_refused);
        else if (pr < 0) bad(s, err);
        else c->run(s, &cmd);
        sm_pop3_cmd_clear(&cmd);
    }
    sm_io_flush(s->io);
}
