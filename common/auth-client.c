/* auth-client.c — see auth-client.h. */
#include "auth-client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "io.h"
#include "macro.h"

/* Bounds on what a (possibly broken) server may make us read. */
#define MAX_HANDSHAKE_LINES 64u
#define MAX_MECHS 16u
#define MAX_MECH_NAME 64u
#define MAX_SKIPPED_LINES 64u

struct sm_auth_client {
    int fd;
    struct sm_io *io;
    unsigned next_id;
    unsigned current;     /* id of the running request, 0 = none */
    char *mechs;          /* "PLAIN LOGIN" */
};

void sm_auth_close(struct sm_auth_client *c) {
    if (!c) return;
    if (c->io) sm_io_free(c->io);
    if (c->fd >= 0) close(c->fd);
    free(c->mechs);
    free(c);
}

static void auth_closep(struct sm_auth_client **c) { sm_auth_close(*c); }

void sm_auth_result_clear(struct sm_auth_result *r) {
    free(r->user);
    free(r->challenge);
    free(r->reason);
    *r = (struct sm_auth_result){0};
}

static int io_error(int r) {
    switch (r) {
    case SM_IO_TIMEOUT: return -ETIMEDOUT;
    case SM_IO_EOF: return -ECONNRESET;
    case SM_IO_TOOLONG: return -EPROTO;
    default: return -EIO;
    }
}

/* Reads one line and splits it. */
static int read_fields(struct sm_auth_client *c, struct sm_auth_fields *f) {
    struct sm_line l;
    int r = sm_io_getline(c->io, SM_AUTH_CLIENT_MAX_LINE, &l);
    if (r < 0) return io_error(r);
    if (l.len && l.data[l.len - 1] == '\r') l.data[--l.len] = 0;
    if (sm_auth_split(l.data, l.len, f) < 0) return -EPROTO;
    return 0;
}

static int add_mech(struct sm_auth_client *c, const char *name, unsigned *count) {
    size_t n = strlen(name);
    if (n == 0 || n > MAX_MECH_NAME || ++*count > MAX_MECHS) return -EPROTO;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return -EPROTO;
    size_t old = c->mechs ? strlen(c->mechs) : 0;
    char *m = realloc(c->mechs, old + n + 2);
    if (!m) return -ENOMEM;
    if (old) m[old++] = ' ';
    memcpy(m + old, name, n + 1);
    c->mechs = m;
    return 0;
}

int sm_auth_connect(const char *path, unsigned timeout, struct sm_auth_client **ret) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!path || strlen(path) >= sizeof sa.sun_path) return -EINVAL;
    strcpy(sa.sun_path, path);

    _cleanup_(auth_closep) struct sm_auth_client *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) return -errno;
    /* A UNIX connect() to a full backlog waits up to SO_SNDTIMEO. */
    struct timeval tv = {.tv_sec = timeout};
    (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        return errno == EAGAIN || errno == EINPROGRESS ? -ETIMEDOUT : -errno;
    c->io = sm_io_new(c->fd, c->fd);
    if (!c->io) return -ENOMEM;
    sm_io_set_timeout(c->io, timeout);
    if (sm_io_printf(c->io, "VERSION\t%u\t%u\nCPID\t%ld\n", SM_AUTH_PROTOCOL_MAJOR,
                     SM_AUTH_PROTOCOL_MINOR, (long)getpid()) < 0 ||
        sm_io_flush(c->io) < 0)
        return -EIO;

    bool version = false;
    unsigned mechs = 0;
    for (unsigned i = 0; i < MAX_HANDSHAKE_LINES; i++) {
        struct sm_auth_fields f;
        int r = read_fields(c, &f);
        if (r < 0) return r;
        if (streq(f.v[0], "VERSION")) {
            unsigned major, minor;
            if (sm_auth_parse_version(&f, &major, &minor) < 0 || major != SM_AUTH_PROTOCOL_MAJOR)
                return -EPROTO;
            version = true;
        } else if (streq(f.v[0], "MECH")) {
            if (f.n < 2) return -EPROTO;
            r = add_mech(c, f.v[1], &mechs);
            if (r < 0) return r;
        } else if (streq(f.v[0], "DONE")) {
            if (!version) return -EPROTO;
            c->next_id = 1;
            *ret = TAKE_PTR(c);
            return 0;
        }
        /* SPID, CUID, COOKIE and anything newer: not needed here */
    }
    return -EPROTO;
}

