/* deliver.c — store one received message for every accepted recipient.
 *
 * The body sits in an anonymous spool file on the mail file system. Each
 * mailbox gets its own copy with its own Return-Path/Delivered-To/Received
 * lines, written by sm_maildir_deliver (tmp/, fsync, link into new/, fsync
 * new/); a RCPT is answered 250 only when every mailbox it expanded to holds
 * the message durably. A mailbox reached twice in one transaction (RCPT
 * all@ and RCPT alice@) is stored once and both RCPTs share its result.
 *
 * An alias RCPT whose mailboxes fail only in part is answered with the
 * temporary error, so the client retries it and the mailboxes that already
 * have it get it again: a duplicate is better than a loss. With an MTA in
 * front (the usual set-up) aliases are expanded there, one RCPT per
 * mailbox, and this cannot happen. */
#include <fcntl.h>
#include <time.h>

#include "config.h"
#include "deliver.h"
#include "io.h"
#include "lmtp.h"
#include "log.h"
#include "macro.h"
#include "maildir.h"

/* An anonymous file in MAILBOX's tmp/, or -errno. */
static int spool_in(const struct lmtp_session *s, const char *mailbox) {
    _cleanup_free_ char *path = NULL;
    int r = sm_maildir_path(s->cfg->mail_location, mailbox, &path);
    if (r < 0) return r;
    r = sm_maildir_create(path);
    if (r < 0) return r;
    _cleanup_free_ char *tmp = NULL;
    if (asprintf(&tmp, "%s/tmp", path) < 0) return -ENOMEM;
    int fd = open(tmp, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR)) return fd >= 0 ? fd : -errno;
    /* No O_TMPFILE on this file system: a named file unlinked at once. */
    _cleanup_free_ char *name = NULL;
    if (asprintf(&name, "%s/spool.XXXXXX", tmp) < 0) return -ENOMEM;
    fd = mkostemp(name, O_CLOEXEC);
    if (fd < 0) return -errno;
    unlink(name);
    return fd;
}

int lmtp_spool_open(struct lmtp_session *s) {
    /* The first mailbox whose tmp/ takes a file: one broken Maildir must
     * not make the message fail for everybody else. */
    int r = -ENOENT;
    for (size_t i = 0; i < s->n_rcpts; i++)
        for (size_t j = 0; j < s->rcpts[i].n_mailboxes; j++) {
            r = spool_in(s, s->rcpts[i].mailboxes[j]);
            if (r >= 0) return r;
        }
    return r;
}

/* Text safe inside a header: printable ASCII, nothing else. */
static void header_safe(char *dst, size_t len, const char *src) {
    size_t o = 0;
    for (; src && *src && o + 1 < len; src++)
        dst[o++] = (*src > 0x20 && *src < 0x7f) ? *src : '?';
    dst[o] = 0;
}

static int deliver_one(struct lmtp_session *s, const char *mailbox, const char *rcpt,
                       int spool, unsigned long long size, char **ret_name) {
    char date[64], helo[256];
    time_t now = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", localtime_r(&now, &tm));
    header_safe(helo, sizeof helo, s->lhlo);
    _cleanup_free_ char *received = NULL;
    if (asprintf(&received,
                 "Received: from %s (%s)\n"
                 "\tby %s (sockmail) with LMTP id %s\n"
                 "\tfor <%s>; %s\n",
                 helo, s->conn.peer_ip, s->hostname, sm_log_session(), rcpt, date) < 0)
        return -ENOMEM;
    return sm_deliver_mailbox(s->cfg, mailbox, s->mail_from, received, spool, (off_t)size, ret_name);
}

void lmtp_deliver(struct lmtp_session *s, int spool, unsigned long long size) {
    /* Results by mailbox, so each mailbox is stored once per transaction. */
    size_t total = 0;
    for (size_t i = 0; i < s->n_rcpts; i++) total += s->rcpts[i].n_mailboxes;
    const char **done = calloc(total ? total : 1, sizeof *done);
    int *result = calloc(total ? total : 1, sizeof *result);
    size_t n_done = 0;

    for (size_t i = 0; i < s->n_rcpts; i++) {
        struct lmtp_rcpt *rc = &s->rcpts[i];
        int worst = 0;
        for (size_t j = 0; j < rc->n_mailboxes; j++) {
            const char *mb = rc->mailboxes[j];
            int r = -ENOMEM;
            size_t k;
            for (k = 0; done && k < n_done; k++)
                if (strcasecmp(done[k], mb) == 0) break;
            if (done && result && k < n_done) {
                r = result[k];
            } else if (done && result) {
                _cleanup_free_ char *name = NULL;
                r = deliver_one(s, mb, rc->address, spool, size, &name);
                done[n_done] = mb;
                result[n_done++] = r;
                char e1[256], e2[256];
                if (r == 0)
                    log_info("event=delivered rcpt=%s mailbox=%s size=%llu file=%s",
                             sm_log_escape(rc->address, 200, e1, sizeof e1),
                             sm_log_escape(mb, 200, e2, sizeof e2), size, name);
                else
                    log_warning("event=store_failed mailbox=%s error=\"%s\"",
                                sm_log_escape(mb, 200, e2, sizeof e2), strerror(-r));
            }
            /* A permanent failure outranks a temporary one only when
             * nothing is temporary: retrying must stay possible. */
            if (r < 0 && (worst == 0 || worst == -EINVAL)) worst = r;
        }
        if (worst == 0) sm_io_printf(s->io, "250 2.0.0 <%s> Delivered\r\n", rc->address);
        else sm_io_printf(s->io, "%s\r\n", sm_deliver_reply(worst));
    }
    free(done);
    free(result);
}
