/* pw.c — `sockmail pw`, like `doveadm pw`: make a hash, or test one; and
 * reading a password from the terminal (echo off) or stdin for every
 * command that takes one. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <strings.h>
#include <termios.h>

#include "passwd.h"
#include "sockmail.h"

/* A longer line is refused (libxcrypt takes at most 512 bytes anyway). */
#define MAX_PASSWORD 1024

static struct termios saved_tty;
static volatile sig_atomic_t tty_changed;

/* A signal while echo is off: put the terminal back before dying. */
static void restore_and_die(int sig) {
    if (tty_changed) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
    signal(sig, SIG_DFL);
    raise(sig);
}

void cli_free_secret(char **p) {
    if (*p) explicit_zero(*p, strlen(*p));
    free(*p);
    *p = NULL;
}

/* One line from fd 0, byte by byte so nothing after it is consumed.
 * 0, -E2BIG (too long), -ENODATA (EOF before any byte), -errno. */
static int read_line(char **ret) {
    char *buf = malloc(MAX_PASSWORD + 1);
    size_t n = 0;
    bool got = false;
    if (!buf) return -ENOMEM;
    for (;;) {
        char c;
        ssize_t k = read(STDIN_FILENO, &c, 1);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            int e = -errno;
            explicit_zero(buf, n);
            free(buf);
            return e;
        }
        if (k == 0) break;
        got = true;
        if (c == '\n') break;
        if (n == MAX_PASSWORD) {
            /* Swallow the rest of the line so it does not become a command. */
            while (read(STDIN_FILENO, &c, 1) == 1 && c != '\n') {}
            explicit_zero(buf, n);
            free(buf);
            return -E2BIG;
        }
        buf[n++] = c;
    }
    if (!got) {
        free(buf);
        return -ENODATA;
    }
    if (n && buf[n - 1] == '\r') n--;
    buf[n] = 0;
    *ret = buf;
    return 0;
}

static int prompt(const char *text, char **ret) {
    struct termios t;
    if (tcgetattr(STDIN_FILENO, &saved_tty) < 0) return -errno;
    t = saved_tty;
    t.c_lflag &= ~(tcflag_t)ECHO;
    t.c_lflag |= ECHONL;
    struct sigaction sa = { .sa_handler = restore_and_die }, old[4];
    static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < ARRAY_SIZE(sigs); i++) sigaction(sigs[i], &sa, &old[i]);
    tty_changed = 1;
    /* Echo off before the prompt: what is typed after it is never shown
     * (TCSAFLUSH drops only what was typed before). */
    int r = tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) < 0 ? -errno : 0;
    if (r == 0) {
        fputs(text, stderr);
        fflush(stderr);
        r = read_line(ret);
    }
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
    tty_changed = 0;
    for (size_t i = 0; i < ARRAY_SIZE(sigs); i++) sigaction(sigs[i], &old[i], NULL);
    return r;
}

static int read_failed(int r) {
    if (r == -E2BIG) cli_error("password longer than %d bytes", MAX_PASSWORD);
    else if (r == -ENODATA) cli_error("no password given (stdin is empty); use -p PASSWORD or pipe one line");
    else cli_error("cannot read the password: %s", strerror(-r));
    return r == -ENOMEM ? SM_EXIT_TEMPFAIL : SM_EXIT_REFUSED;
}

int cli_read_password(bool confirm, char **ret) {
    _cleanup_secret_ char *a = NULL, *b = NULL;
    int r;
    if (!isatty(STDIN_FILENO)) {
        r = read_line(&a);
        if (r < 0) return read_failed(r);
    } else {
        r = prompt(confirm ? "Enter new password: " : "Enter password to verify: ", &a);
        if (r < 0) return read_failed(r);
        if (confirm) {
            r = prompt("Retype new password: ", &b);
            if (r < 0) return read_failed(r);
            if (!streq(a, b)) {
                cli_error("the passwords do not match; nothing changed");
                return SM_EXIT_REFUSED;
            }
        }
    }
    if (!*a) {
        cli_error("empty password refused");
        return SM_EXIT_REFUSED;
    }
    *ret = TAKE_PTR(a);
    return 0;
}

