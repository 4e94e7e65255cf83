/* db.c — MariaDB lookups with prepared statements; see db.h.
 *
 * One connection per handle, opened at the first query. Statements are
 * prepared once per query text and kept for the connection's lifetime (a
 * handler runs the same few lookups many times). Results are buffered on
 * the client (mysql_stmt_store_result), so a row callback may run other
 * queries on the same handle. */
#include "db.h"

#include <ctype.h>
#include <errno.h>
#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdarg.h>
#include <stdbool.h>

#include "config.h"
#include "macro.h"
#include "mariadb-link.h"

#define MAX_CACHED 32          /* prepared statements kept per connection */
#define FIRST_VALUE_SIZE 256   /* first buffer per column; grown on demand */

struct stmt_entry {
    struct stmt_entry *next;
    char *query;               /* the text as given (the cache key) */
    MYSQL_STMT *stmt;
    char **names;              /* placeholder name per `?` */
    size_t n_names;
    bool busy;                 /* in use by a query further up the stack */
};

struct sm_db {
    char *hosts, *name, *user, *password;
    char *secret_error;        /* why the password could not be read, or NULL */
    unsigned connect_timeout, read_timeout, write_timeout;
    MYSQL *conn;
    size_t host_index;         /* entry of hosts that conn is connected to */
    size_t n_hosts;
    struct stmt_entry *cache;
    size_t n_cached;
    unsigned nesting;          /* row callbacks running: statements in use */
};

static void fmt_err(char *err, size_t errlen, const char *fmt, ...) _printf_(3, 4);
static void fmt_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- placeholder rewrite ---- */

static bool name_start(char c) { return isalpha((unsigned char)c) || c == '_'; }
static bool name_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

