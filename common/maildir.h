/* maildir.h — Maildir paths and durable delivery.
 *
 * Delivery follows the Maildir contract (qmail's maildir(5)): write the
 * message under tmp/ with a unique name, fsync it, link() it into new/ (link
 * fails on an existing name, so nothing is ever overwritten), fsync new/,
 * unlink the tmp/ name. Only after sm_maildir_deliver() returns 0 may a
 * protocol say the message is stored.
 *
 * Unique names are Dovecot's style:
 *     <secs>.M<usecs>P<pid>Q<n>R<16 random hex>.<host>,S=<size>
 * The random part keeps names unique when a later connection reuses a pid
 * within the same microsecond; `/` and `:` in the host name are written as
 * \057 and \072. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Expands the mail_location template TMPL for ADDRESS (local@domain):
 * %d domain, %n local part, %u the whole address, %% a percent sign; an
 * %Ld, %Ln, %Lu the same in ASCII lower case; an optional "maildir:" prefix
 * (Dovecot's syntax) is accepted and dropped, and after it the path ends at
 * a single ':' (Dovecot's options such as ":INDEX=..." are ignored; "::" is
 * a literal ':'). The result must be an absolute path, shorter than PATH_MAX
 * (else -ENAMETOOLONG).
 * Refuses (-EINVAL) a local part or domain that is empty, `.` or `..`, or
 * contains `/`, NUL or control characters, and an unknown %-escape. */
int sm_maildir_path(const char *tmpl, const char *address, char **ret);

/* Creates PATH (and missing parents, mode 0700) with cur/ new/ tmp/ (0700).
 * Existing directories are left as they are; each directory made here is
 * fsynced into its parent. Safe against a concurrent create. 0 or -errno. */
int sm_maildir_create(const char *path);

/* A fresh unique base name (without ",S=" and flags) into BUF; -ENOBUFS
 * when LEN is too small (256 bytes is always enough). */
int sm_maildir_unique(char *buf, size_t len);

/* Stores one message in MAILDIR (creating it if missing): HEAD (HEAD_LEN
 * bytes, e.g. Return-Path/Delivered-To lines) followed by BODY_LEN bytes
 * read from BODY_FD at offset 0 (pread, the fd's offset is untouched).
 * Durable on return 0. On error (-errno: ENOSPC, EDQUOT, EACCES, EIO, ...)
 * nothing is left in new/ or tmp/ (a BODY_FD shorter than BODY_LEN is -EIO).
 * RET_NAME (may be NULL) gets the file name in new/. */
int sm_maildir_deliver(const char *maildir, const void *head, size_t head_len,
                       int body_fd, off_t body_len, char **ret_name);

/* Removes regular files in MAILDIR/tmp whose mtime is more than MAX_AGE
 * seconds old (Maildir's 36 h rule); never follows a symlink (a symlinked
 * tmp/ is refused); returns how many, or -errno. */
int sm_maildir_clean_tmp(const char *maildir, unsigned max_age);

/* Where a message at PATH ("new/NAME" or "cur/NAME", relative to its
 * Maildir) belongs once a session has seen it: in cur/ with a ":2," info,
 * and the S flag added when SEEN, flags in ASCII order. NULL with
 * *RET_SAME when it is there already or its info is not ":2," (or the
 * name holds a '/'); NULL alone when out of memory. */
char *sm_maildir_settled_path(const char *path, bool seen, bool *ret_same);

/* rename() that never replaces a file (link() is what delivery uses; a
 * flag change must not overwrite either). File systems without
 * RENAME_NOREPLACE (NFS, some FUSE) answer EINVAL: there the target is
 * checked first and plain rename() used, as Dovecot always does; a name
 * with the same base appearing in between is the only race left.
 * 0, or -1 with errno. */
int sm_maildir_rename(const char *from, const char *to);
