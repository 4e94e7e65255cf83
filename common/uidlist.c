/* uidlist.c — Dovecot-compatible dovecot-uidlist; see uidlist.h. */
#include "uidlist.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "macro.h"

#define MAX_NAME 255u /* NAME_MAX: a record names one file */

static void rec_clear(struct sm_uidlist_rec *r) {
    free(r->base);
    free(r->ext);
    free(r->path);
    free(r->pop3_uidl);
    *r = (struct sm_uidlist_rec){0};
}

void sm_uidlist_free(struct sm_uidlist *ul) {
    if (!ul) return;
    for (size_t i = 0; i < ul->count; i++) rec_clear(&ul->recs[i]);
    free(ul->recs);
    free(ul->guid);
    free(ul->hdr_ext);
    free(ul);
}

static void uidlist_freep(struct sm_uidlist **p) { sm_uidlist_free(*p); }
#define _cleanup_uidlist_ _cleanup_(uidlist_freep)

size_t sm_uidlist_base_len(const char *name) {
    const char *c = strchr(name, ':');
    return c ? (size_t)(c - name) : strlen(name);
}

uint64_t sm_uidlist_name_vsize(const char *name) {
    size_t blen = sm_uidlist_base_len(name);
    for (size_t i = 0; i + 3 < blen; i++) {
        if (name[i] != ',' || name[i + 1] != 'W' || name[i + 2] != '=') continue;
        uint64_t v = 0;
        size_t j = i + 3, digits = 0;
        for (; j < blen && isdigit((unsigned char)name[j]) && digits < 19; j++, digits++)
            v = v * 10 + (uint64_t)(name[j] - '0');
        if (digits && (j == blen || name[j] == ',')) return v;
    }
    return UINT64_MAX;
}

/* A decimal uint32 at *P (advanced); false if none or too big. */
static bool parse_u32(const char **p, const char *end, uint32_t *ret) {
    const char *s = *p;
    uint64_t v = 0;
    if (s >= end || !isdigit((unsigned char)*s)) return false;
    for (; s < end && isdigit((unsigned char)*s); s++) {
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX) return false;
    }
    *p = s;
    *ret = (uint32_t)v;
    return true;
}

static int append_field(char **dst, const char *s, size_t n) {
    size_t old = *dst ? strlen(*dst) : 0;
    char *p = realloc(*dst, old + (old ? 1 : 0) + n + 1);
    if (!p) return -ENOMEM;
    if (old) p[old++] = ' ';
    memcpy(p + old, s, n);
    p[old + n] = 0;
    *dst = p;
    return 0;
}

static bool valid_name(const char *s, size_t n) {
    if (n == 0 || n > MAX_NAME) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '/' || s[i] == 0 || s[i] == '\r') return false;
    return !(s[0] == '.' && (n == 1 || (n == 2 && s[1] == '.')));
}

static int parse_header(struct sm_uidlist *ul, const char *p, const char *end) {
    uint32_t v;
    if (!parse_u32(&p, end, &v)) return -EINVAL;
    ul->version = v;
    if (v == 1) {
        /* "1 <uidvalidity> <next uid>" (Courier) */
        if (p >= end || *p++ != ' ' || !parse_u32(&p, end, &ul->uidvalidity)) return -EINVAL;
        if (p >= end || *p++ != ' ' || !parse_u32(&p, end, &ul->next_uid)) return -EINVAL;
        return p == end ? 0 : -EINVAL;
    }
    if (v != 3) return -EINVAL;
    bool have_v = false, have_n = false;
    while (p < end) {
        if (*p++ != ' ') return -EINVAL;
        const char *t = p;
        while (p < end && *p != ' ') p++;
        if (p == t) continue;
        const char *q = t + 1;
        if (*t == 'V' && !have_v) {
            if (!parse_u32(&q, p, &ul->uidvalidity) || q != p) return -EINVAL;
            have_v = true;
        } else if (*t == 'N' && !have_n) {
            if (!parse_u32(&q, p, &ul->next_uid) || q != p) return -EINVAL;
            have_n = true;
        } else if (*t == 'G' && !ul->guid) {
            ul->guid = strndup(t + 1, (size_t)(p - t - 1));
            if (!ul->guid) return -ENOMEM;
        } else if (append_field(&ul->hdr_ext, t, (size_t)(p - t)) < 0) {
            return -ENOMEM;
        }
    }
    return have_v && have_n ? 0 : -EINVAL;
}

