/* pop3.c — the POP3 state machine and its commands; see pop3.h. */
#include "pop3.h"

#include <ctype.h>
#include <fcntl.h>
#include <strings.h>

#include "auth-client.h"
#include "config.h"
#include "io.h"
#include "log.h"
#include "macro.h"
#include "maildir.h"
#include "tls.h"

/* Longest message number we parse (RFC 1939 numbers are < 2^32). */
#define MAX_NUMBER_DIGITS 10

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

static void cmd_capa(struct pop3_session *s, char *arg _unused_) {
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

static void cmd_user(struct pop3_session *s, char *arg) {
    if (!plaintext_ok(s)) { bad(s, plaintext_refused); return; }
    if (!arg || !*arg) { bad(s, "-ERR Syntax: USER name"); return; }
    free(s->user_arg);
    s->user_arg = strdup(arg);
    reply(s, s->user_arg ? "+OK" : "-ERR [SYS/TEMP] Out of memory.");
}

static void cmd_pass(struct pop3_session *s, char *arg) {
    if (!plaintext_ok(s)) { bad(s, plaintext_refused); return; }
    if (!s->user_arg) { bad(s, "-ERR No USER given."); return; }
    _cleanup_free_ char *user = TAKE_PTR(s->user_arg);
    if (!arg) arg = (char *)"";
    char *canon = NULL;
    int r = sm_auth_plain_login(s->cfg, "pop3", user, arg, sm_io_is_tls(s->io), rip(s), lip(s), &canon);
    explicit_zero(arg, strlen(arg));
    if (r == SM_FOUND) logged_in(s, canon, "USER");
    else if (r == SM_TEMPFAIL) {
        log_warning("event=auth_tempfail socket=%s", s->cfg->auth_socket);
        reply(s, "-ERR [SYS/TEMP] Temporary authentication failure, try again later.");
    } else login_failed(s, user, "refused");
}

static void cmd_auth(struct pop3_session *s, char *arg) {
    if (!arg || !*arg) {
        /* Pre-RFC 5034 clients list mechanisms this way. */
        reply(s, "+OK");
        if (plaintext_ok(s)) { reply(s, "PLAIN"); reply(s, "LOGIN"); }
        reply(s, ".");
        return;
    }
    if (!plaintext_ok(s)) { bad(s, plaintext_refused); return; }
    char *ir = strchr(arg, ' ');
    if (ir) *ir++ = 0;
    for (char *p = arg; *p; p++) *p = (char)toupper((unsigned char)*p);
    if (!streq(arg, "PLAIN") && !streq(arg, "LOGIN")) { bad(s, "-ERR Unsupported authentication mechanism."); return; }
    /* ARG points into the line buffer, which the exchange below reuses. */
    const char *mech = streq(arg, "PLAIN") ? "PLAIN" : "LOGIN";
    if (ir && (!*ir || strchr(ir, ' '))) { bad(s, "-ERR Syntax: AUTH mechanism [initial-response]"); return; }

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

static void cmd_stls(struct pop3_session *s, char *arg _unused_) {
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

/* A message number argument: 1..count, digits only. NULL when bad (the
 * reply is sent). */
static struct pop3_msg *msg_arg(struct pop3_session *s, const char *a, bool allow_deleted) {
    size_t n = a ? strlen(a) : 0;
    if (!n) { bad(s, "-ERR Message number required."); return NULL; }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)a[i]) || i >= MAX_NUMBER_DIGITS) {
            bad(s, "-ERR Invalid message number.");
            return NULL;
        }
        v = v * 10 + (uint64_t)(a[i] - '0');
    }
    if (v == 0 || v > s->mbox.count) {
        bad(s, "-ERR There's no message with that number.");
        return NULL;
    }
    struct pop3_msg *m = &s->mbox.msgs[v - 1];
    if (m->deleted && !allow_deleted) {
        reply(s, "-ERR Message is deleted.");
        return NULL;
    }
    return m;
}

/* Splits ARG at the first space: the rest into *REST (NULL if none). */
static char *split(char *arg, char **rest) {
    *rest = NULL;
    if (!arg) return NULL;
    char *sp = strchr(arg, ' ');
    if (sp) {
        *sp = 0;
        *rest = sp + 1;
    }
    return arg;
}

static void cmd_stat(struct pop3_session *s, char *arg) {
    if (arg) { bad(s, "-ERR Syntax: STAT"); return; }
    uint64_t n = 0, size = 0;
    for (size_t i = 0; i < s->mbox.count; i++)
        if (!s->mbox.msgs[i].deleted) { n++; size += s->mbox.msgs[i].size; }
    sm_io_printf(s->io, "+OK %llu %llu\r\n", (unsigned long long)n, (unsigned long long)size);
}

static void cmd_list_or_uidl(struct pop3_session *s, char *arg, bool uidl) {
    char *extra;
    split(arg, &extra);
    if (extra) { bad(s, uidl ? "-ERR Syntax: UIDL [msg]" : "-ERR Syntax: LIST [msg]"); return; }
    if (arg) {
        struct pop3_msg *m = msg_arg(s, arg, false);
        if (!m) return;
        size_t i = (size_t)(m - s->mbox.msgs) + 1;
        if (uidl) sm_io_printf(s->io, "+OK %zu %s\r\n", i, m->uidl);
        else sm_io_printf(s->io, "+OK %zu %llu\r\n", i, (unsigned long long)m->size);
        return;
    }
    reply(s, "+OK");
    for (size_t i = 0; i < s->mbox.count; i++) {
        struct pop3_msg *m = &s->mbox.msgs[i];
        if (m->deleted) continue;
        if (uidl) sm_io_printf(s->io, "%zu %s\r\n", i + 1, m->uidl);
        else sm_io_printf(s->io, "%zu %llu\r\n", i + 1, (unsigned long long)m->size);
    }
    reply(s, ".");
}

