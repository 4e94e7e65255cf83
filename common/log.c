/* log.c — see log.h. */
#include "log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <time.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "config.h"

enum target { T_NONE, T_JOURNAL, T_SYSLOG, T_STDERR };

static enum target target = T_STDERR;
static int max_prio = LOG_INFO;
static char session[16] = "-";
static const char *program = "sockmail";

static bool fd_is_journal(int fd) {
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2) return false;
    return fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

static bool same_file(int a, int b) {
    struct stat sa, sb;
    if (a < 0 || b < 0 || fstat(a, &sa) < 0 || fstat(b, &sb) < 0) return false;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static bool fd_is_socket(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

void sm_log_open(const char *prog, const struct sm_config *cfg, int conn_fd) {
    program = prog;
    const char *want = cfg ? cfg->log : "auto";
    const char *level = cfg ? cfg->log_level : "info";
    if (streq(level, "error")) max_prio = LOG_ERR;
    else if (streq(level, "warning")) max_prio = LOG_WARNING;
    else if (streq(level, "debug")) max_prio = LOG_DEBUG;
    else max_prio = LOG_INFO;

    bool journal = fd_is_journal(2);
    /* fd 2 may be the client (xinetd): a socket that is not the journal and
     * is the connection, or any socket when we cannot tell. */
    bool fd2_unsafe = !journal && (same_file(2, conn_fd) || fd_is_socket(2) || fcntl(2, F_GETFD) < 0);

    if (streq(want, "journal")) target = journal ? T_JOURNAL : T_SYSLOG;
    else if (streq(want, "syslog")) target = T_SYSLOG;
    else if (streq(want, "stderr")) target = fd2_unsafe ? T_SYSLOG : T_STDERR;
    else if (journal) target = T_JOURNAL;
    else if (!fd2_unsafe && isatty(2)) target = T_STDERR;
    else target = T_SYSLOG;

    if (target == T_SYSLOG) openlog(program, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

const char *sm_log_new_session(void) {
    static const char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
    unsigned char r[13];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        /* Early boot without entropy: time and pid still tell sessions apart. */
        unsigned long long x = (unsigned long long)getpid() * 2654435761u ^ (unsigned long long)time(NULL);
        for (size_t i = 0; i < sizeof r; i++, x >>= 5) r[i] = (unsigned char)x;
    }
    for (size_t i = 0; i < sizeof r; i++) session[i] = alphabet[r[i] & 31];
    session[sizeof r] = 0;
    return session;
}

const char *sm_log_session(void) { return session; }

const char *sm_log_escape(const char *v, size_t max, char *buf, size_t len) {
    size_t o = 0;
    if (!len) return "";
    if (!v) v = "";
    for (size_t i = 0; v[i] && i < max && o + 5 < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f || c == ' ' || c == '"' || c == '\\')
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
        else
            buf[o++] = (char)c;
    }
    buf[o] = 0;
    return buf;
}

void sm_log(int prio, const char *fmt, ...) {
    if (prio > max_prio || target == T_NONE) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* No newline may split one event into two log lines. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';

    switch (target) {
    case T_JOURNAL:
        dprintf(2, "<%d>session=%s %s\n", prio, session, msg);
        break;
    case T_STDERR:
        dprintf(2, "%s[%d]: session=%s %s\n", program, (int)getpid(), session, msg);
        break;
    case T_SYSLOG:
        syslog(prio, "session=%s %s", session, msg);
        break;
    case T_NONE:
        break;
    }
}
