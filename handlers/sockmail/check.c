/* check.c — `sockmail check`: the configuration, each database account and
 * its grants (the lookup account must NOT read password hashes), the
 * Maildir root, and the TLS certificate and key. Each finding says what to
 * do about it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pwd.h>
#include <sys/stat.h>
#include <time.h>

#include "maildir.h"
#include "sockmail.h"

#define GRANTS_FIX "apply sql/grants.sql to the mail database"
#define EXPIRY_WARNING_DAYS 30
#define MAX_PEM (1024 * 1024)

/* Access denied: the account exists but lacks the privilege. */
static bool denied(unsigned code) {
    return code == 1044 || code == 1142 || code == 1143 || code == 1227;
}

/* Could not get at the server at all (client-side errors, 2000-2999):
 * a temporary failure. */
static bool unreachable(unsigned code) { return code == 0 || (code >= 2000 && code < 3000); }

static void check_config(struct findings *f, const struct sm_config *cfg) {
    finding(f, FINDING_OK, NULL, "configuration %s loaded", cfg->source ? cfg->source : "(defaults)");
    _cleanup_free_ char *probe = NULL;
    int r = sm_maildir_path(cfg->mail_location, "postmaster@example.com", &probe);
    if (r < 0)
        finding(f, FINDING_ERROR, "set [general] mail_location to an absolute path with %d and %n, "
                "e.g. /var/mail/vhosts/%d/%n",
                "mail_location \"%s\" does not expand: %s", cfg->mail_location, strerror(-r));
    else if (!strchr(cfg->mail_location, '%'))
        finding(f, FINDING_WARNING, "use %d and %n in [general] mail_location",
                "mail_location \"%s\" has no %%-escape: every user shares one Maildir",
                cfg->mail_location);
    if (!cli_scheme_known(cfg->auth_default_scheme))
        finding(f, FINDING_ERROR, "set [auth] default_scheme to SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT or YESCRYPT",
                "[auth] default_scheme \"%s\" is not a scheme sockmail can make", cfg->auth_default_scheme);
}

/* Runs QUERY on DB with placeholder values of a recipient nobody has.
 * SM_FOUND / SM_NOTFOUND, or SM_TEMPFAIL with ERR. */
static int probe(struct sm_db *db, const char *query, char *err, size_t errlen) {
    struct sm_db_param p[] = {
        { "address", "postmaster@sockmail-check.invalid" },
        { "localpart", "postmaster" },
        { "domain", "sockmail-check.invalid" },
    };
    return sm_db_query(db, query, p, ARRAY_SIZE(p), NULL, NULL, err, errlen);
}

static const char *const password_query = "SELECT password FROM virtual_users LIMIT 1";

static void check_lookup_grants(struct findings *f, struct sm_db *db, const struct sm_config *cfg) {
    const char *user = cfg->db_lookup_user;
    char err[1024];
    static const struct { const char *key; size_t off; } queries[] = {
        { "query_domain", offsetof(struct sm_config, query_domain) },
        { "query_user", offsetof(struct sm_config, query_user) },
        { "query_alias", offsetof(struct sm_config, query_alias) },
    };
    bool all = true;
    for (size_t i = 0; i < ARRAY_SIZE(queries); i++) {
        const char *q = *(char *const *)((const char *)cfg + queries[i].off);
        if (probe(db, q, err, sizeof err) == SM_TEMPFAIL) {
            all = false;
            finding(f, FINDING_ERROR, denied(cli_db_errno(err)) ? GRANTS_FIX : "correct the query in [database]",
                    "lookup account %s cannot run %s: %s", user, queries[i].key, err);
        }
    }
    if (all)
        finding(f, FINDING_OK, NULL, "lookup account %s runs query_domain, query_user, query_alias",
                user);

    int r = sm_db_query(db, password_query, NULL, 0, NULL, NULL, err, sizeof err);
    if (r != SM_TEMPFAIL) {
        _cleanup_free_ char *fix = NULL;
        if (asprintf(&fix,
                     "REVOKE SELECT (password) ON virtual_users FROM '%s'@'localhost'; or, if it "
                     "has SELECT on the whole table: REVOKE SELECT ON virtual_users FROM "
                     "'%s'@'localhost' and apply sql/grants.sql (it grants only id, domain_id, "
                     "email)",
                     user, user) < 0)
            fix = NULL;
        finding(f, FINDING_ERROR, fix ? fix : GRANTS_FIX,
                "lookup account %s can read virtual_users.password (password hashes): only "
                "auth-checker's account may", user);
    } else if (denied(cli_db_errno(err)))
        finding(f, FINDING_OK, NULL, "lookup account %s cannot read virtual_users.password (denied)",
                user);
    else {
        if (unreachable(cli_db_errno(err))) f->tempfail = true;
        finding(f, FINDING_ERROR, "run `sockmail check` again when the database answers",
                "could not test whether lookup account %s reads password hashes: %s", user, err);
    }
}

