/* smtp.c — the ESMTP command loop: parse, check state, act (RFC 5321).
 *
 * Commands are dispatched through a table that says whether HELO/EHLO
 * must come first (OpenSMTPD's check/proceed split, kept small). Replies
 * are queued and flushed by the reader before it blocks, which is what
 * PIPELINING (RFC 2920) needs. */
#include "smtp.h"

#include <ctype.h>
#include <strings.h>

#include "address.h"
#include "config.h"
#include "db.h"
#include "io.h"
#include "log.h"
#include "macro.h"
#include "resolve.h"
#include "smtp-command.h"
#include "tls.h"

void smtp_reply(struct smtp_session *s, const char *line) {
    sm_io_printf(s->io, "%s\r\n", line);
}

void smtp_bad(struct smtp_session *s, const char *line) {
    smtp_reply(s, line);
    if (++s->bad_commands >= s->cfg->smtp.max_bad_commands) {
        smtp_reply(s, "421 4.7.0 Too many errors, closing connection");
        log_info("event=too_many_errors count=%u", s->bad_commands);
        s->quit = true;
    }
}

static void free_strv(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

void smtp_reset(struct smtp_session *s) {
    free(s->mail_from);
    s->mail_from = NULL;
    free(s->ret);
    free(s->envid);
    s->ret = s->envid = NULL;
    s->smtputf8 = s->body8 = false;
    for (size_t i = 0; i < s->n_rcpts; i++) {
        struct smtp_rcpt *r = &s->rcpts[i];
        free(r->address);
        free_strv(r->mailboxes, r->n_mailboxes);
        free_strv(r->remote, r->n_remote);
        free(r->notify);
        free(r->orcpt);
    }
    free(s->rcpts);
    s->rcpts = NULL;
    s->n_rcpts = 0;
}

static bool is_ascii(const char *p) {
    for (; *p; p++)
        if ((unsigned char)*p >= 0x80) return false;
    return true;
}

/* RFC 3461 xtext: "+" HEX HEX or printable ASCII except "+" and "=". */
static bool valid_xtext(const char *v, size_t max) {
    size_t n = 0;
    for (const char *p = v; *p; p++, n++) {
        if (*p == '+') {
            if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2])) return false;
            p += 2;
        } else if (*p < '!' || *p > '~' || *p == '=') {
            return false;
        }
    }
    return n <= max;
}

static bool tls_active(const struct smtp_session *s) { return sm_io_is_tls(s->io); }

static bool starttls_offered(const struct smtp_session *s) {
    if (!*s->cfg->tls_cert || !*s->cfg->tls_key || tls_active(s)) return false;
    return s->mode == SMTP_MODE_SUBMISSION || s->cfg->smtp_mx_starttls;
}

static struct sm_db *db(struct smtp_session *s) {
    if (!s->db) s->db = sm_db_new(s->cfg, SM_DB_LOOKUP);
    return s->db;
}

static void cmd_helo(struct smtp_session *s, struct sm_smtp_cmd *c) {
    if (!c->arg || !*c->arg) { smtp_bad(s, "501 5.5.4 Syntax: HELO hostname"); return; }
    smtp_bdat_abort(s);
    smtp_reset(s);
    free(s->helo);
    s->helo = TAKE_PTR(c->arg);
    s->esmtp = c->verb == SM_SMTP_EHLO;
    if (!s->esmtp) {
        sm_io_printf(s->io, "250 %s\r\n", s->hostname);
        return;
    }
    sm_io_printf(s->io,
                 "250-%s\r\n"
                 "250-PIPELINING\r\n"
                 "250-SIZE %llu\r\n"
                 "250-8BITMIME\r\n"
                 "250-ENHANCEDSTATUSCODES\r\n"
                 "250-SMTPUTF8\r\n"
                 "250-CHUNKING\r\n"
                 "250-DSN\r\n",
                 s->hostname, (unsigned long long)s->max_size);
    if (starttls_offered(s)) smtp_reply(s, "250-STARTTLS");
    if (smtp_auth_offered(s)) smtp_reply(s, "250-AUTH PLAIN LOGIN");
    smtp_reply(s, "250 HELP");
}

