/* test-resolve.c — db.c and resolve.c against the REAL lab database.
 *
 * Needs $SOCKMAIL_CONFIG naming a lab's sockmail.conf (./check sets it; or
 * `tests/lab start DIR` and SOCKMAIL_CONFIG=DIR/sockmail.conf). Fixture rows
 * live in their own domains (resolve.test, resolve2.test), made through the
 * admin account at the start and deleted at the end, so the sample data other
 * tests rely on is never touched. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "db.h"
#include "macro.h"
#include "resolve.h"
#include "tap.h"

static struct sm_config *cfg;
static struct sm_db *admin;

/* ---- helpers ---- */

static int collect(void *userdata, unsigned ncols, const char *const *cols) {
    char *out = userdata;   /* 4096 bytes, "a|b;c|d" */
    for (unsigned i = 0; i < ncols; i++) {
        size_t l = strlen(out);
        snprintf(out + l, 4096 - l, "%s%s", i ? "|" : (out[0] ? ";" : ""),
                 cols[i] ? cols[i] : "NULL");
    }
    return 0;
}

static int q(enum sm_db_account acct, const char *query, const char *address, char *out,
             char *err, size_t errlen) {
    struct sm_db *db = sm_db_new(cfg, acct);
    struct sm_db_param p[] = { { "address", address } };
    out[0] = 0;
    int r = sm_db_query(db, query, p, address ? 1 : 0, collect, out, err, errlen);
    sm_db_free(db);
    return r;
}

static void exec_ok(const char *sql, const char *domain_id) {
    char err[512] = "";
    unsigned long long rows = 0;
    struct sm_db_param p[] = { { "id", domain_id } };
    int r = sm_db_exec(admin, sql, p, domain_id ? 1 : 0, &rows, err, sizeof err);
    if (!ok(r == 0, "fixture: %.60s", sql)) printf("#   %s\n", err);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "a,b" (sorted) from a list. */
static void join(char **v, size_t n, char *out, size_t outlen) {
    char **copy = calloc(n + 1, sizeof *copy);
    if (n) memcpy(copy, v, n * sizeof *copy);
    qsort(copy, n, sizeof *copy, cmp_str);
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(out);
        snprintf(out + l, outlen - l, "%s%s", i ? "," : "", copy[i]);
    }
    free(copy);
}

/* Resolves ADDRESS with DB/C; checks result, mailboxes, remote, note part. */
static void check_resolve(struct sm_db *db, const struct sm_config *c, const char *address,
                          int want, const char *want_mailboxes, const char *want_remote,
                          const char *want_note) {
    struct sm_resolved res;
    char err[512] = "";
    char got[2048];
    int r = sm_resolve(db, c, address, &res, err, sizeof err);
    if (!ok(r == want, "%s: result %d", address, want))
        printf("#   got %d (err: %s, note: %s)\n", r, err, res.note ? res.note : "-");
    join(res.mailboxes, res.n_mailboxes, got, sizeof got);
    if (!ok(streq(got, want_mailboxes), "%s: mailboxes \"%s\"", address, want_mailboxes))
        printf("#   got \"%s\"\n", got);
    join(res.remote, res.n_remote, got, sizeof got);
    if (!ok(streq(got, want_remote), "%s: remote \"%s\"", address, want_remote))
        printf("#   got \"%s\"\n", got);
    if (want_note) {
        if (!ok(res.note && strstr(res.note, want_note), "%s: note mentions \"%s\"", address,
                want_note))
            printf("#   note: %s\n", res.note ? res.note : "(none)");
    }
    sm_resolved_free(&res);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set_str(char **field, const char *v) {
    free(*field);
    *field = strdup(v);
}

/* ---- placeholder rewrite (no database) ---- */

static void rewrite_is(const char *in, const char *want_sql, const char *want_names) {
    char *sql = NULL, **names = NULL;
    size_t n = 0;
    char err[256] = "", got[512] = "";
    int r = sm_db_rewrite(in, &sql, &names, &n, err, sizeof err);
    if (!ok(r == 0, "rewrite %s", in)) {
        printf("#   %s\n", err);
        return;
    }
    is_str(sql, want_sql, "  sql");
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(got);
        snprintf(got + l, sizeof got - l, "%s%s", i ? "," : "", names[i]);
    }
    is_str(got, want_names, "  names");
    free(sql);
    free(names);
}

