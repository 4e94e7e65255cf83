/* domain.c — `sockmail domain add|del|list` over virtual_domains. */
#include <getopt.h>

#include "sockmail.h"

#define Q_DOMAIN_COUNTS                                                              \
    "SELECT (SELECT COUNT(*) FROM virtual_users WHERE domain_id = :id), "           \
    "(SELECT COUNT(*) FROM virtual_aliases WHERE domain_id = :id)"

/* Options of every action: --force, --json, --help. */
struct domain_opts {
    bool force, json;
};

static int parse(int argc, char **argv, struct domain_opts *o) {
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int c;
    while ((c = cli_getopt("domain", argc, argv, "fjh", opts)) != -1) {
        switch (c) {
        case 'f': o->force = true; break;
        case 'j': o->json = true; break;
        case 'h': cli_usage("domain", stdout); return SM_EXIT_OK;
        default: return SM_EXIT_USAGE;
        }
    }
    return -1;
}

static int domain_add(struct sm_db *db, const char *name) {
    _cleanup_free_ char *domain = NULL;
    char err[1024];
    int r = cli_domain_name(name, &domain);
    if (r) return r;
    struct sm_db_param p[] = { { "domain", domain } };
    r = cli_exists(db, "SELECT 1 FROM virtual_domains WHERE name = :domain", p, 1, err, sizeof err);
    if (r == SM_TEMPFAIL) return cli_db_failed("domain add", "admin", err);
    if (r == SM_FOUND) {
        cli_error("domain %s exists already", domain);
        return SM_EXIT_REFUSED;
    }
    if (sm_db_exec(db, "INSERT INTO virtual_domains (name) VALUES (:domain)", p, 1, NULL, err,
                   sizeof err) != 0)
        return cli_db_failed("domain add", "admin", err);
    printf("added domain %s\n", domain);
    return SM_EXIT_OK;
}

static int domain_del(struct sm_db *db, const char *name, bool force) {
    _cleanup_free_ char *domain = NULL, *id = NULL;
    char err[1024];
    int r = cli_domain_name(name, &domain);
    if (r) return r;
    r = cli_domain_id(db, domain, &id, err, sizeof err);
    if (r == SM_TEMPFAIL) return cli_db_failed("domain del", "admin", err);
    if (r == SM_NOTFOUND) {
        cli_error("no such domain %s (see: sockmail domain list)", domain);
        return SM_EXIT_REFUSED;
    }
    struct sm_db_param p[] = { { "id", id } };
    struct cli_rows counts = { .ncols = 2 };
    r = sm_db_query(db, Q_DOMAIN_COUNTS, p, 1, cli_rows_fn, &counts, err, sizeof err);
    if (r == SM_TEMPFAIL || counts.oom || counts.n != 1) {
        cli_rows_free(&counts);
        if (r != SM_TEMPFAIL) snprintf(err, sizeof err, "counting the domain's rows failed");
        return cli_db_failed("domain del", "admin", err);
    }
    unsigned long long users = strtoull(cli_cell(&counts, 0, 0), NULL, 10);
    unsigned long long aliases = strtoull(cli_cell(&counts, 0, 1), NULL, 10);
    cli_rows_free(&counts);
    if ((users || aliases) && !force) {
        cli_error("domain %s has %llu user%s and %llu alias%s; deleting it deletes them too "
                  "(the foreign keys cascade). Delete them first, or repeat with --force",
                  domain, users, users == 1 ? "" : "s", aliases, aliases == 1 ? "" : "es");
        return SM_EXIT_REFUSED;
    }
    unsigned long long rows = 0;
    if (sm_db_exec(db, "DELETE FROM virtual_domains WHERE id = :id", p, 1, &rows, err,
                   sizeof err) != 0)
        return cli_db_failed("domain del", "admin", err);
    if (rows == 0) {
        cli_error("domain %s was deleted meanwhile", domain);
        return SM_EXIT_REFUSED;
    }
    printf("deleted domain %s", domain);
    if (users || aliases)
        printf(" with its %llu user%s and %llu alias%s (foreign key cascade)", users,
               users == 1 ? "" : "s", aliases, aliases == 1 ? "" : "es");
    printf("\n");
    if (users) printf("note: the users' Maildirs are left on disk\n");
    return SM_EXIT_OK;
}

static int domain_list(struct sm_db *db, bool json) {
    char err[1024];
    struct cli_rows rows = { .ncols = 3 };
    int r = sm_db_query(db,
                        "SELECT d.name, "
                        "(SELECT COUNT(*) FROM virtual_users u WHERE u.domain_id = d.id), "
                        "(SELECT COUNT(*) FROM virtual_aliases a WHERE a.domain_id = d.id) "
                        "FROM virtual_domains d ORDER BY d.name",
                        NULL, 0, cli_rows_fn, &rows, err, sizeof err);
    if (r == SM_TEMPFAIL) {
        cli_rows_free(&rows);
        return cli_db_failed("domain list", "admin", err);
    }
    if (rows.oom) {
        cli_rows_free(&rows);
        cli_error("out of memory");
        return SM_EXIT_TEMPFAIL;
    }
    if (json) {
        struct json j;
        json_begin(&j, stdout);
        json_array(&j);
        for (size_t i = 0; i < rows.n; i++) {
            json_object(&j);
            json_key(&j, "name");
            json_str(&j, cli_cell(&rows, i, 0));
            json_key(&j, "users");
            json_uint(&j, strtoull(cli_cell(&rows, i, 1), NULL, 10));
            json_key(&j, "aliases");
            json_uint(&j, strtoull(cli_cell(&rows, i, 2), NULL, 10));
            json_object_end(&j);
        }
        json_array_end(&j);
        json_end(&j);
    } else {
        for (size_t i = 0; i < rows.n; i++)
            printf("%s\tusers=%s\taliases=%s\n", cli_cell(&rows, i, 0), cli_cell(&rows, i, 1),
                   cli_cell(&rows, i, 2));
    }
    if (rows.truncated) cli_error("only the first %u domains are shown", CLI_MAX_ROWS);
    cli_rows_free(&rows);
    return SM_EXIT_OK;
}

int cmd_domain(struct cli *cli, int argc, char **argv) {
    int r = cli_group("domain", argc, argv);
    if (r >= 0) return r;
    const char *action = argv[1];
    struct domain_opts o = {0};
    if ((r = parse(argc - 1, argv + 1, &o)) >= 0) return r;
    int nargs = argc - 1 - optind;
    char **args = argv + 1 + optind;

    int want;
    if (streq(action, "add") || streq(action, "del")) want = 1;
    else if (streq(action, "list")) want = 0;
    else return cli_usage_error("domain", "unknown action \"%s\" (add, del, list)", action);
    if (nargs != want)
        return cli_usage_error("domain", "%s takes %s", action, want ? "one DOMAIN" : "no argument");
    if (o.force && !streq(action, "del")) return cli_usage_error("domain", "--force is for del");
    if (o.json && !streq(action, "list")) return cli_usage_error("domain", "--json is for list");

    struct sm_db *db = NULL;
    if ((r = cli_db(cli, SM_DB_ADMIN, &db))) return r;
    if (streq(action, "add")) r = domain_add(db, args[0]);
    else if (streq(action, "del")) r = domain_del(db, args[0], o.force);
    else r = domain_list(db, o.json);
    sm_db_free(db);
    return r;
}