static void cmd_starttls(struct smtp_session *s, struct sm_smtp_cmd *c) {
    if (c->arg) { smtp_bad(s, "501 5.5.4 Syntax: STARTTLS"); return; }
    if (tls_active(s)) { smtp_bad(s, "503 5.5.1 Error: TLS already active"); return; }
    if (!starttls_offered(s)) { smtp_reply(s, "454 4.7.0 TLS not available"); return; }
    char err[256];
    if (!s->tls && sm_tls_server_new(s->cfg, &s->tls, err, sizeof err) < 0) {
        s->tls = NULL;
        log_error("event=tls_config_error reason=\"%s\"", err);
        smtp_reply(s, "454 4.7.0 TLS not available due to local problem");
        return;
    }
    smtp_reply(s, "220 2.0.0 Ready to start TLS");
    if (sm_io_flush(s->io) < 0) { s->quit = true; return; }
    /* RFC 3207 §4.2 / CVE-2011-0411: nothing the client sent before the
     * handshake may be taken as a command after it. */
    size_t dropped = sm_io_discard_input(s->io);
    if (dropped) log_info("event=starttls_pipelined_discarded bytes=%zu", dropped);
    if (sm_tls_start(s->tls, s->io, err, sizeof err) < 0) {
        log_info("event=tls_failed reason=\"%s\"", err);
        s->quit = true;
        return;
    }
    char desc[256];
    log_info("event=starttls %s", sm_tls_describe(s->io, desc, sizeof desc));
    /* The session starts over (RFC 3207 §4.2). */
    smtp_bdat_abort(s);
    smtp_reset(s);
    free(s->helo);
    s->helo = NULL;
    free(s->auth_user);
    s->auth_user = NULL;
}

/* Submission: SENDER must be the user or an address that resolves to it
 * (Postfix's smtpd_sender_login_maps over the alias table). */
static int sender_allowed(struct smtp_session *s, const char *sender) {
    if (!*sender || strcasecmp(sender, s->auth_user) == 0) return SM_FOUND;
    if (!db(s)) return SM_TEMPFAIL;
    struct sm_resolved res = {0};
    char err[256];
    int r = sm_resolve(s->db, s->cfg, sender, &res, err, sizeof err);
    int ok = r == SM_TEMPFAIL ? SM_TEMPFAIL : SM_NOTFOUND;
    if (r == SM_FOUND)
        for (size_t i = 0; i < res.n_mailboxes; i++)
            if (strcasecmp(res.mailboxes[i], s->auth_user) == 0) ok = SM_FOUND;
    sm_resolved_free(&res);
    return ok;
}