int sm_db_rewrite(const char *query, char **ret_sql, char ***ret_names, size_t *ret_n,
                  char *err, size_t errlen) {
    size_t len = strlen(query);
    if (len > SM_DB_MAX_QUERY) {
        fmt_err(err, errlen, "query longer than %u bytes", SM_DB_MAX_QUERY);
        return -EINVAL;
    }
    _cleanup_free_ char *sql = malloc(len + 1);
    /* Offsets and lengths of the names, packed into one block at the end. */
    size_t off[SM_DB_MAX_PLACEHOLDERS], nlen[SM_DB_MAX_PLACEHOLDERS];
    size_t n = 0, o = 0, names_bytes = 0;
    if (!sql) return -ENOMEM;

    for (size_t i = 0; i < len;) {
        char c = query[i];
        if (c == '\'' || c == '"' || c == '`') {
            /* Quoted: copy through the closing quote; a doubled quote stays
             * inside, a backslash escapes in strings (not in names). */
            size_t j = i + 1;
            for (;;) {
                if (j >= len) {
                    fmt_err(err, errlen, "unterminated %c quote at offset %zu", c, i);
                    return -EINVAL;
                }
                if (c != '`' && query[j] == '\\' && j + 1 < len) {
                    j += 2;
                    continue;
                }
                if (query[j] == c) {
                    if (j + 1 < len && query[j + 1] == c) {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j++;
            }
            memcpy(sql + o, query + i, j + 1 - i);
            o += j + 1 - i;
            i = j + 1;
        } else if (c == '#' || (c == '-' && query[i + 1] == '-' &&
                                (query[i + 2] == 0 || isspace((unsigned char)query[i + 2])))) {
            size_t j = i;
            while (j < len && query[j] != '\n') j++;
            memcpy(sql + o, query + i, j - i);
            o += j - i;
            i = j;
        } else if (c == '/' && query[i + 1] == '*') {
            const char *e = strstr(query + i + 2, "*/");
            if (!e) {
                fmt_err(err, errlen, "unterminated /* comment at offset %zu", i);
                return -EINVAL;
            }
            size_t j = (size_t)(e - query) + 2;
            memcpy(sql + o, query + i, j - i);
            o += j - i;
            i = j;
        } else if (c == '?') {
            fmt_err(err, errlen, "use named placeholders (:address), not ? (offset %zu)", i);
            return -EINVAL;
        } else if (c == ':' && name_start(query[i + 1])) {
            size_t j = i + 1;
            while (name_char(query[j])) j++;
            if (n == SM_DB_MAX_PLACEHOLDERS) {
                fmt_err(err, errlen, "more than %u placeholders", SM_DB_MAX_PLACEHOLDERS);
                return -EINVAL;
            }
            off[n] = i + 1;
            nlen[n] = j - i - 1;
            names_bytes += nlen[n] + 1;
            n++;
            sql[o++] = '?';
            i = j;
        } else {
            sql[o++] = c;
            i++;
        }
    }
    sql[o] = 0;

    char **names = malloc(n * sizeof(char *) + names_bytes + 1);
    if (!names) return -ENOMEM;
    char *p = (char *)(names + n);
    for (size_t k = 0; k < n; k++) {
        names[k] = p;
        memcpy(p, query + off[k], nlen[k]);
        p[nlen[k]] = 0;
        p += nlen[k] + 1;
    }
    *ret_sql = TAKE_PTR(sql);
    *ret_names = names;
    *ret_n = n;
    return 0;
}

/* ---- handle and connection ---- */

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

static void free_secret(char *s) {
    if (s) explicit_zero(s, strlen(s));
    free(s);
}

static size_t count_hosts(const char *hosts) {
    size_t n = 0;
    for (const char *p = hosts; *p;) {
        p += strspn(p, ", \t");
        if (!*p) break;
        n++;
        p += strcspn(p, ", \t");
    }
    return n;
}

struct sm_db *sm_db_new(const struct sm_config *cfg, enum sm_db_account account) {
    struct sm_db *db = calloc(1, sizeof *db);
    if (!db) return NULL;
    const char *user, *secret;
    switch (account) {
    case SM_DB_AUTH:
        user = cfg->db_auth_user, secret = "auth_password";
        break;
    case SM_DB_ADMIN:
        user = cfg->db_admin_user, secret = "admin_password";
        break;
    default:
        user = cfg->db_lookup_user, secret = "lookup_password";
        break;
    }
    db->hosts = dup_or_empty(cfg->db_hosts);
    db->name = dup_or_empty(cfg->db_name);
    db->user = dup_or_empty(user);
    /* Only this account's secret is read; an unreadable one makes every
     * query a temporary failure that says why. */
    char err[512];
    if (sm_config_secret(cfg, secret, &db->password, err, sizeof err) < 0) {
        db->password = strdup("");
        db->secret_error = strdup(err);
    }
    db->connect_timeout = (unsigned)cfg->db_connect_timeout;
    db->read_timeout = (unsigned)cfg->db_read_timeout;
    db->write_timeout = (unsigned)cfg->db_write_timeout;
    if (!db->hosts || !db->name || !db->user || !db->password) {
        sm_db_free(db);
        return NULL;
    }
    db->n_hosts = count_hosts(db->hosts);
    return db;
}

static void entry_free(struct stmt_entry *e) {
    if (!e) return;
    if (e->stmt) mysql_stmt_close(e->stmt);
    free(e->query);
    free(e->names);
    free(e);
}

/* Statements belong to a connection: they go with it. */
static void disconnect(struct sm_db *db) {
    while (db->cache) {
        struct stmt_entry *e = db->cache;
        db->cache = e->next;
        entry_free(e);
    }
    db->n_cached = 0;
    if (db->conn) mysql_close(db->conn);
    db->conn = NULL;
}

void sm_db_free(struct sm_db *db) {
    if (!db) return;
    disconnect(db);
    free(db->hosts);
    free(db->name);
    free(db->user);
    free_secret(db->password);
    free(db->secret_error);
    free(db);
}

/* Entry K of the host list, copied to BUF. */
static bool host_entry(const char *hosts, size_t k, char *buf, size_t buflen) {
    for (const char *p = hosts; *p;) {
        p += strspn(p, ", \t");
        if (!*p) break;
        size_t l = strcspn(p, ", \t");
        if (k-- == 0) {
            if (l >= buflen) return false;
            memcpy(buf, p, l);
            buf[l] = 0;
            return true;
        }
        p += l;
    }
    return false;
}

/* "/sock", "host", "host:port", "[v6]", "[v6]:port", or a bare v6 address. */
static int split_host(char *entry, const char **ret_host, unsigned *ret_port) {
    char *port = NULL;
    if (entry[0] == '[') {
        char *e = strchr(entry, ']');
        if (!e) return -EINVAL;
        *e = 0;
        if (e[1] == ':') port = e + 2;
        else if (e[1]) return -EINVAL;
        entry++;
    } else {
        char *c = strchr(entry, ':');
        if (c && !strchr(c + 1, ':')) {
            *c = 0;
            port = c + 1;
        }
    }
    *ret_port = SM_MARIADB_DEFAULT_PORT;
    if (port) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(port, &end, 10);
        if (errno || !*port || *end || v == 0 || v > 65535) return -EINVAL;
        *ret_port = (unsigned)v;
    }
    if (!*entry) return -EINVAL;
    *ret_host = entry;
    return 0;
}

static bool library_ready;

static int connect_one(struct sm_db *db, size_t k, char *err, size_t errlen) {
    char entry[1024];
    if (!host_entry(db->hosts, k, entry, sizeof entry)) {
        fmt_err(err, errlen, "database host entry %zu too long", k + 1);
        return -EINVAL;
    }
    bool unix_socket = entry[0] == '/';
    const char *host = "localhost";
    unsigned port = 0;
    char shown[1024];
    snprintf(shown, sizeof shown, "%s", entry);
    if (!unix_socket && split_host(entry, &host, &port) < 0) {
        fmt_err(err, errlen, "bad database host \"%s\" (want /path.sock, host[:port] or [v6]:port)",
                shown);
        return -EINVAL;
    }

    MYSQL *m = mysql_init(NULL);
    if (!m) return -ENOMEM;
    unsigned proto = unix_socket ? MYSQL_PROTOCOL_SOCKET : MYSQL_PROTOCOL_TCP;
    my_bool no = 0;
    mysql_options(m, MYSQL_OPT_PROTOCOL, &proto);
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &db->connect_timeout);
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &db->read_timeout);
    mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &db->write_timeout);
    mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_options(m, MYSQL_OPT_LOCAL_INFILE, &no);
    mysql_options(m, MYSQL_OPT_RECONNECT, &no);   /* we reconnect, and drop our statements */
    sm_mariadb_connect_options(m);

    if (!mysql_real_connect(m, unix_socket ? "localhost" : host, db->user, db->password,
                            db->name, port, unix_socket ? entry : NULL, 0)) {
        unsigned code = mysql_errno(m);
        /* Connector/C's own text for this one names the wrong plugin. */
        if (code == CR_PLUGIN_NOT_ALLOWED)
            fmt_err(err, errlen, "database %s: account %s uses an authentication plugin this "
                    "build does not load; give it a mysql_native_password password "
                    "(ALTER USER ... IDENTIFIED BY) or build with -Dmariadb_link=dlopen (%u)",
                    shown, db->user, code);
        else
            fmt_err(err, errlen, "database %s: %s (%u)", shown, mysql_error(m), code);
        mysql_close(m);
        return -ENOTCONN;
    }
    db->conn = m;
    db->host_index = k;
    return 0;
}

