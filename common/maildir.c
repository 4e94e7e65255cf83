/* maildir.c — Maildir paths and durable delivery (see maildir.h). */
#include "maildir.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "uidlist.h"

/* How many fresh names a delivery tries before giving up: a clash needs the
 * same pid, microsecond, counter and 64 random bits, so a second clash means
 * something else is wrong. */
#define DELIVER_ATTEMPTS 5

/* Copy buffer for the pread fallback: on the heap, one per delivery. */
#define COPY_CHUNK (64 * 1024)

/* ---- paths ---------------------------------------------------------------- */

/* A local part or domain that may become one path component (or part of
 * one): never empty, `.`, `..`, and no `/` or control bytes. */
static bool name_is_safe(const char *s, size_t n) {
    if (n == 0) return false;
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '/' || c < 0x20 || c == 0x7f) return false;
    }
    return true;
}

struct pathbuf {
    char buf[PATH_MAX];
    size_t len;
    bool overflow;
};

static void pb_put(struct pathbuf *pb, const char *s, size_t n, bool lower) {
    if (pb->overflow || n >= sizeof(pb->buf) - pb->len) {
        pb->overflow = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        /* ASCII only: the locale must not change where mail goes. */
        if (lower && c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        pb->buf[pb->len++] = c;
    }
    pb->buf[pb->len] = '\0';
}

int sm_maildir_path(const char *tmpl, const char *address, char **ret) {
    if (!tmpl || !address || !ret) return -EINVAL;

    /* Dovecot's "maildir:PATH[:KEY=VALUE...]": the path ends at a single
     * ':' ("::" is a literal ':'); the options (INDEX=, LAYOUT=...) concern
     * Dovecot's own files, not where mail is delivered. */
    static const char prefix[] = "maildir:";
    bool dovecot = strncmp(tmpl, prefix, sizeof(prefix) - 1) == 0;
    if (dovecot) tmpl += sizeof(prefix) - 1;

    /* A quoted local part may itself contain '@': the domain follows the last. */
    const char *at = strrchr(address, '@');
    if (!at) return -EINVAL;
    const char *local = address;
    size_t local_len = (size_t)(at - address);
    const char *domain = at + 1;
    size_t domain_len = strlen(domain);
    if (!name_is_safe(local, local_len) || !name_is_safe(domain, domain_len)) return -EINVAL;
    size_t address_len = local_len + 1 + domain_len;

    _cleanup_free_ struct pathbuf *pb = calloc(1, sizeof(*pb));
    if (!pb) return -ENOMEM;

    for (const char *p = tmpl; *p; p++) {
        if (dovecot && *p == ':') {
            if (p[1] != ':') break;
            p++;
        }
        if (*p != '%') {
            pb_put(pb, p, 1, false);
            continue;
        }
        p++;
        bool lower = false;
        if (*p == 'L') {
            lower = true;
            p++;
        }
        switch (*p) {
        case 'd': pb_put(pb, domain, domain_len, lower); break;
        case 'n': pb_put(pb, local, local_len, lower); break;
        case 'u': pb_put(pb, address, address_len, lower); break;
        case '%':
            if (lower) return -EINVAL;
            pb_put(pb, "%", 1, false);
            break;
        default: return -EINVAL; /* unknown escape, or '%' at the end */
        }
    }
    if (pb->overflow) return -ENAMETOOLONG;
    if (pb->len == 0 || pb->buf[0] != '/') return -EINVAL;

    char *s = strdup(pb->buf);
    if (!s) return -ENOMEM;
    *ret = s;
    return 0;
}

/* ---- creation ------------------------------------------------------------- */

/* fsyncs the directory holding P[0..end), so a new entry in it survives a
 * crash. */
static int fsync_parent(char *p, size_t end) {
    size_t i = end;
    while (i > 0 && p[i - 1] != '/') i--;
    const char *dir = ".";
    char saved = p[i];
    if (i > 0) {
        /* keep the '/' for the root directory */
        i = i == 1 ? 1 : i - 1;
        saved = p[i];
        p[i] = '\0';
        dir = p;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int r = fd < 0 ? -errno : 0;
    if (fd >= 0) {
        if (fsync(fd) < 0) r = -errno;
        close(fd);
    }
    if (i > 0) p[i] = saved;
    return r;
}

/* mkdir P[0..end) with mode 0700. EEXIST is fine (another delivery may be
 * creating the same tree right now; a non-directory shows up as ENOTDIR at
 * the next step). A directory made here is made durable in its parent. */
static int mkdir_durable(char *p, size_t end) {
    char saved = p[end];
    p[end] = '\0';
    int r = 0;
    if (mkdir(p, 0700) < 0)
        r = errno == EEXIST ? 0 : -errno;
    else
        r = fsync_parent(p, end);
    p[end] = saved;
    return r;
}

int sm_maildir_create(const char *path) {
    if (!path || !*path) return -EINVAL;
    size_t n = strlen(path);
    if (n >= PATH_MAX - sizeof("/new")) return -ENAMETOOLONG;

    _cleanup_free_ char *p = malloc(n + sizeof("/new"));
    if (!p) return -ENOMEM;
    memcpy(p, path, n + 1);
    while (n > 1 && p[n - 1] == '/') p[--n] = '\0';

    /* mkdir -p: each parent in turn; existing directories keep their modes. */
    for (size_t i = 1; i < n; i++) {
        if (p[i] != '/' || p[i - 1] == '/') continue;
        int r = mkdir_durable(p, i);
        if (r < 0) return r;
    }
    int r = mkdir_durable(p, n);
    if (r < 0) return r;

    static const char *const subdirs[] = {"/cur", "/new", "/tmp"};
    for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
        memcpy(p + n, subdirs[i], strlen(subdirs[i]) + 1);
        r = mkdir_durable(p, n + 4);
        if (r < 0) return r;
    }
    return 0;
}

/* ---- unique names --------------------------------------------------------- */

int sm_maildir_unique(char *buf, size_t len) {
    static atomic_uint counter;

    if (!buf) return -EINVAL;

    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) < 0) return -errno;

    uint8_t rnd[8];
    size_t got = 0;
    while (got < sizeof(rnd)) {
        ssize_t k = getrandom(rnd + got, sizeof(rnd) - got, 0);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        got += (size_t)k;
    }

    char host[HOST_NAME_MAX + 1];
    if (gethostname(host, sizeof(host)) < 0) return -errno;
    host[sizeof(host) - 1] = '\0';

    /* Each host byte can become four ("\057"). */
    char host_esc[4 * sizeof(host)];
    size_t h = 0;
    for (const char *c = host; *c; c++) {
        if (*c == '/') {
            memcpy(host_esc + h, "\\057", 4);
            h += 4;
        } else if (*c == ':') {
            memcpy(host_esc + h, "\\072", 4);
            h += 4;
        } else
            host_esc[h++] = *c;
    }
    host_esc[h] = '\0';

    unsigned q = atomic_fetch_add(&counter, 1) + 1;
    static const char hex[] = "0123456789abcdef";
    char rhex[2 * sizeof(rnd) + 1];
    for (size_t i = 0; i < sizeof(rnd); i++) {
        rhex[2 * i] = hex[rnd[i] >> 4];
        rhex[2 * i + 1] = hex[rnd[i] & 15];
    }
    rhex[sizeof(rhex) - 1] = '\0';

    int k = snprintf(buf, len, "%lld.M%ldP%ldQ%uR%s.%s", (long long)ts.tv_sec,
                     (long)(ts.tv_nsec / 1000), (long)getpid(), q, rhex, host_esc);
    if (k < 0) return -EINVAL;
    if ((size_t)k >= len) return -ENOBUFS;
    return 0;
}

