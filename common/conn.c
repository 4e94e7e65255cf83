/* conn.c — find the connection fds and the peer; see conn.h.
 *
 * The LISTEN_FDS protocol is parsed here by hand instead of calling
 * sd_listen_fds(): linking libsystemd costs about 0.5 ms of start-up per
 * process (it pulls libgcrypt, lz4, zstd…, PLATFORM.md) and we start one
 * process per connection. The protocol is three environment variables.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "macro.h"

#define LISTEN_FDS_START 3

static int parse_uint(const char *s, unsigned long max, unsigned long *ret) {
    if (!s || *s < '0' || *s > '9') return -EINVAL;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > max) return -EINVAL;
    *ret = v;
    return 0;
}

/* Writes an address as text; v4-mapped IPv6 is shown as plain IPv4. */
static int addr_text(const struct sockaddr_storage *ss, socklen_t len, char *ip, size_t iplen,
                     unsigned *port) {
    switch (ss->ss_family) {
    case AF_INET: {
        const struct sockaddr_in *in = (const void *)ss;
        if (len < sizeof *in || !inet_ntop(AF_INET, &in->sin_addr, ip, iplen)) return -EINVAL;
        *port = ntohs(in->sin_port);
        return 0;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *in6 = (const void *)ss;
        if (len < sizeof *in6) return -EINVAL;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            if (!inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], ip, iplen)) return -EINVAL;
        } else if (!inet_ntop(AF_INET6, &in6->sin6_addr, ip, iplen))
            return -EINVAL;
        *port = ntohs(in6->sin6_port);
        return 0;
    }
    case AF_UNIX:
        snprintf(ip, iplen, "unix");
        *port = 0;
        return 0;
    default:
        return -EAFNOSUPPORT;
    }
}

int sm_conn_describe(int fd, struct sm_conn *c) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    snprintf(c->peer_ip, sizeof c->peer_ip, "unknown");
    snprintf(c->local_ip, sizeof c->local_ip, "unknown");
    c->peer_port = c->local_port = 0;
    c->is_socket = c->is_unix = false;

    memset(&ss, 0, sizeof ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) return -errno;
    c->is_socket = true;
    c->is_unix = ss.ss_family == AF_UNIX;
    int r = addr_text(&ss, len, c->local_ip, sizeof c->local_ip, &c->local_port);
    if (r < 0) return r;

    memset(&ss, 0, sizeof ss);
    len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) return -errno;
    return addr_text(&ss, len, c->peer_ip, sizeof c->peer_ip, &c->peer_port);
}

/* The launcher's word when the fd is not a socket (e.g. tcpserver over a
 * pipe in tests, or a wrapper). */
static void peer_from_env(struct sm_conn *c) {
    static const char *const pairs[][2] = {
        { "REMOTE_ADDR", "REMOTE_PORT" },
        { "TCPREMOTEIP", "TCPREMOTEPORT" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(pairs); i++) {
        const char *ip = getenv(pairs[i][0]);
        if (!ip || !*ip || strlen(ip) >= sizeof c->peer_ip) continue;
        snprintf(c->peer_ip, sizeof c->peer_ip, "%s", ip);
        unsigned long port;
        if (parse_uint(getenv(pairs[i][1]), 65535, &port) == 0) c->peer_port = (unsigned)port;
        return;
    }
}

int sm_conn_from_env(struct sm_conn *ret) {
    struct sm_conn c = { .rfd = 0, .wfd = 1 };
    unsigned long pid, n;

    if (parse_uint(getenv("LISTEN_PID"), ULONG_MAX, &pid) == 0 && pid == (unsigned long)getpid() &&
        parse_uint(getenv("LISTEN_FDS"), INT_MAX, &n) == 0) {
        if (n == 1) c.rfd = c.wfd = LISTEN_FDS_START;
    } else
        n = 0;
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDNAMES");
    /* Accept=yes hands over exactly one connection; more would mean a
     * listening-socket unit, which this program does not serve. */
    if (n > 1) return -EINVAL;

    struct stat st;
    if (fstat(c.rfd, &st) < 0) return -errno;
    if (c.wfd != c.rfd && fstat(c.wfd, &st) < 0) return -errno;
    c.is_tty = isatty(c.rfd) == 1;

    int r = sm_conn_describe(c.rfd, &c);
    if (r == -ENOTSOCK) {
        peer_from_env(&c);
    } else if (r < 0 && !c.is_socket) {
        return r;
    }
    /* A socket whose peer is gone already (ENOTCONN) is still served: the
     * first read will see EOF. */
    *ret = c;
    return 0;
}
