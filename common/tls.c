/* tls.c — GnuTLS server side of sm_io; see tls.h.
 *
 * The handshake runs on the io's non-blocking fds with poll(), bounded by
 * [tls] handshake_timeout; afterwards the io reads and writes through
 * gnutls_record_recv/send and waits on the same fds with its own timeouts.
 */
#include "tls.h"

#include <gnutls/gnutls.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <time.h>

#include "config.h"
#include "io.h"
#include "macro.h"

/* Whatever the configured priority string says, these are appended so no
 * version below TLS 1.2 can be negotiated; the result is then checked. */
#define MIN_VERSION_SUFFIX ":-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1:-VERS-DTLS-ALL"

struct sm_tls_server {
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    unsigned handshake_timeout;  /* seconds */
};

struct tls_conn {
    gnutls_session_t s;
    int wfd;
};

/* The session of this process's one connection, for sm_tls_describe():
 * the io does not expose its transport, and a handler serves a single
 * connection, so one file-static pointer is enough. */
static gnutls_session_t current_session;

static void seterr(char *err, size_t errlen, const char *fmt, ...) _printf_(3, 4);
static void seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sm_tls_server_free(struct sm_tls_server *srv) {
    if (!srv) return;
    if (srv->cred) gnutls_certificate_free_credentials(srv->cred);
    if (srv->prio) gnutls_priority_deinit(srv->prio);
    free(srv);
}

static int check_priority(const char *conf, gnutls_priority_t *ret, char *err, size_t errlen) {
    size_t n = strlen(conf);
    while (n > 0 && conf[n - 1] == ':') n--;  /* "X:" + ":-VERS" would be "X::" */
    if (n == 0) {
        seterr(err, errlen, "tls: empty priority string ([tls] priority)");
        return -1;
    }
    _cleanup_free_ char *full = malloc(n + sizeof MIN_VERSION_SUFFIX);
    if (!full) {
        seterr(err, errlen, "tls: out of memory");
        return -1;
    }
    memcpy(full, conf, n);
    memcpy(full + n, MIN_VERSION_SUFFIX, sizeof MIN_VERSION_SUFFIX);

    const char *pos = NULL;
    gnutls_priority_t prio;
    int r = gnutls_priority_init(&prio, full, &pos);
    if (r == GNUTLS_E_NO_PRIORITIES_WERE_SET) {
        seterr(err, errlen, "tls: priority string ([tls] priority) enables neither TLS 1.2 nor 1.3");
        return -1;
    }
    if (r < 0) {
        size_t at = pos ? (size_t)(pos - full) : n;
        if (at < n)
            seterr(err, errlen, "tls: bad priority string ([tls] priority) at \"%.*s\": %s",
                   (int)(n - at > 40 ? 40 : n - at), pos, gnutls_strerror(r));
        else
            seterr(err, errlen, "tls: bad priority string ([tls] priority): %s", gnutls_strerror(r));
        return -1;
    }
    const unsigned *list = NULL;
    int nv = gnutls_priority_protocol_list(prio, &list);
    bool usable = false;
    for (int i = 0; i < nv; i++) {
        if (list[i] == GNUTLS_TLS1_2 || list[i] == GNUTLS_TLS1_3)
            usable = true;
        else if (list[i] != GNUTLS_DTLS1_2 && list[i] != GNUTLS_DTLS1_0) {
            /* The suffix above should have removed it; refuse rather than
             * run with it. */
            gnutls_priority_deinit(prio);
            seterr(err, errlen, "tls: priority string ([tls] priority) enables %s, below TLS 1.2",
                   gnutls_protocol_get_name(list[i]) ?: "an unknown version");
            return -1;
        }
    }
    if (!usable) {
        gnutls_priority_deinit(prio);
        seterr(err, errlen, "tls: priority string ([tls] priority) enables neither TLS 1.2 nor 1.3");
        return -1;
    }
    *ret = prio;
    return 0;
}

