/* test-tls.c — the GnuTLS transport (common/tls.c) against a GnuTLS client
 * in a forked child over a socketpair. A throwaway ECDSA certificate is
 * made with certtool in a temporary directory. */
#include <gnutls/gnutls.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "config.h"
#include "io.h"
#include "tls.h"
#include "tap.h"

static char dir[] = "/tmp/test-tls-XXXXXX";
static char cert[256], key[256], key2[256];

static int run(const char *cmd) {
    int r = system(cmd);
    return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

static int make_certs(void) {
    if (!mkdtemp(dir)) return -1;
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(key2, sizeof key2, "%s/key2.pem", dir);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && printf 'cn = localhost\\ndns_name = localhost\\nexpiration_days = 2\\n"
             "tls_www_server\\nsigning_key\\n' > tmpl && "
             "certtool --generate-privkey --key-type=ecdsa --outfile key.pem 2>/dev/null && "
             "certtool --generate-privkey --key-type=ecdsa --outfile key2.pem 2>/dev/null && "
             "certtool --generate-self-signed --load-privkey key.pem --template tmpl "
             "--outfile cert.pem >/dev/null 2>&1",
             dir);
    return run(cmd);
}

static struct sm_config *config(const char *c, const char *k, const char *prio, unsigned timeout) {
    char text[2048], err[512];
    snprintf(text, sizeof text, "[tls]\ncert = %s\nkey = %s\n%s%s%shandshake_timeout = %u\n", c, k,
             prio ? "priority = " : "", prio ? prio : "", prio ? "\n" : "", timeout);
    struct sm_config *cfg = NULL;
    if (sm_config_parse("test.conf", text, strlen(text), &cfg, err, sizeof err) < 0) {
        printf("# config: %s\n", err);
        return NULL;
    }
    return cfg;
}

static int server_new(const char *c, const char *k, const char *prio, unsigned timeout,
                      struct sm_tls_server **srv, char *err, size_t errlen) {
    struct sm_config *cfg = config(c, k, prio, timeout);
    if (!cfg) {
        snprintf(err, errlen, "config failed");
        return -2;
    }
    int r = sm_tls_server_new(cfg, srv, err, errlen);
    sm_config_free(cfg);
    return r;
}

/* --- the client, in a child --- */

enum client_mode { C_NORMAL, C_SILENT, C_PLAINTEXT, C_INJECT };

/* Exit codes: 0 all fine, 2 handshake failed, 3 exchange wrong,
 * 4 no clean close_notify. */
static _noreturn_ void client(int fd, const char *prio, enum client_mode mode) {
    if (mode == C_SILENT) {
        char b;
        (void)!read(fd, &b, 1);  /* until the server gives up */
        _exit(0);
    }
    if (mode == C_PLAINTEXT) {
        (void)!write(fd, "EHLO plaintext\r\n", 16);
        char b;
        (void)!read(fd, &b, 1);
        _exit(0);
    }
    if (mode == C_INJECT) {
        /* STARTTLS with a command pipelined in the same write */
        (void)!write(fd, "STARTTLS\r\nINJECTED\r\n", 20);
        char b[64];
        ssize_t n = read(fd, b, sizeof b);  /* "+OK begin TLS\r\n" */
        if (n <= 0) _exit(3);
    }
    gnutls_session_t s;
    gnutls_certificate_credentials_t cred;
    gnutls_certificate_allocate_credentials(&cred);
    gnutls_init(&s, GNUTLS_CLIENT);
    if (gnutls_priority_set_direct(s, prio ? prio : "NORMAL", NULL) < 0) _exit(5);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    gnutls_transport_set_int(s, fd);
    int r;
    do r = gnutls_handshake(s);
    while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
    if (r < 0) _exit(2);
    const char *hello = "hello from client\r\n";
    if (gnutls_record_send(s, hello, strlen(hello)) != (ssize_t)strlen(hello)) _exit(3);
    char buf[256];
    size_t got = 0;
    const char *want = "echo hello from client\r\n";
    while (got < strlen(want)) {
        ssize_t n = gnutls_record_recv(s, buf + got, sizeof buf - got);
        if (n <= 0) _exit(3);
        got += (size_t)n;
    }
    if (got != strlen(want) || memcmp(buf, want, got) != 0) _exit(3);
    ssize_t n = gnutls_record_recv(s, buf, sizeof buf);
    _exit(n == 0 ? 0 : 4);
}

struct result {
    int start;        /* sm_tls_start */
    char err[512];
    char describe[256];
    char line[256];   /* first line read over TLS */
    size_t discarded;
    int child;        /* client exit code */
};

