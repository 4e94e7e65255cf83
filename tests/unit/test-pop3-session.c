/* test-pop3-session.c — pop3_run()'s idle timeout, on a socketpair.
 *
 * [pop3] timeout_command cannot be set below 600 s in the config (RFC
 * 1939), so this drives the real session loop with the field set to 1 s
 * in the struct: the handler must say "-ERR Disconnected for inactivity."
 * and close after one silent second, and the clock must restart with
 * every command. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "io.h"
#include "pop3.h"
#include "tap.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads until EOF or LIMIT seconds; returns what came (NUL-terminated). */
static char *read_all(int fd, double limit, double *eof_at) {
    size_t cap = 4096, len = 0;
    char *buf = calloc(1, cap);
    double end = now() + limit;
    *eof_at = -1;
    while (now() < end && len + 1 < cap) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 50) <= 0) continue;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0) { *eof_at = now(); break; }
        len += (size_t)n;
    }
    buf[len] = 0;
    return buf;
}

/* Runs a session on one end of a socketpair in a child; returns its pid. */
static pid_t start(struct sm_config *cfg, int *client) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) abort();
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        struct pop3_session s = { .cfg = cfg };
        s.io = sm_io_new(sv[1], sv[1]);
        pop3_run(&s);
        pop3_session_clear(&s);
        sm_io_free(s.io);
        _exit(0);
    }
    close(sv[1]);
    *client = sv[0];
    return pid;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    struct sm_config *cfg = sm_config_defaults();
    ok(cfg != NULL, "defaults");
    is_int(cfg->pop3.timeout_command, 600, "the configured default is RFC 1939's 10 minutes");
    cfg->pop3.timeout_command = 1;

    /* silent client: greeting, then the timeout reply and EOF after ~1 s */
    int c;
    double t0 = now();
    pid_t pid = start(cfg, &c);
    double eof_at;
    char *out = read_all(c, 10, &eof_at);
    is_str(out, "+OK sockmail POP3 ready.\r\n-ERR Disconnected for inactivity.\r\n", "timeout reply");
    ok(eof_at > 0, "connection closed after the timeout");
    ok(eof_at - t0 >= 0.9 && eof_at - t0 < 4, "closed after about 1 s (%.2f s)", eof_at - t0);
    int st;
    ok(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "session ended cleanly");
    free(out);
    close(c);

    /* a command every 0.6 s keeps the session alive past 1 s; then silence */
    t0 = now();
    pid = start(cfg, &c);
    for (int i = 0; i < 3; i++) {
        usleep(600 * 1000);
        if (write(c, "CAPA\r\n", 6) != 6) abort();
    }
    out = read_all(c, 10, &eof_at);
    ok(strstr(out, "-ERR Disconnected for inactivity.\r\n") != NULL, "timeout after the last command");
    size_t capas = 0;
    for (const char *p = out; (p = strstr(p, "IMPLEMENTATION sockmail")); p++) capas++;
    is_int(capas, 3, "all three commands answered before the timeout");
    ok(eof_at - t0 >= 1.8 + 0.9, "the clock restarted with each command (%.2f s)", eof_at - t0);
    waitpid(pid, &st, 0);
    free(out);
    close(c);

    sm_config_free(cfg);
    return tap_done();
}
