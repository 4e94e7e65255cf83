/* data.c — DATA and BDAT: read the message into the queue, make it durable,
 * answer, then make the local copies (common/queue.h explains why in that
 * order: 250 only for a durable message, and no recipient lost or stored
 * twice when a Maildir fails half way).
 *
 * A message for exactly one local mailbox cannot fail half way, so it goes
 * straight into that Maildir (fsync of file and directory, as LMTP does)
 * and is answered from there: two fsyncs instead of the queue's six. If
 * that store fails for a temporary reason, the message takes the queue
 * path after all, so the client still gets 250 and the queue retries.
 *
 * The body is written straight into the queue's body file while it is
 * read (never held in memory), with LF line ends. What we add above it
 * (Received:, and on submission a missing Date:/Message-ID:) is kept in the
 * envelope and put in front at final delivery. */
#include <ctype.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "deliver.h"
#include "io.h"
#include "log.h"
#include "macro.h"
#include "queue.h"
#include "smtp-data.h"
#include "smtp.h"
#include "tls.h"

/* How much of the header block is scanned for Date:/Message-ID:. */
#define HEADER_SCAN (64 * 1024)
#define BDAT_BLOCK 65536

/* Text safe inside a header: printable ASCII (and UTF-8 when allowed). */
static void header_safe(char *dst, size_t len, const char *src, bool utf8) {
    size_t o = 0;
    for (; src && *src && o + 1 < len; src++) {
        unsigned char ch = (unsigned char)*src;
        dst[o++] = ((ch > 0x20 && ch < 0x7f) || (utf8 && ch >= 0x80)) && ch != '(' && ch != ')'
                   ? *src : '?';
    }
    dst[o] = 0;
}

static void rfc5322_date(char *buf, size_t len, time_t when) {
    struct tm tm;
    strftime(buf, len, "%a, %d %b %Y %H:%M:%S %z", localtime_r(&when, &tm));
}

/* Looks at the start of the body for Date: and Message-ID:. When the
 * header block does not end within HEADER_SCAN bytes both count as
 * present (adding a second Date: would be worse than none). */
static void scan_headers(int fd, uint64_t size, bool *has_date, bool *has_msgid) {
    *has_date = *has_msgid = true;
    size_t n = size < HEADER_SCAN ? (size_t)size : HEADER_SCAN;
    _cleanup_free_ char *buf = malloc(n + 1);
    if (!buf) return;
    ssize_t got = pread(fd, buf, n, 0);
    if (got < 0) return;
    buf[got] = 0;
    bool date = false, msgid = false, ended = (uint64_t)got == size;
    for (char *p = buf; p < buf + got;) {
        char *nl = memchr(p, '\n', (size_t)(buf + got - p));
        if (p[0] == '\n') { ended = true; break; }
        if (!nl && (uint64_t)got != size) break;
        if (strncasecmp(p, "Date:", 5) == 0) date = true;
        if (strncasecmp(p, "Message-ID:", 11) == 0) msgid = true;
        if (!nl) break;
        p = nl + 1;
    }
    if (!ended) return;
    *has_date = date;
    *has_msgid = msgid;
}

static const char *with_protocol(const struct smtp_session *s) {
    bool tls = sm_io_is_tls(s->io), auth = s->auth_user != NULL;
    if (s->smtputf8)  /* RFC 6531 §4.3 */
        return tls ? (auth ? "UTF8SMTPSA" : "UTF8SMTPS") : (auth ? "UTF8SMTPA" : "UTF8SMTP");
    if (!s->esmtp) return "SMTP";
    return tls ? (auth ? "ESMTPSA" : "ESMTPS") : (auth ? "ESMTPA" : "ESMTP");
}