static int parse_record(struct sm_uidlist *ul, const char *p, const char *end,
                        struct sm_uidlist_rec *r) {
    if (!parse_u32(&p, end, &r->uid) || r->uid == 0) return -EINVAL;
    if (p >= end || *p++ != ' ') return -EINVAL;
    r->vsize = UINT64_MAX;
    if (ul->version == 3) {
        /* <key><value> fields up to the one that starts with ':' */
        while (p < end && *p != ':') {
            const char *t = p;
            while (p < end && *p != ' ') p++;
            if (p == t || p >= end) return -EINVAL;
            size_t n = (size_t)(p - t);
            if (*t == 'W') {
                const char *q = t + 1;
                uint64_t v = 0;
                size_t digits = 0;
                for (; q < p && isdigit((unsigned char)*q) && digits < 19; q++, digits++)
                    v = v * 10 + (uint64_t)(*q - '0');
                if (digits && q == p) r->vsize = v;
            } else if (*t == 'M' && !r->pop3_uidl && n > 1) {
                r->pop3_uidl = strndup(t + 1, n - 1);
                if (!r->pop3_uidl) return -ENOMEM;
            }
            if (append_field(&r->ext, t, n) < 0) return -ENOMEM;
            p++; /* the space */
        }
        if (p >= end || *p++ != ':') return -EINVAL;
    }
    if (!valid_name(p, (size_t)(end - p))) return -EINVAL;
    r->base = strndup(p, (size_t)(end - p));
    if (!r->base) return -ENOMEM;
    if (r->vsize == UINT64_MAX) r->vsize = sm_uidlist_name_vsize(r->base);
    return 0;
}

int sm_uidlist_parse(const char *text, size_t len, struct sm_uidlist **ret) {
    _cleanup_uidlist_ struct sm_uidlist *ul = calloc(1, sizeof *ul);
    if (!ul) return -ENOMEM;
    if (len > SM_UIDLIST_MAX_SIZE) return -EFBIG;
    /* Dovecot never writes NUL; it would cut the strings kept verbatim. */
    if (memchr(text, 0, len)) return -EINVAL;
    const char *p = text, *end = text + len;
    const char *nl = memchr(p, '\n', len);
    const char *hend = nl ? nl : end;
    int r = parse_header(ul, p, hend);
    if (r < 0) return r;
    p = nl ? nl + 1 : end;
    size_t cap = 0;
    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        const char *lend = nl ? nl : end;
        if (lend > p) {
            if (ul->count == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                struct sm_uidlist_rec *n = reallocarray(ul->recs, ncap, sizeof *n);
                if (!n) return -ENOMEM;
                ul->recs = n;
                cap = ncap;
            }
            struct sm_uidlist_rec *rec = &ul->recs[ul->count];
            *rec = (struct sm_uidlist_rec){0};
            r = parse_record(ul, p, lend, rec);
            if (r < 0) {
                rec_clear(rec);
                return r;
            }
            ul->count++;
            if (ul->count > 1 && rec->uid <= ul->recs[ul->count - 2].uid) return -EINVAL;
            /* Dovecot raises N rather than fail on a UID at or above it. */
            if (rec->uid >= ul->next_uid) {
                if (rec->uid == UINT32_MAX) return -EINVAL;
                ul->next_uid = rec->uid + 1;
            }
        }
        p = nl ? nl + 1 : end;
    }
    *ret = TAKE_PTR(ul);
    return 0;
}

struct strbuf {
    char *s;
    size_t len, cap;
};

