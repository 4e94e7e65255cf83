/* test-maildir.c — Maildir path expansion, creation, unique names, durable
 * delivery (also under failure: no permission, short body, full disk) and
 * tmp/ cleanup. Everything happens in a mkdtemp directory under /tmp that is
 * removed at the end. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "macro.h"
#include "maildir.h"
#include "tap.h"

static char base[64];

/* ---- helpers -------------------------------------------------------------- */

static char *pathf(const char *fmt, ...) _printf_(1, 2);
static char *pathf(const char *fmt, ...) {
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    if (!s) abort();
    return s;
}

/* Number of entries in DIR other than . and .., or -1. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (!streq(de->d_name, ".") && !streq(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* The only entry's name in DIR (malloc'ed), or NULL. */
static char *only_entry(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char *name = NULL;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (streq(de->d_name, ".") || streq(de->d_name, "..")) continue;
        n++;
        free(name);
        name = strdup(de->d_name);
    }
    closedir(d);
    if (n != 1) {
        free(name);
        return NULL;
    }
    return name;
}

static char *slurp(const char *path, size_t *ret_len) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) return NULL;
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) return NULL;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
        if (k <= 0) {
            free(buf);
            return NULL;
        }
        got += (size_t)k;
    }
    buf[got] = '\0';
    *ret_len = got;
    return buf;
}

/* A regular file under the test dir holding DATA; returns an O_RDONLY fd. */
static int body_file(const char *name, const void *data, size_t len) {
    _cleanup_free_ char *p = pathf("%s/%s", base, name);
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) abort();
    if (write(fd, data, len) != (ssize_t)len) abort();
    if (lseek(fd, 7, SEEK_SET) != 7 && len >= 7) abort(); /* deliver must not depend on it */
    return fd;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    if (flag == FTW_DP || flag == FTW_D)
        rmdir(p);
    else
        unlink(p);
    return 0;
}

/* ---- sm_maildir_path ------------------------------------------------------ */

static void path_is(const char *tmpl, const char *addr, const char *want) {
    char *got = NULL;
    int r = sm_maildir_path(tmpl, addr, &got);
    if (!ok(r == 0 && got && streq(got, want), "path %s + %s = %s", tmpl, addr, want))
        printf("#   got r=%d \"%s\"\n", r, got ? got : "(null)");
    free(got);
}

static void path_fails(const char *tmpl, const char *addr, int err, const char *why) {
    char *got = NULL;
    int r = sm_maildir_path(tmpl, addr, &got);
    if (!ok(r == err && !got, "path refused (%s)", why))
        printf("#   got r=%d \"%s\", expected %d\n", r, got ? got : "(null)", err);
    free(got);
}