/* The lines we put above the body. */
static char *build_head(struct smtp_session *s, const char *id, int fd, uint64_t size) {
    char date[64], helo[256], tlsd[256] = "", user[256] = "";
    rfc5322_date(date, sizeof date, time(NULL));
    header_safe(helo, sizeof helo, s->helo, s->smtputf8);
    sm_tls_describe(s->io, tlsd, sizeof tlsd);
    if (s->auth_user) header_safe(user, sizeof user, s->auth_user, true);
    char forc[300] = "";
    if (s->n_rcpts == 1) {  /* "for" only with one recipient: no disclosure */
        char a[280];
        header_safe(a, sizeof a, s->rcpts[0].address, s->smtputf8);
        snprintf(forc, sizeof forc, "\n\tfor <%s>", a);
    }
    char *head = NULL;
    int n = asprintf(&head,
                     "Received: from %s (%s [%s])%s%s%s%s\n"
                     "\tby %s (sockmail) with %s id %s%s; %s\n",
                     helo, s->conn.peer_ip, s->conn.peer_ip,
                     *tlsd ? "\n\t(using " : "", tlsd, *tlsd ? ")" : "", "",
                     s->hostname, with_protocol(s), id, forc, date);
    if (n < 0) return NULL;
    if (*user) {
        /* Inside the Received: field, after its first line. */
        char *h2 = NULL;
        char *first_nl = strchr(head, '\n');
        size_t pre = (size_t)(first_nl - head) + 1;
        n = asprintf(&h2, "%.*s\t(Authenticated sender: %s)\n%s", (int)pre, head, user, head + pre);
        free(head);
        if (n < 0) return NULL;
        head = h2;
    }
    if (s->mode == SMTP_MODE_SUBMISSION) {
        bool has_date, has_msgid;
        scan_headers(fd, size, &has_date, &has_msgid);
        if (!has_date || !has_msgid) {
            char *h2 = NULL;
            char d[80] = "", m[200] = "";
            if (!has_date) snprintf(d, sizeof d, "Date: %s\n", date);
            if (!has_msgid) snprintf(m, sizeof m, "Message-ID: <%s@%s>\n", id, s->hostname);
            n = asprintf(&h2, "%s%s%s", head, d, m);
            free(head);
            if (n < 0) return NULL;
            head = h2;
        }
    }
    return head;
}

static int deliver_cb(struct sm_queue_msg *m, size_t i, void *userdata) {
    const struct sm_config *cfg = userdata;
    const struct sm_queue_rcpt *rc = &m->env.rcpts[i];
    _cleanup_free_ char *name = NULL;
    int r = sm_deliver_mailbox(cfg, rc->dest, m->env.sender, m->env.head, m->body_fd,
                               m->body_size, &name);
    char e1[256], e2[256];
    if (r == 0)
        log_info("event=delivered id=%s rcpt=%s mailbox=%s size=%lld file=%s", m->env.id,
                 sm_log_escape(rc->rcpt, 200, e1, sizeof e1),
                 sm_log_escape(rc->dest, 200, e2, sizeof e2), (long long)m->body_size, name);
    else
        log_warning("event=store_failed id=%s mailbox=%s error=\"%s\" %s", m->env.id,
                    sm_log_escape(rc->dest, 200, e2, sizeof e2), strerror(-r),
                    sm_deliver_permanent(r) ? "permanent=yes" : "queued=yes");
    return r;
}

static bool has_dest(const struct sm_queue_env *env, const char *dest, bool local) {
    for (size_t i = 0; i < env->n_rcpts; i++)
        if (env->rcpts[i].local == local && strcasecmp(env->rcpts[i].dest, dest) == 0) return true;
    return false;
}

/* The one-mailbox case (see the top of this file): true when the client
 * has its answer, false when the message should take the queue path. */
static bool deliver_direct(struct smtp_session *s, const struct sm_queue_rcpt *rc,
                           const char *head, int body_fd, const char *id, uint64_t size) {
    _cleanup_free_ char *name = NULL;
    int r = sm_deliver_mailbox(s->cfg, rc->dest, s->mail_from, head, body_fd, (off_t)size, &name);
    char e1[256], e2[256], e3[256];
    sm_log_escape(rc->rcpt, 200, e1, sizeof e1);
    sm_log_escape(rc->dest, 200, e2, sizeof e2);
    if (r == 0) {
        log_info("event=delivered id=%s from=<%s> rcpt=%s mailbox=%s size=%llu file=%s proto=%s "
                 "queue=no", id, sm_log_escape(s->mail_from, 200, e3, sizeof e3), e1, e2,
                 (unsigned long long)size, name, with_protocol(s));
        sm_io_printf(s->io, "250 2.0.0 Ok: queued as %s\r\n", id);
        return true;
    }
    if (sm_deliver_permanent(r)) {
        log_warning("event=store_failed id=%s mailbox=%s error=\"%s\" permanent=yes", id, e2,
                    strerror(-r));
        smtp_reply(s, sm_deliver_reply(r));
        return true;
    }
    log_info("event=store_deferred id=%s mailbox=%s error=\"%s\" queue=yes", id, e2, strerror(-r));
    return false;
}