static void check_auth_grants(struct findings *f, struct sm_db *db, const struct sm_config *cfg) {
    const char *user = cfg->db_auth_user;
    char err[1024];
    if (probe(db, cfg->query_password, err, sizeof err) == SM_TEMPFAIL)
        finding(f, FINDING_ERROR, denied(cli_db_errno(err)) ? GRANTS_FIX : "correct [database] query_password",
                "auth account %s cannot run query_password: %s", user, err);
    else if (sm_db_query(db, password_query, NULL, 0, NULL, NULL, err, sizeof err) == SM_TEMPFAIL)
        finding(f, FINDING_ERROR, GRANTS_FIX, "auth account %s cannot read virtual_users.password: %s",
                user, err);
    else
        finding(f, FINDING_OK, NULL, "auth account %s reads password hashes (query_password)", user);
}

static void check_admin_grants(struct findings *f, struct sm_db *db, const struct sm_config *cfg) {
    /* Each privilege the CLI needs, tried on no rows at all. */
    static const char *const statements[] = {
        "SELECT id, name FROM virtual_domains WHERE 1 = 0",
        "SELECT id, domain_id, password, email FROM virtual_users WHERE 1 = 0",
        "SELECT id, domain_id, source, destination FROM virtual_aliases WHERE 1 = 0",
        "INSERT INTO virtual_domains (name) SELECT name FROM virtual_domains WHERE 1 = 0",
        "INSERT INTO virtual_users (domain_id, password, email) "
        "SELECT domain_id, password, email FROM virtual_users WHERE 1 = 0",
        "INSERT INTO virtual_aliases (domain_id, source, destination) "
        "SELECT domain_id, source, destination FROM virtual_aliases WHERE 1 = 0",
        "UPDATE virtual_users SET password = password WHERE 1 = 0",
        "DELETE FROM virtual_domains WHERE 1 = 0",
        "DELETE FROM virtual_users WHERE 1 = 0",
        "DELETE FROM virtual_aliases WHERE 1 = 0",
    };
    char err[1024];
    bool all = true;
    for (size_t i = 0; i < ARRAY_SIZE(statements); i++) {
        if (sm_db_exec(db, statements[i], NULL, 0, NULL, err, sizeof err) == 0) continue;
        all = false;
        finding(f, FINDING_ERROR, GRANTS_FIX, "admin account %s cannot run \"%s\": %s",
                cfg->db_admin_user, statements[i], err);
    }
    if (all)
        finding(f, FINDING_OK, NULL, "admin account %s may read and write the three tables",
                cfg->db_admin_user);
}

static void check_database(struct findings *f, const struct sm_config *cfg) {
    static const struct {
        enum sm_db_account account;
        const char *key;
        size_t user;
        void (*grants)(struct findings *, struct sm_db *, const struct sm_config *);
    } accounts[] = {
        { SM_DB_LOOKUP, "lookup", offsetof(struct sm_config, db_lookup_user), check_lookup_grants },
        { SM_DB_AUTH, "auth", offsetof(struct sm_config, db_auth_user), check_auth_grants },
        { SM_DB_ADMIN, "admin", offsetof(struct sm_config, db_admin_user), check_admin_grants },
    };
    for (size_t i = 0; i < ARRAY_SIZE(accounts); i++) {
        const char *user = *(char *const *)((const char *)cfg + accounts[i].user);
        struct sm_db *db = sm_db_new(cfg, accounts[i].account);
        char err[1024];
        if (!db) {
            finding(f, FINDING_ERROR, NULL, "out of memory");
            return;
        }
        if (sm_db_query(db, "SELECT 1", NULL, 0, NULL, NULL, err, sizeof err) == SM_TEMPFAIL) {
            unsigned code = cli_db_errno(err);
            _cleanup_free_ char *fix = NULL;
            if (code == 1045 || code == 1044 || code == 1698) {
                if (asprintf(&fix, "check [database] %s_user and %s_password_file, and that the "
                             "account exists (CREATE USER, see sql/grants.sql)",
                             accounts[i].key, accounts[i].key) < 0)
                    fix = NULL;
            } else if (unreachable(code)) {
                f->tempfail = true;
                if (asprintf(&fix, "start MariaDB, or correct [database] hosts (%s)", cfg->db_hosts) < 0)
                    fix = NULL;
            }
            finding(f, FINDING_ERROR, fix, "database: %s account %s cannot connect: %s",
                    accounts[i].key, user, err);
        } else {
            finding(f, FINDING_OK, NULL, "database: %s account %s connects", accounts[i].key, user);
            accounts[i].grants(f, db, cfg);
        }
        sm_db_free(db);
    }
}