/* Tries every host once, starting with entry FIRST. */
static int do_connect(struct sm_db *db, size_t first, char *err, size_t errlen) {
    if (db->secret_error) {
        fmt_err(err, errlen, "%s", db->secret_error);
        return -EACCES;
    }
    if (!library_ready) {
        sm_mariadb_prepare();
        if (mysql_library_init(0, NULL, NULL)) {
            fmt_err(err, errlen, "cannot initialise the MariaDB client library");
            return -EIO;
        }
        library_ready = true;
    }
    if (db->n_hosts == 0) {
        fmt_err(err, errlen, "no database hosts configured");
        return -EINVAL;
    }
    int r = -ENOTCONN;
    for (size_t i = 0; i < db->n_hosts; i++) {
        r = connect_one(db, (first + i) % db->n_hosts, err, errlen);
        if (r == 0 || r == -ENOMEM) return r;
    }
    return r;
}

/* The server is gone or unreachable: another connection may work. */
static bool connection_error(unsigned e) {
    switch (e) {
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case CR_SERVER_LOST_EXTENDED:
    case CR_ERR_NET_READ:
    case CR_ERR_NET_WRITE:
    case ER_SERVER_SHUTDOWN:
    case ER_CONNECTION_KILLED:
#ifdef ER_CLIENT_INTERACTION_TIMEOUT
    case ER_CLIENT_INTERACTION_TIMEOUT:
#endif
        return true;
    default:
        return false;
    }
}

