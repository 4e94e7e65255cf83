/* pop3.h — one POP3 session (RFC 1939, CAPA RFC 2449, AUTH RFC 5034,
 * STLS RFC 2595, response codes RFC 3206).
 *
 * States: AUTHORIZATION (USER/PASS, AUTH, STLS, CAPA, QUIT), TRANSACTION
 * (STAT LIST RETR DELE NOOP RSET TOP UIDL CAPA QUIT) and UPDATE (after QUIT
 * in TRANSACTION: only then are DELE'd messages removed; a dropped
 * connection removes nothing).
 *
 * Concurrent sessions on one mailbox: like Dovecot's default
 * (pop3_lock_session = no), each session works on the snapshot it took at
 * login; there is no [IN-USE] refusal. A message another session removed
 * meanwhile answers RETR/TOP with -ERR, and deleting it again is not an
 * error. Mail delivered during a session shows up in the next one. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"

struct sm_config;
struct sm_io;
struct sm_tls_server;

struct pop3_msg {
    uint32_t uid;
    char *path;       /* "cur/NAME" relative to the Maildir, as last seen; the
                       * name up to ":2," finds the file after a rename */
    /* The UIDL when Dovecot saved one (the uidlist's M field); NULL means
     * Dovecot 2.3's default pop3_uidl_format %08Xu%08Xv (doveconf -d), UID
     * then UIDVALIDITY as 8 hex digits each, lower case as real Dovecot
     * prints them (test_pop3.py compares with dovecot-pop3d), made when
     * needed: one string less per message for large mailboxes. */
    char *uidl;
    uint64_t size;    /* octets RETR sends before the final "." line */
    bool deleted;
    bool retrieved;   /* RETR sent it whole (TOP does not count) */
};

/* The UIDL of M: its saved one, or the default format written into BUF. */
const char *pop3_msg_uidl(const struct pop3_msg *m, uint32_t uidvalidity, char buf[static 17]);

struct pop3_mailbox {
    char *dir;
    uint32_t uidvalidity;
    struct pop3_msg *msgs;
    size_t count;
};

enum pop3_state { POP3_AUTHORIZATION, POP3_TRANSACTION };

struct pop3_session {
    const struct sm_config *cfg;
    struct sm_conn conn;
    struct sm_io *io;
    struct sm_tls_server *tls;
    bool implicit_tls;
    enum pop3_state state;
    char *user_arg;         /* USER given, waiting for PASS */
    char *user;             /* logged in as */
    struct pop3_mailbox mbox;
    unsigned bad_commands, auth_failures;
    bool quit;
};

/* Runs the session until QUIT, EOF, timeout or too many errors. */
void pop3_run(struct pop3_session *s);
void pop3_session_clear(struct pop3_session *s);

/* mailbox.c: the Maildir snapshot. */
/* Syncs the uidlist of DIR and fills MB (sizes computed where the names
 * and list do not carry them). -ETIMEDOUT when the uidlist lock stays
 * busy, other -errno. */
int pop3_mailbox_open(const char *dir, unsigned lock_timeout, struct pop3_mailbox *mb);
void pop3_mailbox_clear(struct pop3_mailbox *mb);
/* Opens message M for reading (finding it again in new/ or cur/ after a
 * rename by another process); -ENOENT when it is gone. */
int pop3_mailbox_open_msg(struct pop3_mailbox *mb, struct pop3_msg *m);
/* Removes M's file; a file already gone is success. */
/* At QUIT, as Dovecot's POP3 leaves a Maildir: M moves from new/ to cur/
 * with a ":2," info, and gets the S (seen) flag when SEEN. Renamed with
 * RENAME_NOREPLACE, so no message is ever overwritten. 1 renamed, 0
 * nothing to do (or an info we do not write, like ":1,"), -errno. */
int pop3_mailbox_settle(struct pop3_mailbox *mb, struct pop3_msg *m, bool seen);

int pop3_mailbox_remove(struct pop3_mailbox *mb, struct pop3_msg *m);
/* The octets of FD's message as POP3 sends it: bare LF counted as CRLF,
 * plus CRLF when the last line has no terminator. */
int pop3_crlf_size(int fd, uint64_t *ret);
