/* sm-lineserver — a toy line protocol over sm_conn + sm_io + sm_tls, for
 * tests/integration/test_tls.py (real TLS clients against our transport).
 *
 *     sm-lineserver -c CONFIG [--tls]
 *
 * Greets "+OK ready" (after the handshake with --tls). Commands:
 *   STARTTLS  "+OK begin TLS", then the handshake; plaintext pipelined
 *             after the command is discarded (counted, never executed)
 *   TLS       "+OK <protocol> cipher=<suite> discarded=<n>" or "-ERR not TLS"
 *   QUIT      "+OK bye" and exit
 *   other     "ECHO <line>"
 * Errors go to stderr (the launcher's, never the client's socket here).
 */
#include <getopt.h>
#include <signal.h>

#include "config.h"
#include "conn.h"
#include "io.h"
#include "macro.h"
#include "tls.h"

#define MAX_LINE 512

int main(int argc, char **argv) {
    const char *config = NULL;
    bool implicit = false;
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "tls", no_argument, NULL, 't' },
        { 0 },
    };
    int o;
    while ((o = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        if (o == 'c') config = optarg;
        else if (o == 't') implicit = true;
        else return SM_EXIT_USAGE;
    }
    if (!config || optind != argc) {
        fprintf(stderr, "usage: sm-lineserver -c CONFIG [--tls]\n");
        return SM_EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    struct sm_config *cfg;
    if (sm_config_load(config, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "sm-lineserver: %s\n", err);
        return SM_EXIT_USAGE;
    }
    struct sm_tls_server *srv = NULL;
    if (sm_tls_server_new(cfg, &srv, err, sizeof err) < 0) {
        fprintf(stderr, "sm-lineserver: %s\n", err);
        return SM_EXIT_TEMPFAIL;
    }
    struct sm_conn conn;
    int r = sm_conn_from_env(&conn);
    if (r < 0) {
        fprintf(stderr, "sm-lineserver: no connection: %s\n", strerror(-r));
        return SM_EXIT_TEMPFAIL;
    }
    struct sm_io *io = sm_io_new(conn.rfd, conn.wfd);
    if (!io) return SM_EXIT_TEMPFAIL;
    sm_io_set_timeout(io, 30);

    int ret = SM_EXIT_OK;
    size_t discarded = 0;
    if (implicit && sm_tls_start(srv, io, err, sizeof err) < 0) {
        fprintf(stderr, "sm-lineserver: peer=%s %s\n", conn.peer_ip, err);
        ret = SM_EXIT_REFUSED;
        goto out;
    }
    sm_io_printf(io, "+OK ready\r\n");
    for (;;) {
        struct sm_line l;
        r = sm_io_getline(io, MAX_LINE, &l);
        if (r == SM_IO_TOOLONG) {
            sm_io_printf(io, "-ERR line too long\r\n");
            continue;
        }
        if (r < 0) break;
        if (strcasecmp(l.data, "QUIT") == 0) {
            sm_io_printf(io, "+OK bye\r\n");
            break;
        } else if (strcasecmp(l.data, "STARTTLS") == 0) {
            if (sm_io_is_tls(io)) {
                sm_io_printf(io, "-ERR TLS already active\r\n");
                continue;
            }
            sm_io_printf(io, "+OK begin TLS\r\n");
            if (sm_io_flush(io) < 0) break;
            discarded = sm_io_discard_input(io);
            if (sm_tls_start(srv, io, err, sizeof err) < 0) {
                fprintf(stderr, "sm-lineserver: peer=%s %s\n", conn.peer_ip, err);
                ret = SM_EXIT_REFUSED;
                break;
            }
        } else if (strcasecmp(l.data, "TLS") == 0) {
            char d[256];
            if (sm_io_is_tls(io))
                sm_io_printf(io, "+OK %s discarded=%zu\r\n", sm_tls_describe(io, d, sizeof d), discarded);
            else
                sm_io_printf(io, "-ERR not TLS\r\n");
        } else {
            sm_io_write(io, "ECHO ", 5);
            sm_io_write(io, l.data, l.len);
            sm_io_write(io, "\r\n", 2);
        }
    }
out:
    sm_io_free(io);  /* before the server: the session uses its credentials */
    sm_tls_server_free(srv);
    sm_config_free(cfg);
    return ret;
}