static int sb_add(struct strbuf *b, const char *s, size_t n) {
    if (n > SIZE_MAX / 4 - b->len) return -ENOMEM;  /* and no doubling below can wrap */
    size_t need = b->len + n + 1;
    if (need > b->cap || !b->s) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < need) ncap *= 2;
        char *p = realloc(b->s, ncap);
        if (!p) return -ENOMEM;
        b->s = p;
        b->cap = ncap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
    return 0;
}

static int sb_str(struct strbuf *b, const char *s) { return sb_add(b, s, strlen(s)); }

static int sb_u32(struct strbuf *b, const char *prefix, uint32_t v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%s%u", prefix, v);
    return sb_add(b, tmp, (size_t)n);
}

int sm_uidlist_format(const struct sm_uidlist *ul, char **ret, size_t *ret_len) {
    struct strbuf b = {0};
    int r = sb_u32(&b, "3 V", ul->uidvalidity);
    if (r >= 0) r = sb_u32(&b, " N", ul->next_uid);
    if (r >= 0 && ul->guid) r = sb_str(&b, " G") < 0 ? -ENOMEM : sb_str(&b, ul->guid);
    if (r >= 0 && ul->hdr_ext) r = sb_str(&b, " ") < 0 ? -ENOMEM : sb_str(&b, ul->hdr_ext);
    if (r >= 0) r = sb_str(&b, "\n");
    for (size_t i = 0; r >= 0 && i < ul->count; i++) {
        const struct sm_uidlist_rec *rec = &ul->recs[i];
        r = sb_u32(&b, "", rec->uid);
        if (r >= 0 && rec->ext) r = sb_str(&b, " ") < 0 ? -ENOMEM : sb_str(&b, rec->ext);
        if (r >= 0) r = sb_str(&b, " :");
        if (r >= 0) r = sb_str(&b, rec->base);
        if (r >= 0) r = sb_str(&b, "\n");
    }
    if (r < 0) {
        free(b.s);
        return r;
    }
    *ret = b.s;
    if (ret_len) *ret_len = b.len;
    return 0;
}

const struct sm_uidlist_rec *sm_uidlist_find(const struct sm_uidlist *ul, uint32_t uid) {
    size_t lo = 0, hi = ul->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ul->recs[mid].uid == uid) return &ul->recs[mid];
        if (ul->recs[mid].uid < uid) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* ---- the files ---------------------------------------------------------- */

static char *join(const char *a, const char *b) {
    char *s = NULL;
    if (asprintf(&s, "%s/%s", a, b) < 0) return NULL;
    return s;
}

static int read_list(const char *maildir, struct sm_uidlist **ret) {
    _cleanup_free_ char *path = join(maildir, SM_UIDLIST_FILE);
    if (!path) return -ENOMEM;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno != ENOENT) return -errno;
        struct sm_uidlist *ul = calloc(1, sizeof *ul);
        if (!ul) return -ENOMEM;
        ul->version = 3;
        ul->next_uid = 1;
        *ret = ul;
        return 0;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    if (!S_ISREG(st.st_mode)) return -EINVAL;
    if ((uint64_t)st.st_size > SM_UIDLIST_MAX_SIZE) return -EFBIG;
    size_t cap = (size_t)st.st_size + 4096, len = 0;
    _cleanup_free_ char *buf = malloc(cap);
    if (!buf) return -ENOMEM;
    for (;;) {
        if (len == cap) {
            if (cap >= SM_UIDLIST_MAX_SIZE) return -EFBIG;
            char *n = realloc(buf, cap * 2);
            if (!n) return -ENOMEM;
            buf = n;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    return sm_uidlist_parse(buf, len, ret);
}

struct found {
    char *name;     /* "new/NAME" or "cur/NAME" */
    size_t base_off, base_len;
    bool used;
};

struct scan {
    struct found *v;
    size_t n, cap;
};

static void scan_clear(struct scan *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i].name);
    free(s->v);
    *s = (struct scan){0};
}

