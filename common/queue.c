/* queue.c — the durable message queue; the design is in queue.h. */
#include "queue.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "macro.h"

#define MAGIC "sockmail-queue 1\n"
#define STALE_SECONDS (24 * 3600)

char *sm_xtext_encode(const char *s) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p < '!' || *p > '~' || *p == '+' || *p == '=') ? 3 : 1;
    char *r = malloc(n + 1), *o = r;
    if (!r) return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < '!' || *p > '~' || *p == '+' || *p == '=') o += sprintf(o, "+%02X", *p);
        else *o++ = (char)*p;
    }
    *o = 0;
    return r;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int sm_xtext_decode(const char *s, size_t len, char **ret) {
    char *r = malloc(len + 1), *o = r;
    if (!r) return -ENOMEM;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            if (i + 2 >= len) { free(r); return -EINVAL; }
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0)) { free(r); return -EINVAL; }
            *o++ = (char)(h * 16 + l);
            i += 2;
        } else if (s[i] < '!' || s[i] > '~' || s[i] == '=') {
            free(r);
            return -EINVAL;
        } else {
            *o++ = s[i];
        }
    }
    *o = 0;
    *ret = r;
    return 0;
}

static int fsync_path(const char *path) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    return fsync(fd) < 0 ? -errno : 0;
}

/* mkdir that fsyncs the parent when it made the directory. */
static int mkdir_durable(const char *dir, const char *parent) {
    if (mkdir(dir, 0700) == 0) return parent ? fsync_path(parent) : 0;
    return errno == EEXIST ? 0 : -errno;
}

static int ensure_dirs(const char *queue) {
    _cleanup_free_ char *tmp = NULL, *msg = NULL;
    if (asprintf(&tmp, "%s/tmp", queue) < 0 || asprintf(&msg, "%s/msg", queue) < 0)
        return -ENOMEM;
    int r = mkdir_durable(queue, NULL);
    if (r < 0) return r;
    r = mkdir_durable(tmp, queue);
    if (r < 0) return r;
    return mkdir_durable(msg, queue);
}

int sm_queue_body_new(const char *queue, char ret_id[40], int *ret_fd) {
    int r = ensure_dirs(queue);
    if (r < 0) return r;
    for (int attempt = 0; attempt < 5; attempt++) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        uint32_t rnd;
        if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd) return -EIO;
        snprintf(ret_id, 40, "%llx.%05lx.%x.%08x", (unsigned long long)tv.tv_sec,
                 (unsigned long)tv.tv_usec, (unsigned)getpid(), rnd);
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/msg/%s.body", queue, ret_id) < 0) return -ENOMEM;
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            *ret_fd = fd;
            return 0;
        }
        if (errno != EEXIST) return -errno;
    }
    return -EEXIST;
}

void sm_queue_body_abort(const char *queue, const char *id) {
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/msg/%s.body", queue, id) >= 0) unlink(path);
}

/* Appends " KEY=xtext(VALUE)" (empty for NULL). */
static int put(FILE *f, const char *key, const char *value) {
    _cleanup_free_ char *x = sm_xtext_encode(value ? value : "");
    if (!x) return -ENOMEM;
    return fprintf(f, " %s=%s", key, x) < 0 ? -EIO : 0;
}

/* The envelope text; RET_OFFS[i] is where recipient i's state byte is. */
static int env_format(const struct sm_queue_env *env, char **ret, size_t *ret_len, off_t *offs) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return -ENOMEM;
    int r = 0;
    fputs(MAGIC, f);
    fprintf(f, "id=%s received=%lld", env->id, (long long)env->received);
    if ((r = put(f, "from", env->sender)) < 0) goto out;
    fprintf(f, " smtputf8=%d", env->smtputf8 ? 1 : 0);
    if ((r = put(f, "body", env->body)) < 0) goto out;
    fputs("\n", f);
    if ((r = put(f, "ret", env->ret)) < 0 || (r = put(f, "envid", env->envid)) < 0 ||
        (r = put(f, "auth", env->auth)) < 0)
        goto out;
    fputs("\n", f);
    if ((r = put(f, "head", env->head)) < 0) goto out;
    fputs("\n", f);
    for (size_t i = 0; i < env->n_rcpts; i++) {
        const struct sm_queue_rcpt *rc = &env->rcpts[i];
        fflush(f);
        offs[i] = (off_t)len + 2;
        fprintf(f, "r %c %c", rc->state ? rc->state : SM_QUEUE_PENDING, rc->local ? 'L' : 'R');
        if ((r = put(f, "dest", rc->dest)) < 0 || (r = put(f, "rcpt", rc->rcpt)) < 0 ||
            (r = put(f, "notify", rc->notify)) < 0 || (r = put(f, "orcpt", rc->orcpt)) < 0)
            goto out;
        fputs("\n", f);
    }