static void rewrite_fails(const char *in, const char *why) {
    char *sql = NULL, **names = NULL;
    size_t n = 0;
    char err[256] = "";
    int r = sm_db_rewrite(in, &sql, &names, &n, err, sizeof err);
    ok(r == -EINVAL && strstr(err, why), "rewrite refuses %s (%s)", in, err);
}

static void test_rewrite(void) {
    rewrite_is("SELECT 1 FROM virtual_domains WHERE name = :domain",
               "SELECT 1 FROM virtual_domains WHERE name = ?", "domain");
    rewrite_is("SELECT x FROM t WHERE a=:address AND b=:domain OR c=:address",
               "SELECT x FROM t WHERE a=? AND b=? OR c=?", "address,domain,address");
    rewrite_is("SELECT ':no', \":no\", `:no` FROM t WHERE a = :yes",
               "SELECT ':no', \":no\", `:no` FROM t WHERE a = ?", "yes");
    rewrite_is("SELECT 'it''s :no\\' :no' WHERE a=:a_1", "SELECT 'it''s :no\\' :no' WHERE a=?",
               "a_1");
    rewrite_is("SELECT 1 -- :no\nWHERE a=:x # :no\n/* :no */ AND b=:y",
               "SELECT 1 -- :no\nWHERE a=? # :no\n/* :no */ AND b=?", "x,y");
    rewrite_is("SET @v := 1, @w=:_z", "SET @v := 1, @w=?", "_z");
    rewrite_is("SELECT 3-- 1 :x", "SELECT 3-- 1 :x", "");
    rewrite_is("SELECT 3--1, :x", "SELECT 3--1, ?", "x");
    rewrite_is("SELECT ':' , :9", "SELECT ':' , :9", "");
    rewrite_fails("SELECT 1 WHERE a = ?", "named placeholders");
    rewrite_fails("SELECT 'open :x", "unterminated");
    rewrite_fails("SELECT 1 /* open", "unterminated");
    char *big = malloc(SM_DB_MAX_QUERY + 2);
    memset(big, ' ', SM_DB_MAX_QUERY + 1);
    big[SM_DB_MAX_QUERY + 1] = 0;
    rewrite_fails(big, "longer");
    free(big);
}

/* ---- db level, against the lab ---- */

struct nested {
    struct sm_db *db;
    char out[4096];
    int inner;
};

/* Runs the same alias query inside the row callback (statement in use). */
static int nested_cb(void *userdata, unsigned ncols, const char *const *cols) {
    struct nested *n = userdata;
    char err[256];
    struct sm_db_param p[] = { { "address", cols[0] } };
    (void)ncols;
    int r = sm_db_query(n->db, "SELECT destination FROM virtual_aliases WHERE source = :address",
                        p, 1, collect, n->out, err, sizeof err);
    if (r == SM_TEMPFAIL) printf("#   inner: %s\n", err);
    n->inner += r == SM_FOUND || r == SM_NOTFOUND;
    return 0;
}