/* ---- statements ---- */

struct stmt_failure {
    unsigned code;             /* MariaDB error number, 0 if none */
};

static int stmt_error(MYSQL_STMT *s, const char *what, struct stmt_failure *f, char *err,
                      size_t errlen) {
    f->code = mysql_stmt_errno(s);
    fmt_err(err, errlen, "%s: %s (%u)", what, mysql_stmt_error(s), f->code);
    return connection_error(f->code) ? -ENOTCONN : -EIO;
}

/* The cached statement for QUERY, or a fresh one (cached when there is room
 * and no caller up the stack is using the cached one). */
static int get_stmt(struct sm_db *db, const char *query, struct stmt_entry **ret, bool *ret_cached,
                    struct stmt_failure *f, char *err, size_t errlen) {
    for (struct stmt_entry *e = db->cache; e; e = e->next)
        if (streq(e->query, query) && !e->busy) {
            *ret = e;
            *ret_cached = true;
            return 0;
        }

    _cleanup_free_ char *sql = NULL;
    char **names = NULL;
    size_t n = 0;
    int r = sm_db_rewrite(query, &sql, &names, &n, err, errlen);
    if (r < 0) return r;
    struct stmt_entry *e = calloc(1, sizeof *e);
    if (!e) {
        free(names);
        return -ENOMEM;
    }
    e->names = names;
    e->n_names = n;
    e->query = strdup(query);
    e->stmt = mysql_stmt_init(db->conn);
    if (!e->query || !e->stmt) {
        r = -ENOMEM;
        if (!e->stmt && mysql_errno(db->conn)) {
            f->code = mysql_errno(db->conn);
            fmt_err(err, errlen, "statement: %s (%u)", mysql_error(db->conn), f->code);
            r = connection_error(f->code) ? -ENOTCONN : -EIO;
        }
        entry_free(e);
        return r;
    }
    if (mysql_stmt_prepare(e->stmt, sql, strlen(sql))) {
        r = stmt_error(e->stmt, "prepare", f, err, errlen);
        entry_free(e);
        return r;
    }
    if (mysql_stmt_param_count(e->stmt) != n) {
        fmt_err(err, errlen, "query has %lu parameters, expected %zu",
                (unsigned long)mysql_stmt_param_count(e->stmt), n);
        entry_free(e);
        return -EINVAL;
    }
    bool cache = db->n_cached < MAX_CACHED;
    for (struct stmt_entry *c = db->cache; c; c = c->next)
        if (streq(c->query, query)) cache = false;   /* busy twin: this one is temporary */
    if (cache) {
        e->next = db->cache;
        db->cache = e;
        db->n_cached++;
    }
    *ret = e;
    *ret_cached = cache;
    return 0;
}

struct column {
    char *small;               /* bound buffer */
    char *big;                 /* for values that did not fit */
    unsigned long length;
    my_bool is_null, error;
};

