/* config.c — table-driven parser for sockmail.conf; see config.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/stat.h>

#include "macro.h"

enum key_type { K_STR, K_UINT, K_SIZE, K_BOOL };

struct key {
    const char *section, *name;
    enum key_type type;
    size_t offset;
    const char *def;
    uint64_t min, max;
    const char *credential;  /* a secret: its LoadCredential= name */
};

#define OFF(f) offsetof(struct sm_config, f)
#define STR(s, n, f, d) { s, n, K_STR, OFF(f), d, 0, 0, NULL }
#define NUM(s, n, f, d, lo, hi) { s, n, K_UINT, OFF(f), d, lo, hi, NULL }
#define SIZE(s, n, f, d, lo, hi) { s, n, K_SIZE, OFF(f), d, lo, hi, NULL }
#define BOOL(s, n, f, d) { s, n, K_BOOL, OFF(f), d, 0, 1, NULL }
/* A secret: inline (discouraged), from NAME_file, or from a credential. */
#define SECRET(s, n, f, cred) \
    { s, n, K_STR, OFF(f), "", 0, 0, cred }, \
    { s, n "_file", K_STR, OFF(f##_file), "", 0, 0, NULL }
#define LIMITS(sec, f, line, size, rcpt, bad, tcmd, tdata)                          \
    SIZE(sec, "max_line", f.max_line, line, 512, 1 << 20),                          \
    SIZE(sec, "max_message_size", f.max_message_size, size, 1024, UINT64_C(1) << 40), \
    NUM(sec, "max_recipients", f.max_recipients, rcpt, 1, 100000),                  \
    NUM(sec, "max_bad_commands", f.max_bad_commands, bad, 1, 1000),                 \
    NUM(sec, "timeout_command", f.timeout_command, tcmd, 1, 86400),                 \
    NUM(sec, "timeout_data", f.timeout_data, tdata, 1, 86400)

#define DEFAULT_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE"

/* Keep in step with etc/sockmail.conf (tests/unit/test-config.c checks). */
static const struct key keys[] = {
    STR("general", "hostname", hostname, ""),
    STR("general", "mail_location", mail_location, "/var/mail/vhosts/%d/%n"),
    STR("general", "queue", queue, "/var/spool/sockmail/queue"),
    STR("general", "log", log, "auto"),
    STR("general", "log_level", log_level, "info"),

    STR("database", "hosts", db_hosts, "/run/mysqld/mysqld.sock"),
    STR("database", "name", db_name, "mailserver"),
    STR("database", "lookup_user", db_lookup_user, "sockmail_lookup"),
    SECRET("database", "lookup_password", db_lookup_password, "db-lookup-password"),
    STR("database", "auth_user", db_auth_user, "sockmail_auth"),
    SECRET("database", "auth_password", db_auth_password, "db-auth-password"),
    STR("database", "admin_user", db_admin_user, "sockmail_admin"),
    SECRET("database", "admin_password", db_admin_password, "db-admin-password"),
    NUM("database", "connect_timeout", db_connect_timeout, "5", 1, 600),
    NUM("database", "read_timeout", db_read_timeout, "10", 1, 600),
    NUM("database", "write_timeout", db_write_timeout, "10", 1, 600),
    STR("database", "query_domain", query_domain,
        "SELECT 1 FROM virtual_domains WHERE name = :domain"),
    STR("database", "query_user", query_user,
        "SELECT email FROM virtual_users WHERE email = :address"),
    STR("database", "query_alias", query_alias,
        "SELECT destination FROM virtual_aliases WHERE source = :address"),
    STR("database", "query_password", query_password,
        "SELECT email, password FROM virtual_users WHERE email = :address"),

    NUM("delivery", "alias_max_depth", alias_max_depth, "10", 1, 100),
    NUM("delivery", "alias_max_expansion", alias_max_expansion, "1000", 1, 100000),
    STR("delivery", "recipient_delimiter", recipient_delimiter, ""),

    STR("auth", "socket", auth_socket, "/run/sockmail/auth"),
    NUM("auth", "failure_delay", auth_failure_delay, "2", 0, 60),
    BOOL("auth", "allow_plaintext", auth_allow_plaintext, "no"),
    STR("auth", "default_scheme", auth_default_scheme, "SHA512-CRYPT"),
    NUM("auth", "max_attempts", auth_max_attempts, "3", 1, 100),
    SIZE("auth", "max_line", auth_max_line, "16K", 1024, 1 << 20),
    NUM("auth", "timeout", auth_timeout, "120", 1, 3600),

    STR("tls", "cert", tls_cert, ""),
    STR("tls", "key", tls_key, ""),
    STR("tls", "priority", tls_priority, DEFAULT_PRIORITY),
    NUM("tls", "handshake_timeout", tls_handshake_timeout, "30", 1, 3600),

    LIMITS("lmtp", lmtp, "4096", "64M", "1000", "20", "300", "600"),

    LIMITS("smtp", smtp, "4096", "64M", "1000", "20", "300", "180"),
    SIZE("smtp", "submission_max_message_size", smtp_submission_max_message_size, "64M",
         1024, UINT64_C(1) << 40),
    BOOL("smtp", "accept_bare_lf", smtp_accept_bare_lf, "no"),
    BOOL("smtp", "mx_auth", smtp_mx_auth, "no"),
    BOOL("smtp", "mx_starttls", smtp_mx_starttls, "yes"),

    SIZE("pop3", "max_line", pop3.max_line, "512", 512, 1 << 20),
    NUM("pop3", "max_bad_commands", pop3.max_bad_commands, "20", 1, 1000),
    NUM("pop3", "timeout_command", pop3.timeout_command, "600", 600, 86400),
    NUM("pop3", "lock_timeout", pop3_lock_timeout, "30", 1, 600),
    BOOL("pop3", "mark_seen", pop3_mark_seen, "yes"),
};

static void fmt_err(char *err, size_t errlen, const char *fmt, ...) _printf_(3, 4);
static void fmt_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char **str_at(struct sm_config *c, size_t off) { return (char **)((char *)c + off); }
static uint64_t *num_at(struct sm_config *c, size_t off) { return (uint64_t *)((char *)c + off); }

/* "64M" -> 67108864; suffixes K M G T are binary. */
static int parse_number(const char *v, bool sized, uint64_t *ret) {
    if (!isdigit((unsigned char)*v)) return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno) return -ERANGE;
    unsigned shift = 0;
    if (sized && *end) {
        switch (toupper((unsigned char)*end)) {
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        case 'T': shift = 40; break;
        default: return -EINVAL;
        }
        end++;
    }
    if (*end) return -EINVAL;
    if (shift && n > (UINT64_MAX >> shift)) return -ERANGE;
    *ret = (uint64_t)n << shift;
    return 0;
}

static int read_secret(const char *path, char **ret) {
    /* O_NONBLOCK and a regular-file check: a FIFO or device named by
     * mistake must fail, not hang the program. */
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    if (!S_ISREG(st.st_mode)) return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
    char buf[1024];
    size_t n = 0;
    for (;;) {
        ssize_t k = read(fd, buf + n, sizeof buf - 1 - n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -errno;
        if (k == 0) break;
        n += (size_t)k;
        if (n == sizeof buf - 1) {
            char extra;
            if (read(fd, &extra, 1) > 0) {
                explicit_zero(buf, sizeof buf);
                return -EFBIG;
            }
            break;
        }
    }
    buf[n] = 0;
    /* One trailing newline is the file's, not the secret's. */
    if (n && buf[n - 1] == '\n') buf[--n] = 0;
    if (n && buf[n - 1] == '\r') buf[--n] = 0;
    char *s = strdup(buf);
    explicit_zero(buf, sizeof buf);
    if (!s) return -ENOMEM;
    *ret = s;
    return 0;
}

static int set_value(struct sm_config *c, const struct key *k, const char *v,
                     char *err, size_t errlen) {
    if (k->type == K_STR) {
        char *s = strdup(v);
        if (!s) return -ENOMEM;
        free(*str_at(c, k->offset));
        *str_at(c, k->offset) = s;
        return 0;
    }
    if (k->type == K_BOOL) {
        bool yes = !strcasecmp(v, "yes") || !strcasecmp(v, "true") || streq(v, "1") || !strcasecmp(v, "on");
        bool no = !strcasecmp(v, "no") || !strcasecmp(v, "false") || streq(v, "0") || !strcasecmp(v, "off");
        if (!yes && !no) {
            fmt_err(err, errlen, "%s: bad value \"%s\" (yes or no)", k->name, v);
            return -EINVAL;
        }
        *(bool *)((char *)c + k->offset) = yes;
        return 0;
    }
    uint64_t n;
    int r = parse_number(v, k->type == K_SIZE, &n);
    if (r < 0 || n < k->min || n > k->max) {
        fmt_err(err, errlen, "%s: bad value \"%s\" (a number from %llu to %llu%s)", k->name, v,
                (unsigned long long)k->min, (unsigned long long)k->max,
                k->type == K_SIZE ? ", suffix K/M/G allowed" : "");
        return -EINVAL;
    }
    *num_at(c, k->offset) = n;
    return 0;
}

void sm_config_free(struct sm_config *c) {
    if (!c) return;
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        if (keys[i].type != K_STR) continue;
        char *s = *str_at(c, keys[i].offset);
        if (s && keys[i].credential) explicit_zero(s, strlen(s));
        free(s);
    }
    free(c->source);
    free(c);
}

struct sm_config *sm_config_defaults(void) {
    struct sm_config *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        if (set_value(c, &keys[i], keys[i].def, NULL, 0) < 0) {
            sm_config_free(c);
            return NULL;
        }
    }
    return c;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = 0;
    return s;
}

