/* test-log.c — log escaping, session ids, and never logging to a client
 * socket on fd 2. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "tap.h"

static void test_escape(void) {
    char buf[256];
    is_str(sm_log_escape("plain.value@example", 100, buf, sizeof buf), "plain.value@example", "plain text kept");
    is_str(sm_log_escape("a b", 100, buf, sizeof buf), "a\\x20b", "space escaped");
    is_str(sm_log_escape("a\r\nb", 100, buf, sizeof buf), "a\\x0d\\x0ab", "CR LF escaped");
    is_str(sm_log_escape("q\"x\\y", 100, buf, sizeof buf), "q\\x22x\\x5cy", "quote and backslash escaped");
    is_str(sm_log_escape("\x01\x1f\x7f", 100, buf, sizeof buf), "\\x01\\x1f\\x7f", "controls and DEL escaped");
    is_str(sm_log_escape("key=value", 100, buf, sizeof buf), "key=value", "= kept");
    is_str(sm_log_escape("j\xc3\xb6rg", 100, buf, sizeof buf), "j\xc3\xb6rg", "UTF-8 passes");
    is_str(sm_log_escape("", 100, buf, sizeof buf), "", "empty");
    is_str(sm_log_escape(NULL, 100, buf, sizeof buf), "", "NULL is empty");
    is_str(sm_log_escape("abcdef", 3, buf, sizeof buf), "abc", "cut at MAX input bytes");
    is_str(sm_log_escape("abcdef", 0, buf, sizeof buf), "", "MAX 0");
    is_str(sm_log_escape("a b", 2, buf, sizeof buf), "a\\x20", "MAX counts input bytes");
    is_str(sm_log_escape("abc", 100, buf, 0), "", "LEN 0 gives empty text");

    /* whatever LEN, the output fits, is terminated, and is a prefix of the full escape */
    const char *in = "a b\nc\"d\\e\x7f" "fghij";
    char full[256];
    sm_log_escape(in, 1000, full, sizeof full);
    size_t bad = 0;
    for (size_t len = 1; len < 64; len++) {
        char small[64 + 8];
        memset(small, 'Z', sizeof small);
        sm_log_escape(in, 1000, small, len);
        size_t n = strnlen(small, len);
        if (n >= len) bad++;                              /* not terminated within LEN */
        if (small[len] != 'Z') bad++;                      /* wrote past LEN */
        if (strncmp(small, full, n) != 0) bad++;           /* not a prefix */
        if (n && small[n - 1] == '\\') bad++;              /* half an escape */
    }
    ok(bad == 0, "output within LEN for every LEN from 1 to 63");
    ok(strlen(full) == strlen("a\\x20b\\x0ac\\x22d\\x5ce\\x7ffghij"), "full escape: %s", full);
}

static void test_session(void) {
    static const char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
    char first[32];
    const char *s = sm_log_new_session();
    is_int((long long)strlen(s), 13, "session id has 13 characters");
    ok(strspn(s, alphabet) == 13, "session id uses the alphabet: %s", s);
    is_str(sm_log_session(), s, "sm_log_session returns it");
    snprintf(first, sizeof first, "%s", s);
    size_t same = 0, bad = 0;
    for (int i = 0; i < 100; i++) {
        const char *t = sm_log_new_session();
        if (strlen(t) != 13 || strspn(t, alphabet) != 13) bad++;
        if (strcmp(t, first) == 0) same++;
    }
    ok(bad == 0, "100 more ids well-formed");
    ok(same == 0, "ids differ");
}

/* In a child: put a socket (or, as a control, a pipe) on fd 2, open the
 * log with setting WANT and log one line. The parent reads the other end:
 * returns the number of bytes that reached it. */
static ssize_t bytes_on_fd2(const char *want, bool use_pipe, bool fd2_is_conn, const char *journal_env) {
    int sv[2];
    if (use_pipe ? pipe2(sv, O_CLOEXEC) : socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) return -1;
    /* for a pipe, sv[1] is the write end: the one that goes to fd 2 */
    int child_end = use_pipe ? sv[1] : sv[0], parent_end = use_pipe ? sv[0] : sv[1];
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (dup2(child_end, 2) < 0) _exit(3);
        close(parent_end);
        if (journal_env)
            setenv("JOURNAL_STREAM", journal_env, 1);
        else
            unsetenv("JOURNAL_STREAM");
        struct sm_config *cfg = sm_config_defaults();
        if (!cfg) _exit(3);
        free(cfg->log);
        cfg->log = strdup(want);
        sm_log_open("test-log", cfg, fd2_is_conn ? child_end : -1);
        sm_log_new_session();
        log_error("test event=fd2-check");
        log_info("test event=fd2-check-info");
        sm_config_free(cfg);
        _exit(0);
    }
    close(child_end);
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        close(parent_end);
        return -1;
    }
    fcntl(parent_end, F_SETFL, O_NONBLOCK);
    char buf[4096];
    ssize_t n = read(parent_end, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) n = 0;
    close(parent_end);
    return n;
}

static void test_fd2(void) {
    /* control: a pipe on fd 2 with log = stderr does get the line, so the
     * checks below can tell */
    ssize_t n = bytes_on_fd2("stderr", true, false, NULL);
    ok(n > 0, "control: log=stderr writes to a pipe on fd 2 (%zd bytes)", n);

    static const char *settings[] = { "auto", "stderr", "journal", "syslog" };
    for (size_t i = 0; i < sizeof settings / sizeof *settings; i++) {
        n = bytes_on_fd2(settings[i], false, false, NULL);
        is_int(n, 0, settings[i]);
        n = bytes_on_fd2(settings[i], false, true, NULL);
        is_int(n, 0, "fd 2 is the connection itself");
        /* an inherited JOURNAL_STREAM that names some other file */
        n = bytes_on_fd2(settings[i], false, false, "1:1");
        is_int(n, 0, "JOURNAL_STREAM of another file");
    }
}

int main(void) {
    test_escape();
    test_session();
    test_fd2();
    return tap_done();
}