static void test_db(void) {
    char out[4096], err[512];
    int r;

    r = q(SM_DB_LOOKUP, "SELECT email FROM virtual_users WHERE email = :address",
          "alice@example.com", out, err, sizeof err);
    is_int(r, SM_FOUND, "lookup account finds alice");
    is_str(out, "alice@example.com", "  as spelled in the database");
    r = q(SM_DB_LOOKUP, "SELECT email FROM virtual_users WHERE email = :address",
          "ALICE@Example.COM", out, err, sizeof err);
    is_int(r, SM_FOUND, "email comparison is case-insensitive (collation)");
    is_str(out, "alice@example.com", "  canonical spelling returned");
    r = q(SM_DB_LOOKUP, "SELECT email FROM virtual_users WHERE email = :address",
          "nobody@example.com", out, err, sizeof err);
    is_int(r, SM_NOTFOUND, "unknown user is NOTFOUND");

    r = q(SM_DB_LOOKUP, "SELECT password FROM virtual_users WHERE email = :address",
          "alice@example.com", out, err, sizeof err);
    is_int(r, SM_TEMPFAIL, "lookup account cannot read the password column");
    ok(strstr(err, "command denied") != NULL, "  error says so: %s", err);
    r = q(SM_DB_LOOKUP, "SELECT * FROM virtual_users", NULL, out, err, sizeof err);
    is_int(r, SM_TEMPFAIL, "  nor with SELECT *");
    r = q(SM_DB_AUTH, "SELECT password FROM virtual_users WHERE email = :address",
          "alice@example.com", out, err, sizeof err);
    is_int(r, SM_FOUND, "auth account reads the password");
    ok(strncmp(out, "{SHA512-CRYPT}$6$", 17) == 0, "  a SHA512-CRYPT hash");
    r = q(SM_DB_LOOKUP, "DELETE FROM virtual_aliases WHERE source = :address",
          "nobody@example.com", out, err, sizeof err);
    is_int(r, SM_TEMPFAIL, "lookup account cannot delete");

    /* Injection attempts are plain values. */
    r = q(SM_DB_LOOKUP, "SELECT email FROM virtual_users WHERE email = :address",
          "x' OR '1'='1", out, err, sizeof err);
    is_int(r, SM_NOTFOUND, "quote in a value is data, not SQL");
    r = q(SM_DB_LOOKUP, "SELECT email FROM virtual_users WHERE email = :address",
          "alice@example.com' -- ", out, err, sizeof err);
    is_int(r, SM_NOTFOUND, "comment in a value is data, not SQL");
    r = q(SM_DB_LOOKUP, "SELECT email FROM virtual_users WHERE email = :address",
          "a\\'; DROP TABLE virtual_users; --", out, err, sizeof err);
    is_int(r, SM_NOTFOUND, "backslash-quote in a value is data");
    r = q(SM_DB_LOOKUP,
          "SELECT email, ':notaparam' FROM virtual_users WHERE email = :address -- :nor_this",
          "bob@example.com", out, err, sizeof err);
    is_int(r, SM_FOUND, "placeholders in strings and comments are left alone");
    is_str(out, "bob@example.com|:notaparam", "  string literal intact");

    /* Errors never look like "not found". */
    r = q(SM_DB_LOOKUP, "SELECT email FROM no_such_table WHERE email = :address",
          "alice@example.com", out, err, sizeof err);
    is_int(r, SM_TEMPFAIL, "bad SQL is TEMPFAIL");
    ok(strstr(err, "no_such_table") != NULL, "  with the server's reason: %s", err);
    r = q(SM_DB_LOOKUP, "SELECT email FROM virtual_users WHERE email = :nosuch",
          "alice@example.com", out, err, sizeof err);
    is_int(r, SM_TEMPFAIL, "placeholder without a value is TEMPFAIL");
    ok(strstr(err, ":nosuch") != NULL, "  naming it: %s", err);
    {
        unsigned long long rows = 0;
        r = sm_db_exec(admin, "UPDATE virtual_users SET email = email WHERE id = :nosuch", NULL, 0,
                       &rows, err, sizeof err);
        is_int(r, -EINVAL, "exec with a missing placeholder is -EINVAL");
    }

    /* NULL, long values and many columns come back as strings. */
    r = q(SM_DB_LOOKUP, "SELECT NULL, 42, 1.5, REPEAT('x', 300), :address", "v", out, err,
          sizeof err);
    is_int(r, SM_FOUND, "mixed columns");
    {
        char want[4096];
        snprintf(want, sizeof want, "NULL|42|1.5|%0300d|v", 0);
        memset(want + strlen("NULL|42|1.5|"), 'x', 300);
        is_str(out, want, "  NULL, numbers, a value longer than the first buffer");
    }
    r = q(SM_DB_LOOKUP, "SELECT REPEAT('y', 70000)", NULL, out, err, sizeof err);
    is_int(r, SM_TEMPFAIL, "a value over the 64 KiB cap is refused");

    /* Rows, and a nested query with the same text while the first runs. */
    {
        struct nested n = { .db = sm_db_new(cfg, SM_DB_LOOKUP) };
        struct sm_db_param p[] = { { "address", "team@example.net" } };
        const char *aq = "SELECT destination FROM virtual_aliases WHERE source = :address";
        r = sm_db_query(n.db, aq, p, 1, nested_cb, &n, err, sizeof err);
        is_int(r, SM_FOUND, "outer query");
        is_int(n.inner, 1, "  inner query ran from the row callback");
        is_str(n.out, "alice@example.com;bob@example.com", "  inner rows");
        n.out[0] = 0;
        p[0].value = "all@example.com";
        r = sm_db_query(n.db, aq, p, 1, collect, n.out, err, sizeof err);
        is_str(n.out, "alice@example.com;bob@example.com", "  cached statement reused");

        /* The server drops the idle connection: one reconnect, invisible. */
        unsigned long long rows;
        char id_before[4096] = "", id_after[4096] = "";
        sm_db_query(n.db, "SELECT CONNECTION_ID()", NULL, 0, collect, id_before, err, sizeof err);
        r = sm_db_exec(n.db, "SET SESSION wait_timeout = 1", NULL, 0, &rows, err, sizeof err);
        is_int(r, 0, "session wait_timeout = 1");
        struct timespec ts = { 2, 200000000 };
        nanosleep(&ts, NULL);
        n.out[0] = 0;
        r = sm_db_query(n.db, aq, p, 1, collect, n.out, err, sizeof err);
        if (!ok(r == SM_FOUND, "query after the server closed the connection reconnects"))
            printf("#   %d %s\n", r, err);
        is_str(n.out, "alice@example.com;bob@example.com", "  same answer");
        sm_db_query(n.db, "SELECT CONNECTION_ID()", NULL, 0, collect, id_after, err, sizeof err);
        ok(id_before[0] && id_after[0] && !streq(id_before, id_after),
           "  on a new connection (%s, then %s)", id_before, id_after);
        sm_db_free(n.db);
    }

    /* Unreachable servers: TEMPFAIL at once; failover to the next host. */
    {
        struct sm_config *c2 = NULL;
        char e2[512];
        int lr = sm_config_load(NULL, &c2, e2, sizeof e2);
        ok(lr == 0, "config loads again");
        char *real = strdup(cfg->db_hosts);
        set_str(&c2->db_hosts, "/nonexistent/mysql.sock");
        struct sm_db *db = sm_db_new(c2, SM_DB_LOOKUP);
        struct sm_db_param p[] = { { "address", "alice@example.com" } };
        double t0 = now();
        r = sm_db_query(db, "SELECT email FROM virtual_users WHERE email = :address", p, 1, NULL,
                        NULL, err, sizeof err);
        double dt = now() - t0;
        is_int(r, SM_TEMPFAIL, "stopped database is TEMPFAIL, not NOTFOUND");
        ok(dt < 1.0, "  and fails fast (%.3f s): %s", dt, err);
        struct sm_resolved res;
        r = sm_resolve(db, c2, "alice@example.com", &res, err, sizeof err);
        is_int(r, SM_TEMPFAIL, "  resolve says TEMPFAIL too");
        sm_resolved_free(&res);
        r = sm_resolve(db, c2, "nobody@example.com", &res, err, sizeof err);
        is_int(r, SM_TEMPFAIL, "  even for an address that does not exist");
        sm_resolved_free(&res);
        sm_db_free(db);

        char hosts[2048];
        snprintf(hosts, sizeof hosts, "/nonexistent/mysql.sock, %s", real);
        set_str(&c2->db_hosts, hosts);
        db = sm_db_new(c2, SM_DB_LOOKUP);
        r = sm_db_query(db, "SELECT email FROM virtual_users WHERE email = :address", p, 1, NULL,
                        NULL, err, sizeof err);
        if (!ok(r == SM_FOUND, "failover to the second host")) printf("#   %s\n", err);
        sm_db_free(db);

        set_str(&c2->db_hosts, "[::1");
        db = sm_db_new(c2, SM_DB_LOOKUP);
        r = sm_db_query(db, "SELECT 1", NULL, 0, NULL, NULL, err, sizeof err);
        ok(r == SM_TEMPFAIL && strstr(err, "bad database host"), "bad host entry: %s", err);
        sm_db_free(db);

        set_str(&c2->db_lookup_password, "wrong");
        set_str(&c2->db_lookup_password_file, "");
        set_str(&c2->db_hosts, real);
        db = sm_db_new(c2, SM_DB_LOOKUP);
        r = sm_db_query(db, "SELECT 1", NULL, 0, NULL, NULL, err, sizeof err);
        ok(r == SM_TEMPFAIL && strstr(err, "denied"), "wrong password is TEMPFAIL: %s", err);
        sm_db_free(db);
        free(real);
        sm_config_free(c2);
    }
}

