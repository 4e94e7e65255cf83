/* handler.h — the start every per-connection handler shares.
 *
 * Before its protocol begins, a handler finds its connection (conn.h),
 * loads the config, opens the log with a fresh session id, and learns the
 * name it greets with. When the config cannot be loaded the client is told
 * so (a temporary error: the administrator can fix it) and the reason goes
 * to the log, never to the client.
 *
 *     struct sm_handler h;
 *     int rc = sm_handler_start(&h, "lmtp-handler", config_path,
 *                               "421 4.3.5 Server configuration error");
 *     if (rc) return rc;
 *     ... h.io, h.cfg, h.conn, h.hostname ...
 *     sm_handler_finish(&h);
 */
#pragma once

#include <limits.h>

#include "conn.h"

struct sm_config;
struct sm_io;

struct sm_handler {
    struct sm_conn conn;
    struct sm_io *io;
    struct sm_config *cfg;
    const char *hostname;           /* [general] hostname, else the host's name */
    char host_buf[HOST_NAME_MAX + 1];
};

/* Returns 0 when the session may start, else the exit code to return,
 * after sending CONFIG_ERROR (a reply line without CRLF; NULL sends
 * nothing, as for implicit TLS, where the client expects a handshake). */
int sm_handler_start(struct sm_handler *h, const char *program, const char *config_path,
                     const char *config_error);

/* Flushes and frees what sm_handler_start made. */
void sm_handler_finish(struct sm_handler *h);