/* Fetches rows into COLS and hands them to FN; ROWS counts them. */
static int fetch_rows(MYSQL_STMT *s, unsigned ncols, sm_db_row_fn fn, void *userdata,
                      unsigned long long *rows, struct stmt_failure *f, char *err, size_t errlen) {
    _cleanup_free_ struct column *col = calloc(ncols, sizeof *col);
    _cleanup_free_ MYSQL_BIND *bind = calloc(ncols, sizeof *bind);
    _cleanup_free_ const char **vals = calloc(ncols, sizeof *vals);
    _cleanup_free_ char *small = malloc((size_t)ncols * FIRST_VALUE_SIZE);
    int r = 0;
    if (!col || !bind || !vals || !small) return -ENOMEM;
    for (unsigned i = 0; i < ncols; i++) {
        col[i].small = small + (size_t)i * FIRST_VALUE_SIZE;
        bind[i].buffer_type = MYSQL_TYPE_STRING;
        bind[i].buffer = col[i].small;
        bind[i].buffer_length = FIRST_VALUE_SIZE;
        bind[i].length = &col[i].length;
        bind[i].is_null = &col[i].is_null;
        bind[i].error = &col[i].error;
    }
    if (mysql_stmt_bind_result(s, bind)) return stmt_error(s, "bind result", f, err, errlen);

    for (;;) {
        int fr = mysql_stmt_fetch(s);
        if (fr == MYSQL_NO_DATA) break;
        if (fr == 1) {
            r = stmt_error(s, "fetch", f, err, errlen);
            break;
        }
        for (unsigned i = 0; i < ncols; i++) {
            if (col[i].is_null) {
                vals[i] = NULL;
                continue;
            }
            if (col[i].length < FIRST_VALUE_SIZE) {
                col[i].small[col[i].length] = 0;
                vals[i] = col[i].small;
                continue;
            }
            /* Did not fit (MYSQL_DATA_TRUNCATED): fetch it again, bigger. */
            if (col[i].length > SM_DB_MAX_VALUE) {
                fmt_err(err, errlen, "column %u: value of %lu bytes is longer than %u", i + 1,
                        col[i].length, SM_DB_MAX_VALUE);
                r = -EIO;
                goto out;
            }
            char *big = realloc(col[i].big, col[i].length + 1);
            if (!big) {
                r = -ENOMEM;
                goto out;
            }
            col[i].big = big;
            unsigned long got = 0;
            MYSQL_BIND b = {
                .buffer_type = MYSQL_TYPE_STRING,
                .buffer = big,
                .buffer_length = col[i].length + 1,
                .length = &got,
            };
            if (mysql_stmt_fetch_column(s, &b, i, 0)) {
                r = stmt_error(s, "fetch column", f, err, errlen);
                goto out;
            }
            big[got < col[i].length ? got : col[i].length] = 0;
            vals[i] = big;
        }
        (*rows)++;
        if (fn && fn(userdata, ncols, vals)) break;
    }
out:
    for (unsigned i = 0; i < ncols; i++) free(col[i].big);
    return r;
}