/* The schemes sm_passwd_hash makes (passwd.h). */
static const char *const schemes[] = { "SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "YESCRYPT" };

bool cli_scheme_known(const char *scheme) {
    for (size_t i = 0; i < ARRAY_SIZE(schemes); i++)
        if (strcasecmp(scheme, schemes[i]) == 0) return true;
    return false;
}

int cli_check_scheme(const struct sm_config *cfg, const char *scheme) {
    const char *s = scheme ? scheme : cfg->auth_default_scheme;
    if (cli_scheme_known(s)) return 0;
    cli_error("unknown scheme \"%s\"%s: use SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT or YESCRYPT", s,
              scheme ? "" : " ([auth] default_scheme in the config)");
    return SM_EXIT_USAGE;
}

int cli_hash(const struct sm_config *cfg, const char *scheme, const char *password, char **ret) {
    int r = cli_check_scheme(cfg, scheme);
    if (r) return r;
    if (!scheme) scheme = cfg->auth_default_scheme;
    r = sm_passwd_hash(scheme, password, ret);
    if (r == -EINVAL) {
        cli_error("the password library cannot make %s hashes", scheme);
        return SM_EXIT_USAGE;
    }
    if (r == -ERANGE) {
        cli_error("password too long for %s", scheme);
        return SM_EXIT_REFUSED;
    }
    if (r < 0) {
        cli_error("cannot hash the password: %s", strerror(-r));
        return SM_EXIT_TEMPFAIL;
    }
    return 0;
}

int cmd_pw(struct cli *cli, int argc, char **argv) {
    static const struct option opts[] = {
        {"scheme", required_argument, NULL, 's'},
        {"password", required_argument, NULL, 'p'},
        {"test", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *scheme = NULL, *given = NULL, *test = NULL;
    int c;
    while ((c = cli_getopt("pw", argc, argv, "s:p:t:h", opts)) != -1) {
        switch (c) {
        case 's': scheme = optarg; break;
        case 'p': given = optarg; break;
        case 't': test = optarg; break;
        case 'h': cli_usage("pw", stdout); return SM_EXIT_OK;
        default: return SM_EXIT_USAGE;
        }
    }
    if (optind != argc) return cli_usage_error("pw", "unexpected argument \"%s\"", argv[optind]);
    int r = cli_config(cli, true);
    if (r) return r;
    if (!test && (r = cli_check_scheme(cli->cfg, scheme))) return r;

    _cleanup_secret_ char *password = NULL;
    if (given) password = strdup(given);
    else if ((r = cli_read_password(!test, &password))) return r;
    if (!password) {
        cli_error("out of memory");
        return SM_EXIT_TEMPFAIL;
    }

    if (test) {
        const char *name = sm_passwd_scheme(test);
        r = sm_passwd_verify(test, password);
        if (r == 1) {
            printf("%s (verified, scheme %s)\n", test, name);
            return SM_EXIT_OK;
        }
        if (r == 0) {
            printf("mismatch: the password does not match this %s hash\n", name);
            return SM_EXIT_REFUSED;
        }
        if (r == -ENOMEM) {
            cli_error("out of memory");
            return SM_EXIT_TEMPFAIL;
        }
        cli_error("cannot check this hash (scheme %s): not a hash sockmail supports, or malformed "
                  "or locked; give it as `doveadm pw` prints it, e.g. {SHA512-CRYPT}$6$...", name);
        return SM_EXIT_REFUSED;
    }

    _cleanup_free_ char *hash = NULL;
    if ((r = cli_hash(cli->cfg, scheme, password, &hash))) return r;
    printf("%s\n", hash);
    return SM_EXIT_OK;
}