int sm_config_parse(const char *name, const char *text, size_t len,
                    struct sm_config **ret, char *err, size_t errlen) {
    struct sm_config *c = sm_config_defaults();
    if (!c) {
        fmt_err(err, errlen, "%s: out of memory", name);
        return -1;
    }
    c->source = strdup(name);
    char section[64] = "";
    unsigned lineno = 0;
    size_t pos = 0;
    char line[8192];
    while (pos < len) {
        lineno++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        if (n >= sizeof line) {
            fmt_err(err, errlen, "%s:%u: line too long (max %zu bytes)", name, lineno, sizeof line - 1);
            goto fail;
        }
        if (memchr(text + pos, 0, n)) {
            fmt_err(err, errlen, "%s:%u: NUL byte in line", name, lineno);
            goto fail;
        }
        memcpy(line, text + pos, n);
        line[n] = 0;
        pos += n + (nl ? 1 : 0);

        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            char *e = strchr(s, ']');
            if (!e || e[1] || e - s - 1 <= 0 || (size_t)(e - s) >= sizeof section) {
                fmt_err(err, errlen, "%s:%u: bad section header \"%s\"", name, lineno, s);
                goto fail;
            }
            *e = 0;
            strcpy(section, s + 1);
            bool known = false;
            for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
                if (streq(keys[i].section, section)) known = true;
            if (!known) {
                fmt_err(err, errlen, "%s:%u: unknown section [%s]", name, lineno, section);
                goto fail;
            }
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            fmt_err(err, errlen, "%s:%u: expected \"key = value\", got \"%s\"", name, lineno, s);
            goto fail;
        }
        *eq = 0;
        char *key = trim(s), *value = trim(eq + 1);
        if (!*section) {
            fmt_err(err, errlen, "%s:%u: key \"%s\" outside any [section]", name, lineno, key);
            goto fail;
        }
        const struct key *k = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
            if (streq(keys[i].section, section) && streq(keys[i].name, key)) k = &keys[i];
        if (!k) {
            fmt_err(err, errlen, "%s:%u: unknown key \"%s\" in [%s]", name, lineno, key, section);
            goto fail;
        }
        char why[600] = "";
        if (set_value(c, k, value, why, sizeof why) < 0) {
            fmt_err(err, errlen, "%s:%u: %s", name, lineno, why[0] ? why : "out of memory");
            goto fail;
        }
    }
    *ret = c;
    return 0;
