/* lmtp.c — the LMTP command loop: parse, check state, act (RFC 2033).
 *
 * Commands are dispatched through a table that says whether LHLO must come
 * first (OpenSMTPD's check/proceed split, kept small). Replies are queued
 * and flushed by the reader before it blocks, which is what PIPELINING
 * needs. */
#include "lmtp.h"

#include "address.h"
#include "config.h"
#include "db.h"
#include "io.h"
#include "log.h"
#include "macro.h"
#include "resolve.h"
#include "smtp-command.h"
#include "smtp-data.h"

static void reply(struct lmtp_session *s, const char *line) {
    sm_io_printf(s->io, "%s\r\n", line);
}

static void free_rcpt(struct lmtp_rcpt *r) {
    free(r->address);
    for (size_t i = 0; i < r->n_mailboxes; i++) free(r->mailboxes[i]);
    free(r->mailboxes);
}

void lmtp_reset(struct lmtp_session *s) {
    free(s->mail_from);
    s->mail_from = NULL;
    for (size_t i = 0; i < s->n_rcpts; i++) free_rcpt(&s->rcpts[i]);
    free(s->rcpts);
    s->rcpts = NULL;
    s->n_rcpts = 0;
}

static void bad_command(struct lmtp_session *s, const char *line) {
    reply(s, line);
    if (++s->bad_commands >= s->cfg->lmtp.max_bad_commands) {
        reply(s, "421 4.7.0 Too many errors, closing connection");
        log_info("event=too_many_errors count=%u", s->bad_commands);
        s->quit = true;
    }
}

static void cmd_lhlo(struct lmtp_session *s, struct sm_smtp_cmd *c) {
    lmtp_reset(s);
    free(s->lhlo);
    s->lhlo = TAKE_PTR(c->arg);
    sm_io_printf(s->io,
                 "250-%s\r\n"
                 "250-PIPELINING\r\n"
                 "250-ENHANCEDSTATUSCODES\r\n"
                 "250-8BITMIME\r\n"
                 "250-SMTPUTF8\r\n"
                 "250 SIZE %llu\r\n",
                 s->hostname, (unsigned long long)s->cfg->lmtp.max_message_size);
}

static void cmd_mail(struct lmtp_session *s, struct sm_smtp_cmd *c) {
    if (s->mail_from) { bad_command(s, "503 5.5.1 Error: nested MAIL command"); return; }
    for (size_t i = 0; i < c->n_params; i++) {
        const struct sm_smtp_param *p = &c->params[i];
        if (streq(p->key, "SIZE")) {
            char *end;
            errno = 0;
            unsigned long long n = p->value ? strtoull(p->value, &end, 10) : 0;
            if (!p->value || !*p->value || *end || errno)
                { bad_command(s, "501 5.5.4 Syntax: SIZE=<number>"); return; }
            if (n > s->cfg->lmtp.max_message_size)
                { reply(s, "552 5.3.4 Message size exceeds fixed limit"); return; }
        } else if (streq(p->key, "BODY")) {
            if (!p->value || (strcasecmp(p->value, "7BIT") && strcasecmp(p->value, "8BITMIME")))
                { bad_command(s, "501 5.5.4 Syntax: BODY=7BIT or BODY=8BITMIME"); return; }
        } else if (streq(p->key, "SMTPUTF8")) {
            if (p->value) { bad_command(s, "501 5.5.4 Syntax: SMTPUTF8 takes no value"); return; }
        } else {
            { bad_command(s, "555 5.5.4 Unsupported MAIL parameter"); return; }
        }
    }
    s->mail_from = TAKE_PTR(c->path);
    reply(s, "250 2.1.0 Ok");
}