/* The fixed part of mail_location before the first %-escape, cut back to
 * a directory: /var/mail/vhosts/%d/%n -> /var/mail/vhosts. */
static char *maildir_root(const char *location) {
    if (strncmp(location, "maildir:", 8) == 0) location += 8;
    size_t n = strcspn(location, "%:");
    char *root = strndup(location, n);
    if (!root) return NULL;
    if (location[n] == '%' || location[n] == ':') {
        char *slash = strrchr(root, '/');
        if (slash) *slash = 0;
    }
    size_t l = strlen(root);
    while (l > 1 && root[l - 1] == '/') root[--l] = 0;
    if (!*root && location[0] == '/') strcpy(root, "/");
    return root;
}

static void check_maildir_root(struct findings *f, const struct sm_config *cfg) {
    _cleanup_free_ char *root = maildir_root(cfg->mail_location);
    if (!root) {
        finding(f, FINDING_ERROR, NULL, "out of memory");
        return;
    }
    if (root[0] != '/') {
        finding(f, FINDING_ERROR, "make [general] mail_location an absolute path",
                "Maildir root \"%s\" (from mail_location) is not absolute", root);
        return;
    }
    struct passwd *vmail = getpwnam("vmail");
    struct stat st;
    if (stat(root, &st) < 0) {
        _cleanup_free_ char *fix = NULL;
        if (asprintf(&fix, "mkdir -p %s && chown %s %s && chmod 0750 %s", root,
                     vmail ? "vmail:vmail" : "USER:GROUP (the user the handlers run as)", root,
                     root) < 0)
            fix = NULL;
        finding(f, FINDING_ERROR, errno == ENOENT ? fix : "make the path reachable for the handlers",
                "Maildir root %s: %s", root, strerror(errno));
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        finding(f, FINDING_ERROR, "point [general] mail_location at a directory",
                "Maildir root %s is not a directory", root);
        return;
    }
    unsigned mode = st.st_mode & 07777;
    if (mode & S_IWOTH) {
        _cleanup_free_ char *fix = NULL;
        if (asprintf(&fix, "chmod o-w %s", root) < 0) fix = NULL;
        finding(f, FINDING_ERROR, fix,
                "Maildir root %s is world-writable (mode %04o): any local user can plant mail "
                "or domains", root, mode);
    }
    struct passwd *owner = getpwuid(st.st_uid);
    const char *owner_name = owner ? owner->pw_name : "?";
    if (vmail && st.st_uid != vmail->pw_uid) {
        _cleanup_free_ char *fix = NULL;
        if (asprintf(&fix, "chown -R vmail:vmail %s, if the handlers run as vmail", root) < 0)
            fix = NULL;
        finding(f, FINDING_WARNING, fix, "Maildir root %s is owned by %s (uid %u), not vmail (uid %u)",
                root, owner_name, (unsigned)st.st_uid, (unsigned)vmail->pw_uid);
    } else if (!(mode & S_IWOTH))
        finding(f, FINDING_OK, NULL, "Maildir root %s exists, owner %s (uid %u)%s, mode %04o", root,
                owner_name, (unsigned)st.st_uid, vmail ? "" : " (no vmail user here)", mode);
}

/* Reads a PEM file of at most MAX_PEM bytes into RET (gnutls_free it). */
static int read_file(const char *path, gnutls_datum_t *ret, struct stat *st) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -errno;
    if (fstat(fd, st) < 0) return -errno;
    if (!S_ISREG(st->st_mode)) return -EINVAL;
    if (st->st_size > MAX_PEM) return -EFBIG;
    unsigned char *buf = gnutls_malloc((size_t)st->st_size + 1);
    if (!buf) return -ENOMEM;
    size_t got = 0;
    while (got < (size_t)st->st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st->st_size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            gnutls_free(buf);
            return n < 0 ? -errno : -EIO;
        }
        got += (size_t)n;
    }
    buf[got] = 0;
    ret->data = buf;
    ret->size = (unsigned)got;
    return 0;
}

