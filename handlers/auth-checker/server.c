/* server.c — the Dovecot authentication protocol, server side.
 *
 * What we implement (auth-protocol.h has the line formats):
 * - On connect we send VERSION 1 2, MECH PLAIN/LOGIN (both "plaintext"),
 *   SPID, CUID (1: one connection per process), COOKIE (random) and DONE.
 * - The client must send VERSION (major 1) first, then CPID, then AUTH and
 *   CONT lines. Anything out of order, an unknown command, a malformed or
 *   overlong line closes the connection (Dovecot disconnects too).
 * - Several requests may run on one connection (LOGIN waits for CONT); an
 *   id already in flight gets FAIL and the older request is dropped.
 * - PLAIN and LOGIN are refused on an unprotected connection as Dovecot's
 *   disable_plaintext_auth does: allowed only when the request says
 *   `secured` (TLS), or rip is absent, loopback or equal to lip, or
 *   [auth] allow_plaintext is on (sm_auth_plaintext_allowed()).
 * - A failed login (wrong password, unknown user, undecodable or invalid
 *   SASL payload, authzid != authcid) is answered after failure_delay
 *   seconds and counted; after max_attempts the connection is closed.
 * - A temporary failure (database down; an unsupported stored hash, which
 *   is also logged as an error for the administrator) is
 *   `FAIL id temp code=temp_fail reason=...` for clients that announce
 *   VERSION 1.1 or later (our auth-client, Dovecot's own). Clients of
 *   protocol 1.0 do not know "temp": Postfix 3.7 answers any FAIL with
 *   535 5.7.8 (permanent), and only a lost connection with 454 4.7.0
 *   (measured with Debian's Postfix, tests/integration/test_postfix_sasl.py;
 *   Exim behaves alike). For them we close the connection instead.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "auth-checker.h"
#include "auth-protocol.h"
#include "log.h"
#include "macro.h"

#define MAX_PENDING 8u
#define REASON_FAILED "Authentication failed"

enum step { STEP_PLAIN, STEP_LOGIN_USER, STEP_LOGIN_PASS };

struct pending {
    bool used;
    unsigned id;
    enum step step;
    char *user;        /* LOGIN: the name from the first answer */
    char *service;     /* for the log */
    char *mech;
};

struct server {
    struct ac_ctx *a;
    struct sm_io *io;
    bool version, cpid;
    unsigned client_minor;   /* VERSION 1.x the client announced */
    uint64_t failures;
    bool close;
    struct pending pending[MAX_PENDING];
};

static void pending_drop(struct pending *p) {
    sm_auth_free_secret(p->user, SIZE_MAX);
    free(p->service);
    free(p->mech);
    *p = (struct pending){0};
}

static struct pending *pending_find(struct server *s, unsigned id) {
    for (size_t i = 0; i < MAX_PENDING; i++)
        if (s->pending[i].used && s->pending[i].id == id) return &s->pending[i];
    return NULL;
}

