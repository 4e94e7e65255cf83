/* user.c — `sockmail user add|passwd|del|list` over virtual_users. */
#include <getopt.h>

#include "address.h"
#include "maildir.h"
#include "passwd.h"
#include "sockmail.h"

struct user_opts {
    const char *password, *scheme;
    bool json;
};

static int parse(int argc, char **argv, struct user_opts *o) {
    static const struct option opts[] = {
        {"password", required_argument, NULL, 'p'},
        {"scheme", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int c;
    while ((c = cli_getopt("user", argc, argv, "p:s:jh", opts)) != -1) {
        switch (c) {
        case 'p': o->password = optarg; break;
        case 's': o->scheme = optarg; break;
        case 'j': o->json = true; break;
        case 'h': cli_usage("user", stdout); return SM_EXIT_OK;
        default: return SM_EXIT_USAGE;
        }
    }
    return -1;
}

/* The hash for a new password: -p, else read (twice on a terminal). */
static int new_hash(struct cli *cli, const struct user_opts *o, char **ret) {
    _cleanup_secret_ char *password = NULL;
    int r;
    if (o->password) {
        if (!*o->password) {
            cli_error("empty password refused");
            return SM_EXIT_REFUSED;
        }
        password = strdup(o->password);
        if (!password) {
            cli_error("out of memory");
            return SM_EXIT_TEMPFAIL;
        }
    } else if ((r = cli_read_password(true, &password)))
        return r;
    return cli_hash(cli->cfg, o->scheme, password, ret);
}

static int user_add(struct cli *cli, struct sm_db *db, const char *arg, const struct user_opts *o) {
    _cleanup_free_ char *address = NULL, *local = NULL, *domain = NULL, *id = NULL;
    _cleanup_free_ char *hash = NULL;
    char err[1024];
    int r = cli_address("address", arg, &address);
    if (r) return r;
    if (sm_addr_split(address, &local, &domain) < 0) {
        cli_error("out of memory");
        return SM_EXIT_TEMPFAIL;
    }
    /* A scheme typo should not cost a typed password: check it first. */
    if ((r = cli_check_scheme(cli->cfg, o->scheme))) return r;

    r = cli_domain_id(db, domain, &id, err, sizeof err);
    if (r == SM_TEMPFAIL) return cli_db_failed("user add", "admin", err);
    if (r == SM_NOTFOUND) {
        cli_error("domain %s is not a local domain; add it first: sockmail domain add %s", domain,
                  domain);
        return SM_EXIT_REFUSED;
    }
    struct sm_db_param p[] = { { "email", address }, { "domain_id", id }, { "password", NULL } };
    r = cli_exists(db, "SELECT 1 FROM virtual_users WHERE email = :email", p, 1, err, sizeof err);
    if (r == SM_TEMPFAIL) return cli_db_failed("user add", "admin", err);
    if (r == SM_FOUND) {
        cli_error("user %s exists already (to change the password: sockmail user passwd %s)",
                  address, address);
        return SM_EXIT_REFUSED;
    }
    if ((r = new_hash(cli, o, &hash))) return r;
    p[2].value = hash;
    if (sm_db_exec(db,
                   "INSERT INTO virtual_users (domain_id, password, email) "
                   "VALUES (:domain_id, :password, :email)",
                   p, ARRAY_SIZE(p), NULL, err, sizeof err) != 0)
        return cli_db_failed("user add", "admin", err);
    printf("added user %s (%s)\n", address, sm_passwd_scheme(hash));
    /* Aliases are looked at before users (resolve.h): say so. */
    r = cli_exists(db, "SELECT 1 FROM virtual_aliases WHERE source = :email", p, 1, err, sizeof err);
    if (r == SM_FOUND)
        printf("note: an alias with source %s exists; mail to it follows the alias and reaches "
               "this mailbox only if the alias lists %s too\n", address, address);
    return SM_EXIT_OK;
}

static int user_passwd(struct cli *cli, struct sm_db *db, const char *arg,
                       const struct user_opts *o) {
    _cleanup_free_ char *address = NULL, *hash = NULL;
    char err[1024];
    int r = cli_address("address", arg, &address);
    if (r) return r;
    if ((r = cli_check_scheme(cli->cfg, o->scheme))) return r;
    struct sm_db_param p[] = { { "email", address }, { "password", NULL } };
    r = cli_exists(db, "SELECT 1 FROM virtual_users WHERE email = :email", p, 1, err, sizeof err);
    if (r == SM_TEMPFAIL) return cli_db_failed("user passwd", "admin", err);
    if (r == SM_NOTFOUND) {
        cli_error("no such user %s (see: sockmail user list)", address);
        return SM_EXIT_REFUSED;
    }
    if ((r = new_hash(cli, o, &hash))) return r;
    p[1].value = hash;
    unsigned long long rows = 0;
    if (sm_db_exec(db, "UPDATE virtual_users SET password = :password WHERE email = :email", p,
                   ARRAY_SIZE(p), &rows, err, sizeof err) != 0)
        return cli_db_failed("user passwd", "admin", err);
    if (rows == 0) {
        cli_error("user %s was deleted meanwhile", address);
        return SM_EXIT_REFUSED;
    }
    printf("changed the password of %s (%s)\n", address, sm_passwd_scheme(hash));
    return SM_EXIT_OK;
}

static int user_del(struct cli *cli, struct sm_db *db, const char *arg) {
    _cleanup_free_ char *address = NULL, *maildir = NULL;
    char err[1024];
    int r = cli_address("address", arg, &address);
    if (r) return r;
    struct sm_db_param p[] = { { "email", address } };
    unsigned long long rows = 0;
    if (sm_db_exec(db, "DELETE FROM virtual_users WHERE email = :email", p, 1, &rows, err,
                   sizeof err) != 0)
        return cli_db_failed("user del", "admin", err);
    if (rows == 0) {
        cli_error("no such user %s (see: sockmail user list)", address);
        return SM_EXIT_REFUSED;
    }
    printf("deleted user %s\n", address);
    if (sm_maildir_path(cli->cfg->mail_location, address, &maildir) == 0)
        printf("note: the Maildir %s is left on disk\n", maildir);
    return SM_EXIT_OK;
}

static int user_list(struct sm_db *db, const char *arg, bool json) {
    struct cli_rows rows = { .ncols = 3 };
    int r = cli_list_rows(db, "user list", arg,
                          "SELECT u.email, d.name, u.password FROM virtual_users u "
                          "JOIN virtual_domains d ON d.id = u.domain_id "
                          "WHERE u.domain_id = :id ORDER BY u.email",
                          "SELECT u.email, d.name, u.password FROM virtual_users u "
                          "JOIN virtual_domains d ON d.id = u.domain_id ORDER BY d.name, u.email",
                          &rows);
    if (r) return r;
    /* Only the scheme of each hash is shown, never the hash. */
    struct json j;
    if (json) {
        json_begin(&j, stdout);
        json_array(&j);
    }
    for (size_t i = 0; i < rows.n; i++) {
        const char *scheme = sm_passwd_scheme(cli_cell(&rows, i, 2));
        if (json) {
            json_object(&j);
            json_key(&j, "email");
            json_str(&j, cli_cell(&rows, i, 0));
            json_key(&j, "domain");
            json_str(&j, cli_cell(&rows, i, 1));
            json_key(&j, "scheme");
            json_str(&j, scheme);
            json_object_end(&j);
        } else
            printf("%s\t%s\n", cli_cell(&rows, i, 0), scheme);
    }
    if (json) {
        json_array_end(&j);
        json_end(&j);
    }
    if (rows.truncated) cli_error("only the first %u users are shown", CLI_MAX_ROWS);
    cli_rows_free(&rows);
    return SM_EXIT_OK;
}

int cmd_user(struct cli *cli, int argc, char **argv) {
    int r = cli_group("user", argc, argv);
    if (r >= 0) return r;
    const char *action = argv[1];
    struct user_opts o = {0};
    if ((r = parse(argc - 1, argv + 1, &o)) >= 0) return r;
    int nargs = argc - 1 - optind;
    char **args = argv + 1 + optind;

    bool list = streq(action, "list");
    bool sets = streq(action, "add") || streq(action, "passwd");
    if (!list && !sets && !streq(action, "del"))
        return cli_usage_error("user", "unknown action \"%s\" (add, passwd, del, list)", action);
    if (list ? nargs > 1 : nargs != 1)
        return cli_usage_error("user", "%s takes %s", action, list ? "at most one DOMAIN" : "one ADDRESS");
    if ((o.password || o.scheme) && !sets)
        return cli_usage_error("user", "-p and -s are for add and passwd");
    if (o.json && !list) return cli_usage_error("user", "--json is for list");

    struct sm_db *db = NULL;
    if ((r = cli_db(cli, SM_DB_ADMIN, &db))) return r;
    if (streq(action, "add")) r = user_add(cli, db, args[0], &o);
    else if (streq(action, "passwd")) r = user_passwd(cli, db, args[0], &o);
    else if (streq(action, "del")) r = user_del(cli, db, args[0]);
    else r = user_list(db, nargs ? args[0] : NULL, o.json);
    sm_db_free(db);
    return r;
}