static void session(struct sm_tls_server *srv, const char *client_prio, enum client_mode mode,
                    struct result *res) {
    memset(res, 0, sizeof *res);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        client(sv[1], client_prio, mode);
    }
    close(sv[1]);
    struct sm_io *io = sm_io_new(sv[0], sv[0]);
    sm_io_set_timeout(io, 10);
    if (mode == C_INJECT) {
        struct sm_line l;
        if (sm_io_getline(io, 100, &l) != SM_IO_OK || !streq(l.data, "STARTTLS")) res->start = -9;
        sm_io_printf(io, "+OK begin TLS\r\n");
        sm_io_flush(io);
        res->discarded = sm_io_discard_input(io);
    }
    if (res->start == 0) res->start = sm_tls_start(srv, io, res->err, sizeof res->err);
    if (res->start == 0) {
        sm_tls_describe(io, res->describe, sizeof res->describe);
        struct sm_line l;
        if (sm_io_getline(io, 200, &l) == SM_IO_OK) {
            snprintf(res->line, sizeof res->line, "%s", l.data);
            sm_io_printf(io, "echo %s\r\n", l.data);
        }
    }
    sm_io_free(io);  /* flushes and sends close_notify */
    close(sv[0]);
    int st;
    waitpid(pid, &st, 0);
    res->child = WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    if (make_certs() != 0) {
        ok(0, "certtool made a throwaway certificate in %s", dir);
        return tap_done();
    }
    char err[512];
    struct sm_tls_server *srv = NULL, *bad = NULL;
    struct result res;

    is_int(server_new(cert, key, NULL, 5, &srv, err, sizeof err), 0, "server with the default priority");
    if (!srv) {
        printf("# %s\n", err);
        return tap_done();
    }

    session(srv, NULL, C_NORMAL, &res);
    is_int(res.start, 0, "TLS 1.3 handshake");
    ok(strncmp(res.describe, "TLSv1.3 cipher=TLS_", 19) == 0, "describe: %s", res.describe);
    is_str(res.line, "hello from client", "line read over TLS");
    is_int(res.child, 0, "client got the reply and a clean close_notify");

    session(srv, "NORMAL:-VERS-ALL:+VERS-TLS1.2", C_NORMAL, &res);
    is_int(res.start, 0, "TLS 1.2 accepted");
    ok(strncmp(res.describe, "TLSv1.2 cipher=", 15) == 0, "describe: %s", res.describe);
    is_int(res.child, 0, "TLS 1.2 exchange");

    session(srv, "NORMAL:-VERS-ALL:+VERS-TLS1.1", C_NORMAL, &res);
    is_int(res.start, -1, "TLS 1.1 refused");
    ok(res.err[0] != '\0', "with a reason: %s", res.err);
    is_int(res.child, 2, "client handshake failed");

    session(srv, "NORMAL:-VERS-ALL:+VERS-TLS1.0", C_NORMAL, &res);
    is_int(res.start, -1, "TLS 1.0 refused");
    is_int(res.child, 2, "client handshake failed");

    session(srv, NULL, C_PLAINTEXT, &res);
    is_int(res.start, -1, "plaintext instead of a ClientHello fails");
    ok(res.err[0] != '\0', "with a reason: %s", res.err);

    session(srv, NULL, C_INJECT, &res);
    is_int(res.start, 0, "STARTTLS after a pipelined command");
    is_int(res.discarded, 10, "the pipelined plaintext was discarded");
    is_str(res.line, "hello from client", "first line after the handshake is the encrypted one");
    is_int(res.child, 0, "client exchange after STARTTLS");
    sm_tls_server_free(srv);
    srv = NULL;

    /* A priority string that asks for TLS 1.0/1.1 still cannot get them. */
    is_int(server_new(cert, key, "NORMAL:+VERS-TLS1.0:+VERS-TLS1.1", 5, &srv, err, sizeof err), 0,
           "priority enabling TLS 1.0/1.1 is accepted (and clamped)");
    if (srv) {
        session(srv, "NORMAL:-VERS-ALL:+VERS-TLS1.1:+VERS-TLS1.0", C_NORMAL, &res);
        is_int(res.start, -1, "clamped: TLS 1.1 still refused");
        session(srv, NULL, C_NORMAL, &res);
        is_int(res.start, 0, "clamped: TLS 1.3 works");
        sm_tls_server_free(srv);
        srv = NULL;
    }

    /* Handshake timeout: a client that says nothing. */
    is_int(server_new(cert, key, NULL, 1, &srv, err, sizeof err), 0, "server with 1 s timeout");
    if (srv) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        session(srv, NULL, C_SILENT, &res);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        is_int(res.start, -1, "silent client: handshake fails");
        ok(strstr(res.err, "timed out") != NULL, "reason: %s", res.err);
        ok(dt > 0.9 && dt < 3, "after %.2f s", dt);
        sm_tls_server_free(srv);
        srv = NULL;
    }

    /* Configuration errors. */
    is_int(server_new(cert, key2, NULL, 5, &bad, err, sizeof err), -1, "key that does not match the certificate");
    ok(strstr(err, "key") != NULL, "reason: %s", err);
    is_int(server_new(cert, "/nonexistent/key.pem", NULL, 5, &bad, err, sizeof err), -1, "missing key file");
    ok(strstr(err, "/nonexistent/key.pem") != NULL, "reason names the file: %s", err);
    is_int(server_new("", "", NULL, 5, &bad, err, sizeof err), -1, "no certificate configured");
    ok(strstr(err, "[tls]") != NULL, "reason: %s", err);
    is_int(server_new(cert, key, "NORMAL:+NO-SUCH-THING", 5, &bad, err, sizeof err), -1, "bad priority string");
    ok(strstr(err, "NO-SUCH-THING") != NULL, "reason points at it: %s", err);
    is_int(server_new(cert, key, "NORMAL:-VERS-ALL:+VERS-TLS1.0:+VERS-TLS1.1", 5, &bad, err, sizeof err), -1,
           "priority with only TLS 1.0/1.1");
    ok(strstr(err, "TLS 1.2") != NULL, "reason: %s", err);
    ok(bad == NULL, "nothing returned on error");

    /* Plain io describes as "". */
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct sm_io *io = sm_io_new(sv[0], sv[0]);
    char d[64] = "x";
    is_str(sm_tls_describe(io, d, sizeof d), "", "plain io: describe is empty");
    sm_io_free(io);
    close(sv[0]);
    close(sv[1]);

    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    run(cmd);
    return tap_done();
}
