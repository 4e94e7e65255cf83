/* smtp.h — one ESMTP session (RFC 5321): state and the pieces acting on it.
 *
 * One program serves the three SMTP ports; --mode says which rules apply:
 *   mx          port 25: mail for the local domains from anyone, no relay
 *               for unauthenticated clients, AUTH only after TLS and only
 *               when [smtp] mx_auth says so;
 *   submission  port 587 (and 465 with --tls): AUTH before MAIL, the sender
 *               must belong to the user, recipients anywhere.
 * Every accepted message goes through the queue (common/queue.h) before
 * it is answered; local copies are made right after the answer. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"

struct sm_config;
struct sm_db;
struct sm_io;
struct sm_tls_server;

enum smtp_mode { SMTP_MODE_MX, SMTP_MODE_SUBMISSION };

/* One accepted RCPT. */
struct smtp_rcpt {
    char *address;        /* normalized RCPT TO address */
    char **mailboxes;     /* local mailboxes after alias expansion */
    size_t n_mailboxes;
    char **remote;        /* remote addresses (queued for outbound) */
    size_t n_remote;
    char *notify;         /* DSN NOTIFY= or NULL */
    char *orcpt;          /* DSN ORCPT= or NULL */
};

struct smtp_session {
    const struct sm_config *cfg;
    struct sm_io *io;
    struct sm_conn conn;
    struct sm_db *db;              /* lookup account; connects on first use */
    struct sm_tls_server *tls;     /* NULL when TLS is not configured */
    const char *hostname;
    enum smtp_mode mode;
    bool implicit_tls;
    uint64_t max_size;             /* per mode */

    char *helo;                    /* NULL before HELO/EHLO */
    bool esmtp;                    /* EHLO, not HELO */
    char *auth_user;               /* NULL until AUTH succeeded */
    unsigned auth_failures;

    /* The transaction. */
    char *mail_from;               /* NULL outside a transaction; "" for <> */
    bool smtputf8, body8;
    char *ret, *envid;             /* DSN */
    struct smtp_rcpt *rcpts;
    size_t n_rcpts;

    /* BDAT in progress: the queue body being written. */
    int bdat_fd;
    char bdat_id[40];
    uint64_t bdat_size;
    bool bdat_failed;              /* a fault: the rest is read and dropped */
    bool bdat_cr;                  /* the last chunk ended in CR */
    bool bdat_bare_lf, bdat_bare_cr, bdat_nul, bdat_too_big;
    int bdat_write_error;

    unsigned bad_commands;
    bool quit;
};

void smtp_run(struct smtp_session *s);
void smtp_reset(struct smtp_session *s);

/* Replies, counting errors (421 and quit after max_bad_commands). */
void smtp_reply(struct smtp_session *s, const char *line);
void smtp_bad(struct smtp_session *s, const char *line);

/* data.c: DATA and BDAT, then the queue and local delivery. */
void smtp_cmd_data(struct smtp_session *s);
void smtp_cmd_bdat(struct smtp_session *s, const char *arg);
void smtp_bdat_abort(struct smtp_session *s);

/* auth.c */
void smtp_cmd_auth(struct smtp_session *s, const char *arg);
bool smtp_auth_offered(const struct smtp_session *s);

/* Delivers the pending local recipients of every queued message
 * (--flush-queue). Returns an exit code. */
int smtp_flush_queue(const struct sm_config *cfg);