static void cmd_list(struct pop3_session *s, char *arg) { cmd_list_or_uidl(s, arg, false); }
static void cmd_uidl(struct pop3_session *s, char *arg) { cmd_list_or_uidl(s, arg, true); }

/* Sends the message: bare LF as CRLF, dot-stuffed, then ".". BODY_LINES
 * < 0: all; else the header, the blank line and that many body lines. */
static void send_message(struct pop3_session *s, struct pop3_msg *m, int64_t body_lines) {
    _cleanup_close_ int fd = pop3_mailbox_open_msg(&s->mbox, m);
    if (fd < 0) {
        char e1[256];
        log_warning("event=message_unreadable uid=%u path=%s error=\"%s\"", m->uid,
                    sm_log_escape(m->path, 200, e1, sizeof e1), strerror(-fd));
        reply(s, fd == -ENOENT ? "-ERR Message was removed by another session."
                               : "-ERR [SYS/TEMP] Message could not be read.");
        return;
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
            return;
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
}

static void cmd_retr(struct pop3_session *s, char *arg) {
    char *extra;
    split(arg, &extra);
    if (extra) { bad(s, "-ERR Syntax: RETR msg"); return; }
    struct pop3_msg *m = msg_arg(s, arg, false);
    if (m) send_message(s, m, -1);
}

static void cmd_top(struct pop3_session *s, char *arg) {
    char *lines, *extra;
    split(arg, &lines);
    split(lines, &extra);
    if (!lines || !*lines || extra) { bad(s, "-ERR Syntax: TOP msg lines"); return; }
    int64_t n = 0;
    for (const char *p = lines; *p; p++) {
        if (!isdigit((unsigned char)*p) || p - lines >= 18) { bad(s, "-ERR Invalid number of lines."); return; }
        n = n * 10 + (*p - '0');
    }
    struct pop3_msg *m = msg_arg(s, arg, false);
    if (m) send_message(s, m, n);
}

static void cmd_dele(struct pop3_session *s, char *arg) {
    char *extra;
    split(arg, &extra);
    if (extra) { bad(s, "-ERR Syntax: DELE msg"); return; }
    struct pop3_msg *m = msg_arg(s, arg, false);
    if (!m) return;
    m->deleted = true;
    reply(s, "+OK Marked to be deleted.");
}

static void cmd_noop(struct pop3_session *s, char *arg) {
    if (arg) { bad(s, "-ERR Syntax: NOOP"); return; }
    reply(s, "+OK");
}

static void cmd_rset(struct pop3_session *s, char *arg) {
    if (arg) { bad(s, "-ERR Syntax: RSET"); return; }
    for (size_t i = 0; i < s->mbox.count; i++) s->mbox.msgs[i].deleted = false;
    reply(s, "+OK");
}

static void cmd_quit(struct pop3_session *s, char *arg _unused_) {
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
    log_info("event=logout deleted=%zu failed=%zu", removed, failed);
    if (failed) sm_io_printf(s->io, "-ERR [SYS/TEMP] %zu messages could not be deleted.\r\n", failed);
    else sm_io_printf(s->io, "+OK Logging out, %zu messages deleted.\r\n", removed);
}

enum { IN_AUTH = 1, IN_TRANS = 2 };

struct command {
    const char *name;
    unsigned states;
    void (*run)(struct pop3_session *s, char *arg);
};

static const struct command commands[] = {
    { "CAPA", IN_AUTH | IN_TRANS, cmd_capa },
    { "USER", IN_AUTH, cmd_user },
    { "PASS", IN_AUTH, cmd_pass },
    { "AUTH", IN_AUTH, cmd_auth },
    { "STLS", IN_AUTH, cmd_stls },
    { "QUIT", IN_AUTH | IN_TRANS, cmd_quit },
    { "STAT", IN_TRANS, cmd_stat },
    { "LIST", IN_TRANS, cmd_list },
    { "RETR", IN_TRANS, cmd_retr },
    { "DELE", IN_TRANS, cmd_dele },
    { "NOOP", IN_TRANS, cmd_noop },
    { "RSET", IN_TRANS, cmd_rset },
    { "TOP", IN_TRANS, cmd_top },
    { "UIDL", IN_TRANS, cmd_uidl },
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
        if (memchr(l.data, 0, l.len)) { bad(s, "-ERR NUL in command."); continue; }
        char *line = l.data;
        /* RFC 1939: a keyword, then arguments separated by single spaces. */
        char *arg = strchr(line, ' ');
        if (arg) *arg++ = 0;
        if (arg && !*arg) arg = NULL;
        const struct command *c = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
            if (strcasecmp(line, commands[i].name) == 0) c = &commands[i];
        if (!c) { bad(s, "-ERR Unknown command."); continue; }
        unsigned st = s->state == POP3_TRANSACTION ? IN_TRANS : IN_AUTH;
        if (!(c->states & st)) {
            bad(s, st == IN_AUTH ? "-ERR Not logged in." : "-ERR Command not allowed after login.");
            continue;
        }
        c->run(s, arg);
    }
    sm_io_flush(s->io);
}
