/* lookup.c — `sockmail lookup ADDRESS`: what SMTP/LMTP would do with a
 * recipient, through the same resolver and the same (lookup) account as
 * the handlers, with the expansion shown as a tree. */
#include <getopt.h>

#include "address.h"
#include "maildir.h"
#include "resolve.h"
#include "sockmail.h"

struct delivery {
    char *mailbox, *maildir;    /* maildir NULL when mail_location refuses the name */
    const char *why;            /* then: why */
};

/* Did the queried address itself land in a remote domain (first node)? */
static bool top_is_remote(const struct sm_explain *e) {
    return e->n > 0 && e->steps[0].kind == SM_EXPLAIN_REMOTE;
}

static void print_text(const char *address, const char *domain, const struct sm_explain *e,
                       const struct sm_resolved *res, const struct delivery *d) {
    printf("address: %s\n", address);
    printf("domain: %s (%s)\n", domain, top_is_remote(e) ? "not local: relayed" : "local");
    printf("expansion:\n");
    for (size_t i = 0; i < e->n; i++) {
        const struct sm_explain_step *s = &e->steps[i];
        printf("  %*s%s: %s", (int)(2 * (s->depth < 40 ? s->depth : 40)), "", s->address,
               sm_explain_kind_name(s->kind));
        if (s->detail) printf(" (%s)", s->detail);
        if (s->kind == SM_EXPLAIN_USER)
            for (size_t k = 0; k < res->n_mailboxes; k++)
                if (streq(d[k].mailbox, s->address) && d[k].maildir) printf(" -> %s", d[k].maildir);
        putchar('\n');
    }
    if (e->truncated) printf("  ... (tree too large, the rest left out)\n");
    if (res->n_mailboxes) {
        printf("deliver to %zu mailbox%s:\n", res->n_mailboxes, res->n_mailboxes == 1 ? "" : "es");
        for (size_t k = 0; k < res->n_mailboxes; k++)
            printf("  %s %s\n", d[k].mailbox, d[k].maildir ? d[k].maildir : d[k].why);
    }
    if (res->n_remote) {
        printf("relay to %zu remote address%s:\n", res->n_remote, res->n_remote == 1 ? "" : "es");
        for (size_t k = 0; k < res->n_remote; k++) printf("  %s\n", res->remote[k]);
    }
    if (!res->n_mailboxes && !res->n_remote)
        printf("result: unknown recipient (SMTP/LMTP answer 550 5.1.1)\n");
    if (res->note) printf("note: %s\n", res->note);
}

static void print_json(const char *address, const char *domain, const struct sm_explain *e,
                       const struct sm_resolved *res, const struct delivery *d) {
    struct json j;
    json_begin(&j, stdout);
    json_object(&j);
    json_key(&j, "address");
    json_str(&j, address);
    json_key(&j, "domain");
    json_str(&j, domain);
    json_key(&j, "local");
    json_bool(&j, !top_is_remote(e));
    json_key(&j, "result");
    json_str(&j, res->n_mailboxes && res->n_remote ? "deliver+relay"
                 : res->n_mailboxes               ? "deliver"
                 : res->n_remote                  ? "relay"
                                                  : "unknown");
    json_key(&j, "tree");
    json_array(&j);
    for (size_t i = 0; i < e->n; i++) {
        json_object(&j);
        json_key(&j, "depth");
        json_uint(&j, e->steps[i].depth);
        json_key(&j, "address");
        json_str(&j, e->steps[i].address);
        json_key(&j, "kind");
        json_str(&j, sm_explain_kind_name(e->steps[i].kind));
        json_key(&j, "detail");
        json_str(&j, e->steps[i].detail);
        json_object_end(&j);
    }
    json_array_end(&j);
    json_key(&j, "tree_truncated");
    json_bool(&j, e->truncated);
    json_key(&j, "mailboxes");
    json_array(&j);
    for (size_t k = 0; k < res->n_mailboxes; k++) {
        json_object(&j);
        json_key(&j, "address");
        json_str(&j, d[k].mailbox);
        json_key(&j, "maildir");
        json_str(&j, d[k].maildir);
        if (!d[k].maildir) {
            json_key(&j, "error");
            json_str(&j, d[k].why);
        }
        json_object_end(&j);
    }
    json_array_end(&j);
    json_key(&j, "remote");
    json_array(&j);
    for (size_t k = 0; k < res->n_remote; k++) json_str(&j, res->remote[k]);
    json_array_end(&j);
    json_key(&j, "note");
    json_str(&j, res->note);
    json_object_end(&j);
    json_end(&j);
}

int cmd_lookup(struct cli *cli, int argc, char **argv) {
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool json = false;
    int c, r;
    while ((c = cli_getopt("lookup", argc, argv, "jh", opts)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 'h': cli_usage("lookup", stdout); return SM_EXIT_OK;
        default: return SM_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) return cli_usage_error("lookup", "give one ADDRESS");
    _cleanup_free_ char *address = NULL, *local = NULL, *domain = NULL;
    if ((r = cli_address("address", argv[optind], &address))) return r;
    if (sm_addr_split(address, &local, &domain) < 0) {
        cli_error("out of memory");
        return SM_EXIT_TEMPFAIL;
    }

    struct sm_db *db = NULL;
    if ((r = cli_db(cli, SM_DB_LOOKUP, &db))) return r;
    struct sm_resolved res;
    struct sm_explain e;
    char err[1024];
    int found = sm_resolve_explain(db, cli->cfg, address, &res, &e, err, sizeof err);
    sm_db_free(db);
    if (found == SM_TEMPFAIL) {
        sm_resolved_free(&res);
        sm_explain_free(&e);
        /* The handlers would answer 451 4.3.0 here. */
        return cli_db_failed("lookup", "lookup", err);
    }

    struct delivery *d = calloc(res.n_mailboxes ? res.n_mailboxes : 1, sizeof *d);
    if (!d) {
        sm_resolved_free(&res);
        sm_explain_free(&e);
        cli_error("out of memory");
        return SM_EXIT_TEMPFAIL;
    }
    for (size_t k = 0; k < res.n_mailboxes; k++) {
        d[k].mailbox = res.mailboxes[k];
        int m = sm_maildir_path(cli->cfg->mail_location, res.mailboxes[k], &d[k].maildir);
        if (m < 0) d[k].why = m == -ENAMETOOLONG ? "(Maildir path too long)"
                                                 : "(mail_location refuses this name: not delivered)";
    }
    if (json) print_json(address, domain, &e, &res, d);
    else print_text(address, domain, &e, &res, d);
    for (size_t k = 0; k < res.n_mailboxes; k++) free(d[k].maildir);
    free(d);
    sm_resolved_free(&res);
    sm_explain_free(&e);
    return found == SM_FOUND ? SM_EXIT_OK : SM_EXIT_REFUSED;
}