/* One attempt on the current connection. */
static int run_once(struct sm_db *db, const char *query, const struct sm_db_param *params,
                    size_t nparams, sm_db_row_fn fn, void *userdata, unsigned long long *ret_rows,
                    unsigned long long *ret_affected, struct stmt_failure *f, char *err,
                    size_t errlen) {
    struct stmt_entry *e = NULL;
    bool cached = false;
    int r = get_stmt(db, query, &e, &cached, f, err, errlen);
    if (r < 0) return r;

    _cleanup_free_ MYSQL_BIND *bind = calloc(e->n_names ? e->n_names : 1, sizeof *bind);
    _cleanup_free_ unsigned long *lens = calloc(e->n_names ? e->n_names : 1, sizeof *lens);
    static my_bool is_null_true = 1;
    if (!bind || !lens) {
        r = -ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < e->n_names; i++) {
        const struct sm_db_param *p = NULL;
        for (size_t k = 0; k < nparams && !p; k++)
            if (params[k].name && streq(params[k].name, e->names[i])) p = &params[k];
        if (!p) {
            fmt_err(err, errlen, "query uses :%s, which has no value here", e->names[i]);
            r = -EINVAL;
            goto done;
        }
        if (!p->value) {
            bind[i].buffer_type = MYSQL_TYPE_NULL;
            bind[i].is_null = &is_null_true;
            continue;
        }
        lens[i] = (unsigned long)strlen(p->value);
        bind[i].buffer_type = MYSQL_TYPE_STRING;
        bind[i].buffer = (void *)p->value;
        bind[i].buffer_length = lens[i];
        bind[i].length = &lens[i];
    }
    if (e->n_names && mysql_stmt_bind_param(e->stmt, bind)) {
        r = stmt_error(e->stmt, "bind", f, err, errlen);
        goto done;
    }
    if (mysql_stmt_execute(e->stmt)) {
        r = stmt_error(e->stmt, "query", f, err, errlen);
        goto done;
    }
    if (ret_affected) *ret_affected = mysql_stmt_affected_rows(e->stmt);
    unsigned ncols = mysql_stmt_field_count(e->stmt);
    if (ncols > 0) {
        /* Buffered, so FN may run other queries on this connection. */
        if (mysql_stmt_store_result(e->stmt)) {
            r = stmt_error(e->stmt, "store result", f, err, errlen);
            goto done;
        }
        e->busy = true;
        db->nesting++;
        r = fetch_rows(e->stmt, ncols, fn, userdata, ret_rows, f, err, errlen);
        db->nesting--;
        e->busy = false;
        mysql_stmt_free_result(e->stmt);
    }
done:
    if (!cached) entry_free(e);
    return r;
}

/* Connects if needed, runs, and after a lost connection tries once more on
 * a new connection that starts with the next host. */
static int run(struct sm_db *db, const char *query, const struct sm_db_param *params,
               size_t nparams, bool write, sm_db_row_fn fn, void *userdata,
               unsigned long long *ret_rows, unsigned long long *ret_affected, char *err,
               size_t errlen) {
    size_t first = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!db->conn) {
            int r = do_connect(db, first, err, errlen);
            if (r < 0) return r;
        }
        struct stmt_failure f = { 0 };
        *ret_rows = 0;
        int r = run_once(db, query, params, nparams, fn, userdata, ret_rows, ret_affected, &f,
                         err, errlen);
        /* Inside a row callback the outer statement still needs this
         * connection: leave the reconnect to the next top-level query. */
        if (r != -ENOTCONN || db->nesting > 0) return r;
        /* A write may have been done unless the server went away before it. */
        bool retry = !write || f.code == CR_SERVER_GONE_ERROR;
        first = (db->host_index + 1) % db->n_hosts;
        disconnect(db);
        if (!retry) return r;
    }
    return -ENOTCONN;
}

int sm_db_query(struct sm_db *db, const char *query, const struct sm_db_param *params,
                size_t nparams, sm_db_row_fn fn, void *userdata, char *err, size_t errlen) {
    unsigned long long rows = 0;
    if (!db || !query) {
        fmt_err(err, errlen, "no database handle or query");
        return SM_TEMPFAIL;
    }
    int r = run(db, query, params, nparams, false, fn, userdata, &rows, NULL, err, errlen);
    if (r == -ENOMEM) fmt_err(err, errlen, "out of memory");
    if (r < 0) return SM_TEMPFAIL;
    return rows > 0 ? SM_FOUND : SM_NOTFOUND;
}

int sm_db_exec(struct sm_db *db, const char *query, const struct sm_db_param *params,
               size_t nparams, unsigned long long *ret_rows, char *err, size_t errlen) {
    unsigned long long rows = 0, affected = 0;
    if (!db || !query) {
        fmt_err(err, errlen, "no database handle or query");
        return -EINVAL;
    }
    int r = run(db, query, params, nparams, true, NULL, NULL, &rows, &affected, err, errlen);
    if (r == -EINVAL) return -EINVAL;
    if (r == -ENOMEM) fmt_err(err, errlen, "out of memory");
    if (r < 0) return SM_TEMPFAIL;
    if (ret_rows) *ret_rows = affected;
    return 0;
}
