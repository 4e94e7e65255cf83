/* validate.c — argument checks shared by the write commands (the same
 * address rules as the handlers), and small query helpers. */
#include <errno.h>

#include "address.h"
#include "sockmail.h"

/* Column sizes of the tutorial's schema (sql/schema.sql). */
#define MAX_DOMAIN_NAME 50
#define MAX_EMAIL 100

int cli_address(const char *what, const char *arg, char **ret) {
    const char *why = NULL;
    if (sm_addr_normalize(arg, strlen(arg), SM_ADDR_UTF8, ret, &why) < 0) {
        cli_error("%s \"%s\" is not a valid address: %s", what, arg, why ? why : "bad syntax");
        return SM_EXIT_REFUSED;
    }
    if (strlen(*ret) > MAX_EMAIL) {
        cli_error("%s \"%s\" is longer than %d bytes, the size of the table's column", what, arg,
                  MAX_EMAIL);
        free(TAKE_PTR(*ret));
        return SM_EXIT_REFUSED;
    }
    return 0;
}

int cli_domain_name(const char *arg, char **ret) {
    /* The domain rules of an address, checked on a stand-in local part. */
    _cleanup_free_ char *probe = NULL, *norm = NULL, *local = NULL;
    const char *why = NULL;
    if (asprintf(&probe, "postmaster@%s", arg) < 0) {
        cli_error("out of memory");
        return SM_EXIT_TEMPFAIL;
    }
    if (!*arg || strchr(arg, '@') ||
        sm_addr_normalize(probe, strlen(probe), SM_ADDR_UTF8, &norm, &why) < 0) {
        cli_error("\"%s\" is not a valid domain name: %s", arg,
                  !*arg ? "empty" : strchr(arg, '@') ? "contains '@'" : why ? why : "bad syntax");
        return SM_EXIT_REFUSED;
    }
    if (sm_addr_split(norm, &local, ret) < 0) {
        cli_error("out of memory");
        return SM_EXIT_TEMPFAIL;
    }
    if (strlen(*ret) > MAX_DOMAIN_NAME) {
        cli_error("domain \"%s\" is longer than %d bytes, the size of the table's column", arg,
                  MAX_DOMAIN_NAME);
        free(TAKE_PTR(*ret));
        return SM_EXIT_REFUSED;
    }
    return 0;
}

static int first_value(void *userdata, unsigned ncols, const char *const *cols) {
    char **ret = userdata;
    if (ncols >= 1 && cols[0] && !*ret) *ret = strdup(cols[0]);
    return 1;
}

int cli_domain_id(struct sm_db *db, const char *domain, char **ret_id, char *err, size_t errlen) {
    struct sm_db_param p[] = { { "domain", domain } };
    char *id = NULL;
    int r = sm_db_query(db, "SELECT id FROM virtual_domains WHERE name = :domain", p, 1,
                        first_value, &id, err, errlen);
    if (r == SM_FOUND && !id) {
        snprintf(err, errlen, "out of memory");
        return SM_TEMPFAIL;
    }
    if (r != SM_FOUND) {
        free(id);
        return r;
    }
    *ret_id = id;
    return SM_FOUND;
}

int cli_exists(struct sm_db *db, const char *query, const struct sm_db_param *params, size_t n,
               char *err, size_t errlen) {
    return sm_db_query(db, query, params, n, NULL, NULL, err, errlen);
}

int cli_count(struct sm_db *db, const char *query, const struct sm_db_param *params, size_t n,
              unsigned long long *ret, char *err, size_t errlen) {
    _cleanup_free_ char *v = NULL;
    int r = sm_db_query(db, query, params, n, first_value, &v, err, errlen);
    if (r == SM_TEMPFAIL) return r;
    *ret = v ? strtoull(v, NULL, 10) : 0;
    return 0;
}

int cli_rows_fn(void *userdata, unsigned ncols, const char *const *cols) {
    struct cli_rows *r = userdata;
    if (r->n >= CLI_MAX_ROWS) {
        r->truncated = true;
        return 1;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        char **v = reallocarray(r->cells, cap * r->ncols, sizeof *v);
        if (!v) {
            r->oom = true;
            return 1;
        }
        r->cells = v, r->cap = cap;
    }
    for (unsigned i = 0; i < r->ncols; i++) {
        const char *v = i < ncols ? cols[i] : NULL;
        char *d = v ? strdup(v) : NULL;
        if (v && !d) {
            for (unsigned k = 0; k < i; k++) free(r->cells[r->n * r->ncols + k]);
            r->oom = true;
            return 1;
        }
        r->cells[r->n * r->ncols + i] = d;
    }
    r->n++;
    return 0;
}

void cli_rows_free(struct cli_rows *r) {
    for (size_t i = 0; i < r->n * r->ncols; i++) free(r->cells[i]);
    free(r->cells);
    r->cells = NULL;
    r->n = r->cap = 0;
}

int cli_group(const char *group, int argc, char **argv) {
    if (argc < 2) {
        cli_usage(group, stderr);
        return SM_EXIT_USAGE;
    }
    if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help")) {
        cli_usage(group, stdout);
        return SM_EXIT_OK;
    }
    return -1;
}

int cli_list_rows(struct sm_db *db, const char *command, const char *domain_arg,
                  const char *query_domain, const char *query_all, struct cli_rows *rows) {
    _cleanup_free_ char *domain = NULL, *id = NULL;
    char err[1024];
    int r;
    if (domain_arg) {
        if ((r = cli_domain_name(domain_arg, &domain))) return r;
        r = cli_domain_id(db, domain, &id, err, sizeof err);
        if (r == SM_TEMPFAIL) return cli_db_failed(command, "admin", err);
        if (r == SM_NOTFOUND) {
            cli_error("no such domain %s (see: sockmail domain list)", domain);
            return SM_EXIT_REFUSED;
        }
        struct sm_db_param p[] = { { "id", id } };
        r = sm_db_query(db, query_domain, p, 1, cli_rows_fn, rows, err, sizeof err);
    } else {
        r = sm_db_query(db, query_all, NULL, 0, cli_rows_fn, rows, err, sizeof err);
    }
    if (r == SM_TEMPFAIL) {
        cli_rows_free(rows);
        return cli_db_failed(command, "admin", err);
    }
    if (rows->oom) {
        cli_rows_free(rows);
        cli_error("out of memory");
        return SM_EXIT_TEMPFAIL;
    }
    return 0;
}
