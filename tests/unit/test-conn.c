/* test-conn.c — connection discovery (common/conn.c): AF_UNIX and TCP
 * loopback peers, the LISTEN_FDS protocol, and the environment fallback. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "conn.h"
#include "macro.h"
#include "tap.h"

static void test_unix(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct sm_conn c;
    is_int(sm_conn_describe(sv[0], &c), 0, "socketpair described");
    ok(c.is_socket && c.is_unix, "socketpair is a unix socket");
    is_str(c.peer_ip, "unix", "unix peer");
    is_str(c.local_ip, "unix", "unix local");
    is_int(c.peer_port, 0, "no port");
    close(sv[0]);
    close(sv[1]);

    int p[2];
    pipe(p);
    is_int(sm_conn_describe(p[0], &c), -ENOTSOCK, "a pipe is not a socket");
    ok(!c.is_socket, "not a socket");
    is_str(c.peer_ip, "unknown", "unknown peer");
    close(p[0]);
    close(p[1]);
}

/* Connects a TCP pair over loopback of FAMILY; returns the accepted side
 * and the client side in *CLIENT, or -1 when the family is unavailable. */
static int tcp_pair(int family, const char *addr, int *client) {
    struct sockaddr_storage ss = { 0 };
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *in = (void *)&ss;
        in->sin_family = AF_INET;
        inet_pton(AF_INET, addr, &in->sin_addr);
        len = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (void *)&ss;
        in6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, addr, &in6->sin6_addr);
        len = sizeof *in6;
    }
    _cleanup_close_ int l = socket(family, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&ss, len) < 0 || listen(l, 1) < 0) return -1;
    socklen_t sl = sizeof ss;
    getsockname(l, (struct sockaddr *)&ss, &sl);
    int cfd = socket(family == AF_INET6 && strchr(addr, '.') ? AF_INET6 : family, SOCK_STREAM, 0);
    if (cfd < 0 || connect(cfd, (struct sockaddr *)&ss, sl) < 0) {
        if (cfd >= 0) close(cfd);
        return -1;
    }
    *client = cfd;
    return accept(l, NULL, NULL);
}

static unsigned local_port_of(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                         : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void test_tcp(void) {
    int cl, fd = tcp_pair(AF_INET, "127.0.0.1", &cl);
    ok(fd >= 0, "IPv4 loopback pair");
    struct sm_conn c;
    is_int(sm_conn_describe(fd, &c), 0, "IPv4 described");
    is_str(c.peer_ip, "127.0.0.1", "IPv4 peer");
    is_str(c.local_ip, "127.0.0.1", "IPv4 local");
    is_int(c.peer_port, local_port_of(cl), "IPv4 peer port is the client's");
    is_int(c.local_port, local_port_of(fd), "IPv4 local port");
    ok(c.is_socket && !c.is_unix, "IPv4 is a socket, not unix");
    close(fd);
    close(cl);

    fd = tcp_pair(AF_INET6, "::1", &cl);
    if (fd < 0) {
        ok(1, "# SKIP ::1 not available");
    } else {
        is_int(sm_conn_describe(fd, &c), 0, "IPv6 described");
        is_str(c.peer_ip, "::1", "IPv6 peer");
        is_int(c.peer_port, local_port_of(cl), "IPv6 peer port");
        close(fd);
        close(cl);
    }

    /* An IPv6 listener reached over IPv4: v4-mapped, shown as plain IPv4. */
    fd = tcp_pair(AF_INET6, "::ffff:127.0.0.1", &cl);
    if (fd < 0) {
        ok(1, "# SKIP v4-mapped not available");
    } else {
        is_int(sm_conn_describe(fd, &c), 0, "v4-mapped described");
        is_str(c.peer_ip, "127.0.0.1", "v4-mapped peer shown as IPv4");
        is_str(c.local_ip, "127.0.0.1", "v4-mapped local shown as IPv4");
        close(fd);
        close(cl);
    }
}

/* Runs sm_conn_from_env in a child with fds and environment as given, and
 * reports "rfd wfd peer port listen_fds_left" over a pipe. */
static void run_child(void (*setup)(void), char *out, size_t outlen) {
    int p[2];
    pipe(p);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        if (p[1] < 10) {
            dup2(p[1], 10);
            p[1] = 10;
        }
        setup();
        struct sm_conn c;
        int r = sm_conn_from_env(&c);
        dprintf(p[1], "%d %d %d %s %u %s%s%s", r, r == 0 ? c.rfd : -1, r == 0 ? c.wfd : -1,
                r == 0 ? c.peer_ip : "-", r == 0 ? c.peer_port : 0,
                getenv("LISTEN_FDS") ? "L" : "", getenv("LISTEN_PID") ? "P" : "",
                getenv("LISTEN_FDNAMES") ? "N" : "");
        _exit(0);
    }
    close(p[1]);
    ssize_t n = read(p[0], out, outlen - 1);
    out[n > 0 ? n : 0] = '\0';
    close(p[0]);
    waitpid(pid, NULL, 0);
}