static void test_path(void) {
    path_is("/var/mail/vhosts/%d/%n", "john@example.com", "/var/mail/vhosts/example.com/john");
    path_is("maildir:/var/mail/vhosts/%d/%n", "john@example.com", "/var/mail/vhosts/example.com/john");
    path_is("maildir:/m/%d/%n:INDEX=/var/idx/%u:LAYOUT=fs", "a@b", "/m/b/a");
    path_is("maildir:/m/a::b/%n", "x@y", "/m/a:b/x");
    path_is("/m/a:b/%n", "x@y", "/m/a:b/x"); /* without the prefix ':' is plain text */
    path_fails("maildir::/m/%n", "x@y", -EINVAL, "maildir: with an empty path");
    path_is("/m/%u/Maildir", "john@example.com", "/m/john@example.com/Maildir");
    path_is("/m/100%%/%n%%", "a@b", "/m/100%/a%");
    path_is("/m/%Ld/%Ln", "John.Doe@Example.COM", "/m/example.com/john.doe");
    path_is("/m/%Lu", "John.Doe@Example.COM", "/m/john.doe@example.com");
    path_is("/m/%d/%n", "John.Doe@Example.COM", "/m/Example.COM/John.Doe");
    path_is("/m/%n/%n", "x@y", "/m/x/x");
    path_is("/plain", "x@y", "/plain");
    /* a quoted local part may hold spaces and '@'; the domain follows the last '@' */
    path_is("/m/%d/%n", "\"a b@c\"@d.org", "/m/d.org/\"a b@c\"");
    path_is("/m/%d/%n", "...@d", "/m/d/...");
    path_is("/m/%d/%n", ".x@d", "/m/d/.x");
    path_is("/m/%n", "\xc3\xa9t\xc3\xa9@d", "/m/\xc3\xa9t\xc3\xa9");

    path_fails("/m/%d/%n", "../x@d", -EINVAL, "../x@d");
    path_fails("/m/%d/%n", "a/b@d", -EINVAL, "a/b@d");
    path_fails("/m/%d/%n", "x@..", -EINVAL, "x@..");
    path_fails("/m/%d/%n", "x@.", -EINVAL, "x@.");
    path_fails("/m/%d/%n", "..@d", -EINVAL, "..@d");
    path_fails("/m/%d/%n", ".@d", -EINVAL, ".@d");
    path_fails("/m/%d/%n", "x@a/b", -EINVAL, "x@a/b");
    path_fails("/m/%d/%n", "x@/", -EINVAL, "x@/");
    path_fails("/m/%d/%n", "a\tb@d", -EINVAL, "tab in local part");
    path_fails("/m/%d/%n", "a\nb@d", -EINVAL, "LF in local part");
    path_fails("/m/%d/%n", "ab@d\r", -EINVAL, "CR in domain");
    path_fails("/m/%d/%n", "a\x01@d", -EINVAL, "0x01 in local part");
    path_fails("/m/%d/%n", "a\x7f@d", -EINVAL, "DEL in local part");
    path_fails("/m/%d/%n", "a@d\x1f", -EINVAL, "0x1f in domain");
    path_fails("/m/%d/%n", "@d", -EINVAL, "empty local part");
    path_fails("/m/%d/%n", "x@", -EINVAL, "empty domain");
    path_fails("/m/%d/%n", "nobody", -EINVAL, "missing @");
    path_fails("/m/%d/%n", "", -EINVAL, "empty address");
    /* the address is checked even when the template does not use it */
    path_fails("/plain", "../x@d", -EINVAL, "unsafe address, template without escapes");

    path_fails("/m/%x", "a@b", -EINVAL, "unknown escape %x");
    path_fails("/m/%", "a@b", -EINVAL, "'%' at the end");
    path_fails("/m/%L", "a@b", -EINVAL, "'%L' at the end");
    path_fails("/m/%Lx", "a@b", -EINVAL, "unknown escape %Lx");
    path_fails("/m/%L%", "a@b", -EINVAL, "%L%");
    path_fails("/m/%h", "a@b", -EINVAL, "%h (home) is not supported");
    path_fails("m/%d/%n", "a@b", -EINVAL, "relative template");
    path_fails("%d/%n", "a@b", -EINVAL, "result starts with the domain");
    path_fails("~/Maildir", "a@b", -EINVAL, "home-relative template");
    path_fails("", "a@b", -EINVAL, "empty template");
    path_fails("maildir:", "a@b", -EINVAL, "only the prefix");
    path_fails("maildir:m/%n", "a@b", -EINVAL, "relative after the prefix");

    /* limits: the result may not exceed PATH_MAX */
    char *tmpl = malloc(1 + 3 * 400 + 1);
    strcpy(tmpl, "/");
    for (int i = 0; i < 400; i++) strcat(tmpl, "%u/");
    path_fails(tmpl, "abcdefghij@example.com", -ENAMETOOLONG, "result longer than PATH_MAX");
    free(tmpl);

    char *out = NULL;
    is_int(sm_maildir_path(NULL, "a@b", &out), -EINVAL, "NULL template");
    is_int(sm_maildir_path("/m", NULL, &out), -EINVAL, "NULL address");
    is_int(sm_maildir_path("/m", "a@b", NULL), -EINVAL, "NULL result pointer");
}

