/* auth-checker — the only program that reads password hashes (DESIGN.md).
 *
 * Three modes:
 *   auth-checker [-c FILE]
 *       serves one Dovecot auth protocol connection (server.c) on fds 0/1 or
 *       fd 3 (LISTEN_FDS=1): Postfix's smtpd_sasl_type = dovecot and our own
 *       handlers (common/auth-client.h) talk to it.
 *   auth-checker [-c FILE] --checkpassword PROG [ARGS...]
 *       qmail's checkpassword: reads "user\0password\0timestamp\0" from fd 3
 *       and on success execs PROG with USER and HOME set. Exit 1: bad
 *       password or unknown user; 111: temporary failure; 2: usage.
 *   auth-checker [-c FILE] --test USER
 *       reads a password (no echo on a terminal, else one line of stdin) and
 *       says whether it matches and why not. Exit 0 / 1 / 75. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "auth-checker.h"
#include "auth-protocol.h"
#include "config.h"
#include "conn.h"
#include "db.h"
#include "io.h"
#include "log.h"
#include "macro.h"
#include "maildir.h"

/* checkpassword's input limit (qmail's checkpassword uses 512 too). */
#define CP_MAX 512u
/* --test: longest password line read from stdin. */
#define TEST_MAX 4096u

static void usage(FILE *out) {
    fprintf(out, "usage: auth-checker [-c FILE] [--checkpassword PROG [ARGS...] | --test USER]\n"
                 "                    [--help] [--version]\n"
                 "Without a mode, serves one Dovecot auth protocol connection on stdin/stdout\n"
                 "(or fd 3 with LISTEN_FDS=1). --checkpassword reads user\\0password\\0timestamp\\0\n"
                 "from fd 3 and runs PROG with USER and HOME on success (exit 1 refused,\n"
                 "111 temporary failure). --test checks a password typed on the terminal\n"
                 "or given as one line on stdin (exit 0 match, 1 refused, 75 temporary).\n");
}

static int load(const char *config, struct sm_config **cfg, int conn_fd) {
    char err[1024];
    if (sm_config_load(config, cfg, err, sizeof err) < 0) {
        sm_log_open("auth-checker", NULL, conn_fd);
        log_error("event=config_error reason=\"%s\"", err);
        if (conn_fd < 0) fprintf(stderr, "auth-checker: %s\n", err);
        return -1;
    }
    sm_log_open("auth-checker", *cfg, conn_fd);
    sm_log_new_session();
    return 0;
}

static int run_server(const char *config) {
    struct sm_conn conn;
    if (sm_conn_from_env(&conn) < 0) {
        fprintf(stderr, "auth-checker: no connection on fds 0/1 or 3\n");
        return SM_EXIT_USAGE;
    }
    struct sm_config *cfg = NULL;
    /* Without a config there is nothing useful to say in this protocol:
     * the client sees the connection close (Postfix: 454, temporary). */
    if (load(config, &cfg, conn.rfd) < 0) return SM_EXIT_TEMPFAIL;
    struct sm_io *io = sm_io_new(conn.rfd, conn.wfd);
    if (!io) {
        sm_config_free(cfg);
        return SM_EXIT_TEMPFAIL;
    }
    log_debug("event=connect peer=%s", conn.peer_ip);
    struct ac_ctx a = {.cfg = cfg};
    int r = ac_serve(&a, io);
    sm_io_free(io);
    sm_db_free(a.db);
    sm_config_free(cfg);
    return r;
}

