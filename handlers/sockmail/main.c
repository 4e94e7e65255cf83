/* sockmail — the admin CLI: password hashes, domains, users, aliases,
 * recipient lookups, a configuration check and the queue.
 *
 * main.c parses the global options (-c FILE, --help, --version), loads the
 * configuration and the database handles on demand, and dispatches to one
 * file per command group. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "sockmail.h"

static const struct {
    const char *name;
    int (*run)(struct cli *cli, int argc, char **argv);
    const char *usage;
} commands[] = {
    { "pw", cmd_pw,
      "usage: sockmail [-c FILE] pw [-s SCHEME] [-p PASSWORD] [-t HASH]\n"
      "Prints a password hash in the {SCHEME} form `doveadm pw` prints.\n"
      "  -s, --scheme SCHEME   SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT or YESCRYPT\n"
      "                        (default: [auth] default_scheme)\n"
      "  -p, --password PASS   the password (else read from the terminal, twice)\n"
      "  -t, --test HASH       verify the password against HASH: exit 0 match, 1 not\n" },
    { "domain", cmd_domain,
      "usage: sockmail [-c FILE] domain add DOMAIN\n"
      "       sockmail [-c FILE] domain del DOMAIN [--force]\n"
      "       sockmail [-c FILE] domain list [--json]\n"
      "Local mail domains (table virtual_domains), through the admin account.\n"
      "`del` refuses a domain with users or aliases unless --force: the database\n"
      "deletes them with it (ON DELETE CASCADE). Maildirs stay on disk.\n" },
    { "user", cmd_user,
      "usage: sockmail [-c FILE] user add ADDRESS [-p PASSWORD] [-s SCHEME]\n"
      "       sockmail [-c FILE] user passwd ADDRESS [-p PASSWORD] [-s SCHEME]\n"
      "       sockmail [-c FILE] user del ADDRESS\n"
      "       sockmail [-c FILE] user list [DOMAIN] [--json]\n"
      "Mailbox users (table virtual_users). Without -p the password is read from\n"
      "the terminal (twice, echo off) or from one line of stdin.\n" },
    { "alias", cmd_alias,
      "usage: sockmail [-c FILE] alias add SOURCE DESTINATION...\n"
      "       sockmail [-c FILE] alias del SOURCE [DESTINATION]\n"
      "       sockmail [-c FILE] alias list [DOMAIN] [--json]\n"
      "Aliases (table virtual_aliases). SOURCE is an address in a local domain,\n"
      "or @DOMAIN for the domain's catch-all; a DESTINATION may be anywhere.\n" },
    { "lookup", cmd_lookup,
      "usage: sockmail [-c FILE] lookup ADDRESS [--json]\n"
      "What SMTP/LMTP would do with the recipient ADDRESS: local domain or not,\n"
      "user, alias expansion, the Maildirs it ends in, or remote. Uses the lookup\n"
      "account, as the handlers do. Exit 1 when the address is unknown.\n" },
    { "check", cmd_check,
      "usage: sockmail [-c FILE] check [--json]\n"
      "Checks the configuration, the database accounts and their grants, the\n"
      "Maildir root, the TLS certificate and key, and mail waiting in the queue;\n"
      "prints each finding as\n"
      "`ok|warning|error: what — fix: what to do`. Exit 0 without errors, 1 with\n"
      "errors, 75 when the database cannot be reached.\n" },
    { "queue", cmd_queue,
      "usage: sockmail [-c FILE] queue [list] [--json]\n"
      "       sockmail [-c FILE] queue show ID [--json | --message]\n"
      "       sockmail [-c FILE] queue del ID\n"
      "What smtp-handler's queue holds: messages whose local copies wait for a\n"
      "retry (smtp-handler --flush-queue, run by sockmail-flush-queue.timer) and\n"
      "messages for remote recipients (outbound delivery is not part of sockmail\n"
      "yet). `show --message` prints the message as it would be delivered; `del`\n"
      "removes it for every recipient that has not received it.\n" },
};

void cli_usage(const char *command, FILE *out) {
    if (command)
        for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
            if (streq(commands[i].name, command)) {
                fputs(commands[i].usage, out);
                return;
            }
    fputs("usage: sockmail [-c FILE] COMMAND [ARGS]\n"
          "       sockmail [-c FILE] COMMAND --help\n"
          "Commands:\n"
          "  pw [-s SCHEME] [-p PASS] [-t HASH]     make or test a password hash\n"
          "  domain add|del|list                    local domains\n"
          "  user add|passwd|del|list               mailbox users\n"
          "  alias add|del|list                     aliases and catch-alls\n"
          "  lookup ADDRESS                         what delivery would do with ADDRESS\n"
          "  check                                  check config, database, Maildir root, TLS\n"
          "  queue [list]|show ID|del ID            messages waiting in the queue\n"
          "Options:\n"
          "  -c, --config FILE   the configuration (else $SOCKMAIL_CONFIG, else " SM_DEFAULT_CONFIG ")\n"
          "  -h, --help          this text\n"
          "  -V, --version       the version\n"
          "Exit: 0 done, 1 refused or not found, 2 usage, 75 temporary failure.\n",
          out);
}

void cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("sockmail: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_usage_error(const char *command, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sockmail%s%s: ", command ? " " : "", command ? command : "");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see: sockmail %s%s--help)\n", command ? command : "", command ? " " : "");
    va_end(ap);
    return SM_EXIT_USAGE;
}

int cli_getopt(const char *command, int argc, char **argv, const char *shortopts,
               const struct option *longopts) {
    opterr = 0;
    int c = getopt_long(argc, argv, shortopts, longopts, NULL);
    if (c == '?' || c == ':') {
        if (optopt && strchr(shortopts, optopt) && strchr(shortopts, optopt)[1] == ':')
            cli_usage_error(command, "option -%c needs a value", optopt);
        else if (optopt)
            cli_usage_error(command, "unknown option -%c", optopt);
        else
            cli_usage_error(command, "unknown option or missing value: %s", argv[optind - 1]);
        return '?';
    }
    return c;
}

int cli_config(struct cli *cli, bool optional) {
    if (cli->cfg) return 0;
    const char *path = cli->config_path;
    if (!path || !*path) path = getenv("SOCKMAIL_CONFIG");
    if (optional && (!path || !*path)) {
        struct stat st;
        if (stat(SM_DEFAULT_CONFIG, &st) < 0 && errno == ENOENT) {
            cli->cfg = sm_config_defaults();
            if (!cli->cfg) {
                cli_error("out of memory");
                return SM_EXIT_TEMPFAIL;
            }
            return 0;
        }
    }
    char err[1024];
    if (sm_config_load(path, &cli->cfg, err, sizeof err) < 0) {
        cli_error("%s", err);
        fprintf(stderr, "sockmail: fix the file, or name another with -c FILE or SOCKMAIL_CONFIG\n");
        return SM_EXIT_USAGE;
    }
    return 0;
}

int cli_db(struct cli *cli, enum sm_db_account account, struct sm_db **ret) {
    int r = cli_config(cli, false);
    if (r) return r;
    *ret = sm_db_new(cli->cfg, account);
    if (!*ret) {
        cli_error("out of memory");
        return SM_EXIT_TEMPFAIL;
    }
    return 0;
}

unsigned cli_db_errno(const char *err) {
    /* db.h's texts end with "(NNNN)". */
    size_t n = strlen(err);
    if (n < 3 || err[n - 1] != ')') return 0;
    const char *open = strrchr(err, '(');
    if (!open) return 0;
    unsigned v = 0;
    const char *p = open + 1;
    for (; *p >= '0' && *p <= '9' && v < 100000; p++) v = v * 10 + (unsigned)(*p - '0');
    return p > open + 1 && *p == ')' && !p[1] ? v : 0;
}