/* ---- resolve, with fixtures ---- */

static const char *fixture_users[] = {
    "dave@resolve.test", "erin@resolve.test", "self@resolve.test", "shadow@resolve.test",
};

static const char *fixture_aliases[][2] = {
    { "@resolve.test", "dave@resolve.test" },            /* catch-all */
    { "loop1@resolve.test", "loop2@resolve.test" },
    { "loop2@resolve.test", "loop1@resolve.test" },
    { "loopself@resolve.test", "loopself@resolve.test" },
    { "self@resolve.test", "self@resolve.test" },         /* user + alias, keeps a copy */
    { "self@resolve.test", "erin@resolve.test" },
    { "shadow@resolve.test", "erin@resolve.test" },       /* user + alias: alias wins */
    { "remote@resolve.test", "someone@remote.org" },
    { "remote@resolve.test", "someone@REMOTE.Org" },
    { "remote@resolve.test", "alice@example.com" },
    { "dup@resolve.test", "alice@example.com" },
    { "dup@resolve.test", "ALICE@example.COM" },
    { "dup@resolve.test", "all@example.com" },
    { "dup@resolve.test", "alice@example.com" },
    { "bad@resolve.test", "not an address" },
    { "bad@resolve.test", "alice@example.com" },
    { "onlybad@resolve.test", "@@" },
    { "list@resolve.test", "bob@example.com, carol@example.net" },
    { "tounknown@resolve.test", "nobody@resolve2.test" },
    { "mixed@resolve.test", "loop1@resolve.test" },
    { "mixed@resolve.test", "erin@resolve.test" },
};

