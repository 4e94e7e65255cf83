/* alias.c — `sockmail alias add|del|list` over virtual_aliases: one row
 * per source and destination, as the tutorial stores them. A source of
 * "@domain" is the domain's catch-all (resolve.h). */
#include <getopt.h>

#include "address.h"
#include "sockmail.h"

/* A source: an address in a local domain, or "@domain". RET_SOURCE is the
 * normal form, RET_DOMAIN its domain. 0 or an exit code. */
static int parse_source(const char *arg, char **ret_source, char **ret_domain) {
    _cleanup_free_ char *source = NULL, *local = NULL, *domain = NULL;
    int r;
    if (arg[0] == '@') {
        if ((r = cli_domain_name(arg + 1, &domain))) return r;
        if (asprintf(&source, "@%s", domain) < 0) source = NULL;
    } else {
        if ((r = cli_address("source", arg, &source))) return r;
        if (sm_addr_split(source, &local, &domain) < 0) domain = NULL;
    }
    if (!source || !domain) {
        cli_error("out of memory");
        return SM_EXIT_TEMPFAIL;
    }
    *ret_source = TAKE_PTR(source);
    *ret_domain = TAKE_PTR(domain);
    return 0;
}

static int alias_add(struct sm_db *db, const char *src, char **dests, int ndests) {
    _cleanup_free_ char *source = NULL, *domain = NULL, *id = NULL;
    char err[1024];
    int r = parse_source(src, &source, &domain);
    if (r) return r;
    /* Every destination is checked before anything is written. */
    _cleanup_free_ char **norm = calloc((size_t)ndests, sizeof *norm);
    if (!norm) {
        cli_error("out of memory");
        return SM_EXIT_TEMPFAIL;
    }
    for (int i = 0; i < ndests && r == 0; i++) r = cli_address("destination", dests[i], &norm[i]);
    if (r) goto out;

    r = cli_domain_id(db, domain, &id, err, sizeof err);
    if (r == SM_TEMPFAIL) {
        r = cli_db_failed("alias add", "admin", err);
        goto out;
    }
    if (r == SM_NOTFOUND) {
        cli_error("domain %s is not a local domain; add it first: sockmail domain add %s", domain,
                  domain);
        r = SM_EXIT_REFUSED;
        goto out;
    }
    unsigned added = 0;
    for (int i = 0; i < ndests; i++) {
        struct sm_db_param p[] = { { "source", source }, { "destination", norm[i] },
                                   { "domain_id", id } };
        r = cli_exists(db,
                       "SELECT 1 FROM virtual_aliases WHERE source = :source "
                       "AND destination = :destination",
                       p, 2, err, sizeof err);
        if (r == SM_TEMPFAIL) {
            r = cli_db_failed("alias add", "admin", err);
            goto out;
        }
        if (r == SM_FOUND) {
            cli_error("alias %s -> %s exists already", source, norm[i]);
            r = SM_EXIT_REFUSED;
            continue;   /* the others may still be new */
        }
        if (sm_db_exec(db,
                       "INSERT INTO virtual_aliases (domain_id, source, destination) "
                       "VALUES (:domain_id, :source, :destination)",
                       p, ARRAY_SIZE(p), NULL, err, sizeof err) != 0) {
            r = cli_db_failed("alias add", "admin", err);
            goto out;
        }
        printf("added alias %s -> %s\n", source, norm[i]);
        added++;
        r = 0;
    }
    if (added && source[0] != '@') {
        /* Aliases are looked at before users (resolve.h): say so. */
        struct sm_db_param p[] = { { "email", source } };
        if (cli_exists(db, "SELECT 1 FROM virtual_users WHERE email = :email", p, 1, err,
                       sizeof err) == SM_FOUND)
            printf("note: %s is also a user; its mail now follows the alias and reaches its own "
                   "mailbox only if the alias lists %s too\n", source, source);
    }
    /* Partly done: a duplicate among several destinations is still a refusal. */
    if (r == 0 && added < (unsigned)ndests) r = SM_EXIT_REFUSED;
out:
    for (int i = 0; i < ndests; i++) free(norm[i]);
    return r;
}