static int scan_dir(const char *maildir, const char *sub, struct scan *s) {
    _cleanup_free_ char *dpath = join(maildir, sub);
    if (!dpath) return -ENOMEM;
    DIR *d = opendir(dpath);
    if (!d) return -errno;
    int r = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN) continue;
        if (!valid_name(de->d_name, strlen(de->d_name))) continue;
        if (s->n == s->cap) {
            size_t ncap = s->cap ? s->cap * 2 : 64;
            struct found *n = reallocarray(s->v, ncap, sizeof *n);
            if (!n) { r = -ENOMEM; break; }
            s->v = n;
            s->cap = ncap;
        }
        char *name = join(sub, de->d_name);
        if (!name) { r = -ENOMEM; break; }
        s->v[s->n++] = (struct found){ name, 4, sm_uidlist_base_len(de->d_name), false };
    }
    closedir(d);
    return r;
}

static int found_cmp(const void *a, const void *b) {
    const struct found *x = a, *y = b;
    size_t n = x->base_len < y->base_len ? x->base_len : y->base_len;
    int c = memcmp(x->name + 4, y->name + 4, n);
    if (c) return c;
    return x->base_len < y->base_len ? -1 : x->base_len > y->base_len;
}

/* Scans new/ then cur/ (a message moving new/ -> cur/ meanwhile is then
 * seen at least once), sorted by base with duplicates resolved to cur/. */
static int scan_maildir(const char *maildir, struct scan *s) {
    int r = scan_dir(maildir, "new", s);
    if (r < 0 && r != -ENOENT) return r;
    r = scan_dir(maildir, "cur", s);
    if (r < 0) return r;
    if (s->n) qsort(s->v, s->n, sizeof *s->v, found_cmp);  /* qsort(NULL, 0) is undefined */
    size_t w = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (w > 0 && found_cmp(&s->v[w - 1], &s->v[i]) == 0) {
            /* the same message seen in new/ and cur/: keep cur/ */
            if (s->v[i].name[0] == 'c') {
                free(s->v[w - 1].name);
                s->v[w - 1] = s->v[i];
            } else {
                free(s->v[i].name);
            }
            continue;
        }
        s->v[w++] = s->v[i];
    }
    s->n = w;
    return 0;
}

