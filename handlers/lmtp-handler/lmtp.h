/* lmtp.h — one LMTP session (RFC 2033): state and the pieces that act on it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "conn.h"

struct sm_config;
struct sm_db;
struct sm_io;

/* One accepted RCPT: the address the client gave and where it goes. */
struct lmtp_rcpt {
    char *address;        /* normalized RCPT TO address */
    char **mailboxes;     /* canonical user addresses after alias expansion */
    size_t n_mailboxes;
};

struct lmtp_session {
    const struct sm_config *cfg;
    struct sm_io *io;
    struct sm_conn conn;
    struct sm_db *db;           /* lookup account; connects on first RCPT */
    const char *hostname;
    char *lhlo;                 /* LHLO argument, NULL before LHLO */
    char *mail_from;            /* NULL outside a transaction; "" for <> */
    struct lmtp_rcpt *rcpts;
    size_t n_rcpts;
    unsigned bad_commands;
    bool quit;
};

/* Runs the session until QUIT, EOF, timeout or too many errors. */
void lmtp_run(struct lmtp_session *s);

/* Frees the transaction (MAIL and RCPTs), keeping the session. */
void lmtp_reset(struct lmtp_session *s);

/* After DATA: stores the message in SPOOL_FD (SIZE bytes) for every
 * recipient and writes one reply per accepted RCPT. */
void lmtp_deliver(struct lmtp_session *s, int spool_fd, unsigned long long size);

/* Opens an anonymous spool file for the body, on the mail file system. */
int lmtp_spool_open(struct lmtp_session *s);