static int socket_on(int target) {
    int cl, fd = tcp_pair(AF_INET, "127.0.0.1", &cl);
    if (fd < 0) return -1;
    dup2(fd, target);
    close(fd);
    return cl;  /* kept open by the child for its lifetime */
}

static void setup_listen_fds(void) {
    socket_on(3);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "1", 1);
    setenv("LISTEN_FDNAMES", "connection", 1);
}

static void setup_listen_other_pid(void) {
    int p[2];
    pipe(p);
    dup2(p[0], 0);
    socket_on(3);
    setenv("LISTEN_PID", "1", 1);
    setenv("LISTEN_FDS", "1", 1);
    unsetenv("REMOTE_ADDR");
    setenv("TCPREMOTEIP", "192.0.2.7", 1);
    setenv("TCPREMOTEPORT", "4242", 1);
}

static void setup_inetd(void) {
    socket_on(0);
    dup2(0, 1);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
}

static void setup_pipe_remote_addr(void) {
    int p[2];
    pipe(p);
    dup2(p[0], 0);
    dup2(p[1], 1);
    setenv("REMOTE_ADDR", "2001:db8::5", 1);
    setenv("REMOTE_PORT", "99999", 1);  /* out of range: ignored */
}

static void setup_two_fds(void) {
    socket_on(3);
    socket_on(4);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
}

static void test_from_env(void) {
    char out[256];
    run_child(setup_listen_fds, out, sizeof out);
    int r = -1, rfd = -1, wfd = -1;
    unsigned port = 0;
    char ip[64] = "", left[8] = "";
    int n = sscanf(out, "%d %d %d %63s %u %7s", &r, &rfd, &wfd, ip, &port, left);
    ok(n == 5 && r == 0 && rfd == 3 && wfd == 3 && streq(ip, "127.0.0.1") && port > 0,
       "LISTEN_FDS=1: fd 3 with its peer, variables unset (%s)", out);
    run_child(setup_listen_other_pid, out, sizeof out);
    is_str(out, "0 0 1 192.0.2.7 4242 ", "LISTEN_PID of another process: fds 0/1, TCPREMOTEIP");
    run_child(setup_inetd, out, sizeof out);
    ok(strncmp(out, "0 0 1 127.0.0.1 ", 16) == 0, "inetd style: socket on 0/1 (%s)", out);
    run_child(setup_pipe_remote_addr, out, sizeof out);
    is_str(out, "0 0 1 2001:db8::5 0 ", "pipe: REMOTE_ADDR, bad port ignored");
    run_child(setup_two_fds, out, sizeof out);
    is_str(out, "-22 -1 -1 - 0 ", "LISTEN_FDS=2 refused, variables unset");
}

int main(void) {
    test_unix();
    test_tcp();
    test_from_env();
    return tap_done();
}