fail:
    sm_config_free(c);
    return -1;
}

int sm_config_load(const char *path, struct sm_config **ret, char *err, size_t errlen) {
    if (!path || !*path) path = getenv("SOCKMAIL_CONFIG");
    if (!path || !*path) path = SM_DEFAULT_CONFIG;
    /* O_NONBLOCK: a FIFO without a writer must not hang the open; it is
     * refused below like every other file that is not regular. */
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        fmt_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20)) {
        fmt_err(err, errlen, "%s: not a regular file of at most 1 MiB", path);
        return -1;
    }
    _cleanup_free_ char *text = malloc((size_t)st.st_size + 1);
    if (!text) {
        fmt_err(err, errlen, "%s: out of memory", path);
        return -1;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            fmt_err(err, errlen, "%s: read error", path);
            return -1;
        }
        got += (size_t)n;
    }
    return sm_config_parse(path, text, got, ret, err, errlen);
}

void sm_config_dump(const struct sm_config *c, FILE *out) {
    const char *section = "";
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        const struct key *k = &keys[i];
        if (!streq(section, k->section)) {
            fprintf(out, "%s[%s]\n", *section ? "\n" : "", k->section);
            section = k->section;
        }
        if (k->type == K_BOOL) {
            fprintf(out, "%s = %s\n", k->name, *(const bool *)((const char *)c + k->offset) ? "yes" : "no");
        } else if (k->type == K_STR) {
            const char *v = *str_at((struct sm_config *)c, k->offset);
            fprintf(out, "%s = %s\n", k->name, k->credential && *v ? "(set)" : v);
        } else {
            fprintf(out, "%s = %llu\n", k->name,
                    (unsigned long long)*num_at((struct sm_config *)c, k->offset));
        }
    }
}

int sm_config_secret(const struct sm_config *c, const char *name, char **ret, char *err, size_t errlen) {
    const struct key *inline_key = NULL, *file_key = NULL;
    size_t len = strlen(name);
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        const struct key *k = &keys[i];
        if (k->credential && streq(k->name, name)) inline_key = k;
        else if (!strncmp(k->name, name, len) && streq(k->name + len, "_file")) file_key = k;
    }
    if (!inline_key || !file_key) {
        fmt_err(err, errlen, "%s: no such secret", name);
        return -EINVAL;
    }
    const char *file = *str_at((struct sm_config *)c, file_key->offset);
    const char *value = *str_at((struct sm_config *)c, inline_key->offset);
    char cred[4096] = "";
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    if (!*file && !*value && dir && *dir &&
        (size_t)snprintf(cred, sizeof cred, "%s/%s", dir, inline_key->credential) < sizeof cred &&
        access(cred, F_OK) == 0)
        file = cred;
    if (!*file) {
        *ret = strdup(value);
        return *ret ? 0 : -ENOMEM;
    }
    int r = read_secret(file, ret);
    if (r < 0) fmt_err(err, errlen, "%s: %s_file: cannot read %s: %s", c->source ? c->source : "config",
                       name, file, strerror(-r));
    return r;
}
