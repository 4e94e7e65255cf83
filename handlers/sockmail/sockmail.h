/* sockmail.h — the admin CLI's shared pieces: the run context, the command
 * entry points (one file per command group), and helpers for options,
 * the database, validation, passwords and output.
 *
 * Every command returns an exit code (macro.h): 0 done, 1 refused or not
 * found, 2 usage, 75 temporary failure. Messages go to stderr and name what
 * to do; results go to stdout (text, or JSON with --json). */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "config.h"
#include "db.h"
#include "macro.h"

struct cli {
    const char *config_path;   /* -c FILE, or NULL: $SOCKMAIL_CONFIG, else the default */
    struct sm_config *cfg;     /* set by cli_config() */
};

/* Commands: ARGV[0] is the command's name. */
int cmd_pw(struct cli *cli, int argc, char **argv);
int cmd_domain(struct cli *cli, int argc, char **argv);
int cmd_user(struct cli *cli, int argc, char **argv);
int cmd_alias(struct cli *cli, int argc, char **argv);
int cmd_lookup(struct cli *cli, int argc, char **argv);
int cmd_check(struct cli *cli, int argc, char **argv);
int cmd_queue(struct cli *cli, int argc, char **argv);

/* ---- main.c ---- */

/* Prints the usage of COMMAND (NULL: the whole program) to OUT. */
void cli_usage(const char *command, FILE *out);
/* "sockmail: ..." on stderr. */
void cli_error(const char *fmt, ...) _printf_(1, 2);
/* A usage error: the message, a pointer to --help; returns SM_EXIT_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...) _printf_(2, 3);
/* Loads the configuration once. OPTIONAL: without -c and $SOCKMAIL_CONFIG a
 * missing default file means the defaults. 0, or an exit code (message printed). */
int cli_config(struct cli *cli, bool optional);
/* A handle for ACCOUNT (connects at the first query); exit code on failure. */
int cli_db(struct cli *cli, enum sm_db_account account, struct sm_db **ret);
/* The exit code and message for a failed database call (R is SM_TEMPFAIL or
 * -EINVAL, ERR the reason): 75 when the server is down or unreachable, 1
 * when it refused (privileges, duplicates, limits). WHAT says what was tried. */
int cli_db_failed(const char *what, const char *account_key, const char *err);
/* The MariaDB error number at the end of a db.h error text, or 0. */
unsigned cli_db_errno(const char *err);

/* Parses options for a sub-command: getopt_long over ARGV with our own
 * messages. Returns the option character, -1 at the end, or '?' after a
 * usage message has been printed (exit SM_EXIT_USAGE then). */
struct option;
int cli_getopt(const char *command, int argc, char **argv, const char *shortopts,
               const struct option *longopts);

/* ---- validate.c ---- */

/* Checks an address as the handlers do (sm_addr_normalize) and that it fits
 * the tutorial's columns; RET is the normal form. 0 or exit code. */
int cli_address(const char *what, const char *arg, char **ret);
/* A domain name: syntax as in an address, lower-cased, 50 bytes at most. */
int cli_domain_name(const char *arg, char **ret);
/* The id of DOMAIN as text: SM_FOUND, SM_NOTFOUND, or SM_TEMPFAIL with ERR. */
int cli_domain_id(struct sm_db *db, const char *domain, char **ret_id, char *err, size_t errlen);
/* Does QUERY (with PARAMS) return a row? SM_FOUND / SM_NOTFOUND / SM_TEMPFAIL. */
int cli_exists(struct sm_db *db, const char *query, const struct sm_db_param *params,
               size_t n, char *err, size_t errlen);
/* The first column of the first row as a number (e.g. COUNT(*)); 0 when none. */
int cli_count(struct sm_db *db, const char *query, const struct sm_db_param *params,
              size_t n, unsigned long long *ret, char *err, size_t errlen);

/* Rows of a list query, collected before anything is printed (so a failure
 * half-way prints no half list). At most CLI_MAX_ROWS rows. */