/* Builds the envelope (one entry per distinct destination), commits the
 * message, answers, and delivers the local copies. Takes BODY_FD. */
static void finish_message(struct smtp_session *s, int body_fd, const char *id, uint64_t size) {
    _cleanup_free_ char *head = build_head(s, id, body_fd, size);
    struct sm_queue_env env = {
        .received = time(NULL), .sender = s->mail_from, .smtputf8 = s->smtputf8,
        .body = s->body8 ? (char *)"8BITMIME" : NULL, .ret = s->ret, .envid = s->envid,
        .auth = s->auth_user, .head = head,
    };
    snprintf(env.id, sizeof env.id, "%s", id);
    size_t total = 0;
    for (size_t i = 0; i < s->n_rcpts; i++) total += s->rcpts[i].n_mailboxes + s->rcpts[i].n_remote;
    env.rcpts = calloc(total ? total : 1, sizeof *env.rcpts);
    if (!head || !env.rcpts) {
        free(env.rcpts);
        close(body_fd);
        sm_queue_body_abort(s->cfg->queue, id);
        smtp_reply(s, "451 4.3.0 Out of memory");
        return;
    }
    for (size_t i = 0; i < s->n_rcpts; i++) {
        struct smtp_rcpt *r = &s->rcpts[i];
        for (int local = 1; local >= 0; local--) {
            char **v = local ? r->mailboxes : r->remote;
            size_t n = local ? r->n_mailboxes : r->n_remote;
            for (size_t j = 0; j < n; j++) {
                if (has_dest(&env, v[j], local)) continue;
                env.rcpts[env.n_rcpts++] = (struct sm_queue_rcpt){
                    .dest = v[j], .rcpt = r->address, .notify = r->notify, .orcpt = r->orcpt,
                    .local = local, .state = SM_QUEUE_PENDING,
                };
            }
        }
    }
    if (env.n_rcpts == 1 && env.rcpts[0].local &&
        deliver_direct(s, &env.rcpts[0], head, body_fd, id, size)) {
        free(env.rcpts);
        close(body_fd);
        sm_queue_body_abort(s->cfg->queue, id);
        return;
    }
    struct sm_queue_msg *m = NULL;
    int r = sm_queue_commit(s->cfg->queue, body_fd, &env, &m);
    free(env.rcpts);
    if (r < 0) {
        log_warning("event=queue_failed id=%s error=\"%s\"", id, strerror(-r));
        smtp_reply(s, r == -ENOSPC || r == -EDQUOT ? "452 4.3.1 Insufficient system storage"
                                                   : "451 4.3.0 Local error in processing");
        return;
    }
    char e1[256];
    log_info("event=queued id=%s from=<%s> rcpts=%zu destinations=%zu size=%llu proto=%s", id,
             sm_log_escape(s->mail_from, 200, e1, sizeof e1), s->n_rcpts, m->env.n_rcpts,
             (unsigned long long)size, with_protocol(s));
    /* The reply is queued, not flushed: it leaves with the next read, after
     * the local copies, so a client normally finds the message in the
     * Maildir when it sees the 250. Durable it is already. */
    sm_io_printf(s->io, "250 2.0.0 Ok: queued as %s\r\n", id);
    int pending = sm_queue_deliver_local(m, deliver_cb, sm_deliver_permanent, (void *)s->cfg);
    if (pending < 0)
        log_warning("event=queue_mark_failed id=%s error=\"%s\"", id, strerror(-pending));
    else if (sm_queue_finish(m) == 0)
        log_info("event=kept_in_queue id=%s local_pending=%d", id, pending);
    sm_queue_msg_free(m);
}

static const char *body_new_error(int r) {
    return r == -ENOSPC || r == -EDQUOT ? "452 4.3.1 Insufficient system storage"
                                        : "451 4.3.0 Local error in processing";
}

