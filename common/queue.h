/* queue.h — the durable message queue: the retry point between "250 Ok"
 * and final delivery.
 *
 * Why: SMTP may answer 250 only when the message is durable for every
 * recipient, and a recipient whose store fails after others succeeded must
 * neither be lost nor be stored twice when the client retries. Storing
 * straight into several Maildirs cannot promise both (the client retries
 * the whole message). So a message is stored ONCE, durably, here; then the
 * server answers 250; then the local copies are made from the queue, and
 * each recipient is marked done in the queue as soon as its Maildir holds
 * the message. Whatever is not done stays queued and is retried later
 * (`smtp-handler --flush-queue`, run by a timer, calls
 * sm_queue_flush_local). Remote recipients stay queued for the outbound
 * program (a later issue).
 *
 * On disk, under the `queue` directory (created on first use, 0700):
 *     tmp/<id>.env   an envelope being written (garbage after a crash)
 *     msg/<id>.body  the message as received (LF line ends, dot-unstuffed)
 *     msg/<id>.env   its envelope; its rename() from tmp/ is the COMMIT
 * The body is written and fsynced first, then the envelope is written to
 * tmp/, fsynced and renamed into msg/, then msg/ is fsynced: after
 * sm_queue_commit() returns 0 both survive a crash. A body without an
 * envelope was never acknowledged; sm_queue_flush_local removes such
 * bodies once they are a day old.
 *
 * The envelope is text, one item per line, values xtext-encoded (RFC 3461:
 * bytes outside '!'..'~' and '+', '=' as +HH):
 *     sockmail-queue 1
 *     id=<id> received=<unix time> from=<sender> smtputf8=0|1 body=<7BIT|8BITMIME|>
 *     ret=<FULL|HDRS|> envid=<xtext> auth=<user or empty>
 *     head=<header lines to put above the body, e.g. Received:>
 *     r <S> <L|R> dest=<mailbox or remote address> rcpt=<RCPT TO> notify=<..> orcpt=<..>
 * S is the recipient's state, one byte at a fixed offset, changed in place
 * with pwrite() + fdatasync(): P pending, D delivered, F failed for good.
 * A one-byte write cannot tear, so a recipient is never half marked. L is a
 * local mailbox, R a remote address.
 *
 * The only window for a duplicate: a crash after a Maildir copy is durable
 * and before its D is. The window for a loss: none (the queue copy is
 * durable before 250, and stays until every recipient is D or F).
 *
 * Locking: whoever delivers holds flock(LOCK_EX) on the envelope; the
 * receiving session takes it before the commit, so a concurrent flush skips
 * a message that is being delivered. A finished message (no P left) has
 * both files unlinked under the lock; a flush that opened it earlier sees
 * st_nlink == 0 after getting the lock and leaves it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

enum sm_queue_state { SM_QUEUE_PENDING = 'P', SM_QUEUE_DONE = 'D', SM_QUEUE_FAILED = 'F' };

struct sm_queue_rcpt {
    char *dest;       /* canonical mailbox (local) or address (remote) */
    char *rcpt;       /* the RCPT TO address it came from */
    char *notify;     /* DSN NOTIFY= value or NULL */
    char *orcpt;      /* DSN ORCPT= value or NULL */
    bool local;
    char state;       /* enum sm_queue_state */
    off_t state_off;  /* where STATE sits in the envelope file */
};

struct sm_queue_env {
    char id[40];
    time_t received;
    char *sender;     /* "" for <> */
    bool smtputf8;
    char *body;       /* "7BIT", "8BITMIME" or NULL */
    char *ret;        /* DSN RET= or NULL */
    char *envid;      /* DSN ENVID= or NULL */
    char *auth;       /* authenticated submitter or NULL */
    char *head;       /* header lines ("Received: ...\n") above the body */
    struct sm_queue_rcpt *rcpts;
    size_t n_rcpts;
};

/* One message in the queue, open and locked. */
struct sm_queue_msg {
    struct sm_queue_env env;
    int env_fd;       /* locked with flock(LOCK_EX) */
    int body_fd;
    off_t body_size;
    char *queue;      /* the queue directory */
};

/* Limits of what sm_queue_load accepts. */
#define SM_QUEUE_MAX_ENV (16u << 20)

