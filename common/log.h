/* log.h — one line per event, `key=value`, tagged with a session id.
 *
 * Only programs log; library modules return errors instead (STYLE.md).
 * Where lines go (`log` in [general]):
 *   auto    — the journal when $JOURNAL_STREAM names our fd 2, else stderr
 *             when it is a terminal, else syslog;
 *   journal — fd 2 with `<N>` priority prefixes (systemd reads them);
 *   syslog  — syslog(3), facility mail;
 *   stderr  — fd 2 as plain text.
 * Never fd 2 when fd 2 is the client's connection (xinetd hands the socket
 * over as fds 0, 1 and 2): then syslog is used whatever the setting. */
#pragma once

#include <stdbool.h>
#include <syslog.h>

#include "macro.h"

struct sm_config;

/* Chooses the target; CONN_FD is the client connection (-1 if none). */
void sm_log_open(const char *program, const struct sm_config *cfg, int conn_fd);

/* Makes a fresh random session id and returns it (13 characters). */
const char *sm_log_new_session(void);
const char *sm_log_session(void);

/* PRIO is a syslog priority; FMT should read `event key=value ...`. */
void sm_log(int prio, const char *fmt, ...) _printf_(2, 3);

#define log_error(...) sm_log(LOG_ERR, __VA_ARGS__)
#define log_warning(...) sm_log(LOG_WARNING, __VA_ARGS__)
#define log_info(...) sm_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...) sm_log(LOG_DEBUG, __VA_ARGS__)

/* Makes VALUE safe inside a log line: control bytes and spaces escaped,
 * cut at MAX bytes. Writes into BUF (of LEN bytes) and returns it. */
const char *sm_log_escape(const char *value, size_t max, char *buf, size_t len);