/* ---- delivery ------------------------------------------------------------- */

static int write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (k == 0) return -EIO;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Appends LEN bytes of SRC from offset 0 to DST (at its file offset).
 * copy_file_range keeps the data in the kernel; where it cannot work
 * (another filesystem, a kernel without it, a pipe) we fall back to pread. */
static int copy_body(int src, int dst, off_t len) {
    off_t off = 0;
    bool try_cfr = true;

    while (try_cfr && off < len) {
        size_t want = (size_t)((len - off) > (1 << 30) ? (1 << 30) : (len - off));
        ssize_t k = copy_file_range(src, &off, dst, NULL, want, 0);
        if (k < 0) {
            if (errno == EINTR) continue;
            if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
                errno == EBADF || errno == ESPIPE)
                try_cfr = false;
            else
                return -errno;
        } else if (k == 0)
            return -EIO; /* the body is shorter than promised */
        /* copy_file_range advanced OFF itself */
    }
    if (off >= len) return 0;

    _cleanup_free_ char *buf = malloc(COPY_CHUNK);
    if (!buf) return -ENOMEM;
    while (off < len) {
        size_t want = (size_t)((len - off) > COPY_CHUNK ? COPY_CHUNK : (len - off));
        ssize_t k = pread(src, buf, want, off);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (k == 0) return -EIO;
        int r = write_all(dst, buf, (size_t)k);
        if (r < 0) return r;
        off += k;
    }
    return 0;
}

