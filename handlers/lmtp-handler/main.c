/* lmtp-handler — final delivery into Maildir over LMTP (RFC 2033).
 *
 * Started once per connection by a socket unit (Accept=yes), inetd/xinetd,
 * or by hand on a terminal; see conn.h for how the connection is found. */
#include <getopt.h>

#include "config.h"
#include "db.h"
#include "handler.h"
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
    struct sm_handler h;
    int rc = sm_handler_start(&h, "lmtp-handler", config, "421 4.3.5 Server configuration error");
    if (rc) return rc;
    struct lmtp_session s = {
        .cfg = h.cfg, .io = h.io, .conn = h.conn, .hostname = h.hostname,
    };
    log_info("event=connect peer=%s port=%u", s.conn.peer_ip, s.conn.peer_port);
    lmtp_run(&s);
    lmtp_reset(&s);
    free(s.lhlo);
    sm_db_free(s.db);
    sm_handler_finish(&h);
    return SM_EXIT_OK;
}