/* Resolves one recipient and answers RCPT for it. */
static void cmd_rcpt(struct lmtp_session *s, struct sm_smtp_cmd *c) {
    if (!s->mail_from) { bad_command(s, "503 5.5.1 Error: need MAIL command"); return; }
    if (c->n_params) { bad_command(s, "555 5.5.4 Unsupported RCPT parameter"); return; }
    if (s->n_rcpts >= s->cfg->lmtp.max_recipients)
        { reply(s, "452 4.5.3 Error: too many recipients"); return; }
    if (!strchr(c->path, '@'))
        { reply(s, "550 5.1.3 Recipient address must have a domain"); return; }

    if (!s->db) s->db = sm_db_new(s->cfg, SM_DB_LOOKUP);
    if (!s->db) { reply(s, "451 4.3.0 Out of memory"); return; }

    char err[512] = "", esc[256];
    struct sm_resolved res = {0};
    int r = sm_resolve(s->db, s->cfg, c->path, &res, err, sizeof err);
    const char *addr = sm_log_escape(c->path, 200, esc, sizeof esc);
    if (r == SM_TEMPFAIL) {
        log_warning("event=rcpt_tempfail rcpt=%s reason=\"%s\"", addr, err);
        sm_io_printf(s->io, "451 4.3.0 <%s>: temporary lookup failure, try again later\r\n", c->path);
    } else if (r == SM_NOTFOUND) {
        log_info("event=rcpt_unknown rcpt=%s note=\"%s\"", addr, res.note ? res.note : "");
        sm_io_printf(s->io, "550 5.1.1 <%s>: user unknown\r\n", c->path);
    } else if (res.n_remote) {
        /* Outbound delivery is not built yet: say so and let the MTA in
         * front bounce or route it, rather than drop part of an alias. */
        log_info("event=rcpt_remote rcpt=%s remote=%zu", addr, res.n_remote);
        sm_io_printf(s->io, res.n_mailboxes
                     ? "550 5.1.2 <%s>: alias expands to remote addresses, which this server does not forward\r\n"
                     : "550 5.1.2 <%s>: not a local domain; relay it through your MTA\r\n",
                     c->path);
    } else {
        struct lmtp_rcpt *n = realloc(s->rcpts, (s->n_rcpts + 1) * sizeof *n);
        if (!n) {
            sm_resolved_free(&res);
            { reply(s, "451 4.3.0 Out of memory"); return; }
        }
        s->rcpts = n;
        n[s->n_rcpts++] = (struct lmtp_rcpt){
            .address = TAKE_PTR(c->path),
            .mailboxes = TAKE_PTR(res.mailboxes),
            .n_mailboxes = res.n_mailboxes,
        };
        res.n_mailboxes = 0;
        reply(s, "250 2.1.5 Ok");
    }
    sm_resolved_free(&res);
}

static void cmd_data(struct lmtp_session *s, struct sm_smtp_cmd *c) {
    (void)c;
    if (!s->mail_from) { bad_command(s, "503 5.5.1 Error: need MAIL command"); return; }
    if (!s->n_rcpts) { bad_command(s, "503 5.5.1 Error: no valid recipients"); return; }

    _cleanup_close_ int spool = lmtp_spool_open(s);
    reply(s, "354 End data with <CR><LF>.<CR><LF>");
    sm_io_set_timeout(s->io, (unsigned)s->cfg->lmtp.timeout_data);
    struct sm_data_result d;
    int r = sm_data_read(s->io, spool, s->cfg->lmtp.max_message_size, &d);
    sm_io_set_timeout(s->io, (unsigned)s->cfg->lmtp.timeout_command);
    if (r != SM_IO_OK) {
        /* The client is gone: nothing was acknowledged, the anonymous spool
         * file disappears with its descriptor. */
        log_info("event=data_aborted reason=%s", r == SM_IO_TIMEOUT ? "timeout" : "disconnect");
        if (r == SM_IO_TIMEOUT) reply(s, "421 4.4.2 Timeout waiting for data, closing connection");
        s->quit = true;
        return;
    }
    const char *why = NULL;
    if (spool < 0 && !d.write_error) d.write_error = -spool;
    if (d.too_big) why = "552 5.3.4 Message size exceeds fixed limit";
    else if (d.nul) why = "554 5.6.0 Message contains NUL bytes";
    else if (d.bare_lf || d.bare_cr)
        why = "554 5.6.0 Message contains a bare CR or LF; lines must end with CRLF";
    else if (d.write_error)
        why = d.write_error == ENOSPC || d.write_error == EDQUOT
              ? "452 4.3.1 Insufficient system storage" : "451 4.3.0 Local error writing the message";
    if (why) {
        log_info("event=data_refused reason=\"%s\" size=%llu", why, (unsigned long long)d.size);
        for (size_t i = 0; i < s->n_rcpts; i++) reply(s, why);
    } else {
        lmtp_deliver(s, spool, d.size);
    }
    lmtp_reset(s);
}