/* ---- sm_maildir_create ---------------------------------------------------- */

static mode_t mode_of(const char *p) {
    struct stat st;
    if (lstat(p, &st) < 0) return (mode_t)-1;
    return st.st_mode & 07777;
}

static bool is_dir(const char *p) {
    struct stat st;
    return lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void test_create(void) {
    _cleanup_free_ char *parent = pathf("%s/create", base);
    _cleanup_free_ char *md = pathf("%s/create/a/b/Maildir", base);
    _cleanup_free_ char *a = pathf("%s/create/a", base);

    ok(mkdir(parent, 0755) == 0, "existing parent made with 0755");
    ok(chmod(parent, 0755) == 0, "chmod parent 0755");
    is_int(sm_maildir_create(md), 0, "create a/b/Maildir");
    is_int(sm_maildir_create(md), 0, "create again is fine");
    const char *subs[] = {"cur", "new", "tmp"};
    for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
        _cleanup_free_ char *s = pathf("%s/%s", md, subs[i]);
        ok(is_dir(s), "%s exists", subs[i]);
        is_int(mode_of(s), 0700, "subdir mode 0700");
    }
    is_int(mode_of(md), 0700, "Maildir mode 0700");
    is_int(mode_of(a), 0700, "missing parent made 0700");
    is_int(mode_of(parent), 0755, "existing parent keeps its mode");

    _cleanup_free_ char *trail = pathf("%s/create/t//Maildir//", base);
    _cleanup_free_ char *trail_new = pathf("%s/create/t/Maildir/new", base);
    is_int(sm_maildir_create(trail), 0, "create with doubled and trailing slashes");
    ok(is_dir(trail_new), "... made Maildir/new");

    _cleanup_free_ char *file = pathf("%s/create/file", base);
    _cleanup_free_ char *under = pathf("%s/create/file/Maildir", base);
    int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    close(fd);
    is_int(sm_maildir_create(under), -ENOTDIR, "a file in the way: -ENOTDIR");
    is_int(sm_maildir_create(""), -EINVAL, "empty path");
}

/* ---- sm_maildir_unique ---------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Checks <secs>.M<usecs>P<pid>Q<n>R<16 hex>.<host>; returns the host part. */
static const char *unique_host(const char *s) {
    char *end;
    if (strtoll(s, &end, 10) <= 0 || *end != '.' || end[1] != 'M') return NULL;
    long us = strtol(end + 2, &end, 10);
    if (us < 0 || us > 999999 || *end != 'P') return NULL;
    if (strtol(end + 1, &end, 10) != (long)getpid() || *end != 'Q') return NULL;
    if (strtoul(end + 1, &end, 10) == 0 || *end != 'R') return NULL;
    end++;
    for (int i = 0; i < 16; i++)
        if (!strchr("0123456789abcdef", end[i]) || !end[i]) return NULL;
    if (end[16] != '.') return NULL;
    return end + 17;
}