int sm_tls_server_new(const struct sm_config *cfg, struct sm_tls_server **ret, char *err,
                      size_t errlen) {
    if (!cfg->tls_cert || !*cfg->tls_cert || !cfg->tls_key || !*cfg->tls_key) {
        seterr(err, errlen, "tls: no certificate configured ([tls] cert and key)");
        return -1;
    }
    /* The library's version; NULL only from gnutls-dl.c when GnuTLS cannot
     * be loaded, and gnutls_strerror() then says why (rather than every
     * later call blaming the priority string or the certificate). */
    if (!gnutls_check_version(NULL)) {
        seterr(err, errlen, "tls: %s", gnutls_strerror(GNUTLS_E_INTERNAL_ERROR));
        return -1;
    }
    struct sm_tls_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        seterr(err, errlen, "tls: out of memory");
        return -1;
    }
    srv->handshake_timeout = cfg->tls_handshake_timeout > 3600 ? 3600 : (unsigned)cfg->tls_handshake_timeout;
    if (srv->handshake_timeout == 0) srv->handshake_timeout = 30;

    const char *prio = cfg->tls_priority && *cfg->tls_priority ? cfg->tls_priority : "NORMAL";
    if (check_priority(prio, &srv->prio, err, errlen) < 0) goto fail;

    int r = gnutls_certificate_allocate_credentials(&srv->cred);
    if (r < 0) {
        seterr(err, errlen, "tls: %s", gnutls_strerror(r));
        goto fail;
    }
    /* Also checks that the key belongs to the certificate. */
    r = gnutls_certificate_set_x509_key_file2(srv->cred, cfg->tls_cert, cfg->tls_key,
                                              GNUTLS_X509_FMT_PEM, NULL, 0);
    if (r < 0) {
        seterr(err, errlen, "tls: cannot load certificate %s with key %s: %s", cfg->tls_cert,
               cfg->tls_key, gnutls_strerror(r));
        goto fail;
    }
    *ret = srv;
    return 0;
fail:
    sm_tls_server_free(srv);
    return -1;
}

/* --- the transport --- */

static ssize_t map_error(ssize_t r) {
    switch (r) {
    case GNUTLS_E_AGAIN:
        return -EAGAIN;
    case GNUTLS_E_INTERRUPTED:
        return -EINTR;
    case GNUTLS_E_PREMATURE_TERMINATION:
        return 0;  /* a peer that closes without close_notify: plain EOF */
    default:
        return -EIO;
    }
}

static ssize_t tls_read(void *ctx, void *buf, size_t len) {
    struct tls_conn *c = ctx;
    ssize_t r = gnutls_record_recv(c->s, buf, len);
    return r >= 0 ? r : map_error(r);
}

static ssize_t tls_write(void *ctx, const void *buf, size_t len) {
    struct tls_conn *c = ctx;
    ssize_t r = gnutls_record_send(c->s, buf, len);
    if (r == GNUTLS_E_PREMATURE_TERMINATION) return -EPIPE;
    return r >= 0 ? r : map_error(r);
}

static size_t tls_pending(void *ctx) {
    struct tls_conn *c = ctx;
    return gnutls_record_check_pending(c->s);
}

static void tls_free(void *ctx) {
    struct tls_conn *c = ctx;
    /* close_notify, waiting at most a second for the socket to take it. */
    int64_t deadline = now_ms() + 1000;
    for (;;) {
        int r = gnutls_bye(c->s, GNUTLS_SHUT_WR);
        if (r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED) break;
        int64_t left = deadline - now_ms();
        if (left <= 0) break;
        struct pollfd pfd = { .fd = c->wfd, .events = POLLOUT };
        if (poll(&pfd, 1, (int)left) <= 0) break;
    }
    if (current_session == c->s) current_session = NULL;
    gnutls_deinit(c->s);
    free(c);
}