static void cmd_rset(struct lmtp_session *s, struct sm_smtp_cmd *c) {
    (void)c;
    lmtp_reset(s);
    reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct lmtp_session *s, struct sm_smtp_cmd *c) {
    (void)c;
    reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct lmtp_session *s, struct sm_smtp_cmd *c) {
    (void)c;
    reply(s, "221 2.0.0 Bye");
    s->quit = true;
}

static void cmd_vrfy(struct lmtp_session *s, struct sm_smtp_cmd *c) {
    (void)c;
    bad_command(s, "502 5.5.1 VRFY and EXPN are not available");
}

static void cmd_helo(struct lmtp_session *s, struct sm_smtp_cmd *c) {
    (void)c;
    bad_command(s, "500 5.5.1 This is LMTP: use LHLO");
}

static const struct {
    enum sm_smtp_verb verb;
    bool needs_lhlo;
    void (*run)(struct lmtp_session *, struct sm_smtp_cmd *);
} commands[] = {
    {SM_SMTP_LHLO, false, cmd_lhlo},
    {SM_SMTP_HELO, false, cmd_helo},
    {SM_SMTP_EHLO, false, cmd_helo},
    {SM_SMTP_MAIL, true, cmd_mail},
    {SM_SMTP_RCPT, true, cmd_rcpt},
    {SM_SMTP_DATA, true, cmd_data},
    {SM_SMTP_RSET, false, cmd_rset},
    {SM_SMTP_NOOP, false, cmd_noop},
    {SM_SMTP_QUIT, false, cmd_quit},
    {SM_SMTP_VRFY, false, cmd_vrfy},
    {SM_SMTP_EXPN, false, cmd_vrfy},
};

static void dispatch(struct lmtp_session *s, const char *line, size_t len) {
    struct sm_smtp_cmd c = {0};
    const char *err = NULL;
    if (sm_smtp_parse(line, len, SM_ADDR_UTF8, &c, &err) < 0) {
        bad_command(s, err);
    } else {
        size_t i;
        for (i = 0; i < ARRAY_SIZE(commands); i++)
            if (commands[i].verb == c.verb) break;
        if (i == ARRAY_SIZE(commands)) bad_command(s, "502 5.5.1 Command not implemented");
        else if (commands[i].needs_lhlo && !s->lhlo) bad_command(s, "503 5.5.1 Error: send LHLO first");
        else commands[i].run(s, &c);
    }
    sm_smtp_cmd_clear(&c);
}

void lmtp_run(struct lmtp_session *s) {
    sm_io_set_timeout(s->io, (unsigned)s->cfg->lmtp.timeout_command);
    sm_io_printf(s->io, "220 %s LMTP sockmail ready\r\n", s->hostname);
    while (!s->quit) {
        struct sm_line l;
        int r = sm_io_getline(s->io, s->cfg->lmtp.max_line, &l);
        if (r == SM_IO_TOOLONG) {
            bad_command(s, "500 5.5.2 Line too long");
            continue;
        }
        if (r == SM_IO_TIMEOUT) {
            sm_io_printf(s->io, "421 4.4.2 %s Timeout, closing connection\r\n", s->hostname);
            log_info("event=timeout");
            break;
        }
        if (r != SM_IO_OK) break;
        dispatch(s, l.data, l.len);
    }
    sm_io_flush(s->io);
    log_info("event=disconnect");
}