/* Starts a message: creates QUEUE/msg/<id>.body (and the directories),
 * writes nothing yet. RET_ID gets the fresh id (40 bytes are enough),
 * RET_FD the body fd (read/write). 0 or -errno. */
int sm_queue_body_new(const char *queue, char ret_id[40], int *ret_fd);

/* Drops an uncommitted body (the transaction was refused or aborted). */
void sm_queue_body_abort(const char *queue, const char *id);

/* Makes the message durable: fsyncs BODY_FD, writes ENV (id, rcpts...;
 * states are written as given, normally P) and commits it as described
 * above. On 0, *RET holds the message, locked, owning BODY_FD (the caller
 * must not close it) and a copy of nothing else: ENV is still the
 * caller's. On error the body is removed and BODY_FD closed. */
int sm_queue_commit(const char *queue, int body_fd, const struct sm_queue_env *env,
                    struct sm_queue_msg **ret);

/* Opens and locks message ID (LOCK_NB: -EWOULDBLOCK when someone else
 * holds it; -ENOENT when it is gone or finished). -EBADMSG for a file that
 * is not a valid envelope. */
int sm_queue_open(const char *queue, const char *id, struct sm_queue_msg **ret);

/* Reads message ID without locking it, for looking only (the states may
 * change meanwhile): as sm_queue_open, but ENV_FD is read-only and
 * unlocked. Never pass the result to sm_queue_mark or sm_queue_drop. */
int sm_queue_peek(const char *queue, const char *id, struct sm_queue_msg **ret);

/* Removes M from the queue whatever its states (it must come from
 * sm_queue_open, so it is locked). 0 or -errno. */
int sm_queue_drop(struct sm_queue_msg *m);

/* The ids of the committed messages in QUEUE, sorted (ids begin with the
 * time they were made, in hex, so oldest first). An absent queue has none.
 * 0 or -errno; free with sm_queue_ids_free. */
int sm_queue_ids(const char *queue, char ***ret, size_t *ret_n);
void sm_queue_ids_free(char **ids, size_t n);

/* Records the new STATE of recipient I durably. 0 or -errno. */
int sm_queue_mark(struct sm_queue_msg *m, size_t i, char state);

/* Unlinks the message when no recipient is pending (returns 1), else
 * leaves it (0); -errno on failure. */
int sm_queue_finish(struct sm_queue_msg *m);

/* Unlocks and frees (NULL is fine). */
void sm_queue_msg_free(struct sm_queue_msg *m);
void sm_queue_env_clear(struct sm_queue_env *env);

/* Called for each pending local recipient; returns 0 (stored: mark D),
 * a negative errno that is permanent when PERMANENT says so (mark F),
 * else temporary (stays P). */
typedef int (*sm_queue_deliver_fn)(struct sm_queue_msg *m, size_t i, void *userdata);

/* Delivers the pending local recipients of M through FN, marking each.
 * Returns how many are still pending (local ones), or -errno. */
int sm_queue_deliver_local(struct sm_queue_msg *m, sm_queue_deliver_fn fn,
                           bool (*permanent)(int err), void *userdata);

/* Walks QUEUE/msg: every message not locked by someone else gets
 * sm_queue_deliver_local; committed-but-undelivered local recipients left
 * by a crash or a temporary failure end up here. Removes bodies without an
 * envelope and tmp/ files older than a day. Counts go to the RET_*
 * pointers (may be NULL). 0 or -errno (a message that fails is counted,
 * not fatal). */
int sm_queue_flush_local(const char *queue, sm_queue_deliver_fn fn, bool (*permanent)(int err),
                         void *userdata, unsigned *ret_messages, unsigned *ret_pending);

/* Parses envelope TEXT (LEN bytes, TEXT[LEN] == NUL; split in place) into
 * ENV, state offsets counted from TEXT. 0, -EBADMSG (not an envelope),
 * -EINVAL (bad xtext) or -ENOMEM; clear ENV with sm_queue_env_clear in
 * every case. Exposed for tests and fuzzing. */
int sm_queue_env_parse(char *text, size_t len, struct sm_queue_env *env);

/* xtext (RFC 3461) encoding of S into a fresh string; NULL on ENOMEM. */
char *sm_xtext_encode(const char *s);
/* Decodes xtext of LEN bytes; -EINVAL on bad syntax or an encoded NUL. */
int sm_xtext_decode(const char *s, size_t len, char **ret);