static int alias_del(struct sm_db *db, const char *src, const char *dest) {
    _cleanup_free_ char *source = NULL, *domain = NULL, *norm = NULL;
    char err[1024];
    int r = parse_source(src, &source, &domain);
    if (r) return r;
    if (dest && (r = cli_address("destination", dest, &norm))) return r;
    struct sm_db_param p[] = { { "source", source }, { "destination", norm } };
    unsigned long long rows = 0;
    if (sm_db_exec(db,
                   norm ? "DELETE FROM virtual_aliases WHERE source = :source "
                          "AND destination = :destination"
                        : "DELETE FROM virtual_aliases WHERE source = :source",
                   p, norm ? 2 : 1, &rows, err, sizeof err) != 0)
        return cli_db_failed("alias del", "admin", err);
    if (rows == 0) {
        if (norm) cli_error("no alias %s -> %s (see: sockmail alias list)", source, norm);
        else cli_error("no alias with source %s (see: sockmail alias list)", source);
        return SM_EXIT_REFUSED;
    }
    if (norm) printf("deleted alias %s -> %s\n", source, norm);
    else printf("deleted %llu alias row%s of %s\n", rows, rows == 1 ? "" : "s", source);
    return SM_EXIT_OK;
}

static int alias_list(struct sm_db *db, const char *arg, bool json) {
    struct cli_rows rows = { .ncols = 3 };
    int r = cli_list_rows(db, "alias list", arg,
                          "SELECT a.source, a.destination, d.name FROM virtual_aliases a "
                          "JOIN virtual_domains d ON d.id = a.domain_id "
                          "WHERE a.domain_id = :id ORDER BY a.source, a.id",
                          "SELECT a.source, a.destination, d.name FROM virtual_aliases a "
                          "JOIN virtual_domains d ON d.id = a.domain_id "
                          "ORDER BY d.name, a.source, a.id",
                          &rows);
    if (r) return r;
    struct json j;
    if (json) {
        json_begin(&j, stdout);
        json_array(&j);
    }
    for (size_t i = 0; i < rows.n; i++) {
        if (json) {
            json_object(&j);
            json_key(&j, "source");
            json_str(&j, cli_cell(&rows, i, 0));
            json_key(&j, "destination");
            json_str(&j, cli_cell(&rows, i, 1));
            json_key(&j, "domain");
            json_str(&j, cli_cell(&rows, i, 2));
            json_object_end(&j);
        } else
            printf("%s -> %s\n", cli_cell(&rows, i, 0), cli_cell(&rows, i, 1));
    }
    if (json) {
        json_array_end(&j);
        json_end(&j);
    }
    if (rows.truncated) cli_error("only the first %u aliases are shown", CLI_MAX_ROWS);
    cli_rows_free(&rows);
    return SM_EXIT_OK;
}

int cmd_alias(struct cli *cli, int argc, char **argv) {
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int r = cli_group("alias", argc, argv);
    if (r >= 0) return r;
    const char *action = argv[1];
    bool json = false;
    int c;
    while ((c = cli_getopt("alias", argc - 1, argv + 1, "jh", opts)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 'h': cli_usage("alias", stdout); return SM_EXIT_OK;
        default: return SM_EXIT_USAGE;
        }
    }
    int nargs = argc - 1 - optind;
    char **args = argv + 1 + optind;

    if (streq(action, "add")) {
        if (nargs < 2) return cli_usage_error("alias", "add takes SOURCE and one or more DESTINATIONs");
        if (nargs > 1000) return cli_usage_error("alias", "at most 1000 destinations at once");
    } else if (streq(action, "del")) {
        if (nargs < 1 || nargs > 2) return cli_usage_error("alias", "del takes SOURCE [DESTINATION]");
    } else if (streq(action, "list")) {
        if (nargs > 1) return cli_usage_error("alias", "list takes at most one DOMAIN");
    } else
        return cli_usage_error("alias", "unknown action \"%s\" (add, del, list)", action);
    if (json && !streq(action, "list")) return cli_usage_error("alias", "--json is for list");

    struct sm_db *db = NULL;
    if ((r = cli_db(cli, SM_DB_ADMIN, &db))) return r;
    if (streq(action, "add")) r = alias_add(db, args[0], args + 1, nargs - 1);
    else if (streq(action, "del")) r = alias_del(db, args[0], nargs == 2 ? args[1] : NULL);
    else r = alias_list(db, nargs ? args[0] : NULL, json);
    sm_db_free(db);
    return r;
}