static void cmd_mail(struct smtp_session *s, struct sm_smtp_cmd *c) {
    if (s->mail_from) { smtp_bad(s, "503 5.5.1 Error: nested MAIL command"); return; }
    if (s->mode == SMTP_MODE_SUBMISSION && !s->auth_user) {
        if (!tls_active(s) && !s->cfg->auth_allow_plaintext)
            smtp_bad(s, "530 5.7.0 Must issue a STARTTLS command first");
        else
            smtp_bad(s, "530 5.7.0 Authentication required");
        return;
    }
    bool utf8 = false, body8 = false;
    const char *ret = NULL, *envid = NULL;
    for (size_t i = 0; i < c->n_params; i++) {
        const struct sm_smtp_param *p = &c->params[i];
        if (streq(p->key, "SIZE")) {
            char *end;
            errno = 0;
            unsigned long long n = p->value ? strtoull(p->value, &end, 10) : 0;
            if (!p->value || !isdigit((unsigned char)*p->value) || *end || errno)
                { smtp_bad(s, "501 5.5.4 Syntax: SIZE=<number>"); return; }
            if (n > s->max_size)
                { smtp_reply(s, "552 5.3.4 Message size exceeds fixed limit"); return; }
        } else if (streq(p->key, "BODY")) {
            if (!p->value || (strcasecmp(p->value, "7BIT") && strcasecmp(p->value, "8BITMIME")))
                { smtp_bad(s, "501 5.5.4 Syntax: BODY=7BIT or BODY=8BITMIME"); return; }
            body8 = strcasecmp(p->value, "8BITMIME") == 0;
        } else if (streq(p->key, "SMTPUTF8")) {
            if (p->value) { smtp_bad(s, "501 5.5.4 Syntax: SMTPUTF8 takes no value"); return; }
            utf8 = true;
        } else if (streq(p->key, "RET")) {
            if (!p->value || (strcasecmp(p->value, "FULL") && strcasecmp(p->value, "HDRS")))
                { smtp_bad(s, "501 5.5.4 Syntax: RET=FULL or RET=HDRS"); return; }
            ret = p->value;
        } else if (streq(p->key, "ENVID")) {
            if (!p->value || !valid_xtext(p->value, 100))
                { smtp_bad(s, "501 5.5.4 Syntax: ENVID=<xtext of at most 100 characters>"); return; }
            envid = p->value;
        } else if (streq(p->key, "AUTH")) {
            /* RFC 4954 §5: accepted; we do not relay it, so it is not kept. */
            if (!p->value || !valid_xtext(p->value, 500))
                { smtp_bad(s, "501 5.5.4 Syntax: AUTH=<xtext>"); return; }
        } else {
            smtp_bad(s, "555 5.5.4 Unsupported MAIL parameter");
            return;
        }
    }
    if (!utf8 && !is_ascii(c->path))
        { smtp_reply(s, "553 5.6.7 Non-ASCII address requires SMTPUTF8"); return; }
    if (s->mode == SMTP_MODE_SUBMISSION || s->auth_user) {
        int r = s->auth_user ? sender_allowed(s, c->path) : SM_FOUND;
        if (r == SM_TEMPFAIL) { smtp_reply(s, "451 4.3.0 Temporary lookup failure, try again later"); return; }
        if (r != SM_FOUND) {
            char e1[256], e2[256];
            log_info("event=sender_refused user=%s sender=%s",
                     sm_log_escape(s->auth_user, 200, e1, sizeof e1),
                     sm_log_escape(c->path, 200, e2, sizeof e2));
            sm_io_printf(s->io, "553 5.7.1 <%s>: Sender address not owned by user %s\r\n",
                         c->path, s->auth_user);
            return;
        }
    }
    s->smtputf8 = utf8;
    s->body8 = body8;
    s->ret = ret ? strdup(ret) : NULL;
    s->envid = envid ? strdup(envid) : NULL;
    s->mail_from = TAKE_PTR(c->path);
    smtp_reply(s, "250 2.1.0 Ok");
}

static bool valid_notify(const char *v) {
    if (strcasecmp(v, "NEVER") == 0) return true;
    _cleanup_free_ char *copy = strdup(v);
    if (!copy) return false;
    char *save = NULL;
    int n = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save), n++)
        if (strcasecmp(t, "SUCCESS") && strcasecmp(t, "FAILURE") && strcasecmp(t, "DELAY"))
            return false;
    return n > 0 && v[strlen(v) - 1] != ',' && v[0] != ',';
}

/* ORCPT=addr-type;xtext (RFC 3461 §4.2). */
static bool valid_orcpt(const char *v) {
    const char *semi = strchr(v, ';');
    if (!semi || semi == v || !semi[1]) return false;
    for (const char *p = v; p < semi; p++)
        if (!isalnum((unsigned char)*p) && *p != '-') return false;
    return valid_xtext(semi + 1, 500);
}

/* RFC 5321 §4.5.1: <Postmaster> without a domain must be accepted. It is
 * postmaster@ the first local domain among our host name and its parent
 * domains (mx.example.com, example.com), at most four tries. */
static int postmaster_address(struct smtp_session *s, char **ret) {
    const char *d = s->hostname;
    for (int i = 0; i < 4 && d && *d; i++) {
        _cleanup_free_ char *a = NULL;
        if (asprintf(&a, "postmaster@%s", d) < 0) return SM_TEMPFAIL;
        struct sm_resolved res = {0};
        char err[256];
        int r = sm_resolve(s->db, s->cfg, a, &res, err, sizeof err);
        bool local = r == SM_FOUND && res.n_mailboxes > 0;
        sm_resolved_free(&res);
        if (r == SM_TEMPFAIL) return SM_TEMPFAIL;
        if (local) {
            *ret = TAKE_PTR(a);
            return SM_FOUND;
        }
        d = strchr(d, '.');
        if (d) d++;
        if (d && !strchr(d, '.')) break;  /* never a top-level domain alone */
    }
    return SM_NOTFOUND;
}