out:
    if (fclose(f) != 0 && r == 0) r = -ENOMEM;
    if (r < 0) {
        free(buf);
        return r;
    }
    *ret = buf;
    *ret_len = len;
    return 0;
}

static int write_all(int fd, const char *p, size_t len) {
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int env_dup(const struct sm_queue_env *src, struct sm_queue_env *dst);

int sm_queue_commit(const char *queue, int body_fd, const struct sm_queue_env *env,
                    struct sm_queue_msg **ret) {
    _cleanup_close_ int body = body_fd;
    _cleanup_free_ char *text = NULL, *tmp = NULL, *final = NULL, *msgdir = NULL;
    _cleanup_free_ off_t *offs = calloc(env->n_rcpts ? env->n_rcpts : 1, sizeof *offs);
    _cleanup_close_ int efd = -1;
    size_t len;
    int r;
    if (!offs) { r = -ENOMEM; goto fail; }
    if (asprintf(&tmp, "%s/tmp/%s.env", queue, env->id) < 0 ||
        asprintf(&final, "%s/msg/%s.env", queue, env->id) < 0 ||
        asprintf(&msgdir, "%s/msg", queue) < 0) {
        r = -ENOMEM;
        goto fail;
    }
    if ((r = env_format(env, &text, &len, offs)) < 0) goto fail;
    if (fsync(body) < 0) { r = -errno; goto fail; }
    struct stat st;
    if (fstat(body, &st) < 0) { r = -errno; goto fail; }

    efd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (efd < 0) { r = -errno; goto fail; }
    if (flock(efd, LOCK_EX) < 0 || (r = write_all(efd, text, len)) < 0 || fsync(efd) < 0) {
        if (r == 0) r = -errno;
        unlink(tmp);
        goto fail;
    }
    if (rename(tmp, final) < 0) {
        r = -errno;
        unlink(tmp);
        goto fail;
    }
    if ((r = fsync_path(msgdir)) < 0) {
        /* Not known to be durable: take it back so it is not answered 250
         * and then delivered anyway by a flush. */
        unlink(final);
        goto fail;
    }

    struct sm_queue_msg *m = calloc(1, sizeof *m);
    if (!m || !(m->queue = strdup(queue)) || env_dup(env, &m->env) < 0) {
        /* Durable already: the flush will deliver it; report success
         * would need the struct, so say "temporary" honestly. */
        if (m) { free(m->queue); sm_queue_env_clear(&m->env); free(m); }
        return -ENOMEM;
    }
    for (size_t i = 0; i < env->n_rcpts; i++) {
        m->env.rcpts[i].state_off = offs[i];
        if (!m->env.rcpts[i].state) m->env.rcpts[i].state = SM_QUEUE_PENDING;
    }
    m->env_fd = TAKE_FD(efd);
    m->body_fd = TAKE_FD(body);
    m->body_size = st.st_size;
    *ret = m;
    return 0;
fail:
    sm_queue_body_abort(queue, env->id);
    return r;
}

static char *dup_or_null(const char *s, bool *oom) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *oom = true;
    return d;
}

static int env_dup(const struct sm_queue_env *src, struct sm_queue_env *dst) {
    bool oom = false;
    *dst = (struct sm_queue_env){ .received = src->received, .smtputf8 = src->smtputf8 };
    memcpy(dst->id, src->id, sizeof dst->id);
    dst->sender = dup_or_null(src->sender, &oom);
    dst->body = dup_or_null(src->body, &oom);
    dst->ret = dup_or_null(src->ret, &oom);
    dst->envid = dup_or_null(src->envid, &oom);
    dst->auth = dup_or_null(src->auth, &oom);
    dst->head = dup_or_null(src->head, &oom);
    dst->rcpts = calloc(src->n_rcpts ? src->n_rcpts : 1, sizeof *dst->rcpts);
    if (!dst->rcpts) return -ENOMEM;
    dst->n_rcpts = src->n_rcpts;
    for (size_t i = 0; i < src->n_rcpts; i++) {
        const struct sm_queue_rcpt *s = &src->rcpts[i];
        dst->rcpts[i] = (struct sm_queue_rcpt){
            .dest = dup_or_null(s->dest, &oom), .rcpt = dup_or_null(s->rcpt, &oom),
            .notify = dup_or_null(s->notify, &oom), .orcpt = dup_or_null(s->orcpt, &oom),
            .local = s->local, .state = s->state, .state_off = s->state_off,
        };
    }
    return oom ? -ENOMEM : 0;
}