static void format_time(time_t t, char *buf, size_t len) {
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(buf, len, "%lld", (long long)t);
}

static void check_expiry(struct findings *f, gnutls_x509_crt_t crt, const char *path) {
    time_t now = time(NULL);
    time_t until = gnutls_x509_crt_get_expiration_time(crt);
    time_t from = gnutls_x509_crt_get_activation_time(crt);
    char when[64];
    format_time(until, when, sizeof when);
    if (until == (time_t)-1)
        finding(f, FINDING_ERROR, "replace the certificate", "certificate %s: no expiry date", path);
    else if (until <= now)
        finding(f, FINDING_ERROR, "renew the certificate", "certificate %s expired on %s", path, when);
    else if (until - now < (time_t)EXPIRY_WARNING_DAYS * 86400)
        finding(f, FINDING_WARNING, "renew the certificate soon",
                "certificate %s expires on %s (in %lld days)", path, when,
                (long long)((until - now) / 86400));
    else
        finding(f, FINDING_OK, NULL, "certificate %s valid until %s", path, when);
    if (from != (time_t)-1 && from > now) {
        format_time(from, when, sizeof when);
        finding(f, FINDING_WARNING, "check the clock, or wait", "certificate %s is not valid before %s",
                path, when);
    }
}

static void check_tls(struct findings *f, const struct sm_config *cfg) {
    const char *cert = cfg->tls_cert, *key = cfg->tls_key;
    if (!*cert && !*key) {
        finding(f, FINDING_WARNING, "set [tls] cert and key (STARTTLS and implicit TLS need them)",
                "TLS is not configured: passwords can only be sent in clear text");
        return;
    }
    if (!*cert || !*key) {
        finding(f, FINDING_ERROR, "set both [tls] cert and key",
                "[tls] %s is set but %s is empty", *cert ? "cert" : "key", *cert ? "key" : "cert");
        return;
    }
    gnutls_datum_t cdata = { 0 }, kdata = { 0 };
    gnutls_x509_crt_t *crts = NULL;
    unsigned ncrts = 0;
    gnutls_x509_privkey_t pkey = NULL;
    struct stat cst, kst;
    int r;

    if ((r = read_file(cert, &cdata, &cst)) < 0) {
        finding(f, FINDING_ERROR, "correct [tls] cert", "certificate %s: %s", cert,
                r == -EINVAL ? "not a regular file" : strerror(-r));
        goto out;
    }
    r = gnutls_x509_crt_list_import2(&crts, &ncrts, &cdata, GNUTLS_X509_FMT_PEM, 0);
    if (r < 0 || ncrts == 0) {
        finding(f, FINDING_ERROR, "give a PEM certificate (then its chain) in [tls] cert",
                "certificate %s does not parse: %s", cert, r < 0 ? gnutls_strerror(r) : "empty");
        goto out;
    }
    check_expiry(f, crts[0], cert);

    if ((r = read_file(key, &kdata, &kst)) < 0) {
        finding(f, FINDING_ERROR, "correct [tls] key (the handlers must be able to read it)",
                "key %s: %s", key, r == -EINVAL ? "not a regular file" : strerror(-r));
        goto out;
    }
    if (kst.st_mode & (S_IROTH | S_IWOTH)) {
        _cleanup_free_ char *fix = NULL;
        if (asprintf(&fix, "chmod o-rw %s", key) < 0) fix = NULL;
        finding(f, FINDING_WARNING, fix, "key %s is readable or writable by every local user (mode %04o)",
                key, (unsigned)(kst.st_mode & 07777));
    }
    if ((r = gnutls_x509_privkey_init(&pkey)) < 0 ||
        (r = gnutls_x509_privkey_import2(pkey, &kdata, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        finding(f, FINDING_ERROR, "give an unencrypted PEM private key in [tls] key",
                "key %s does not parse: %s", key, gnutls_strerror(r));
        goto out;
    }
    unsigned char cid[64], kid[64];
    size_t clen = sizeof cid, klen = sizeof kid;
    if ((r = gnutls_x509_crt_get_key_id(crts[0], GNUTLS_KEYID_USE_SHA256, cid, &clen)) < 0 ||
        (r = gnutls_x509_privkey_get_key_id(pkey, GNUTLS_KEYID_USE_SHA256, kid, &klen)) < 0) {
        finding(f, FINDING_ERROR, "check the certificate and key files",
                "cannot compare key %s with certificate %s: %s", key, cert, gnutls_strerror(r));
        goto out;
    }
    if (clen != klen || memcmp(cid, kid, clen) != 0)
        finding(f, FINDING_ERROR,
                "use the key the certificate was made for (compare `openssl x509 -noout -pubkey "
                "-in CERT` with `openssl pkey -pubout -in KEY`)",
                "key %s does not belong to certificate %s", key, cert);
    else
        finding(f, FINDING_OK, NULL, "key %s matches certificate %s", key, cert);
out:
    if (pkey) gnutls_x509_privkey_deinit(pkey);
    for (unsigned i = 0; i < ncrts; i++) gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    if (kdata.data) {
        explicit_zero(kdata.data, kdata.size);
        gnutls_free(kdata.data);
    }
    gnutls_free(cdata.data);
}

/* Mail waiting in the queue: a Maildir that refuses mail, or remote
 * recipients that nothing delivers yet. Warnings, not errors: nothing is
 * lost, but someone should look. */
static void check_queue(struct findings *f, const struct sm_config *cfg) {
    struct queue_summary q;
    int r = cli_queue_summary(cfg->queue, &q);
    if (r < 0) {
        finding(f, FINDING_WARNING, "run sockmail check as root or as the mail user",
                "queue %s cannot be read: %s", cfg->queue, strerror(-r));
        return;
    }
    if (q.messages == 0) {
        finding(f, FINDING_OK, NULL, "queue %s is empty", cfg->queue);
        return;
    }
    long long age = q.oldest ? (long long)(time(NULL) - q.oldest) : 0;
    if (age < 0) age = 0;
    if (q.pending_local)
        finding(f, age >= 3600 ? FINDING_WARNING : FINDING_OK,
                age >= 3600 ? "see `sockmail queue`: a Maildir that cannot be written (owner, "
                              "space) keeps them; smtp-handler --flush-queue retries" : NULL,
                "queue %s: %zu local deliveries wait (oldest message %lld min old)", cfg->queue,
                q.pending_local, age / 60);
    if (q.pending_remote)
        finding(f, FINDING_WARNING, "outbound delivery is not part of sockmail yet: send such "
                "mail through another MTA, or remove it with `sockmail queue del ID`",
                "queue %s: %zu remote recipients wait", cfg->queue, q.pending_remote);
    if (!q.pending_local && !q.pending_remote)
        finding(f, FINDING_OK, NULL, "queue %s: %zu finished messages being removed", cfg->queue,
                q.messages);
}

int cmd_check(struct cli *cli, int argc, char **argv) {
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool json = false;
    int c;
    while ((c = cli_getopt("check", argc, argv, "jh", opts)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 'h': cli_usage("check", stdout); return SM_EXIT_OK;
        default: return SM_EXIT_USAGE;
        }
    }
    if (optind != argc) return cli_usage_error("check", "unexpected argument \"%s\"", argv[optind]);

    struct json j;
    struct findings f = { .json = json ? &j : NULL };
    if (json) {
        json_begin(&j, stdout);
        json_object(&j);
        json_key(&j, "findings");
        json_array(&j);
    }
    /* Loading the configuration is its check. */
    char err[1024];
    if (sm_config_load(cli->config_path, &cli->cfg, err, sizeof err) < 0) {
        cli->cfg = NULL;
        finding(&f, FINDING_ERROR, "correct the named line (etc/sockmail.conf documents every key), "
                "or give another file with -c FILE", "configuration: %s", err);
    } else {
        check_config(&f, cli->cfg);
        check_database(&f, cli->cfg);
        check_maildir_root(&f, cli->cfg);
        check_tls(&f, cli->cfg);
        check_queue(&f, cli->cfg);
    }
    if (json) {
        json_array_end(&j);
        json_key(&j, "ok");
        json_uint(&j, f.ok);
        json_key(&j, "warnings");
        json_uint(&j, f.warnings);
        json_key(&j, "errors");
        json_uint(&j, f.errors);
        json_key(&j, "database_unreachable");
        json_bool(&j, f.tempfail);
        json_object_end(&j);
        json_end(&j);
    } else
        printf("%u ok, %u warning%s, %u error%s\n", f.ok, f.warnings, f.warnings == 1 ? "" : "s",
               f.errors, f.errors == 1 ? "" : "s");
    if (f.tempfail) return SM_EXIT_TEMPFAIL;
    return f.errors ? SM_EXIT_REFUSED : SM_EXIT_OK;
}