static struct found *scan_find(struct scan *s, const char *base) {
    struct found key = { .name = NULL, .base_len = strlen(base) };
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        struct found *f = &s->v[mid];
        size_t n = f->base_len < key.base_len ? f->base_len : key.base_len;
        int c = memcmp(f->name + 4, base, n);
        if (!c) c = f->base_len < key.base_len ? -1 : f->base_len > key.base_len;
        if (!c) return f;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Dovecot's order for new files: the seconds, then M<usecs>, then the name. */
static int time_cmp(const char *a, const char *b) {
    const char *pa = a, *pb = b;
    uint64_t sa = 0, sb = 0;
    bool na = isdigit((unsigned char)*pa), nb = isdigit((unsigned char)*pb);
    if (na && nb) {
        for (; isdigit((unsigned char)*pa) && sa < UINT64_MAX / 20; pa++) sa = sa * 10 + (uint64_t)(*pa - '0');
        for (; isdigit((unsigned char)*pb) && sb < UINT64_MAX / 20; pb++) sb = sb * 10 + (uint64_t)(*pb - '0');
        if (sa != sb) return sa < sb ? -1 : 1;
        if (pa[0] == '.' && pa[1] == 'M' && pb[0] == '.' && pb[1] == 'M') {
            uint64_t ua = 0, ub = 0;
            for (pa += 2; isdigit((unsigned char)*pa) && ua < UINT64_MAX / 20; pa++) ua = ua * 10 + (uint64_t)(*pa - '0');
            for (pb += 2; isdigit((unsigned char)*pb) && ub < UINT64_MAX / 20; pb++) ub = ub * 10 + (uint64_t)(*pb - '0');
            if (ua != ub) return ua < ub ? -1 : 1;
        }
    }
    return strcmp(a, b);
}

static int newfile_cmp(const void *a, const void *b) {
    const struct found *x = *(const struct found *const *)a, *y = *(const struct found *const *)b;
    return time_cmp(x->name + 4, y->name + 4);
}

/* Sets path on every record with a file; true if some files are unlisted. */
static int match(struct sm_uidlist *ul, struct scan *s, bool *ret_new) {
    for (size_t i = 0; i < s->n; i++) s->v[i].used = false;
    for (size_t i = 0; i < ul->count; i++) {
        struct sm_uidlist_rec *r = &ul->recs[i];
        free(r->path);
        r->path = NULL;
        struct found *f = scan_find(s, r->base);
        if (!f || f->used) continue;
        f->used = true;
        r->path = strdup(f->name);
        if (!r->path) return -ENOMEM;
        if (r->vsize == UINT64_MAX) r->vsize = sm_uidlist_name_vsize(f->name + 4);
    }
    *ret_new = false;
    for (size_t i = 0; i < s->n; i++)
        if (!s->v[i].used) *ret_new = true;
    return 0;
}

/* Drops the records without a file. */
static void keep_present(struct sm_uidlist *ul) {
    size_t w = 0;
    for (size_t i = 0; i < ul->count; i++) {
        if (ul->recs[i].path) ul->recs[w++] = ul->recs[i];
        else rec_clear(&ul->recs[i]);
    }
    ul->count = w;
}

static int assign_new(struct sm_uidlist *ul, struct scan *s) {
    size_t nnew = 0;
    for (size_t i = 0; i < s->n; i++)
        if (!s->v[i].used) nnew++;
    _cleanup_free_ struct found **v = calloc(nnew ? nnew : 1, sizeof *v);
    if (!v) return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (!s->v[i].used) v[k++] = &s->v[i];
    qsort(v, nnew, sizeof *v, newfile_cmp);
    struct sm_uidlist_rec *recs = reallocarray(ul->recs, ul->count + nnew + 1, sizeof *recs);
    if (!recs) return -ENOMEM;
    ul->recs = recs;
    if (ul->next_uid == 0) ul->next_uid = 1;
    if ((uint64_t)ul->next_uid + nnew >= UINT32_MAX) return -EOVERFLOW;
    for (size_t i = 0; i < nnew; i++) {
        struct sm_uidlist_rec *r = &ul->recs[ul->count];
        *r = (struct sm_uidlist_rec){ .uid = ul->next_uid, .vsize = UINT64_MAX };
        r->base = strndup(v[i]->name + 4, v[i]->base_len);
        r->path = strdup(v[i]->name);
        if (!r->base || !r->path) {
            rec_clear(r);
            return -ENOMEM;
        }
        r->vsize = sm_uidlist_name_vsize(r->base);
        v[i]->used = true;
        ul->count++;
        ul->next_uid++;
    }
    if (ul->uidvalidity == 0) ul->uidvalidity = (uint32_t)time(NULL);
    if (!ul->guid) {
        uint8_t g[16];
        if (getrandom(g, sizeof g, 0) != sizeof g) return -EIO;
        ul->guid = malloc(33);
        if (!ul->guid) return -ENOMEM;
        for (size_t i = 0; i < 16; i++) snprintf(ul->guid + 2 * i, 3, "%02x", g[i]);
    }
    ul->version = 3;
    return 0;
}

static int lock_is_stale(const char *path, int fd_hint _unused_) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno == ENOENT ? 1 : -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    if (time(NULL) - st.st_mtime > (time_t)SM_UIDLIST_LOCK_STALE) return 1;
    char buf[300];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *colon = strchr(buf, ':');
    if (!colon) return 0;
    *colon = 0;
    char host[HOST_NAME_MAX + 1];
    if (gethostname(host, sizeof host) < 0) return 0;
    host[sizeof host - 1] = 0;
    char *nl = strchr(colon + 1, '\n');
    if (nl) *nl = 0;
    if (!streq(colon + 1, host)) return 0;
    char *end;
    long pid = strtol(buf, &end, 10);
    if (*end || pid <= 0) return 0;
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

int sm_uidlist_lock(const char *maildir, unsigned timeout, int *ret_fd) {
    _cleanup_free_ char *path = join(maildir, SM_UIDLIST_LOCK);
    if (!path) return -ENOMEM;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    unsigned delay_ms = 5;
    for (;;) {
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0) {
            char host[HOST_NAME_MAX + 1], buf[HOST_NAME_MAX + 32];
            if (gethostname(host, sizeof host) < 0) strcpy(host, "localhost");
            host[sizeof host - 1] = 0;
            int n = snprintf(buf, sizeof buf, "%ld:%s", (long)getpid(), host);
            if (write(fd, buf, (size_t)n) != n) {
                int e = errno ? -errno : -EIO;
                unlink(path);
                close(fd);
                return e;
            }
            *ret_fd = fd;
            return 0;
        }
        if (errno != EEXIST) return -errno;
        int st = lock_is_stale(path, -1);
        if (st < 0) return st;
        if (st > 0) {
            if (unlink(path) < 0 && errno != ENOENT) return -errno;
            continue;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= (time_t)timeout) return -ETIMEDOUT;
        struct timespec ts = { 0, (long)delay_ms * 1000000L };
        nanosleep(&ts, NULL);
        if (delay_ms < 100) delay_ms *= 2;
    }
}

