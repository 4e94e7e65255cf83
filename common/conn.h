/* conn.h — where the connection is and who is on the other end.
 *
 * Launchers hand over the connection in different ways (PLATFORM.md):
 * systemd with LISTEN_FDS=1 (and LISTEN_PID = our pid) gives fd 3; systemd
 * with StandardInput=socket, inetd, xinetd, tcpserver and
 * `systemd-socket-activate --inetd` give fds 0 and 1; run by hand, fds 0/1
 * are the terminal. The peer address comes from getpeername() on the
 * connection, falling back to REMOTE_ADDR/REMOTE_PORT or
 * TCPREMOTEIP/TCPREMOTEPORT when the fd is not a socket. */
#pragma once

#include <stdbool.h>
#include <sys/socket.h>

struct sm_conn {
    int rfd, wfd;            /* read and write side (equal for a socket) */
    bool is_socket;
    bool is_unix;            /* AF_UNIX: a local peer (Postfix, our handlers) */
    bool is_tty;             /* run by hand */
    char peer_ip[64];        /* "192.0.2.1", "2001:db8::1", "unix", or "unknown" */
    unsigned peer_port;
    char local_ip[64];
    unsigned local_port;
};

/* Finds the connection as described above. Unsets LISTEN_FDS, LISTEN_PID
 * and LISTEN_FDNAMES so children do not inherit them. Returns 0 or -errno. */
int sm_conn_from_env(struct sm_conn *ret);

/* Fills the address fields from a connected socket FD (exposed for tests). */
int sm_conn_describe(int fd, struct sm_conn *c);
