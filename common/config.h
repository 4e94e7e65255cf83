/* config.h — the one configuration file every program reads.
 *
 * Format: `key = value` lines grouped under `[section]` headers; `#` starts a
 * comment line. Every key has a default (etc/sockmail.conf documents them
 * all); an unknown key, a key outside its section or a bad value is an error
 * that names the file and the line. Which file: `-c FILE`, else
 * $SOCKMAIL_CONFIG, else SM_DEFAULT_CONFIG.
 *
 * Secrets (database passwords) are never required inline: `X_file = PATH`
 * names a file, and with systemd's LoadCredential= the credential named in
 * the key's documentation is read from $CREDENTIALS_DIRECTORY. Secrets are
 * read only when a program asks for one (sm_config_secret), so lmtp-handler,
 * which may not read the auth account's file, never tries to.
 *
 * Usage:
 *     struct sm_config *cfg;
 *     char err[512];
 *     if (sm_config_load(path, &cfg, err, sizeof err) < 0) { print err; exit 2; }
 *     ... cfg->mail_location ...
 *     sm_config_free(cfg);
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifndef SM_DEFAULT_CONFIG
#define SM_DEFAULT_CONFIG "/etc/sockmail/sockmail.conf"
#endif

/* Limits of one line-based protocol session (STYLE.md point 2). */
struct sm_proto_limits {
    uint64_t max_line;          /* bytes of one command line, CRLF included */
    uint64_t max_message_size;  /* bytes of one message after dot-unstuffing */
    uint64_t max_recipients;    /* RCPT per transaction */
    uint64_t max_bad_commands;  /* then the session is closed */
    uint64_t timeout_command;   /* seconds waiting for a command */
    uint64_t timeout_data;      /* seconds waiting for each DATA block */
};

struct sm_config {
    char *source;               /* file the values came from */

    /* [general] */
    char *hostname;             /* empty: gethostname() */
    char *mail_location;        /* Maildir path template: %d %n %u */
    char *queue;                /* outbound queue directory */
    char *log;                  /* auto | journal | syslog | stderr */
    char *log_level;            /* error | warning | info | debug */

    /* [database] */
    char *db_hosts;             /* comma list: /path/to.sock or host[:port] */
    char *db_name;
    /* Passwords: inline values here; a program reads the one it needs,
     * and only that one, with sm_config_secret(). */
    char *db_lookup_user, *db_lookup_password, *db_lookup_password_file;
    char *db_auth_user, *db_auth_password, *db_auth_password_file;
    char *db_admin_user, *db_admin_password, *db_admin_password_file;
    uint64_t db_connect_timeout, db_read_timeout, db_write_timeout;
    char *query_domain;         /* placeholders: :domain */
    char *query_user;           /* :address :localpart :domain */
    char *query_alias;          /* :address :localpart :domain */
    char *query_password;       /* :address :localpart :domain */

    /* [delivery] */
    uint64_t alias_max_depth;
    uint64_t alias_max_expansion;  /* destinations after expansion */
    char *recipient_delimiter;     /* empty: none; e.g. "+" */

    /* [auth] */
    char *auth_socket;            /* auth-checker's socket, for our handlers */
    uint64_t auth_failure_delay;  /* seconds before a failed login is answered */
    bool auth_allow_plaintext;    /* PLAIN/LOGIN without TLS from a TCP peer */
    char *auth_default_scheme;    /* for `sockmail pw` and new users */
    uint64_t auth_max_attempts;   /* failed logins per connection */
    uint64_t auth_max_line;       /* bytes of one auth protocol line */
    uint64_t auth_timeout;        /* seconds of silence before closing */

    /* [tls] */
    char *tls_cert, *tls_key, *tls_priority;
    uint64_t tls_handshake_timeout;

    /* [lmtp] */
    struct sm_proto_limits lmtp;

    /* [smtp] */
    struct sm_proto_limits smtp;           /* max_message_size: mx mode */
    uint64_t smtp_submission_max_message_size;
    bool smtp_accept_bare_lf;              /* store lines ending in bare LF */
    bool smtp_mx_auth;                     /* offer AUTH on mx (after TLS) */
    bool smtp_mx_starttls;                 /* offer STARTTLS on mx */

    /* [pop3] — only max_line, max_bad_commands and timeout_command of the
     * limits apply (POP3 receives no messages). */
    struct sm_proto_limits pop3;
    uint64_t pop3_lock_timeout;            /* seconds waiting for dovecot-uidlist.lock */
    bool pop3_mark_seen;                   /* at QUIT: new/ to cur/, RETR'd ones seen */
};

/* Loads PATH (NULL: $SOCKMAIL_CONFIG, else SM_DEFAULT_CONFIG) over the
 * defaults. Returns 0, or -1 with a one-line reason in ERR. */
int sm_config_load(const char *path, struct sm_config **ret, char *err, size_t errlen);

/* Parses TEXT as if it were the file NAME (for tests and fuzzing). */
int sm_config_parse(const char *name, const char *text, size_t len,
                    struct sm_config **ret, char *err, size_t errlen);

/* The defaults alone (never fails except on out-of-memory: NULL). */
struct sm_config *sm_config_defaults(void);

void sm_config_free(struct sm_config *cfg);

/* The secret NAME ("lookup_password", "auth_password", "admin_password"):
 * from NAME_file if set, else the inline value if set, else the systemd
 * credential if present, else "". One trailing newline of a file is
 * dropped. 0 with a malloc'd *RET, or -errno with ERR naming the file. */
int sm_config_secret(const struct sm_config *cfg, const char *name, char **ret,
                     char *err, size_t errlen);

/* Prints every key with its current value, `[section]` by section. */
void sm_config_dump(const struct sm_config *cfg, FILE *out);