bool sm_auth_has_mech(const struct sm_auth_client *c, const char *mech) {
    const char *p = c->mechs;
    size_t n = strlen(mech);
    while (p && *p) {
        const char *e = strchr(p, ' ');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncasecmp(p, mech, n) == 0) return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

const char *sm_auth_mech_list(const struct sm_auth_client *c) { return c->mechs ? c->mechs : ""; }

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* Reads lines until the answer to the running request. */
static int read_reply(struct sm_auth_client *c, struct sm_auth_result *ret) {
    for (unsigned i = 0; i < MAX_SKIPPED_LINES; i++) {
        struct sm_auth_fields f;
        struct sm_auth_reply rep;
        int r = read_fields(c, &f);
        if (r < 0) return r;
        r = sm_auth_parse_reply(&f, &rep);
        if (r == -ENOENT) continue;
        if (r < 0) return -EPROTO;
        if (rep.id != c->current) continue;  /* an old request's answer */
        struct sm_auth_result res = {.kind = rep.kind, .temp = rep.temp};
        res.user = dup_or_null(rep.user);
        res.challenge = dup_or_null(rep.data);
        res.reason = dup_or_null(rep.reason);
        if ((rep.user && !res.user) || (rep.data && !res.challenge) || (rep.reason && !res.reason)) {
            sm_auth_result_clear(&res);
            return -ENOMEM;
        }
        if (rep.kind != SM_AUTH_REPLY_CONT) c->current = 0;
        *ret = res;
        return 0;
    }
    return -EPROTO;
}

static bool field_ok(const char *s) { return !s || sm_auth_value_ok(s); }

int sm_auth_begin(struct sm_auth_client *c, const char *mech, const char *service,
                  const char *initial_b64, bool secured, const char *rip, const char *lip,
                  struct sm_auth_result *ret) {
    if (c->current || !mech || !*mech || !field_ok(mech) || !field_ok(service) ||
        !field_ok(initial_b64) || !field_ok(rip) || !field_ok(lip))
        return -EINVAL;
    if (c->next_id == 0) c->next_id = 1;  /* wrapped */
    c->current = c->next_id++;
    int r = sm_io_printf(c->io, "AUTH\t%u\t%s", c->current, mech);
    if (r == 0 && service) r = sm_io_printf(c->io, "\tservice=%s", service);
    if (r == 0 && lip && *lip) r = sm_io_printf(c->io, "\tlip=%s", lip);
    if (r == 0 && rip && *rip) r = sm_io_printf(c->io, "\trip=%s", rip);
    if (r == 0 && secured) r = sm_io_printf(c->io, "\tsecured");
    if (r == 0 && initial_b64) r = sm_io_printf(c->io, "\tresp=%s", *initial_b64 ? initial_b64 : "=");
    if (r == 0) r = sm_io_printf(c->io, "\n");
    if (r == 0) r = sm_io_flush(c->io);
    if (r < 0) return -EIO;
    return read_reply(c, ret);
}

int sm_auth_continue(struct sm_auth_client *c, const char *response_b64, struct sm_auth_result *ret) {
    if (!c->current || !response_b64 || !field_ok(response_b64)) return -EINVAL;
    if (sm_io_printf(c->io, "CONT\t%u\t%s\n", c->current, response_b64) < 0 || sm_io_flush(c->io) < 0)
        return -EIO;
    return read_reply(c, ret);
}

int sm_auth_plain_login(const struct sm_config *cfg, const char *service, const char *user,
                        const char *password, bool secured, const char *rip, const char *lip,
                        char **ret_user) {
    if (!user || !password || !*user || strchr(user, '\t') || strchr(user, '\n'))
        return SM_NOTFOUND;
    _cleanup_(auth_closep) struct sm_auth_client *c = NULL;
    if (sm_auth_connect(cfg->auth_socket, (unsigned)cfg->auth_timeout, &c) < 0) return SM_TEMPFAIL;
    char *b64 = NULL;
    int r = sm_sasl_plain_encode(user, password, &b64);
    if (r == -EINVAL) return SM_NOTFOUND;
    if (r < 0) return SM_TEMPFAIL;
    struct sm_auth_result res = {0};
    r = sm_auth_begin(c, "PLAIN", service, b64, secured, rip, lip, &res);
    sm_auth_free_secret(b64, SIZE_MAX);
    if (r < 0) return SM_TEMPFAIL;
    int ret;
    if (res.kind == SM_AUTH_REPLY_OK && res.user && *res.user) {
        ret = SM_FOUND;
        if (ret_user) *ret_user = TAKE_PTR(res.user);
    } else if (res.kind == SM_AUTH_REPLY_FAIL) {
        ret = res.temp ? SM_TEMPFAIL : SM_NOTFOUND;
    } else {
        ret = SM_TEMPFAIL;  /* CONT after a full PLAIN response, or OK without user */
    }
    sm_auth_result_clear(&res);
    return ret;
}