void sm_queue_env_clear(struct sm_queue_env *env) {
    if (!env) return;
    free(env->sender);
    free(env->body);
    free(env->ret);
    free(env->envid);
    free(env->auth);
    free(env->head);
    for (size_t i = 0; i < env->n_rcpts; i++) {
        free(env->rcpts[i].dest);
        free(env->rcpts[i].rcpt);
        free(env->rcpts[i].notify);
        free(env->rcpts[i].orcpt);
    }
    free(env->rcpts);
    *env = (struct sm_queue_env){0};
}

void sm_queue_msg_free(struct sm_queue_msg *m) {
    if (!m) return;
    if (m->env_fd >= 0) close(m->env_fd);  /* releases the flock */
    if (m->body_fd >= 0) close(m->body_fd);
    sm_queue_env_clear(&m->env);
    free(m->queue);
    free(m);
}

/* Finds " KEY=" in LINE and decodes its value into *RET (NULL when empty
 * and NULLABLE). */
static int field(const char *line, const char *key, bool nullable, char **ret) {
    size_t kl = strlen(key);
    for (const char *p = line; (p = strstr(p, key)); p += kl) {
        if ((p != line && p[-1] != ' ') || p[kl] != '=') continue;
        const char *v = p + kl + 1;
        size_t n = strcspn(v, " \n");
        if (n == 0 && nullable) {
            *ret = NULL;
            return 0;
        }
        return sm_xtext_decode(v, n, ret);
    }
    return -EBADMSG;
}

/* Parses the envelope TEXT (NUL-terminated, LEN bytes). */
int sm_queue_env_parse(char *text, size_t len, struct sm_queue_env *env) {
    *env = (struct sm_queue_env){0};
    if (len < strlen(MAGIC) || memcmp(text, MAGIC, strlen(MAGIC)) != 0) return -EBADMSG;
    size_t cap = 0;
    char *line = text + strlen(MAGIC);
    int r = 0;
    int nline = 0;
    while (*line) {
        char *nl = strchr(line, '\n');
        if (!nl) return -EBADMSG;
        *nl = 0;
        if (nline == 0) {
            long long when;
            int idlen = 0;
            if (sscanf(line, "id=%39[0-9a-f.] received=%lld%n", env->id, &when, &idlen) != 2)
                return -EBADMSG;
            env->received = (time_t)when;
            env->smtputf8 = strstr(line, " smtputf8=1") != NULL;
            if ((r = field(line, "from", false, &env->sender)) < 0 ||
                (r = field(line, "body", true, &env->body)) < 0)
                return r;
        } else if (nline == 1) {
            if ((r = field(line, "ret", true, &env->ret)) < 0 ||
                (r = field(line, "envid", true, &env->envid)) < 0 ||
                (r = field(line, "auth", true, &env->auth)) < 0)
                return r;
        } else if (nline == 2) {
            if ((r = field(line, "head", false, &env->head)) < 0) return r;
        } else {
            if (line[0] != 'r' || line[1] != ' ' || !line[2] || line[3] != ' ' ||
                (line[4] != 'L' && line[4] != 'R'))
                return -EBADMSG;
            if (line[2] != 'P' && line[2] != 'D' && line[2] != 'F') return -EBADMSG;
            if (env->n_rcpts == cap) {
                size_t nc = cap ? cap * 2 : 8;
                struct sm_queue_rcpt *n = realloc(env->rcpts, nc * sizeof *n);
                if (!n) return -ENOMEM;
                env->rcpts = n;
                cap = nc;
            }
            struct sm_queue_rcpt *rc = &env->rcpts[env->n_rcpts++];
            *rc = (struct sm_queue_rcpt){
                .state = line[2], .local = line[4] == 'L', .state_off = (line + 2) - text,
            };
            if ((r = field(line, "dest", false, &rc->dest)) < 0 ||
                (r = field(line, "rcpt", false, &rc->rcpt)) < 0 ||
                (r = field(line, "notify", true, &rc->notify)) < 0 ||
                (r = field(line, "orcpt", true, &rc->orcpt)) < 0)
                return r;
        }
        nline++;
        line = nl + 1;
    }
    return nline >= 3 ? 0 : -EBADMSG;
}