int sm_tls_start(struct sm_tls_server *srv, struct sm_io *io, char *err, size_t errlen) {
    if (sm_io_is_tls(io)) {
        seterr(err, errlen, "tls: already active");
        return -1;
    }
    /* The reply to STARTTLS must be out before the client starts, and no
     * plaintext may be read as if it had come encrypted. */
    if (sm_io_flush(io) < 0) {
        seterr(err, errlen, "tls: cannot send reply before handshake");
        return -1;
    }
    (void)sm_io_discard_input(io);

    int rfd = sm_io_rfd(io), wfd = sm_io_wfd(io);
    gnutls_session_t s;
    int r = gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
    if (r < 0) {
        seterr(err, errlen, "tls: %s", gnutls_strerror(r));
        return -1;
    }
    if ((r = gnutls_priority_set(s, srv->prio)) < 0 ||
        (r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, srv->cred)) < 0) {
        seterr(err, errlen, "tls: %s", gnutls_strerror(r));
        gnutls_deinit(s);
        return -1;
    }
    gnutls_certificate_server_set_request(s, GNUTLS_CERT_IGNORE);
    gnutls_transport_set_int2(s, rfd, wfd);
    gnutls_handshake_set_timeout(s, srv->handshake_timeout * 1000);

    int64_t deadline = now_ms() + (int64_t)srv->handshake_timeout * 1000;
    for (;;) {
        r = gnutls_handshake(s);
        if (r == GNUTLS_E_SUCCESS) break;
        if (r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED) {
            if (r == GNUTLS_E_FATAL_ALERT_RECEIVED || r == GNUTLS_E_WARNING_ALERT_RECEIVED)
                seterr(err, errlen, "tls: handshake failed: client sent alert: %s",
                       gnutls_alert_get_name(gnutls_alert_get(s)) ?: "unknown");
            else {
                seterr(err, errlen, "tls: handshake failed: %s", gnutls_strerror(r));
                /* Tell the client why (e.g. protocol_version) instead of
                 * just closing; best effort, the socket is non-blocking. */
                (void)gnutls_alert_send_appropriate(s, r);
            }
            gnutls_deinit(s);
            return -1;
        }
        int64_t left = deadline - now_ms();
        int pr = 0;
        if (left > 0) {
            bool out = gnutls_record_get_direction(s) == 1;
            struct pollfd pfd = { .fd = out ? wfd : rfd, .events = out ? POLLOUT : POLLIN };
            pr = poll(&pfd, 1, (int)left);
            if (pr < 0 && errno == EINTR) continue;
        }
        if (pr <= 0) {
            if (pr < 0)
                seterr(err, errlen, "tls: handshake failed: poll: %s", strerror(errno));
            else
                seterr(err, errlen, "tls: handshake timed out after %us", srv->handshake_timeout);
            gnutls_deinit(s);
            return -1;
        }
    }

    struct tls_conn *c = calloc(1, sizeof *c);
    if (!c) {
        seterr(err, errlen, "tls: out of memory");
        gnutls_deinit(s);
        return -1;
    }
    c->s = s;
    c->wfd = wfd;
    current_session = s;
    struct sm_transport t = { tls_read, tls_write, tls_pending, tls_free, c };
    sm_io_set_transport(io, &t);
    return 0;
}

const char *sm_tls_describe(struct sm_io *io, char *buf, size_t len) {
    if (!buf || len == 0) return "";
    buf[0] = '\0';
    if (!io || !sm_io_is_tls(io) || !current_session) return buf;
    const char *ver = gnutls_protocol_get_name(gnutls_protocol_get_version(current_session));
    const char *suite = gnutls_ciphersuite_get(current_session);
    /* GnuTLS says "TLS1.3"; mail headers and logs say "TLSv1.3". */
    if (ver && strncmp(ver, "TLS", 3) == 0 && ver[3] != 'v')
        snprintf(buf, len, "TLSv%s cipher=%s", ver + 3, suite ?: "unknown");
    else
        snprintf(buf, len, "%s cipher=%s", ver ?: "unknown", suite ?: "unknown");
    return buf;
}