static void cmd_rcpt(struct smtp_session *s, struct sm_smtp_cmd *c) {
    if (!s->mail_from) { smtp_bad(s, "503 5.5.1 Error: need MAIL command"); return; }
    const char *notify = NULL, *orcpt = NULL;
    for (size_t i = 0; i < c->n_params; i++) {
        const struct sm_smtp_param *p = &c->params[i];
        if (streq(p->key, "NOTIFY")) {
            if (!p->value || !valid_notify(p->value))
                { smtp_bad(s, "501 5.5.4 Syntax: NOTIFY=NEVER or SUCCESS,FAILURE,DELAY"); return; }
            notify = p->value;
        } else if (streq(p->key, "ORCPT")) {
            if (!p->value || !valid_orcpt(p->value))
                { smtp_bad(s, "501 5.5.4 Syntax: ORCPT=addr-type;xtext"); return; }
            orcpt = p->value;
        } else {
            smtp_bad(s, "555 5.5.4 Unsupported RCPT parameter");
            return;
        }
    }
    if (s->n_rcpts >= s->cfg->smtp.max_recipients)
        { smtp_reply(s, "452 4.5.3 Error: too many recipients"); return; }
    if (!s->smtputf8 && !is_ascii(c->path))
        { smtp_reply(s, "553 5.6.7 Non-ASCII address requires SMTPUTF8"); return; }
    if (!db(s)) { smtp_reply(s, "451 4.3.0 Out of memory"); return; }
    if (!strchr(c->path, '@')) {
        /* Only <Postmaster> may come without a domain (the parser says so). */
        char *pm = NULL;
        int r = postmaster_address(s, &pm);
        if (r != SM_FOUND) {
            smtp_reply(s, r == SM_TEMPFAIL ? "451 4.3.0 Temporary lookup failure, try again later"
                                           : "550 5.1.1 <postmaster>: no postmaster address here");
            return;
        }
        free(c->path);
        c->path = pm;
    }

    char err[512] = "", esc[256];
    struct sm_resolved res = {0};
    int r = sm_resolve(s->db, s->cfg, c->path, &res, err, sizeof err);
    const char *addr = sm_log_escape(c->path, 200, esc, sizeof esc);
    /* sm_resolve answers a non-local domain with the address itself as
     * the only remote destination. */
    bool foreign = r == SM_FOUND && res.n_mailboxes == 0 && res.n_remote == 1 &&
                   strcasecmp(res.remote[0], c->path) == 0;
    if (r == SM_TEMPFAIL) {
        log_warning("event=rcpt_tempfail rcpt=%s reason=\"%s\"", addr, err);
        sm_io_printf(s->io, "451 4.3.0 <%s>: Temporary lookup failure, try again later\r\n", c->path);
    } else if (r == SM_NOTFOUND) {
        log_info("event=rcpt_unknown rcpt=%s note=\"%s\"", addr, res.note ? res.note : "");
        sm_io_printf(s->io, "550 5.1.1 <%s>: Recipient address rejected: User unknown\r\n", c->path);
    } else if (foreign && !s->auth_user) {
        /* Postfix's reject_unauth_destination: no relay for strangers. */
        log_info("event=relay_denied rcpt=%s", addr);
        sm_io_printf(s->io, "554 5.7.1 <%s>: Relay access denied\r\n", c->path);
    } else {
        struct smtp_rcpt *n = realloc(s->rcpts, (s->n_rcpts + 1) * sizeof *n);
        if (!n) {
            sm_resolved_free(&res);
            smtp_reply(s, "451 4.3.0 Out of memory");
            return;
        }
        s->rcpts = n;
        n[s->n_rcpts++] = (struct smtp_rcpt){
            .address = TAKE_PTR(c->path),
            .mailboxes = TAKE_PTR(res.mailboxes),
            .n_mailboxes = res.n_mailboxes,
            .remote = TAKE_PTR(res.remote),
            .n_remote = res.n_remote,
            .notify = notify ? strdup(notify) : NULL,
            .orcpt = orcpt ? strdup(orcpt) : NULL,
        };
        res.n_mailboxes = res.n_remote = 0;
        smtp_reply(s, "250 2.1.5 Ok");
    }
    sm_resolved_free(&res);
}

static void cmd_data(struct smtp_session *s, struct sm_smtp_cmd *c) {
    if (c->arg) { smtp_bad(s, "501 5.5.4 Syntax: DATA"); return; }
    smtp_cmd_data(s);
}

static void cmd_bdat(struct smtp_session *s, struct sm_smtp_cmd *c) { smtp_cmd_bdat(s, c->arg); }

static void cmd_auth(struct smtp_session *s, struct sm_smtp_cmd *c) { smtp_cmd_auth(s, c->arg); }

