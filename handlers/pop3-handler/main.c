/* pop3-handler — POP3 for one connection: port 110 with STLS, 995 with
 * --tls (implicit TLS). Logins are relayed to auth-checker; after login the
 * Maildir path follows from [general] mail_location, so no database is
 * touched (DESIGN.md). See pop3.h for the protocol and its choices. */
#include <getopt.h>

#include "config.h"
#include "handler.h"
#include "io.h"
#include "log.h"
#include "macro.h"
#include "pop3.h"
#include "tls.h"

static void usage(FILE *out) {
    fprintf(out, "usage: pop3-handler [-c FILE] [--tls]\n"
                 "Serves one POP3 connection on stdin/stdout (or fd 3 with LISTEN_FDS=1).\n"
                 "  -c FILE  configuration file (default $SOCKMAIL_CONFIG or %s)\n"
                 "  --tls    TLS from the first byte (port 995)\n", SM_DEFAULT_CONFIG);
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"tls", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    const char *config = NULL;
    bool tls = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 't': tls = true; break;
        case 'h': usage(stdout); return SM_EXIT_OK;
        case 'V': printf("pop3-handler (sockmail) %s\n", SM_VERSION); return SM_EXIT_OK;
        default: usage(stderr); return SM_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return SM_EXIT_USAGE;
    }
    struct sm_handler h;
    /* With implicit TLS the client expects a handshake, not text. */
    int rc = sm_handler_start(&h, "pop3-handler", config,
                              tls ? NULL : "-ERR [SYS/TEMP] Server configuration error.");
    if (rc) return rc;
    struct sm_config *cfg = h.cfg;
    struct pop3_session s = { .implicit_tls = tls, .cfg = cfg, .io = h.io, .conn = h.conn };
    log_info("event=connect%s peer=%s port=%u", tls ? " tls=implicit" : "", s.conn.peer_ip,
             s.conn.peer_port);

    char err[1024];
    if (tls) {
        if (!*cfg->tls_cert || !*cfg->tls_key || sm_tls_server_new(cfg, &s.tls, err, sizeof err) < 0) {
            log_error("event=tls_unavailable reason=\"%s\"", *cfg->tls_cert ? err : "no [tls] cert/key");
            s.tls = NULL;
            rc = SM_EXIT_TEMPFAIL;
        } else if (sm_tls_start(s.tls, s.io, err, sizeof err) < 0) {
            log_info("event=tls_failed reason=\"%s\"", err);
        } else {
            pop3_run(&s);
        }
    } else {
        pop3_run(&s);
    }
    pop3_session_clear(&s);
    sm_handler_finish(&h);   /* the io goes before the TLS credentials it uses */
    sm_tls_server_free(s.tls);
    return rc;
}