static void test_unique(void) {
    enum { N = 2000 };
    char **names = calloc(N, sizeof(char *));
    int fails = 0;
    for (int i = 0; i < N; i++) {
        char buf[256];
        if (sm_maildir_unique(buf, sizeof(buf)) < 0) fails++;
        names[i] = strdup(buf);
    }
    is_int(fails, 0, "2000 unique names made");
    qsort(names, N, sizeof(char *), cmp_str);
    int dups = 0;
    for (int i = 1; i < N; i++)
        if (streq(names[i - 1], names[i])) dups++;
    is_int(dups, 0, "2000 unique names are distinct");

    char host[256] = "";
    gethostname(host, sizeof(host));
    const char *h = unique_host(names[0]);
    if (!ok(h != NULL, "unique name has the documented shape")) printf("#   %s\n", names[0]);
    if (h && !strchr(host, '/') && !strchr(host, ':')) is_str(h, host, "unique name ends with the host name");
    for (int i = 0; i < N; i++) free(names[i]);
    free(names);

    /* the Q counter counts up within a process */
    char n1[256], n2[256];
    ok(sm_maildir_unique(n1, sizeof(n1)) == 0 && sm_maildir_unique(n2, sizeof(n2)) == 0, "two more names");
    const char *q1 = strchr(n1, 'Q'), *q2 = strchr(n2, 'Q');
    ok(q1 && q2 && strtoul(q2 + 1, NULL, 10) == strtoul(q1 + 1, NULL, 10) + 1, "Q counter increments");

    char small[8];
    is_int(sm_maildir_unique(small, sizeof(small)), -ENOBUFS, "too small buffer: -ENOBUFS");

    /* '/' and ':' in the host name: try in a private UTS namespace. */
    pid_t pid = fork();
    if (pid == 0) {
        if (unshare(CLONE_NEWUTS) < 0) _exit(77);
        if (sethostname("a/b:c", 5) < 0) _exit(77);
        char buf[256];
        if (sm_maildir_unique(buf, sizeof(buf)) < 0) _exit(1);
        const char *hh = unique_host(buf);
        _exit(hh && streq(hh, "a\\057b\\072c") ? 0 : 2);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
        ok(1, "# SKIP cannot set a host name here (no CLONE_NEWUTS)");
    else
        ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "host name a/b:c is written a\\057b\\072c");
}

/* ---- sm_maildir_deliver --------------------------------------------------- */

/* Checks that MD holds exactly one message in new/ equal to HEAD+BODY, with a
 * correct ,S= and mode 0600, and nothing in tmp/. */
static void check_one_message(const char *md, const char *ret_name, const char *head,
                              const char *body, size_t body_len, const char *what) {
    _cleanup_free_ char *newdir = pathf("%s/new", md);
    _cleanup_free_ char *tmpdir = pathf("%s/tmp", md);
    _cleanup_free_ char *name = only_entry(newdir);
    if (!ok(name != NULL, "%s: one file in new/", what)) return;
    if (ret_name) is_str(ret_name, name, "returned name is the file in new/");

    _cleanup_free_ char *p = pathf("%s/%s", newdir, name);
    size_t len = 0;
    _cleanup_free_ char *data = slurp(p, &len);
    size_t hl = strlen(head);
    ok(data && len == hl + body_len && memcmp(data, head, hl) == 0 &&
           memcmp(data + hl, body, body_len) == 0,
       "%s: contents are head + body exactly", what);

    struct stat st;
    ok(stat(p, &st) == 0, "stat the message");
    const char *s = strstr(name, ",S=");
    ok(s && strtoll(s + 3, NULL, 10) == (long long)st.st_size && (size_t)st.st_size == hl + body_len,
       "%s: ,S=%lld equals the file size", what, (long long)st.st_size);
    is_int(st.st_mode & 07777, 0600, "message mode 0600");
    is_int(st.st_nlink, 1, "tmp/ link removed (nlink 1)");
    is_int(count_entries(tmpdir), 0, "nothing left in tmp/");
}

static void empty_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)))
        if (!streq(de->d_name, ".") && !streq(de->d_name, "..")) unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
}

