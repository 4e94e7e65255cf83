/* handler.c — see handler.h. */
#include "handler.h"

#include <signal.h>

#include "config.h"
#include "io.h"
#include "log.h"
#include "macro.h"

int sm_handler_start(struct sm_handler *h, const char *program, const char *config_path,
                     const char *config_error) {
    *h = (struct sm_handler){0};
    /* A client that goes away must not kill us mid-write: EPIPE is handled. */
    signal(SIGPIPE, SIG_IGN);
    if (sm_conn_from_env(&h->conn) < 0) {
        fprintf(stderr, "%s: no connection on fds 0/1 or 3\n", program);
        return SM_EXIT_USAGE;
    }
    h->io = sm_io_new(h->conn.rfd, h->conn.wfd);
    if (!h->io) return SM_EXIT_TEMPFAIL;

    char err[1024];
    if (sm_config_load(config_path, &h->cfg, err, sizeof err) < 0) {
        sm_log_open(program, NULL, h->conn.rfd);
        log_error("event=config_error reason=\"%s\"", err);
        if (config_error) sm_io_printf(h->io, "%s\r\n", config_error);
        sm_handler_finish(h);
        return SM_EXIT_TEMPFAIL;
    }
    sm_log_open(program, h->cfg, h->conn.rfd);
    sm_log_new_session();

    if (*h->cfg->hostname) {
        h->hostname = h->cfg->hostname;
    } else {
        if (gethostname(h->host_buf, sizeof h->host_buf) < 0) strcpy(h->host_buf, "localhost");
        h->host_buf[sizeof h->host_buf - 1] = 0;
        h->hostname = h->host_buf;
    }
    return 0;
}

void sm_handler_finish(struct sm_handler *h) {
    sm_io_free(h->io);  /* flushes what is still queued */
    h->io = NULL;
    sm_config_free(h->cfg);
    h->cfg = NULL;
}