static void make_fixtures(char *id1, char *id2) {
    char err[512];
    exec_ok("DELETE FROM virtual_domains WHERE name IN ('resolve.test', 'resolve2.test')", NULL);
    exec_ok("INSERT INTO virtual_domains (name) VALUES ('resolve.test'), ('resolve2.test')", NULL);
    id1[0] = id2[0] = 0;
    struct sm_db_param p[] = { { "n", "resolve.test" } };
    int r = sm_db_query(admin, "SELECT id FROM virtual_domains WHERE name = :n", p, 1, collect, id1,
                        err, sizeof err);
    p[0].value = "resolve2.test";
    r |= sm_db_query(admin, "SELECT id FROM virtual_domains WHERE name = :n", p, 1, collect, id2,
                     err, sizeof err);
    ok(r == SM_FOUND && id1[0] && id2[0], "fixture domains %s, %s", id1, id2);

    for (size_t i = 0; i < ARRAY_SIZE(fixture_users); i++) {
        struct sm_db_param up[] = { { "id", id1 }, { "email", fixture_users[i] } };
        unsigned long long rows = 0;
        r = sm_db_exec(admin,
                       "INSERT INTO virtual_users (domain_id, password, email) "
                       "VALUES (:id, '{SHA512-CRYPT}*', :email)",
                       up, 2, &rows, err, sizeof err);
        if (!ok(r == 0 && rows == 1, "fixture user %s", fixture_users[i])) printf("#   %s\n", err);
    }
    for (size_t i = 0; i < ARRAY_SIZE(fixture_aliases); i++) {
        struct sm_db_param ap[] = {
            { "id", id1 }, { "src", fixture_aliases[i][0] }, { "dst", fixture_aliases[i][1] },
        };
        unsigned long long rows = 0;
        r = sm_db_exec(admin,
                       "INSERT INTO virtual_aliases (domain_id, source, destination) "
                       "VALUES (:id, :src, :dst)",
                       ap, 3, &rows, err, sizeof err);
        if (r != 0 || rows != 1) ok(0, "fixture alias %s: %s", fixture_aliases[i][0], err);
    }
    /* A chain deeper than the default depth limit (10): d0 -> d1 -> ... -> d12 -> dave. */
    for (int i = 0; i <= 12; i++) {
        char src[64], dst[64];
        snprintf(src, sizeof src, "d%d@resolve.test", i);
        if (i < 12) snprintf(dst, sizeof dst, "d%d@resolve.test", i + 1);
        else snprintf(dst, sizeof dst, "dave@resolve.test");
        struct sm_db_param ap[] = { { "id", id1 }, { "src", src }, { "dst", dst } };
        unsigned long long rows = 0;
        r = sm_db_exec(admin,
                       "INSERT INTO virtual_aliases (domain_id, source, destination) "
                       "VALUES (:id, :src, :dst)",
                       ap, 3, &rows, err, sizeof err);
        if (r != 0) ok(0, "fixture chain %s: %s", src, err);
    }
}