int cli_db_failed(const char *what, const char *account_key, const char *err) {
    unsigned code = cli_db_errno(err);
    switch (code) {
    case 1044: case 1045: case 1142: case 1143: case 1227:
        cli_error("%s: the database refused: %s", what, err);
        fprintf(stderr, "sockmail: check [database] %s_user and %s_password(_file) in the config, "
                        "and that sql/grants.sql was applied (`sockmail check` tells more)\n",
                account_key, account_key);
        return SM_EXIT_REFUSED;
    case 1062:
        cli_error("%s: already exists: %s", what, err);
        return SM_EXIT_REFUSED;
    case 1406: case 1452:
        cli_error("%s: the database refused: %s", what, err);
        return SM_EXIT_REFUSED;
    default:
        cli_error("%s: database unavailable: %s", what, err);
        fprintf(stderr, "sockmail: make sure MariaDB runs and [database] hosts is right, "
                        "then try again\n");
        return SM_EXIT_TEMPFAIL;
    }
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    struct cli cli = {0};
    int c;
    opterr = 0;
    /* '+': stop at the command; its own options follow it. */
    while ((c = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cli.config_path = optarg; break;
        case 'h': cli_usage(NULL, stdout); return SM_EXIT_OK;
        case 'V': printf("sockmail %s\n", SM_VERSION); return SM_EXIT_OK;
        default:
            if (optopt == 'c') return cli_usage_error(NULL, "option -c needs a FILE");
            return cli_usage_error(NULL, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind >= argc) {
        cli_usage(NULL, stderr);
        return SM_EXIT_USAGE;
    }
    int first = optind;
    const char *name = argv[first];
    int r = -1;
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (streq(commands[i].name, name)) {
            optind = 0;   /* GNU getopt: start afresh for the command */
            r = commands[i].run(&cli, argc - first, argv + first);
            break;
        }
    if (r < 0) r = cli_usage_error(NULL, "unknown command \"%s\"", name);
    sm_config_free(cli.cfg);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("cannot write the output: %s", strerror(errno));
        if (r == 0) r = SM_EXIT_TEMPFAIL;
    }
    return r;
}