/* An id as the queue makes them: no path separators, no dot files. */
static bool id_valid(const char *id) {
    size_t n = strlen(id);
    return n > 0 && n < 40 && id[0] != '.' && !strchr(id, '/');
}

/* sm_queue_open, and with LOCK false sm_queue_peek. */
static int open_msg(const char *queue, const char *id, bool lock, struct sm_queue_msg **ret) {
    if (!id_valid(id)) return -EINVAL;
    _cleanup_free_ char *envp = NULL, *bodyp = NULL;
    if (asprintf(&envp, "%s/msg/%s.env", queue, id) < 0 ||
        asprintf(&bodyp, "%s/msg/%s.body", queue, id) < 0)
        return -ENOMEM;
    _cleanup_close_ int efd = open(envp, (lock ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
    if (efd < 0) return -errno;
    if (lock && flock(efd, LOCK_EX | LOCK_NB) < 0) return -errno;
    struct stat st;
    if (fstat(efd, &st) < 0) return -errno;
    if (st.st_nlink == 0) return -ENOENT;  /* finished while we waited */
    if (!S_ISREG(st.st_mode) || st.st_size > SM_QUEUE_MAX_ENV) return -EBADMSG;
    _cleanup_free_ char *text = malloc((size_t)st.st_size + 1);
    if (!text) return -ENOMEM;
    ssize_t n = pread(efd, text, (size_t)st.st_size, 0);
    if (n != st.st_size) return n < 0 ? -errno : -EIO;
    text[n] = 0;
    if (memchr(text, 0, (size_t)n)) return -EBADMSG;
    _cleanup_close_ int bfd = open(bodyp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (bfd < 0) return -errno;
    struct stat bst;
    if (fstat(bfd, &bst) < 0) return -errno;

    struct sm_queue_msg *m = calloc(1, sizeof *m);
    if (!m) return -ENOMEM;
    m->env_fd = m->body_fd = -1;
    int r = sm_queue_env_parse(text, (size_t)n, &m->env);
    /* The name decides what sm_queue_finish unlinks: they must agree. */
    if (r == 0 && !streq(m->env.id, id)) r = -EBADMSG;
    if (r == 0 && !(m->queue = strdup(queue))) r = -ENOMEM;
    if (r < 0) {
        sm_queue_msg_free(m);
        return r;
    }
    m->env_fd = TAKE_FD(efd);
    m->body_fd = TAKE_FD(bfd);
    m->body_size = bst.st_size;
    *ret = m;
    return 0;
}

int sm_queue_open(const char *queue, const char *id, struct sm_queue_msg **ret) {
    return open_msg(queue, id, true, ret);
}

int sm_queue_peek(const char *queue, const char *id, struct sm_queue_msg **ret) {
    return open_msg(queue, id, false, ret);
}

int sm_queue_mark(struct sm_queue_msg *m, size_t i, char state) {
    if (i >= m->env.n_rcpts) return -EINVAL;
    char c = state;
    if (pwrite(m->env_fd, &c, 1, m->env.rcpts[i].state_off) != 1) return -errno;
    if (fdatasync(m->env_fd) < 0) return -errno;
    m->env.rcpts[i].state = state;
    return 0;
}

int sm_queue_finish(struct sm_queue_msg *m) {
    for (size_t i = 0; i < m->env.n_rcpts; i++)
        if (m->env.rcpts[i].state == SM_QUEUE_PENDING) return 0;
    int r = sm_queue_drop(m);
    return r < 0 ? r : 1;
}

int sm_queue_drop(struct sm_queue_msg *m) {
    _cleanup_free_ char *envp = NULL, *bodyp = NULL;
    if (asprintf(&envp, "%s/msg/%s.env", m->queue, m->env.id) < 0 ||
        asprintf(&bodyp, "%s/msg/%s.body", m->queue, m->env.id) < 0)
        return -ENOMEM;
    /* Envelope first: a body alone is garbage, an envelope alone is not. */
    if (unlink(envp) < 0 && errno != ENOENT) return -errno;
    if (unlink(bodyp) < 0 && errno != ENOENT) return -errno;
    return 0;
}

int sm_queue_deliver_local(struct sm_queue_msg *m, sm_queue_deliver_fn fn,
                           bool (*permanent)(int err), void *userdata) {
    int pending = 0;
    for (size_t i = 0; i < m->env.n_rcpts; i++) {
        struct sm_queue_rcpt *rc = &m->env.rcpts[i];
        if (!rc->local || rc->state != SM_QUEUE_PENDING) continue;
        int r = fn(m, i, userdata);
        if (r == 0 || (permanent && permanent(r))) {
            int w = sm_queue_mark(m, i, r == 0 ? SM_QUEUE_DONE : SM_QUEUE_FAILED);
            if (w < 0) return w;  /* stays P on disk: retried, maybe twice */
        } else {
            pending++;
        }
    }
    return pending;
}

/* Removes regular files in DIR older than STALE_SECONDS whose name ends
 * with SUFFIX and, when SKIP_IF_ENV, that have no .env beside them. */
static void clean_stale(const char *dir, const char *suffix, bool skip_if_env) {
    DIR *d = opendir(dir);
    if (!d) return;
    time_t now = time(NULL);
    struct dirent *e;
    size_t sl = strlen(suffix);
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (nl <= sl || strcmp(e->d_name + nl - sl, suffix) != 0) continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (now - st.st_mtime < STALE_SECONDS) continue;
        if (skip_if_env) {
            _cleanup_free_ char *env = NULL;
            if (asprintf(&env, "%.*s.env", (int)(nl - sl), e->d_name) < 0) continue;
            if (faccessat(dirfd(d), env, F_OK, AT_SYMLINK_NOFOLLOW) == 0) continue;
        }
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int sm_queue_ids(const char *queue, char ***ret, size_t *ret_n) {
    *ret = NULL;
    *ret_n = 0;
    _cleanup_free_ char *msgdir = NULL;
    if (asprintf(&msgdir, "%s/msg", queue) < 0) return -ENOMEM;
    DIR *d = opendir(msgdir);
    if (!d) return errno == ENOENT ? 0 : -errno;
    char **ids = NULL;
    size_t n = 0, cap = 0;
    int r = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (nl <= 4 || nl >= 44 || strcmp(e->d_name + nl - 4, ".env") != 0) continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **grown = realloc(ids, ncap * sizeof *ids);
            if (!grown) { r = -ENOMEM; break; }
            ids = grown;
            cap = ncap;
        }
        if (!(ids[n] = strndup(e->d_name, nl - 4))) { r = -ENOMEM; break; }
        if (!id_valid(ids[n])) { free(ids[n]); continue; }
        n++;
    }
    closedir(d);
    if (r < 0) {
        sm_queue_ids_free(ids, n);
        return r;
    }
    if (n) qsort(ids, n, sizeof *ids, cmp_str);  /* ids start with the time: oldest first */
    *ret = ids;
    *ret_n = n;
    return 0;
}

void sm_queue_ids_free(char **ids, size_t n) {
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
}

int sm_queue_flush_local(const char *queue, sm_queue_deliver_fn fn, bool (*permanent)(int err),
                         void *userdata, unsigned *ret_messages, unsigned *ret_pending) {
    unsigned messages = 0, pending = 0;
    _cleanup_free_ char *msgdir = NULL, *tmpdir = NULL;
    if (asprintf(&msgdir, "%s/msg", queue) < 0 || asprintf(&tmpdir, "%s/tmp", queue) < 0)
        return -ENOMEM;
    DIR *d = opendir(msgdir);
    if (!d) return errno == ENOENT ? 0 : -errno;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (nl <= 4 || nl >= 44 || strcmp(e->d_name + nl - 4, ".env") != 0) continue;
        char id[40];
        snprintf(id, sizeof id, "%.*s", (int)(nl - 4), e->d_name);
        struct sm_queue_msg *m = NULL;
        int r = sm_queue_open(queue, id, &m);
        if (r < 0) continue;  /* busy, gone or unreadable: next time */
        messages++;
        r = sm_queue_deliver_local(m, fn, permanent, userdata);
        if (r > 0) pending += (unsigned)r;
        if (r >= 0) sm_queue_finish(m);
        sm_queue_msg_free(m);
    }
    closedir(d);
    clean_stale(msgdir, ".body", true);
    clean_stale(tmpdir, ".env", false);
    if (ret_messages) *ret_messages = messages;
    if (ret_pending) *ret_pending = pending;
    return 0;
}