static void test_deliver(void) {
    _cleanup_free_ char *md = pathf("%s/deliver/Maildir", base);
    _cleanup_free_ char *newdir = pathf("%s/new", md);
    const char *head = "Return-Path: <a@b>\r\nDelivered-To: c@d\r\n";
    size_t blen = 100000;
    char *body = malloc(blen);
    for (size_t i = 0; i < blen; i++) body[i] = (char)('A' + i % 61);
    _cleanup_close_ int bfd = body_file("body1", body, blen);

    /* The Maildir does not exist yet: deliver creates it. */
    char *name = NULL;
    is_int(sm_maildir_deliver(md, head, strlen(head), bfd, (off_t)blen, &name), 0,
           "deliver 100 kB into a missing Maildir");
    check_one_message(md, name, head, body, blen, "file body");
    ok(lseek(bfd, 0, SEEK_CUR) == 7, "body fd offset untouched");
    free(name);
    empty_dir(newdir);

    /* A memfd body (tmpfs): copy_file_range to another filesystem fails
     * with EXDEV, so this takes the pread path. */
    int mfd = memfd_create("body", MFD_CLOEXEC);
    ok(mfd >= 0 && write(mfd, body, 5000) == 5000, "memfd body");
    is_int(sm_maildir_deliver(md, head, strlen(head), mfd, 5000, NULL), 0, "deliver from memfd");
    check_one_message(md, NULL, head, body, 5000, "memfd body");
    close(mfd);
    empty_dir(newdir);

    is_int(sm_maildir_deliver(md, head, strlen(head), -1, 0, NULL), 0, "head only, no body");
    check_one_message(md, NULL, head, "", 0, "head only");
    empty_dir(newdir);

    is_int(sm_maildir_deliver(md, NULL, 0, bfd, 10, NULL), 0, "body only, no head");
    check_one_message(md, NULL, "", body, 10, "body only");
    empty_dir(newdir);

    is_int(sm_maildir_deliver(md, NULL, 0, -1, 0, NULL), 0, "empty message");
    check_one_message(md, NULL, "", "", 0, "empty message");
    empty_dir(newdir);

    /* A half-made Maildir (no new/) is completed. */
    ok(rmdir(newdir) == 0, "remove new/");
    is_int(sm_maildir_deliver(md, head, strlen(head), bfd, 10, NULL), 0, "deliver without new/");
    check_one_message(md, NULL, head, body, 10, "recreated new/");
    empty_dir(newdir);

    /* Failing bodies: nothing may be left behind. */
    _cleanup_free_ char *tmpdir = pathf("%s/tmp", md);
    is_int(sm_maildir_deliver(md, head, strlen(head), bfd, (off_t)blen + 1, NULL), -EIO,
           "body_len beyond the end of the file: -EIO");
    is_int(count_entries(tmpdir), 0, "... nothing in tmp/");
    is_int(count_entries(newdir), 0, "... nothing in new/");

    mfd = memfd_create("body", MFD_CLOEXEC);
    ok(mfd >= 0 && write(mfd, body, 100) == 100, "short memfd body");
    is_int(sm_maildir_deliver(md, head, strlen(head), mfd, 200, NULL), -EIO,
           "short memfd body (pread path): -EIO");
    close(mfd);
    is_int(count_entries(tmpdir), 0, "... nothing in tmp/");
    is_int(count_entries(newdir), 0, "... nothing in new/");

    int pfd[2];
    ok(pipe2(pfd, O_CLOEXEC) == 0, "pipe");
    ok(write(pfd[1], "hello", 5) == 5, "fill pipe");
    int r = sm_maildir_deliver(md, head, strlen(head), pfd[0], 5, NULL);
    ok(r < 0, "a pipe as body (no pread) fails: %d", r);
    close(pfd[0]);
    close(pfd[1]);
    is_int(count_entries(tmpdir), 0, "... nothing in tmp/");
    is_int(count_entries(newdir), 0, "... nothing in new/");

    is_int(sm_maildir_deliver(md, head, strlen(head), bfd, -1, NULL), -EINVAL, "negative body_len");
    is_int(sm_maildir_deliver(md, head, strlen(head), -1, 5, NULL), -EBADF, "no body fd");

    _cleanup_free_ char *file = pathf("%s/deliver/notadir", base);
    close(open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    is_int(sm_maildir_deliver(file, head, strlen(head), -1, 0, NULL), -ENOTDIR,
           "Maildir path is a file: -ENOTDIR");
    free(body);
}

/* 50 processes deliver to one (not yet existing) Maildir at the same moment. */
static void test_parallel(void) {
    enum { N = 50, BODY = 8192 };
    _cleanup_free_ char *md = pathf("%s/parallel/x/y/Maildir", base);
    int gate[2];
    if (!ok(pipe2(gate, O_CLOEXEC) == 0, "gate pipe")) return;

    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            close(gate[1]);
            char c;
            (void)!read(gate[0], &c, 1); /* returns 0 when the parent opens the gate */
            char head[64];
            snprintf(head, sizeof(head), "X-Child: %d\r\n", i);
            char *body = malloc(BODY);
            memset(body, 'a' + i % 26, BODY);
            int mfd = memfd_create("b", MFD_CLOEXEC);
            if (mfd < 0 || write(mfd, body, BODY) != BODY) _exit(3);
            int r = sm_maildir_deliver(md, head, strlen(head), mfd, BODY, NULL);
            _exit(r == 0 ? 0 : 1);
        }
    }
    close(gate[0]);
    close(gate[1]);
    int failed = 0;
    for (int i = 0; i < N; i++) {
        int st = 0;
        if (pids[i] < 0 || waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            failed++;
    }
    is_int(failed, 0, "50 parallel deliveries succeeded");

    _cleanup_free_ char *newdir = pathf("%s/new", md);
    _cleanup_free_ char *tmpdir = pathf("%s/tmp", md);
    is_int(count_entries(newdir), N, "50 files in new/");
    is_int(count_entries(tmpdir), 0, "nothing in tmp/");

    bool seen[N] = {false};
    int bad = 0, dup = 0;
    DIR *d = opendir(newdir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (streq(de->d_name, ".") || streq(de->d_name, "..")) continue;
        _cleanup_free_ char *p = pathf("%s/%s", newdir, de->d_name);
        size_t len = 0;
        _cleanup_free_ char *data = slurp(p, &len);
        int i = -1, off = 0;
        if (!data || sscanf(data, "X-Child: %d\r\n%n", &i, &off) != 1 || off == 0 || i < 0 || i >= N) {
            bad++;
            continue;
        }
        bool intact = len == (size_t)off + BODY;
        for (size_t k = (size_t)off; intact && k < len; k++)
            if (data[k] != 'a' + i % 26) intact = false;
        const char *s = strstr(de->d_name, ",S=");
        if (!intact || !s || strtoull(s + 3, NULL, 10) != len) bad++;
        if (seen[i]) dup++;
        seen[i] = true;
    }
    if (d) closedir(d);
    is_int(bad, 0, "every message intact with the right ,S=");
    is_int(dup, 0, "each child's message once");
}