#define CLI_MAX_ROWS 1000000u
struct cli_rows {
    char **cells;              /* row-major, NCOLS per row; SQL NULL as NULL */
    unsigned ncols;
    size_t n, cap;
    bool oom, truncated;
};
/* An sm_db_row_fn collecting into a struct cli_rows (NCOLS set by the caller). */
int cli_rows_fn(void *userdata, unsigned ncols, const char *const *cols);
void cli_rows_free(struct cli_rows *r);
/* The rows of a list command: QUERY_DOMAIN with :id bound to DOMAIN_ARG's
 * id when DOMAIN_ARG is given, else QUERY_ALL. 0 with ROWS filled, or an
 * exit code after saying why (ROWS then holds nothing). */
int cli_list_rows(struct sm_db *db, const char *command, const char *domain_arg,
                  const char *query_domain, const char *query_all, struct cli_rows *rows);
static inline const char *cli_cell(const struct cli_rows *r, size_t row, unsigned col) {
    return r->cells[row * r->ncols + col];
}
/* For a command group: the action's name and its argv, or an exit code
 * after --help / a missing action. Returns -1 to go on. */
int cli_group(const char *group, int argc, char **argv);

/* ---- pw.c ---- */

/* Reads a password: from the terminal with echo off, twice when CONFIRM
 * (both must match), or one line from stdin when it is not a terminal.
 * 0 or exit code (message printed). The caller zeroes and frees *RET. */
int cli_read_password(bool confirm, char **ret);
/* Hashes PASSWORD in SCHEME (NULL: [auth] default_scheme). 0 or exit code. */
int cli_hash(const struct sm_config *cfg, const char *scheme, const char *password, char **ret);
/* 0 when SCHEME (NULL: the default) is one cli_hash can make, else the
 * usage message printed and SM_EXIT_USAGE. */
int cli_check_scheme(const struct sm_config *cfg, const char *scheme);
/* Is SCHEME one of those (case-insensitive)? Prints nothing. */
bool cli_scheme_known(const char *scheme);
/* Frees a password after zeroing it. */
void cli_free_secret(char **p);
#define _cleanup_secret_ _cleanup_(cli_free_secret)

/* ---- queue.c ---- */

/* What the queue holds, for `sockmail check`. */
struct queue_summary {
    size_t messages, pending_local, pending_remote;
    time_t oldest;             /* received time of the oldest message, 0 if none */
};
/* 0, or -errno when QUEUE cannot be read (an absent queue is empty). */
int cli_queue_summary(const char *queue, struct queue_summary *ret);

/* ---- output.c ---- */

/* A small streaming JSON writer: commas and nesting are tracked, strings
 * escaped (control characters as \u00XX, invalid UTF-8 as U+FFFD). */
#define JSON_MAX_DEPTH 16
struct json {
    FILE *f;
    unsigned depth;
    bool need_comma[JSON_MAX_DEPTH];
    bool after_key;
};
void json_begin(struct json *j, FILE *f);
void json_object(struct json *j);
void json_object_end(struct json *j);
void json_array(struct json *j);
void json_array_end(struct json *j);
void json_key(struct json *j, const char *key);
void json_str(struct json *j, const char *s);   /* NULL: null */
void json_uint(struct json *j, unsigned long long n);
void json_bool(struct json *j, bool b);
/* Ends the document with a newline. */
void json_end(struct json *j);

/* Writes S as a JSON string literal, quotes included. */
void json_escape(FILE *f, const char *s);

/* Findings of `sockmail check`. */
enum finding_level { FINDING_OK, FINDING_WARNING, FINDING_ERROR };
struct findings {
    unsigned ok, warnings, errors;
    bool tempfail;               /* the database could not be reached */
    struct json *json;           /* non-NULL: collect as JSON objects */
};
/* "ok|warning|error: WHAT — fix: FIX" (FIX may be NULL). */
void finding(struct findings *f, enum finding_level level, const char *fix, const char *fmt, ...)
    _printf_(4, 5);