void sm_uidlist_unlock(const char *maildir, int fd) {
    _cleanup_free_ char *path = join(maildir, SM_UIDLIST_LOCK);
    if (path) unlink(path);
    if (fd >= 0) close(fd);
}

int sm_uidlist_commit(const char *maildir, int fd, const struct sm_uidlist *ul) {
    _cleanup_free_ char *text = NULL;
    size_t len;
    int r = sm_uidlist_format(ul, &text, &len);
    _cleanup_free_ char *lock = join(maildir, SM_UIDLIST_LOCK);
    _cleanup_free_ char *list = join(maildir, SM_UIDLIST_FILE);
    if (r >= 0 && (!lock || !list)) r = -ENOMEM;
    if (r >= 0 && ftruncate(fd, 0) < 0) r = -errno;
    for (size_t off = 0; r >= 0 && off < len;) {
        ssize_t n = pwrite(fd, text + off, len - off, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) r = n < 0 ? -errno : -EIO;
        else off += (size_t)n;
    }
    if (r >= 0 && fdatasync(fd) < 0) r = -errno;
    if (r >= 0 && rename(lock, list) < 0) r = -errno;
    if (r < 0 && lock) unlink(lock);
    close(fd);
    return r;
}

int sm_uidlist_sync(const char *maildir, unsigned lock_timeout, struct sm_uidlist **ret) {
    _cleanup_uidlist_ struct sm_uidlist *ul = NULL;
    struct scan s = {0};
    int r = read_list(maildir, &ul);
    if (r < 0) return r;
    r = scan_maildir(maildir, &s);
    bool unlisted = false;
    if (r >= 0) r = match(ul, &s, &unlisted);
    if (r >= 0 && unlisted) {
        /* Under the lock, again from the file: another process may have
         * numbered the same files meanwhile. */
        int fd = -1;
        r = sm_uidlist_lock(maildir, lock_timeout, &fd);
        if (r >= 0) {
            sm_uidlist_free(ul);
            ul = NULL;
            scan_clear(&s);
            r = read_list(maildir, &ul);
            if (r >= 0) r = scan_maildir(maildir, &s);
            if (r >= 0) r = match(ul, &s, &unlisted);
            if (r >= 0) {
                keep_present(ul);
                r = assign_new(ul, &s);
            }
            if (r >= 0) r = sm_uidlist_commit(maildir, fd, ul);
            else sm_uidlist_unlock(maildir, fd);
        }
    }
    scan_clear(&s);
    if (r < 0) return r;
    keep_present(ul);
    *ret = TAKE_PTR(ul);
    return 0;
}