void smtp_cmd_data(struct smtp_session *s) {
    if (!s->mail_from) { smtp_bad(s, "503 5.5.1 Error: need MAIL command"); return; }
    if (!s->n_rcpts) { smtp_bad(s, "554 5.5.1 Error: no valid recipients"); return; }
    char id[40];
    int fd = -1;
    int r = sm_queue_body_new(s->cfg->queue, id, &fd);
    if (r < 0) {
        log_warning("event=queue_failed error=\"%s\"", strerror(-r));
        smtp_reply(s, body_new_error(r));
        return;
    }
    smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
    sm_io_set_timeout(s->io, (unsigned)s->cfg->smtp.timeout_data);
    struct sm_data_result d;
    r = sm_data_read(s->io, fd, s->max_size, &d);
    sm_io_set_timeout(s->io, (unsigned)s->cfg->smtp.timeout_command);
    if (r != SM_IO_OK) {
        close(fd);
        sm_queue_body_abort(s->cfg->queue, id);
        log_info("event=data_aborted reason=%s", r == SM_IO_TIMEOUT ? "timeout" : "disconnect");
        if (r == SM_IO_TIMEOUT) smtp_reply(s, "421 4.4.2 Timeout waiting for data, closing connection");
        s->quit = true;
        return;
    }
    const char *why = NULL;
    if (d.too_big) why = "552 5.3.4 Message size exceeds fixed limit";
    else if (d.nul) why = "554 5.6.0 Message contains NUL bytes";
    else if (d.bare_cr || (d.bare_lf && !s->cfg->smtp_accept_bare_lf))
        why = "550 5.5.2 Message contains a bare CR or LF; lines must end with CRLF";
    else if (d.write_error)
        why = d.write_error == ENOSPC || d.write_error == EDQUOT
              ? "452 4.3.1 Insufficient system storage" : "451 4.3.0 Local error in processing";
    if (why) {
        close(fd);
        sm_queue_body_abort(s->cfg->queue, id);
        log_info("event=data_refused reason=\"%s\" size=%llu", why, (unsigned long long)d.size);
        smtp_reply(s, why);
    } else {
        finish_message(s, fd, id, d.size);
    }
    smtp_reset(s);
}

/* --- BDAT (RFC 3030) --- */

void smtp_bdat_abort(struct smtp_session *s) {
    if (s->bdat_fd < 0) return;
    close(s->bdat_fd);
    s->bdat_fd = -1;
    sm_queue_body_abort(s->cfg->queue, s->bdat_id);
}

/* Appends the chunk bytes to the body: CRLF stored as LF, faults noted. */
static void bdat_store(struct smtp_session *s, const char *p, size_t n, char *out, size_t *olen) {
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (s->bdat_cr) {
            s->bdat_cr = false;
            if (ch == '\n') { out[(*olen)++] = '\n'; continue; }
            s->bdat_bare_cr = true;
        }
        if (ch == '\r') { s->bdat_cr = true; continue; }
        if (ch == '\n') s->bdat_bare_lf = true;
        if (ch == 0) s->bdat_nul = true;
        out[(*olen)++] = ch;
    }
}

