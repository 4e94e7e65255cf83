/* mailbox.c — a POP3 session's view of one Maildir; see pop3.h. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>

#include "macro.h"
#include "maildir.h"
#include "pop3.h"
#include "uidlist.h"

void pop3_mailbox_clear(struct pop3_mailbox *mb) {
    for (size_t i = 0; i < mb->count; i++) {
        free(mb->msgs[i].path);
        free(mb->msgs[i].uidl);
    }
    free(mb->msgs);
    free(mb->dir);
    *mb = (struct pop3_mailbox){0};
}

int pop3_crlf_size(int fd, uint64_t *ret) {
    char buf[65536];
    uint64_t size = 0;
    char prev = '\n';
    bool any = false;
    for (off_t off = 0;;) {
        ssize_t n = pread(fd, buf, sizeof buf, off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) break;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n' && prev != '\r') size++;
            prev = buf[i];
        }
        size += (uint64_t)n;
        off += n;
        any = true;
    }
    if (any && prev != '\n') size += 2;
    *ret = size;
    return 0;
}

static int open_at(const char *dir, const char *rel) {
    _cleanup_free_ char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, rel) < 0) return -ENOMEM;
    int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    return fd < 0 ? -errno : fd;
}

const char *pop3_msg_uidl(const struct pop3_msg *m, uint32_t uidvalidity, char buf[static 17]) {
    if (m->uidl) return m->uidl;
    snprintf(buf, 17, "%08x%08x", m->uid, uidvalidity);
    return buf;
}

/* Finds M's file in cur/ or new/ again, by its name up to ":2,", after
 * another process renamed it. */
static int refind(struct pop3_mailbox *mb, struct pop3_msg *m) {
    const char *slash = strchr(m->path, '/');
    const char *name = slash ? slash + 1 : m->path;
    char base[NAME_MAX + 1];
    size_t blen = sm_uidlist_base_len(name);
    if (blen >= sizeof base) return -ENOENT;
    memcpy(base, name, blen);
    base[blen] = 0;
    for (const char *const *sub = (const char *const[]){ "cur", "new", NULL }; *sub; sub++) {
        _cleanup_free_ char *d = NULL;
        if (asprintf(&d, "%s/%s", mb->dir, *sub) < 0) return -ENOMEM;
        DIR *dh = opendir(d);
        if (!dh) continue;
        struct dirent *de;
        char *found = NULL;
        while ((de = readdir(dh))) {
            if (strncmp(de->d_name, base, blen) == 0 &&
                (de->d_name[blen] == 0 || de->d_name[blen] == ':')) {
                if (asprintf(&found, "%s/%s", *sub, de->d_name) < 0) found = NULL;
                break;
            }
        }
        closedir(dh);
        if (found) {
            free(m->path);
            m->path = found;
            return 0;
        }
    }
    return -ENOENT;
}

int pop3_mailbox_open_msg(struct pop3_mailbox *mb, struct pop3_msg *m) {
    int fd = open_at(mb->dir, m->path);
    if (fd != -ENOENT) return fd;
    int r = refind(mb, m);
    if (r < 0) return r;
    return open_at(mb->dir, m->path);
}

int pop3_mailbox_remove(struct pop3_mailbox *mb, struct pop3_msg *m) {
    for (int tries = 0; tries < 3; tries++) {
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "%s/%s", mb->dir, m->path) < 0) return -ENOMEM;
        if (unlink(p) == 0) return 0;
        if (errno != ENOENT) return -errno;
        int r = refind(mb, m);
        if (r == -ENOENT) return 0; /* another session removed it: fine */
        if (r < 0) return r;
    }
    return -EBUSY;
}

int pop3_mailbox_open(const char *dir, unsigned lock_timeout, struct pop3_mailbox *mb) {
    struct sm_uidlist *ul = NULL;
    int r = sm_uidlist_sync(dir, lock_timeout, &ul);
    if (r < 0) return r;
    *mb = (struct pop3_mailbox){ .dir = strdup(dir), .uidvalidity = ul->uidvalidity };
    mb->msgs = calloc(ul->count ? ul->count : 1, sizeof *mb->msgs);
    if (!mb->dir || !mb->msgs) {
        sm_uidlist_free(ul);
        pop3_mailbox_clear(mb);
        return -ENOMEM;
    }
    for (size_t i = 0; i < ul->count; i++) {
        struct sm_uidlist_rec *rec = &ul->recs[i];
        struct pop3_msg *m = &mb->msgs[mb->count];
        m->uid = rec->uid;
        m->path = TAKE_PTR(rec->path);
        m->uidl = rec->pop3_uidl ? TAKE_PTR(rec->pop3_uidl) : NULL;
        mb->count++;
        if (!m->path || (rec->pop3_uidl && !m->uidl)) { r = -ENOMEM; break; }
        if (rec->vsize != UINT64_MAX) {
            m->size = rec->vsize;
            continue;
        }
        int fd = pop3_mailbox_open_msg(mb, m);
        if (fd == -ENOENT) {
            /* removed since the scan: not part of this snapshot */
            mb->count--;
            free(m->path);
            free(m->uidl);
            *m = (struct pop3_msg){0};
            continue;
        }
        if (fd < 0) { r = fd; break; }
        r = pop3_crlf_size(fd, &m->size);
        close(fd);
        if (r < 0) break;
    }
    sm_uidlist_free(ul);
    if (r < 0) pop3_mailbox_clear(mb);
    /* The scan's temporaries (the uidlist file, its records, directory
     * listings) are free now but their pages stay in the heap for the
     * rest of a session that may idle for minutes: give them back. About
     * 150 KiB of RSS for 1,000 messages (bench/run-pop3). */
    malloc_trim(0);
    return r < 0 ? r : 0;
}

int pop3_mailbox_settle(struct pop3_mailbox *mb, struct pop3_msg *m, bool seen) {
    for (int tries = 0; tries < 2; tries++) {
        bool same;
        _cleanup_free_ char *to = sm_maildir_settled_path(m->path, seen, &same);
        if (!to) return same ? 0 : -ENOMEM;
        _cleanup_free_ char *from_abs = NULL, *to_abs = NULL;
        if (asprintf(&from_abs, "%s/%s", mb->dir, m->path) < 0 ||
            asprintf(&to_abs, "%s/%s", mb->dir, to) < 0)
            return -ENOMEM;
        if (sm_maildir_rename(from_abs, to_abs) == 0) {
            free(m->path);
            m->path = TAKE_PTR(to);
            return 1;
        }
        if (errno != ENOENT) return -errno;
        /* Renamed by someone else (an IMAP client's flags): find it again. */
        int r = refind(mb, m);
        if (r < 0) return r;
    }
    return -EAGAIN;
}
