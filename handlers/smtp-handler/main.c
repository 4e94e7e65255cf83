/* smtp-handler — ESMTP for one connection: mx (25), submission (587) and
 * submission over implicit TLS (465, --tls); see smtp.h for the modes.
 *
 * Started once per connection by a socket unit (Accept=yes), inetd/xinetd,
 * or by hand on a terminal; see conn.h for how the connection is found.
 * `--flush-queue` instead delivers what the queue still holds for local
 * mailboxes (after a crash or a temporary failure; run it from a timer). */
#include <getopt.h>
#include <limits.h>
#include <signal.h>

#include "config.h"
#include "db.h"
#include "handler.h"
#include "io.h"
#include "log.h"
#include "macro.h"
#include "smtp.h"
#include "tls.h"

static void usage(FILE *out) {
    fprintf(out, "usage: smtp-handler [-c FILE] --mode mx|submission [--tls]\n"
                 "       smtp-handler [-c FILE] --flush-queue\n"
                 "Serves one SMTP connection on stdin/stdout (or fd 3 with LISTEN_FDS=1).\n"
                 "  --mode mx          port 25: mail for the local domains, no relay\n"
                 "  --mode submission  port 587: AUTH required, sender checked\n"
                 "  --tls              TLS from the first byte (port 465)\n"
                 "  --flush-queue      deliver queued mail for local mailboxes, then exit\n");
}

static void session_free(struct smtp_session *s) {
    smtp_bdat_abort(s);
    smtp_reset(s);
    free(s->helo);
    free(s->auth_user);
    sm_db_free(s->db);
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"mode", required_argument, NULL, 'm'},
        {"tls", no_argument, NULL, 't'},
        {"flush-queue", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    const char *config = NULL, *mode = NULL;
    bool tls = false, flush = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:m:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'm': mode = optarg; break;
        case 't': tls = true; break;
        case 'f': flush = true; break;
        case 'h': usage(stdout); return SM_EXIT_OK;
        case 'V': printf("smtp-handler (sockmail) %s\n", SM_VERSION); return SM_EXIT_OK;
        default: usage(stderr); return SM_EXIT_USAGE;
        }
    }
    enum smtp_mode m = SMTP_MODE_MX;
    if (optind != argc || (!flush && !mode) || (flush && (mode || tls))) {
        usage(stderr);
        return SM_EXIT_USAGE;
    }
    if (mode && streq(mode, "submission")) m = SMTP_MODE_SUBMISSION;
    else if (mode && !streq(mode, "mx")) {
        fprintf(stderr, "smtp-handler: unknown mode '%s' (mx or submission)\n", mode);
        return SM_EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);

    char err[1024];
    struct sm_config *cfg = NULL;
    if (flush) {
        if (sm_config_load(config, &cfg, err, sizeof err) < 0) {
            fprintf(stderr, "smtp-handler: %s\n", err);
            return SM_EXIT_TEMPFAIL;
        }
        sm_log_open("smtp-handler", cfg, -1);
        sm_log_new_session();
        int r = smtp_flush_queue(cfg);
        sm_config_free(cfg);
        return r;
    }

    struct sm_handler h;
    /* With implicit TLS the client expects a handshake, not text; it sees a
     * closed connection either way. */
    int rc = sm_handler_start(&h, "smtp-handler", config,
                              tls ? NULL : "421 4.3.5 Server configuration error");
    if (rc) return rc;
    cfg = h.cfg;
    struct smtp_session s = {
        .mode = m, .implicit_tls = tls, .bdat_fd = -1,
        .cfg = cfg, .io = h.io, .conn = h.conn, .hostname = h.hostname,
    };
    s.max_size = m == SMTP_MODE_MX ? cfg->smtp.max_message_size
                                   : cfg->smtp_submission_max_message_size;
    log_info("event=connect mode=%s%s peer=%s port=%u", m == SMTP_MODE_MX ? "mx" : "submission",
             tls ? "+tls" : "", s.conn.peer_ip, s.conn.peer_port);

    /* TLS credentials cost a file read and a key parse: load them now only
     * for implicit TLS; STARTTLS loads them when the client asks. */
    if (tls) {
        if (!*cfg->tls_cert || !*cfg->tls_key) {
            log_error("event=tls_unavailable reason=\"[tls] cert and key are not set\"");
            rc = SM_EXIT_TEMPFAIL;
        } else if (sm_tls_server_new(cfg, &s.tls, err, sizeof err) < 0) {
            log_error("event=tls_unavailable reason=\"%s\"", err);
            s.tls = NULL;
            rc = SM_EXIT_TEMPFAIL;
        } else if (sm_tls_start(s.tls, s.io, err, sizeof err) < 0) {
            log_info("event=tls_failed reason=\"%s\"", err);
        } else {
            smtp_run(&s);
        }
    } else {
        smtp_run(&s);
    }
    session_free(&s);
    sm_handler_finish(&h);   /* the io goes before the TLS credentials it uses */
    sm_tls_server_free(s.tls);
    return rc;
}