static void test_resolve(void) {
    char id1[64], id2[64];
    make_fixtures(id1, id2);
    struct sm_db *db = sm_db_new(cfg, SM_DB_LOOKUP);

    /* Sample data. */
    check_resolve(db, cfg, "alice@example.com", SM_FOUND, "alice@example.com", "", NULL);
    check_resolve(db, cfg, "ALICE@EXAMPLE.COM", SM_FOUND, "alice@example.com", "", NULL);
    check_resolve(db, cfg, "alice@Example.Com", SM_FOUND, "alice@example.com", "", NULL);
    check_resolve(db, cfg, "all@example.com", SM_FOUND, "alice@example.com,bob@example.com", "",
                  NULL);
    check_resolve(db, cfg, "postmaster@example.com", SM_FOUND, "alice@example.com", "", NULL);
    check_resolve(db, cfg, "team@example.net", SM_FOUND, "alice@example.com,bob@example.com", "",
                  NULL);
    check_resolve(db, cfg, "unknown@example.com", SM_NOTFOUND, "", "", "unknown address");
    check_resolve(db, cfg, "someone@remote.org", SM_FOUND, "", "someone@remote.org", NULL);
    check_resolve(db, cfg, "someone@REMOTE.ORG", SM_FOUND, "", "someone@remote.org", NULL);
    check_resolve(db, cfg, "o'hara--@example.com", SM_NOTFOUND, "", "", "unknown");

    /* Fixtures. */
    check_resolve(db, cfg, "loop1@resolve.test", SM_NOTFOUND, "", "", "loop");
    check_resolve(db, cfg, "loopself@resolve.test", SM_NOTFOUND, "", "", "loop");
    check_resolve(db, cfg, "mixed@resolve.test", SM_FOUND, "erin@resolve.test", "", "loop");
    check_resolve(db, cfg, "self@resolve.test", SM_FOUND, "erin@resolve.test,self@resolve.test",
                  "", NULL);
    check_resolve(db, cfg, "shadow@resolve.test", SM_FOUND, "erin@resolve.test", "", NULL);
    check_resolve(db, cfg, "remote@resolve.test", SM_FOUND, "alice@example.com",
                  "someone@remote.org", NULL);
    check_resolve(db, cfg, "dup@resolve.test", SM_FOUND, "alice@example.com,bob@example.com", "",
                  NULL);
    check_resolve(db, cfg, "bad@resolve.test", SM_FOUND, "alice@example.com", "", "malformed");
    check_resolve(db, cfg, "onlybad@resolve.test", SM_NOTFOUND, "", "", "malformed");
    check_resolve(db, cfg, "list@resolve.test", SM_FOUND, "bob@example.com,carol@example.net", "",
                  NULL);
    check_resolve(db, cfg, "tounknown@resolve.test", SM_NOTFOUND, "", "", "nobody@resolve2.test");
    /* Catch-all: for unknown addresses only, never for a user. */
    check_resolve(db, cfg, "whoever@resolve.test", SM_FOUND, "dave@resolve.test", "", NULL);
    check_resolve(db, cfg, "WHOEVER@Resolve.Test", SM_FOUND, "dave@resolve.test", "", NULL);
    check_resolve(db, cfg, "erin@resolve.test", SM_FOUND, "erin@resolve.test", "", NULL);
    check_resolve(db, cfg, "nobody@resolve2.test", SM_NOTFOUND, "", "", "unknown");
    /* Depth: 13 hops is past the default limit of 10; 12 hops from d1 too. */
    check_resolve(db, cfg, "d0@resolve.test", SM_NOTFOUND, "", "", "depth limit");
    check_resolve(db, cfg, "d4@resolve.test", SM_FOUND, "dave@resolve.test", "", NULL);
    {
        uint64_t saved = cfg->alias_max_depth;
        cfg->alias_max_depth = 20;
        check_resolve(db, cfg, "d0@resolve.test", SM_FOUND, "dave@resolve.test", "", NULL);
        cfg->alias_max_depth = 1;
        check_resolve(db, cfg, "team@example.net", SM_NOTFOUND, "", "", "depth limit");
        check_resolve(db, cfg, "all@example.com", SM_FOUND, "alice@example.com,bob@example.com",
                      "", NULL);
        cfg->alias_max_depth = saved;
    }
    /* Expansion limit. */
    {
        uint64_t saved = cfg->alias_max_expansion;
        cfg->alias_max_expansion = 1;
        struct sm_resolved res;
        char err[256];
        int r = sm_resolve(db, cfg, "all@example.com", &res, err, sizeof err);
        is_int(r, SM_FOUND, "expansion limit 1: FOUND");
        is_int(res.n_mailboxes + res.n_remote, 1, "  with one result");
        ok(res.note && strstr(res.note, "expansion limit"), "  and a note: %s",
           res.note ? res.note : "(none)");
        sm_resolved_free(&res);
        cfg->alias_max_expansion = saved;
    }
    /* recipient_delimiter. */
    set_str(&cfg->recipient_delimiter, "");
    check_resolve(db, cfg, "alice+tag@example.com", SM_NOTFOUND, "", "", "unknown");
    set_str(&cfg->recipient_delimiter, "+-");
    check_resolve(db, cfg, "alice+tag@example.com", SM_FOUND, "alice@example.com", "", NULL);
    check_resolve(db, cfg, "alice-tag@example.com", SM_FOUND, "alice@example.com", "", NULL);
    check_resolve(db, cfg, "all+x@example.com", SM_FOUND, "alice@example.com,bob@example.com", "",
                  NULL);
    check_resolve(db, cfg, "nobody+x@resolve.test", SM_FOUND, "dave@resolve.test", "", NULL);
    check_resolve(db, cfg, "+x@example.com", SM_NOTFOUND, "", "", "unknown");
    set_str(&cfg->recipient_delimiter, "");

    /* A broken query in the config is TEMPFAIL, never "unknown". */
    {
        char *saved = cfg->query_alias;
        cfg->query_alias = strdup("SELECT destination FROM virtual_aliasez WHERE source = :address");
        struct sm_resolved res;
        char err[512] = "";
        int r = sm_resolve(db, cfg, "unknown@example.com", &res, err, sizeof err);
        is_int(r, SM_TEMPFAIL, "broken query_alias: TEMPFAIL");
        ok(strstr(err, "virtual_aliasez") != NULL, "  with the reason: %s", err);
        sm_resolved_free(&res);
        free(cfg->query_alias);
        cfg->query_alias = strdup("SELECT password FROM virtual_users WHERE email = :address");
        r = sm_resolve(db, cfg, "alice@example.com", &res, err, sizeof err);
        is_int(r, SM_TEMPFAIL, "query_alias reading passwords with the lookup account: TEMPFAIL");
        sm_resolved_free(&res);
        free(cfg->query_alias);
        cfg->query_alias = saved;
        saved = cfg->query_domain;
        cfg->query_domain = strdup("SELECT 1 FROM virtual_domains WHERE name = :dom");
        r = sm_resolve(db, cfg, "alice@example.com", &res, err, sizeof err);
        is_int(r, SM_TEMPFAIL, "query_domain with an unknown placeholder: TEMPFAIL");
        ok(strstr(err, ":dom") != NULL, "  naming it: %s", err);
        sm_resolved_free(&res);
        free(cfg->query_domain);
        cfg->query_domain = saved;
    }
    /* Queries that use :localpart / :domain instead of :address. */
    {
        char *saved = cfg->query_user;
        cfg->query_user = strdup(
            "SELECT u.email FROM virtual_users u JOIN virtual_domains d ON d.id = u.domain_id "
            "WHERE u.email = CONCAT(:localpart, '@', :domain) AND d.name = :domain");
        check_resolve(db, cfg, "bob@EXAMPLE.com", SM_FOUND, "bob@example.com", "", NULL);
        free(cfg->query_user);
        cfg->query_user = saved;
    }
    sm_db_free(db);

    exec_ok("DELETE FROM virtual_domains WHERE name IN ('resolve.test', 'resolve2.test')", NULL);
    char out[4096] = "", err[256];
    int r = sm_db_query(admin,
                        "SELECT COUNT(*) FROM virtual_aliases WHERE source LIKE '%@resolve.test'",
                        NULL, 0, collect, out, err, sizeof err);
    ok(r == SM_FOUND && streq(out, "0"), "fixtures removed (cascade): %s", out);
}

int main(void) {
    const char *path = getenv("SOCKMAIL_CONFIG");
    test_rewrite();
    if (!path || !*path) {
        ok(0, "SOCKMAIL_CONFIG is not set: run via ./check or set SOCKMAIL_CONFIG=LAB/sockmail.conf"
              " (after tests/lab start LAB)");
        return tap_done();
    }
    char err[512];
    if (!ok(sm_config_load(path, &cfg, err, sizeof err) == 0, "load %s", path)) {
        printf("#   %s\n", err);
        return tap_done();
    }
    admin = sm_db_new(cfg, SM_DB_ADMIN);
    test_db();
    test_resolve();
    sm_db_free(admin);
    sm_config_free(cfg);
    return tap_done();
}