static void delay(const struct server *s) {
    struct timespec ts = {.tv_sec = (time_t)s->a->cfg->auth_failure_delay};
    /* The delay is what an attacker pays; resume after signals. */
    while (ts.tv_sec && nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static const char *esc(const char *v, char *buf, size_t len) {
    return sm_log_escape(v ? v : "-", 128, buf, len);
}

/* FAIL for a failed login: delayed and counted. */
static void fail_login(struct server *s, unsigned id, const char *user, const char *reason) {
    delay(s);
    sm_io_printf(s->io, "FAIL\t%u", id);
    if (user && *user && strlen(user) <= 256 && sm_auth_value_ok(user))
        sm_io_printf(s->io, "\tuser=%s", user);
    sm_io_printf(s->io, "\treason=%s\n", reason);
    if (++s->failures >= s->a->cfg->auth_max_attempts) {
        log_info("event=auth_close reason=max_attempts failures=%llu",
                 (unsigned long long)s->failures);
        s->close = true;
    }
}

/* FAIL that is no login attempt (protocol misuse, policy): not delayed. */
static void fail_plain(struct server *s, unsigned id, const char *reason) {
    sm_io_printf(s->io, "FAIL\t%u\treason=%s\n", id, reason);
}

static void fail_temp(struct server *s, unsigned id, const char *user) {
    if (s->client_minor == 0) {
        log_info("event=auth_close reason=tempfail_for_1.0_client");
        s->close = true;  /* see the top of this file */
        return;
    }
    sm_io_printf(s->io, "FAIL\t%u", id);
    if (user && *user && strlen(user) <= 256 && sm_auth_value_ok(user))
        sm_io_printf(s->io, "\tuser=%s", user);
    sm_io_printf(s->io, "\ttemp\tcode=temp_fail\treason=Temporary authentication failure\n");
}

/* Checks USER/PASSWORD and answers request ID. */
static void finish(struct server *s, unsigned id, const char *mech, const char *service,
                   const char *user, const char *password) {
    _cleanup_free_ char *canon = NULL;
    const char *scheme = NULL;
    char b1[300], b2[300], b3[64];
    int r = ac_check(s->a, user, password, &canon, &scheme);
    switch (r) {
    case AC_OK:
        log_info("event=auth result=ok mech=%s service=%s user=%s", mech, esc(service, b2, sizeof b2),
                 esc(canon, b1, sizeof b1));
        sm_io_printf(s->io, "OK\t%u\tuser=%s\n", id, canon);
        return;
    case AC_NOUSER:
    case AC_BADPASS:
        log_info("event=auth result=fail reason=%s mech=%s service=%s user=%s",
                 r == AC_NOUSER ? "unknown_user" : "wrong_password", mech,
                 esc(service, b2, sizeof b2), esc(user, b1, sizeof b1));
        fail_login(s, id, user, REASON_FAILED);
        return;
    case AC_UNSUPPORTED:
        log_error("event=auth result=tempfail reason=unsupported_hash user=%s scheme=%s detail=\"%s\" "
                  "fix=\"store a supported hash (sockmail pw) for this user\"",
                  esc(user, b1, sizeof b1), esc(scheme, b3, sizeof b3), s->a->err);
        delay(s);
        fail_temp(s, id, user);
        return;
    case AC_TEMPFAIL:
        log_error("event=auth result=tempfail reason=database user=%s detail=\"%s\"",
                  esc(user, b1, sizeof b1), esc(s->a->err, b2, sizeof b2));
        fail_temp(s, id, user);
        return;
    default:
        log_error("event=auth result=tempfail reason=internal error=%d", r);
        fail_temp(s, id, user);
        return;
    }
}

/* Decodes one SASL answer; on failure answers the request itself. */
static int decode(struct server *s, unsigned id, const char *b64, char **ret, size_t *ret_len) {
    int r = sm_auth_b64_decode(b64, ret, ret_len);
    if (r == -ENOMEM) {
        fail_temp(s, id, NULL);
        return r;
    }
    if (r < 0) {
        log_info("event=auth result=fail reason=bad_base64");
        fail_login(s, id, NULL, "Invalid base64 data");
        return r;
    }
    return 0;
}

static void plain_step(struct server *s, unsigned id, const char *service, const char *b64) {
    char *data = NULL;
    size_t len = 0;
    if (decode(s, id, b64, &data, &len) < 0) return;
    const char *authz, *authc, *pass;
    int r = sm_sasl_plain_parse(data, len, &authz, &authc, &pass);
    if (r == -EPERM) {
        char b1[300], b2[300];
        log_info("event=auth result=fail reason=authzid_differs mech=PLAIN authzid=%s user=%s",
                 esc(authz, b1, sizeof b1), esc(authc, b2, sizeof b2));
        fail_login(s, id, NULL, "Authorization identity differs from authentication identity");
    } else if (r < 0) {
        log_info("event=auth result=fail reason=bad_plain_payload mech=PLAIN");
        fail_login(s, id, NULL, "Invalid PLAIN response");
    } else {
        finish(s, id, "PLAIN", service, authc, pass);
    }
    sm_auth_free_secret(data, len);
}

static void cont_challenge(struct server *s, unsigned id, const char *text) {
    _cleanup_free_ char *b64 = NULL;
    if (sm_auth_b64_encode(text, strlen(text), &b64) < 0) {
        fail_temp(s, id, NULL);
        return;
    }
    sm_io_printf(s->io, "CONT\t%u\t%s\n", id, b64);
}

/* Runs one LOGIN answer for P (which is dropped when the request ends). */
static void login_step(struct server *s, struct pending *p, const char *b64) {
    unsigned id = p->id;
    char *data = NULL;
    size_t len = 0;
    if (decode(s, id, b64, &data, &len) < 0) {
        pending_drop(p);
        return;
    }
    if (sm_sasl_login_check(data, len) < 0) {
        log_info("event=auth result=fail reason=bad_login_payload mech=LOGIN");
        fail_login(s, id, NULL, "Invalid LOGIN response");
        pending_drop(p);
    } else if (p->step == STEP_LOGIN_USER) {
        p->user = TAKE_PTR(data);
        p->step = STEP_LOGIN_PASS;
        cont_challenge(s, id, SM_SASL_LOGIN_PASS);
    } else {
        finish(s, id, "LOGIN", p->service, p->user, data);
        pending_drop(p);
    }
    sm_auth_free_secret(data, len);
}

static struct pending *pending_new(struct server *s, unsigned id, enum step step,
                                   const char *service, const char *mech) {
    for (size_t i = 0; i < MAX_PENDING; i++) {
        struct pending *p = &s->pending[i];
        if (p->used) continue;
        *p = (struct pending){.used = true, .id = id, .step = step};
        p->service = service ? strdup(service) : NULL;
        p->mech = strdup(mech);
        return p;
    }
    return NULL;
}

static void cmd_auth(struct server *s, const struct sm_auth_fields *f) {
    struct sm_auth_request r;
    unsigned id;
    if (sm_auth_parse_auth(f, &r) < 0) {
        if (f->n >= 2 && sm_auth_parse_id(f->v[1], &id) == 0) {
            fail_plain(s, id, "Invalid AUTH parameters");
            return;
        }
        log_info("event=protocol_error reason=bad_auth_line");
        s->close = true;
        return;
    }
    struct pending *old = pending_find(s, r.id);
    if (old) {
        pending_drop(old);
        fail_plain(s, r.id, "Request id already in use");
        return;
    }
    bool plain = strcasecmp(r.mech, "PLAIN") == 0, login = strcasecmp(r.mech, "LOGIN") == 0;
    if (!plain && !login) {
        char b[200];
        log_info("event=auth result=fail reason=unsupported_mechanism mech=%s", esc(r.mech, b, sizeof b));
        fail_plain(s, r.id, "Unsupported authentication mechanism");
        return;
    }
    if (!sm_auth_plaintext_allowed(&r, s->a->cfg->auth_allow_plaintext)) {
        char b[200];
        log_info("event=auth result=fail reason=plaintext_refused rip=%s", esc(r.rip, b, sizeof b));
        fail_plain(s, r.id, "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.");
        return;
    }
    if (plain && r.resp) {
        plain_step(s, r.id, r.service, r.resp);
        return;
    }
    struct pending *p = pending_new(s, r.id, plain ? STEP_PLAIN : STEP_LOGIN_USER, r.service,
                                    plain ? "PLAIN" : "LOGIN");
    if (!p) {
        fail_plain(s, r.id, "Too many requests in progress");
        return;
    }
    if (plain) {
        sm_io_printf(s->io, "CONT\t%u\t\n", r.id);
    } else if (r.resp && *r.resp && !streq(r.resp, "=")) {
        login_step(s, p, r.resp);  /* initial response = the user name */
    } else {
        cont_challenge(s, r.id, SM_SASL_LOGIN_USER);
    }
}

static void cmd_cont(struct server *s, const struct sm_auth_fields *f) {
    unsigned id;
    const char *data;
    if (sm_auth_parse_cont(f, &id, &data) < 0) {
        log_info("event=protocol_error reason=bad_cont_line");
        s->close = true;
        return;
    }
    struct pending *p = pending_find(s, id);
    if (!p) {
        fail_plain(s, id, "Unknown request id");
        return;
    }
    if (p->step == STEP_PLAIN) {
        _cleanup_free_ char *service = p->service ? strdup(p->service) : NULL;
        pending_drop(p);
        plain_step(s, id, service, data);
    } else {
        login_step(s, p, data);
    }
}

static int send_handshake(struct server *s) {
    unsigned char rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) return -EIO;
    char cookie[33];
    for (size_t i = 0; i < sizeof rnd; i++) snprintf(cookie + 2 * i, 3, "%02x", rnd[i]);
    return sm_io_printf(s->io,
                        "VERSION\t%u\t%u\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n"
                        "SPID\t%ld\nCUID\t1\nCOOKIE\t%s\nDONE\n",
                        SM_AUTH_PROTOCOL_MAJOR, SM_AUTH_PROTOCOL_MINOR, (long)getpid(), cookie);
}

static void handle(struct server *s, struct sm_auth_fields *f) {
    const char *cmd = f->v[0];
    if (!s->version) {
        unsigned major, minor;
        if (sm_auth_parse_version(f, &major, &minor) < 0 || major != SM_AUTH_PROTOCOL_MAJOR) {
            log_info("event=protocol_error reason=no_version_handshake");
            s->close = true;
            return;
        }
        s->version = true;
        s->client_minor = minor;
        return;
    }
    if (streq(cmd, "CPID") && !s->cpid) {
        unsigned pid;
        if (f->n != 2 || sm_auth_parse_id(f->v[1], &pid) < 0) {
            log_info("event=protocol_error reason=bad_cpid");
            s->close = true;
            return;
        }
        s->cpid = true;
        return;
    }
    if (s->cpid && streq(cmd, "AUTH")) cmd_auth(s, f);
    else if (s->cpid && streq(cmd, "CONT")) cmd_cont(s, f);
    else {
        char b[100];
        log_info("event=protocol_error reason=unexpected_command command=%s", esc(cmd, b, sizeof b));
        s->close = true;
    }
}

int ac_serve(struct ac_ctx *a, struct sm_io *io) {
    struct server s = {.a = a, .io = io};
    sm_io_set_timeout(io, (unsigned)a->cfg->auth_timeout);
    if (send_handshake(&s) < 0 || sm_io_flush(io) < 0) return SM_EXIT_OK;
    while (!s.close) {
        struct sm_line l;
        int r = sm_io_getline(io, (size_t)a->cfg->auth_max_line, &l);
        if (r == SM_IO_TOOLONG) {
            log_info("event=protocol_error reason=line_too_long max=%llu",
                     (unsigned long long)a->cfg->auth_max_line);
            break;
        }
        if (r == SM_IO_TIMEOUT) {
            log_info("event=timeout");
            break;
        }
        if (r < 0) break;
        if (l.len && l.data[l.len - 1] == '\r') l.data[--l.len] = 0;
        struct sm_auth_fields f;
        if (sm_auth_split(l.data, l.len, &f) < 0) {
            log_info("event=protocol_error reason=malformed_line");
            explicit_zero(l.data, l.len);
            break;
        }
        handle(&s, &f);
        /* The line may have carried a password (base64 is no protection). */
        explicit_zero(l.data, l.len);
        if (sm_io_flush(io) < 0) break;
    }
    sm_io_flush(io);
    for (size_t i = 0; i < MAX_PENDING; i++) pending_drop(&s.pending[i]);
    return SM_EXIT_OK;
}