/* new/ not writable: -EACCES and nothing left. As root, permission checks do
 * not apply, so the delivery runs in a child that dropped to uid 65534. */
static void test_eacces(void) {
    _cleanup_free_ char *md = pathf("%s/eacces/Maildir", base);
    _cleanup_free_ char *newdir = pathf("%s/new", md);
    _cleanup_free_ char *tmpdir = pathf("%s/tmp", md);
    const uid_t nobody = 65534;
    const bool root = geteuid() == 0;

    if (!ok(sm_maildir_create(md) == 0, "create Maildir for EACCES")) return;
    if (root) {
        _cleanup_free_ char *parent = pathf("%s/eacces", base);
        const char *dirs[] = {parent, md, newdir, tmpdir};
        bool chowned = chmod(base, 0755) == 0;
        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
            chowned = chowned && chown(dirs[i], nobody, nobody) == 0;
        ok(chowned, "Maildir handed to uid 65534");
    }
    ok(chmod(newdir, 0500) == 0, "new/ made read-only (0500)");

    pid_t pid = fork();
    if (pid == 0) {
        if (root) {
            if (setgroups(0, NULL) < 0 || setresgid(nobody, nobody, nobody) < 0 ||
                setresuid(nobody, nobody, nobody) < 0)
                _exit(10);
            if (geteuid() == 0) _exit(11);
        }
        /* Make sure the failure is real before testing the library with it. */
        _cleanup_free_ char *probe = pathf("%s/probe", newdir);
        int pf = open(probe, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        if (pf >= 0 || errno != EACCES) _exit(12);
        /* ... and that tmp/ is writable, so the delivery gets as far as link(). */
        _cleanup_free_ char *probe2 = pathf("%s/probe", tmpdir);
        pf = open(probe2, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        if (pf < 0) _exit(13);
        close(pf);
        unlink(probe2);
        int r = sm_maildir_deliver(md, "H: 1\r\n", 6, -1, 0, NULL);
        _exit(r == -EACCES ? 0 : r < 0 && -r < 100 ? 100 + -r : 99);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (!ok(code == 0, "delivery into read-only new/ as an unprivileged user: -EACCES"))
        printf("#   child exit %d (10-13 setup, 100+errno other error)\n", code);
    is_int(count_entries(tmpdir), 0, "... nothing in tmp/");
    is_int(count_entries(newdir), 0, "... nothing in new/");
    chmod(newdir, 0700);
}

/* A full disk: a 64 KiB tmpfs. */
static void test_enospc(void) {
    _cleanup_free_ char *mnt = pathf("%s/full", base);
    _cleanup_free_ char *md = pathf("%s/full/Maildir", base);
    if (mkdir(mnt, 0700) < 0 || mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k") < 0) {
        ok(1, "# SKIP cannot mount a small tmpfs here (%s): ENOSPC untested", strerror(errno));
        return;
    }
    size_t blen = 256 * 1024;
    char *body = malloc(blen);
    memset(body, 'z', blen);
    _cleanup_close_ int bfd = body_file("bigbody", body, blen);
    const char *head = "X: y\r\n";

    is_int(sm_maildir_deliver(md, head, strlen(head), bfd, 1000, NULL), 0, "small message fits on the 64k tmpfs");
    _cleanup_free_ char *newdir = pathf("%s/new", md);
    _cleanup_free_ char *tmpdir = pathf("%s/tmp", md);
    is_int(count_entries(newdir), 1, "... stored");

    is_int(sm_maildir_deliver(md, head, strlen(head), bfd, (off_t)blen, NULL), -ENOSPC,
           "256 KiB message on a 64 KiB tmpfs: -ENOSPC");
    is_int(count_entries(tmpdir), 0, "... nothing in tmp/");
    is_int(count_entries(newdir), 1, "... only the earlier message in new/");

    /* A head alone too big for the disk. */
    is_int(sm_maildir_deliver(md, body, blen, -1, 0, NULL), -ENOSPC, "256 KiB head: -ENOSPC");
    is_int(count_entries(tmpdir), 0, "... nothing in tmp/");
    is_int(count_entries(newdir), 1, "... only the earlier message in new/");

    umount2(mnt, MNT_DETACH);
    free(body);
}

/* ---- sm_maildir_clean_tmp ------------------------------------------------- */

static void age(const char *p, time_t secs, int flags) {
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= secs;
    t[1] = t[0];
    if (utimensat(AT_FDCWD, p, t, flags) < 0) abort();
}

static void touch(const char *p) {
    int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) abort();
    close(fd);
}

static void test_clean_tmp(void) {
    const unsigned max_age = 36 * 3600;
    _cleanup_free_ char *md = pathf("%s/clean/Maildir", base);
    _cleanup_free_ char *old = pathf("%s/tmp/old", md);
    _cleanup_free_ char *fresh = pathf("%s/tmp/fresh", md);
    _cleanup_free_ char *link = pathf("%s/tmp/link", md);
    _cleanup_free_ char *olddir = pathf("%s/tmp/olddir", md);
    _cleanup_free_ char *victim = pathf("%s/clean/victim", base);
    if (!ok(sm_maildir_create(md) == 0, "create Maildir for clean_tmp")) return;

    touch(old);
    age(old, max_age + 100, 0);
    touch(fresh);
    age(fresh, max_age - 100, 0);
    touch(victim);
    age(victim, max_age + 100, 0);
    ok(symlink(victim, link) == 0, "symlink in tmp/ to an old file outside");
    age(link, max_age + 100, AT_SYMLINK_NOFOLLOW);
    ok(mkdir(olddir, 0700) == 0, "old directory in tmp/");
    age(olddir, max_age + 100, 0);

    is_int(sm_maildir_clean_tmp(md, max_age), 1, "clean_tmp removes one file");
    ok(access(old, F_OK) < 0 && errno == ENOENT, "old file removed");
    ok(access(fresh, F_OK) == 0, "fresh file kept");
    ok(access(victim, F_OK) == 0, "symlink not followed: its target kept");
    struct stat st;
    ok(lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "symlink itself kept");
    ok(is_dir(olddir), "directory kept");
    is_int(sm_maildir_clean_tmp(md, max_age), 0, "second run removes nothing");
    is_int(sm_maildir_clean_tmp(md, 0), 1, "max_age 0 removes the 100 s old file");

    /* tmp/ itself a symlink to another directory: refused. */
    _cleanup_free_ char *md2 = pathf("%s/clean/Maildir2", base);
    _cleanup_free_ char *md2tmp = pathf("%s/tmp", md2);
    _cleanup_free_ char *elsewhere = pathf("%s/clean/elsewhere", base);
    _cleanup_free_ char *elsewhere_old = pathf("%s/clean/elsewhere/old", base);
    ok(mkdir(md2, 0700) == 0 && mkdir(elsewhere, 0700) == 0 && symlink(elsewhere, md2tmp) == 0,
       "Maildir whose tmp/ is a symlink");
    touch(elsewhere_old);
    age(elsewhere_old, max_age + 100, 0);
    ok(sm_maildir_clean_tmp(md2, max_age) < 0, "clean_tmp refuses a symlinked tmp/");
    ok(access(elsewhere_old, F_OK) == 0, "... and removes nothing there");

    _cleanup_free_ char *missing = pathf("%s/clean/missing", base);
    is_int(sm_maildir_clean_tmp(missing, max_age), -ENOENT, "missing Maildir: -ENOENT");
}

/* Where a seen message goes (pop3-handler at QUIT), flags in Maildir's order. */
static void test_settled_path(void) {
    static const struct { const char *path; bool seen; const char *want; } cases[] = {
        { "new/1.M1P1.h,S=5", false, "cur/1.M1P1.h,S=5:2," },
        { "new/1.M1P1.h,S=5", true, "cur/1.M1P1.h,S=5:2,S" },
        { "cur/1.h:2,", false, NULL },
        { "cur/1.h:2,", true, "cur/1.h:2,S" },
        { "cur/1.h:2,S", true, NULL },
        { "cur/1.h:2,FR", true, "cur/1.h:2,FRS" },
        { "cur/1.h:2,DT", true, "cur/1.h:2,DST" },
        { "cur/1.h:2,Tab", true, "cur/1.h:2,STab" },
        { "cur/1.h:2,ab", true, "cur/1.h:2,Sab" },
        { "new/1.h:2,F", true, "cur/1.h:2,FS" },
        { "cur/1.h:1,xyz", true, NULL },
        { "cur/1.h:odd", true, NULL },
        { "noslash", true, NULL },
        { "cur/1.h:2,F/x", true, NULL },
        { "new/a/b", true, NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bool same = false;
        char *got = sm_maildir_settled_path(cases[i].path, cases[i].seen, &same);
        if (cases[i].want)
            ok(got && streq(got, cases[i].want), "%s%s -> %s (got %s)", cases[i].path,
               cases[i].seen ? " seen" : "", cases[i].want, got ? got : "NULL");
        else
            ok(!got && same, "%s%s stays", cases[i].path, cases[i].seen ? " seen" : "");
        free(got);
    }
}

int main(void) {
    test_settled_path();
    strcpy(base, "/tmp/test-maildir-XXXXXX");
    if (!mkdtemp(base)) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    umask(022);

    test_path();
    test_create();
    test_unique();
    test_deliver();
    test_parallel();
    test_eacces();
    test_enospc();
    test_clean_tmp();

    _cleanup_free_ char *mnt = pathf("%s/full", base);
    umount2(mnt, MNT_DETACH); /* in case a test stopped early */
    nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    ok(access(base, F_OK) < 0, "test directory removed");
    return tap_done();
}
