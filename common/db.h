/* db.h — MariaDB lookups with prepared statements only.
 *
 * Queries come from the config as SQL text with named placeholders
 * (`:address`, `:domain`, `:localpart`); each placeholder becomes `?` and the
 * value is bound as a parameter, never pasted into the SQL. Connection is
 * lazy (first query), tries each entry of [database] hosts in order
 * (`/path/to.sock` or `host[:port]`), with connect/read/write timeouts, and
 * reconnects once when the server went away. Every query answers SM_FOUND,
 * SM_NOTFOUND or SM_TEMPFAIL (macro.h): a database that cannot be reached,
 * times out, or rejects the query is TEMPFAIL, never NOTFOUND. */
#pragma once

#include <stddef.h>

struct sm_config;
struct sm_db;

enum sm_db_account { SM_DB_LOOKUP, SM_DB_AUTH, SM_DB_ADMIN };

struct sm_db_param {
    const char *name;   /* without the colon */
    const char *value;
};

/* Called once per result row; COLS[i] is NUL-terminated (NULL for SQL NULL).
 * A non-zero return stops the iteration (the query still counts as FOUND). */
typedef int (*sm_db_row_fn)(void *userdata, unsigned ncols, const char *const *cols);

/* Prepares a handle for ACCOUNT's user and password; does not connect.
 * The handle keeps its own copy of what it needs from CFG. NULL: no memory. */
struct sm_db *sm_db_new(const struct sm_config *cfg, enum sm_db_account account);
void sm_db_free(struct sm_db *db);

/* Runs QUERY with PARAMS. FOUND when at least one row came back. On
 * TEMPFAIL, ERR says why (for the log, never for the client). */
int sm_db_query(struct sm_db *db, const char *query, const struct sm_db_param *params,
                size_t nparams, sm_db_row_fn fn, void *userdata, char *err, size_t errlen);

/* Runs a statement that changes rows (admin CLI); RET_ROWS gets the count.
 * 0, or SM_TEMPFAIL / -EINVAL with ERR. A write is retried on another
 * connection only when the server certainly did not run it (error 2006). */
int sm_db_exec(struct sm_db *db, const char *query, const struct sm_db_param *params,
               size_t nparams, unsigned long long *ret_rows, char *err, size_t errlen);

/* Limits: query text, placeholders per query, one column value. */
#define SM_DB_MAX_QUERY (64u * 1024)
#define SM_DB_MAX_PLACEHOLDERS 256u
#define SM_DB_MAX_VALUE (64u * 1024)

/* Rewrites QUERY's `:name` placeholders (name = [A-Za-z_][A-Za-z0-9_]*) to
 * `?`, leaving quoted strings, backtick names and comments alone. On 0,
 * RET_SQL is the new text and RET_NAMES[i] the name of the i-th `?` (one
 * allocation: free(RET_NAMES) frees the names too). A bare `?` in QUERY, an
 * unterminated quote or comment, or a limit passed is -EINVAL with ERR. */
int sm_db_rewrite(const char *query, char **ret_sql, char ***ret_names, size_t *ret_n,
                  char *err, size_t errlen);
