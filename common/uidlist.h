/* uidlist.h — Maildir UIDs kept in Dovecot's `dovecot-uidlist` file.
 *
 * IMAP UIDs and POP3 UIDLs must survive sessions, and a Maildir that Dovecot
 * served must keep the UIDs and UIDVALIDITY Dovecot gave it (else every
 * client downloads everything again). So the file and its lock are Dovecot's:
 *
 *   dovecot-uidlist, format version 3 (Dovecot v1.1+):
 *     3 V<uidvalidity> N<next uid> G<mailbox guid hex> [<key><value> ...]
 *     <uid> [<key><value> ...] :<file name base>
 *   Record keys seen in the wild: W<size with CRLF> S<size> M<pop3 uidl>
 *   O<pop3 order> G<guid>; unknown ones are kept as they are. Version 1
 *   (Courier's courierimapuiddb: `1 <uidvalidity> <next uid>` then
 *   `<uid> <file name>`) is read too, and written back as version 3.
 *   The base of a file name is the part before ":2," (the flags); a record
 *   names the message whatever its flags and whether it is in new/ or cur/.
 *
 *   dovecot-uidlist.lock: created with O_EXCL, holding "<pid>:<host>"; the
 *   new list is written into the lock file, fsynced and renamed over
 *   dovecot-uidlist (so readers never see half a file and the rename drops
 *   the lock). A lock whose process is gone on this host, or that has not
 *   changed for SM_UIDLIST_LOCK_STALE seconds (Dovecot's 2 minutes), is
 *   taken over.
 *
 * New messages get UIDs the way Dovecot assigns them: the files not in the
 * list are sorted by the time in their names (seconds, then the M<usecs>
 * part, then the whole name) and numbered from N upwards.
 *
 *     struct sm_uidlist *ul;
 *     int r = sm_uidlist_sync(maildir, 30, &ul);  // -ETIMEDOUT: lock busy
 *     for (size_t i = 0; i < ul->count; i++)
 *         ... ul->recs[i].uid, ul->recs[i].path ("cur/NAME"), vsize ...
 *     sm_uidlist_free(ul);
 *
 * The parser (sm_uidlist_parse) is pure and fuzzed; the library never logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SM_UIDLIST_FILE "dovecot-uidlist"
#define SM_UIDLIST_LOCK "dovecot-uidlist.lock"
#define SM_UIDLIST_LOCK_STALE 120u
/* Longest dovecot-uidlist we read (a million messages fit). */
#define SM_UIDLIST_MAX_SIZE (256u << 20)

struct sm_uidlist_rec {
    uint32_t uid;
    char *base;        /* file name up to ":2," (as the list stores it) */
    char *ext;         /* the record's <key><value> fields verbatim, or NULL */
    char *path;        /* after sync: "new/NAME" or "cur/NAME"; else NULL */
    uint64_t vsize;    /* W field or ,W= in the name; UINT64_MAX: unknown */
    char *pop3_uidl;   /* M field (a migrated POP3 UIDL), or NULL */
};

struct sm_uidlist {
    unsigned version;       /* as read (1 or 3); written as 3 */
    uint32_t uidvalidity;
    uint32_t next_uid;
    char *guid;             /* G of the header (32 hex), or NULL */
    char *hdr_ext;          /* other header fields verbatim, or NULL */
    struct sm_uidlist_rec *recs;  /* sorted by uid, ascending */
    size_t count;
};

/* Parses the text of a dovecot-uidlist. -EINVAL on a malformed header or
 * record, UIDs not ascending, a UID not below N, or a record without name;
 * -ENOMEM. Accepts a missing final newline. */
int sm_uidlist_parse(const char *text, size_t len, struct sm_uidlist **ret);

/* The file's text (version 3) for UL; malloc'd, NUL-terminated. */
int sm_uidlist_format(const struct sm_uidlist *ul, char **ret, size_t *ret_len);

/* Frees UL (NULL is fine). */
void sm_uidlist_free(struct sm_uidlist *ul);

/* The length of the base of the Maildir file name NAME (up to ":2,", or
 * up to a ':' at all, as Dovecot cuts it). */
size_t sm_uidlist_base_len(const char *name);

/* The ",W=<n>" value of a Dovecot file name, or UINT64_MAX. */
uint64_t sm_uidlist_name_vsize(const char *name);

/* The record with UID, or NULL (binary search). */
const struct sm_uidlist_rec *sm_uidlist_find(const struct sm_uidlist *ul, uint32_t uid);

/* Reads MAILDIR/dovecot-uidlist (missing: an empty list with
 * uidvalidity 0), scans new/ then cur/, and when files are not in the list
 * takes the lock (waiting up to LOCK_TIMEOUT seconds: -ETIMEDOUT), reads
 * the list again, numbers the new files, drops records whose files are gone
 * and writes the list. A missing list gets UIDVALIDITY = now and a fresh
 * GUID. On 0, RET has one record per file present, in UID order, with path
 * set. -errno otherwise (-ENOENT when MAILDIR/cur is missing). */
int sm_uidlist_sync(const char *maildir, unsigned lock_timeout, struct sm_uidlist **ret);

/* Takes MAILDIR/dovecot-uidlist.lock as described above; *RET_FD is the
 * open lock file. -ETIMEDOUT after TIMEOUT seconds. */
int sm_uidlist_lock(const char *maildir, unsigned timeout, int *ret_fd);

/* Writes UL into the lock file FD, fsyncs it and renames it over the list
 * (dropping the lock); on failure the lock is removed. FD is closed. */
int sm_uidlist_commit(const char *maildir, int fd, const struct sm_uidlist *ul);

/* Removes the lock without writing and closes FD. */
void sm_uidlist_unlock(const char *maildir, int fd);
