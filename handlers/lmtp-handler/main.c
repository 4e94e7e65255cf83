/* lmtp-handler — final delivery into Maildir over LMTP (RFC 2033).
 *
 * Started once per connection by a socket unit (Accept=yes), inetd/xinetd,
 * or by hand on a terminal; see conn.h for how the connection is found. */
#include <getopt.h>
#include <limits.h>
#include <signal.h>

#include "config.h"
#include "conn.h"
#include "db.h"
#include "io.h"
#include "log.h"
#include "lmtp.h"
#include "macro.h"

static void usage(FILE *out) {
    fprintf(out, "usage: lmtp-handler [-c FILE] [--help] [--version]\n"
                 "Serves one LMTP connection on stdin/stdout (or fd 3 with LISTEN_FDS=1)\n"
                 "and delivers into the Maildirs named by mail_location.\n");
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    const char *config = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'h': usage(stdout); return SM_EXIT_OK;
        case 'V': printf("lmtp-handler (sockmail) %s\n", SM_VERSION); return SM_EXIT_OK;
        default: usage(stderr); return SM_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return SM_EXIT_USAGE;
    }
    /* A client that goes away must not kill us mid-write: EPIPE is handled. */
    signal(SIGPIPE, SIG_IGN);

    struct lmtp_session s = {0};
    if (sm_conn_from_env(&s.conn) < 0) {
        fprintf(stderr, "lmtp-handler: no connection on fds 0/1 or 3\n");
        return SM_EXIT_USAGE;
    }
    s.io = sm_io_new(s.conn.rfd, s.conn.wfd);
    if (!s.io) return SM_EXIT_TEMPFAIL;

    char err[1024];
    struct sm_config *cfg = NULL;
    if (sm_config_load(config, &cfg, err, sizeof err) < 0) {
        /* The client gets a temporary error; the reason goes to the log. */
        sm_log_open("lmtp-handler", NULL, s.conn.rfd);
        log_error("event=config_error reason=\"%s\"", err);
        sm_io_printf(s.io, "421 4.3.5 Server configuration error\r\n");
        sm_io_flush(s.io);
        sm_io_free(s.io);
        return SM_EXIT_TEMPFAIL;
    }
    s.cfg = cfg;
    sm_log_open("lmtp-handler", cfg, s.conn.rfd);
    sm_log_new_session();

    char host[HOST_NAME_MAX + 1] = "localhost";
    if (*cfg->hostname) s.hostname = cfg->hostname;
    else {
        if (gethostname(host, sizeof host) < 0) strcpy(host, "localhost");
        host[sizeof host - 1] = 0;
        s.hostname = host;
    }

    log_info("event=connect peer=%s port=%u", s.conn.peer_ip, s.conn.peer_port);
    lmtp_run(&s);
    lmtp_reset(&s);
    free(s.lhlo);
    sm_db_free(s.db);
    sm_io_free(s.io);
    sm_config_free(cfg);
    return SM_EXIT_OK;
}