static int open_subdir(int dfd, const char *name) {
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* Writes the message to TMPFD/NAME (created here) and makes it durable.
 * On error the file is removed again. */
static int write_tmp(int tmpfd, const char *name, const void *head, size_t head_len,
                     int body_fd, off_t body_len, off_t total) {
    int fd = openat(tmpfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return -errno;

    int r = write_all(fd, head, head_len);
    if (r >= 0 && body_len > 0) r = copy_body(body_fd, fd, body_len);
    if (r >= 0 && fsync(fd) < 0) r = -errno;
    if (r >= 0) {
        struct stat st;
        if (fstat(fd, &st) < 0)
            r = -errno;
        else if (st.st_size != total)
            r = -EIO;
    }
    /* close() reports late write errors on some filesystems (NFS). */
    if (close(fd) < 0 && r >= 0) r = -errno;
    if (r < 0) (void)unlinkat(tmpfd, name, 0);
    return r;
}

int sm_maildir_deliver(const char *maildir, const void *head, size_t head_len,
                       int body_fd, off_t body_len, char **ret_name) {
    if (!maildir || (!head && head_len > 0) || body_len < 0) return -EINVAL;
    if (body_len > 0 && body_fd < 0) return -EBADF;
    if ((uintmax_t)head_len > (uintmax_t)(INT64_MAX - body_len)) return -EFBIG;
    off_t total = (off_t)head_len + body_len;

    _cleanup_close_ int dfd = open(maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 && errno == ENOENT) {
        int r = sm_maildir_create(maildir);
        if (r < 0) return r;
        dfd = open(maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (dfd < 0) return -errno;

    _cleanup_close_ int tmpfd = open_subdir(dfd, "tmp");
    _cleanup_close_ int newfd = -1;
    if (tmpfd == -ENOENT) {
        /* A half-made Maildir (e.g. a crash during creation): finish it. */
        int r = sm_maildir_create(maildir);
        if (r < 0) return r;
        tmpfd = open_subdir(dfd, "tmp");
    }
    if (tmpfd < 0) return tmpfd;
    newfd = open_subdir(dfd, "new");
    if (newfd == -ENOENT) {
        int r = sm_maildir_create(maildir);
        if (r < 0) return r;
        newfd = open_subdir(dfd, "new");
    }
    if (newfd < 0) return newfd;

    /* Room for the unique name plus ",S=<size>". */
    char tmpname[NAME_MAX + 1], final[NAME_MAX + 1];
    int r = -EEXIST;
    for (int i = 0; i < DELIVER_ATTEMPTS && r == -EEXIST; i++) {
        r = sm_maildir_unique(tmpname, sizeof(tmpname) - 24);
        if (r < 0) return r;
        r = write_tmp(tmpfd, tmpname, head, head_len, body_fd, body_len, total);
    }
    if (r < 0) return r;

    /* link(), never rename(): link refuses to replace an existing message. */
    r = -EEXIST;
    for (int i = 0; i < DELIVER_ATTEMPTS && r == -EEXIST; i++) {
        char base[NAME_MAX + 1];
        if (i == 0)
            memcpy(base, tmpname, strlen(tmpname) + 1);
        else if ((r = sm_maildir_unique(base, sizeof(base) - 24)) < 0)
            break;
        snprintf(final, sizeof(final), "%s,S=%lld", base, (long long)total);
        r = linkat(tmpfd, tmpname, newfd, final, 0) < 0 ? -errno : 0;
    }
    if (r < 0) {
        (void)unlinkat(tmpfd, tmpname, 0);
        return r;
    }

    if (fsync(newfd) < 0) {
        r = -errno;
        (void)unlinkat(newfd, final, 0);
        (void)unlinkat(tmpfd, tmpname, 0);
        return r;
    }

    char *name = NULL;
    if (ret_name) {
        name = strdup(final);
        if (!name) {
            (void)unlinkat(newfd, final, 0);
            (void)unlinkat(tmpfd, tmpname, 0);
            return -ENOMEM;
        }
    }

    /* The message is stored. A tmp/ name that cannot be removed now is
     * harmless: the 36-hour rule (sm_maildir_clean_tmp) takes it later. */
    (void)unlinkat(tmpfd, tmpname, 0);

    if (ret_name) *ret_name = name;
    return 0;
}

/* ---- tmp/ cleanup --------------------------------------------------------- */

int sm_maildir_clean_tmp(const char *maildir, unsigned max_age) {
    if (!maildir) return -EINVAL;

    _cleanup_close_ int dfd = open(maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return -errno;
    /* tmp itself must be a real directory: a symlink there could point
     * the cleanup at any directory. */
    int tfd = openat(dfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (tfd < 0) return -errno;
    DIR *d = fdopendir(tfd);
    if (!d) {
        int r = -errno;
        close(tfd);
        return r;
    }

    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) < 0) {
        int r = -errno;
        closedir(d);
        return r;
    }

    int removed = 0, r = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno != 0) r = -errno;
            break;
        }
        if (de->d_type != DT_UNKNOWN && de->d_type != DT_REG) continue;

        struct stat st;
        if (fstatat(tfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT) continue; /* removed by someone else meanwhile */
            r = -errno;
            break;
        }
        if (!S_ISREG(st.st_mode)) continue;
        if (st.st_mtim.tv_sec >= now.tv_sec || (uintmax_t)(now.tv_sec - st.st_mtim.tv_sec) <= max_age)
            continue;
        if (unlinkat(tfd, de->d_name, 0) < 0) {
            if (errno == ENOENT) continue;
            r = -errno;
            break;
        }
        if (removed < INT_MAX) removed++;
    }
    closedir(d);
    return r < 0 ? r : removed;
}

int sm_maildir_rename(const char *from, const char *to) {
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL) return -1;
    if (access(to, F_OK) == 0) {
        errno = EEXIST;
        return -1;
    }
    if (errno != ENOENT) return -1;
    return rename(from, to);
}

char *sm_maildir_settled_path(const char *path, bool seen, bool *ret_same) {
    *ret_same = true;
    const char *slash = strchr(path, '/');
    if (!slash) return NULL;
    const char *name = slash + 1;
    if (strchr(name, '/')) return NULL;  /* not a file in new/ or cur/ */
    size_t blen = sm_uidlist_base_len(name);
    const char *info = name + blen, *flags = "";
    if (*info) {
        if (strncmp(info, ":2,", 3) != 0) return NULL;
        flags = info + 3;
    }
    /* Flags stay in ASCII order, S inserted once. */
    size_t at = 0, fl = strlen(flags);
    bool has_s = memchr(flags, 'S', fl) != NULL;
    while (at < fl && (unsigned char)flags[at] < 'S') at++;
    char *out = NULL;
    if (asprintf(&out, "cur/%.*s:2,%.*s%s%s", (int)blen, name, (int)at, flags,
                 seen && !has_s ? "S" : "", flags + at) < 0)
        return NULL;
    *ret_same = streq(out, path);
    if (*ret_same) {
        free(out);
        return NULL;
    }
    return out;
}