static int write_all(int fd, const char *p, size_t len) {
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void smtp_cmd_bdat(struct smtp_session *s, const char *arg) {
    /* "BDAT" SP chunk-size [ SP "LAST" ] */
    const char *p = arg ? arg : "";
    size_t digits = strspn(p, "0123456789");
    bool last = false;
    if (digits == 0 || digits > 19 || (p[digits] && p[digits] != ' ')) {
        smtp_bad(s, "501 5.5.4 Syntax: BDAT chunk-size [LAST]");
        return;
    }
    if (p[digits]) {
        if (strcasecmp(p + digits + 1, "LAST") != 0) {
            smtp_bad(s, "501 5.5.4 Syntax: BDAT chunk-size [LAST]");
            return;
        }
        last = true;
    }
    uint64_t size = strtoull(p, NULL, 10);

    /* The chunk follows whatever we answer: read it in any case. */
    const char *refuse = NULL;
    if (!s->mail_from) refuse = "503 5.5.1 Error: need MAIL command";
    else if (!s->n_rcpts) refuse = "554 5.5.1 Error: no valid recipients";
    if (!refuse && s->bdat_fd < 0) {
        int r = sm_queue_body_new(s->cfg->queue, s->bdat_id, &s->bdat_fd);
        if (r < 0) {
            s->bdat_fd = -1;
            log_warning("event=queue_failed error=\"%s\"", strerror(-r));
            refuse = body_new_error(r);
        } else {
            s->bdat_size = 0;
            s->bdat_cr = s->bdat_bare_cr = s->bdat_bare_lf = s->bdat_nul = s->bdat_too_big = false;
            s->bdat_write_error = 0;
        }
    }
    _cleanup_free_ char *out = refuse ? NULL : malloc(BDAT_BLOCK);
    if (!refuse && !out) refuse = "451 4.3.0 Out of memory";
    sm_io_set_timeout(s->io, (unsigned)s->cfg->smtp.timeout_data);
    uint64_t left = size;
    while (left > 0) {
        const char *buf;
        size_t n;
        int r = sm_io_read(s->io, left < BDAT_BLOCK ? (size_t)left : BDAT_BLOCK, &buf, &n);
        if (r != SM_IO_OK) {
            smtp_bdat_abort(s);
            log_info("event=bdat_aborted reason=%s", r == SM_IO_TIMEOUT ? "timeout" : "disconnect");
            if (r == SM_IO_TIMEOUT) smtp_reply(s, "421 4.4.2 Timeout waiting for data, closing connection");
            s->quit = true;
            return;
        }
        left -= n;
        if (refuse || s->bdat_too_big || s->bdat_write_error) continue;
        size_t olen = 0;
        bdat_store(s, buf, n, out, &olen);
        if (s->bdat_size + olen > s->max_size) {
            s->bdat_too_big = true;
            continue;
        }
        s->bdat_size += olen;
        s->bdat_write_error = write_all(s->bdat_fd, out, olen);
    }
    sm_io_set_timeout(s->io, (unsigned)s->cfg->smtp.timeout_command);
    if (refuse) {
        smtp_bad(s, refuse);
        return;
    }
    if (last && s->bdat_cr) s->bdat_bare_cr = true;
    const char *why = NULL;
    if (s->bdat_too_big) why = "552 5.3.4 Message size exceeds fixed limit";
    else if (s->bdat_nul) why = "554 5.6.0 Message contains NUL bytes";
    else if (s->bdat_bare_cr || (s->bdat_bare_lf && !s->cfg->smtp_accept_bare_lf))
        why = "550 5.5.2 Message contains a bare CR or LF; lines must end with CRLF";
    else if (s->bdat_write_error)
        why = s->bdat_write_error == ENOSPC || s->bdat_write_error == EDQUOT
              ? "452 4.3.1 Insufficient system storage" : "451 4.3.0 Local error in processing";
    if (why) {
        /* The transaction is over (RFC 3030 §2: a failed chunk fails it). */
        log_info("event=bdat_refused reason=\"%s\" size=%llu", why, (unsigned long long)s->bdat_size);
        smtp_bdat_abort(s);
        smtp_reset(s);
        smtp_reply(s, why);
        return;
    }
    if (!last) {
        sm_io_printf(s->io, "250 2.0.0 %llu octets received\r\n", (unsigned long long)size);
        return;
    }
    int fd = TAKE_FD(s->bdat_fd);
    char id[40];
    memcpy(id, s->bdat_id, sizeof id);
    finish_message(s, fd, id, s->bdat_size);
    smtp_reset(s);
}

/* --- the queue runner --- */

int smtp_flush_queue(const struct sm_config *cfg) {
    unsigned messages = 0, pending = 0;
    int r = sm_queue_flush_local(cfg->queue, deliver_cb, sm_deliver_permanent, (void *)cfg,
                                 &messages, &pending);
    if (r < 0) {
        log_error("event=flush_failed queue=%s error=\"%s\"", cfg->queue, strerror(-r));
        return SM_EXIT_TEMPFAIL;
    }
    log_info("event=flushed messages=%u local_pending=%u", messages, pending);
    return pending ? SM_EXIT_TEMPFAIL : SM_EXIT_OK;
}