static void cmd_rset(struct smtp_session *s, struct sm_smtp_cmd *c) {
    (void)c;
    smtp_bdat_abort(s);
    smtp_reset(s);
    smtp_reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct smtp_session *s, struct sm_smtp_cmd *c) {
    (void)c;
    smtp_reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct smtp_session *s, struct sm_smtp_cmd *c) {
    (void)c;
    sm_io_printf(s->io, "221 2.0.0 %s Bye\r\n", s->hostname);
    s->quit = true;
}

static void cmd_vrfy(struct smtp_session *s, struct sm_smtp_cmd *c) {
    (void)c;
    /* Never tells whether a user exists (RFC 5321 §3.5.3 allows 252). */
    smtp_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_help(struct smtp_session *s, struct sm_smtp_cmd *c) {
    (void)c;
    smtp_reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY "
                  "STARTTLS AUTH");
}

static void cmd_lhlo(struct smtp_session *s, struct sm_smtp_cmd *c) {
    (void)c;
    smtp_bad(s, "500 5.5.1 This is SMTP: use EHLO");
}

static const struct {
    enum sm_smtp_verb verb;
    bool needs_helo;
    bool in_bdat;   /* allowed between BDAT chunks */
    void (*run)(struct smtp_session *, struct sm_smtp_cmd *);
} commands[] = {
    {SM_SMTP_EHLO, false, false, cmd_helo},
    {SM_SMTP_HELO, false, false, cmd_helo},
    {SM_SMTP_LHLO, false, true, cmd_lhlo},
    {SM_SMTP_STARTTLS, false, false, cmd_starttls},
    {SM_SMTP_AUTH, true, false, cmd_auth},
    {SM_SMTP_MAIL, true, false, cmd_mail},
    {SM_SMTP_RCPT, true, false, cmd_rcpt},
    {SM_SMTP_DATA, true, false, cmd_data},
    {SM_SMTP_BDAT, true, true, cmd_bdat},
    {SM_SMTP_RSET, false, true, cmd_rset},
    {SM_SMTP_NOOP, false, true, cmd_noop},
    {SM_SMTP_QUIT, false, true, cmd_quit},
    {SM_SMTP_VRFY, false, true, cmd_vrfy},
    {SM_SMTP_EXPN, false, true, cmd_vrfy},
    {SM_SMTP_HELP, false, true, cmd_help},
};

static void dispatch(struct smtp_session *s, const char *line, size_t len) {
    struct sm_smtp_cmd c = {0};
    const char *err = NULL;
    if (sm_smtp_parse(line, len, SM_ADDR_UTF8, &c, &err) < 0) {
        smtp_bad(s, err);
    } else {
        size_t i;
        for (i = 0; i < ARRAY_SIZE(commands); i++)
            if (commands[i].verb == c.verb) break;
        if (i == ARRAY_SIZE(commands)) smtp_bad(s, "502 5.5.1 Command not implemented");
        else if (commands[i].needs_helo && !s->helo) smtp_bad(s, "503 5.5.1 Error: send HELO/EHLO first");
        else if (s->bdat_fd >= 0 && !commands[i].in_bdat)
            smtp_bad(s, "503 5.5.1 Error: BDAT transfer in progress (send BDAT ... LAST or RSET)");
        else commands[i].run(s, &c);
    }
    sm_smtp_cmd_clear(&c);
}

void smtp_run(struct smtp_session *s) {
    sm_io_set_timeout(s->io, (unsigned)s->cfg->smtp.timeout_command);
    sm_io_printf(s->io, "220 %s ESMTP sockmail\r\n", s->hostname);
    /* max_line counts the CRLF; the reader's limit does not. */
    size_t max = (size_t)s->cfg->smtp.max_line - 2;
    while (!s->quit) {
        struct sm_line l;
        int r = sm_io_getline(s->io, max, &l);
        if (r == SM_IO_TOOLONG) {
            smtp_bad(s, "500 5.5.2 Line too long");
            continue;
        }
        if (r == SM_IO_TIMEOUT) {
            sm_io_printf(s->io, "421 4.4.2 %s Error: timeout exceeded, closing connection\r\n",
                         s->hostname);
            log_info("event=timeout");
            break;
        }
        if (r != SM_IO_OK) break;
        dispatch(s, l.data, l.len);
    }
    sm_io_flush(s->io);
    log_info("event=disconnect");
}