static int run_checkpassword(const char *config, char **argv) {
    char buf[CP_MAX + 1];
    size_t len = 0;
    for (;;) {
        if (len == CP_MAX) {
            explicit_zero(buf, sizeof buf);
            fprintf(stderr, "auth-checker: more than %u bytes on fd 3\n", CP_MAX);
            return SM_EXIT_REFUSED;
        }
        ssize_t n = read(3, buf + len, CP_MAX - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fprintf(stderr, "auth-checker: cannot read fd 3: %m\n");
            return SM_EXIT_USAGE;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    close(3);
    buf[len] = 0;
    /* user NUL password NUL [timestamp NUL]: the timestamp is unused. */
    char *user = buf, *nul1 = memchr(buf, 0, len);
    char *pass = nul1 ? nul1 + 1 : NULL;
    if (!nul1 || !memchr(pass, 0, (size_t)(buf + len - pass)) || !*user) {
        explicit_zero(buf, sizeof buf);
        fprintf(stderr, "auth-checker: fd 3 does not hold user\\0password\\0\n");
        return SM_EXIT_REFUSED;
    }

    struct sm_config *cfg = NULL;
    if (load(config, &cfg, -1) < 0) {
        explicit_zero(buf, sizeof buf);
        return SM_EXIT_CP_TEMPFAIL;
    }
    struct ac_ctx a = {.cfg = cfg};
    _cleanup_free_ char *canon = NULL;
    int r = ac_check(&a, user, pass, &canon, NULL);
    explicit_zero(pass, strlen(pass));
    char b[300];
    const char *euser = sm_log_escape(user, 128, b, sizeof b);
    int code;
    switch (r) {
    case AC_OK: code = SM_EXIT_OK; break;
    case AC_NOUSER:
    case AC_BADPASS:
        log_info("event=checkpassword result=fail reason=%s user=%s",
                 r == AC_NOUSER ? "unknown_user" : "wrong_password", euser);
        sleep((unsigned)cfg->auth_failure_delay);
        code = SM_EXIT_REFUSED;
        break;
    case AC_UNSUPPORTED:
        log_error("event=checkpassword result=tempfail reason=unsupported_hash user=%s detail=\"%s\"", euser, a.err);
        code = SM_EXIT_CP_TEMPFAIL;
        break;
    default:
        log_error("event=checkpassword result=tempfail reason=database user=%s detail=\"%s\"", euser, a.err);
        code = SM_EXIT_CP_TEMPFAIL;
        break;
    }
    sm_db_free(a.db);
    if (code != SM_EXIT_OK) {
        sm_config_free(cfg);
        return code;
    }
    _cleanup_free_ char *home = NULL;
    r = sm_maildir_path(cfg->mail_location, canon, &home);
    if (r < 0) {
        log_error("event=checkpassword result=tempfail reason=maildir_path user=%s error=%d", euser, r);
        sm_config_free(cfg);
        return SM_EXIT_CP_TEMPFAIL;
    }
    log_info("event=checkpassword result=ok user=%s", sm_log_escape(canon, 128, b, sizeof b));
    sm_config_free(cfg);
    if (setenv("USER", canon, 1) < 0 || setenv("HOME", home, 1) < 0) return SM_EXIT_CP_TEMPFAIL;
    execvp(argv[0], argv);
    fprintf(stderr, "auth-checker: cannot run %s: %m\n", argv[0]);
    return SM_EXIT_CP_TEMPFAIL;
}

/* Reads the password for --test into BUF (TEST_MAX + 2 bytes). */
static int read_password(char *buf, size_t size) {
    bool tty = isatty(0);
    struct termios old, quiet;
    if (tty) {
        fprintf(stderr, "Password: ");
        fflush(stderr);
        if (tcgetattr(0, &old) < 0) return -errno;
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        if (tcsetattr(0, TCSAFLUSH, &quiet) < 0) return -errno;
    }
    size_t len = 0;
    int r = 0;
    for (;;) {
        char c;
        ssize_t n = read(0, &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { r = -errno; break; }
        if (n == 0 || c == '\n') break;
        if (len + 1 >= size) { r = -E2BIG; break; }
        buf[len++] = c;
    }
    if (len && buf[len - 1] == '\r') len--;
    buf[len] = 0;
    if (tty) {
        tcsetattr(0, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    return r;
}

static int run_test(const char *config, const char *user) {
    struct sm_config *cfg = NULL;
    if (load(config, &cfg, -1) < 0) return SM_EXIT_TEMPFAIL;
    char pw[TEST_MAX + 2];
    int r = read_password(pw, sizeof pw);
    if (r < 0) {
        explicit_zero(pw, sizeof pw);
        fprintf(stderr, "auth-checker: cannot read the password: %s\n",
                r == -E2BIG ? "longer than 4096 bytes" : strerror(-r));
        sm_config_free(cfg);
        return SM_EXIT_USAGE;
    }
    struct ac_ctx a = {.cfg = cfg};
    _cleanup_free_ char *canon = NULL;
    const char *scheme = NULL;
    r = ac_check(&a, user, pw, &canon, &scheme);
    explicit_zero(pw, sizeof pw);
    int code;
    switch (r) {
    case AC_OK:
        printf("ok: password matches for %s (stored scheme %s)\n", canon, scheme);
        code = SM_EXIT_OK;
        break;
    case AC_NOUSER:
        printf("refused: no such user: %s\n", user);
        code = SM_EXIT_REFUSED;
        break;
    case AC_BADPASS:
        if (scheme) printf("refused: wrong password for %s (stored scheme %s)\n", user, scheme);
        else printf("refused: %s has no password stored\n", user);
        code = SM_EXIT_REFUSED;
        break;
    case AC_UNSUPPORTED:
        printf("refused: unsupported hash for %s: %s; store a new one made with `sockmail pw`\n", user, a.err);
        code = SM_EXIT_REFUSED;
        break;
    case AC_TEMPFAIL:
        printf("temporary failure: database down or unreachable: %s\n", a.err);
        code = SM_EXIT_TEMPFAIL;
        break;
    default:
        printf("temporary failure: %s\n", strerror(-r));
        code = SM_EXIT_TEMPFAIL;
        break;
    }
    sm_db_free(a.db);
    sm_config_free(cfg);
    return code;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"checkpassword", no_argument, NULL, 'P'},
        {"test", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    const char *config = NULL, *test_user = NULL;
    bool checkpassword = false;
    int c;
    /* '+': stop at PROG so its own options are left alone. */
    while ((c = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'P': checkpassword = true; break;
        case 't': test_user = optarg; break;
        case 'h': usage(stdout); return SM_EXIT_OK;
        case 'V': printf("auth-checker (sockmail) %s\n", SM_VERSION); return SM_EXIT_OK;
        default: usage(stderr); return SM_EXIT_USAGE;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    if (checkpassword) {
        if (test_user || optind == argc) {
            usage(stderr);
            return SM_EXIT_USAGE;
        }
        return run_checkpassword(config, argv + optind);
    }
    if (optind != argc) {
        usage(stderr);
        return SM_EXIT_USAGE;
    }
    if (test_user) return run_test(config, test_user);
    return run_server(config);
}
