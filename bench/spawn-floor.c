/* spawn-floor — how long a program takes from fork() to its first line,
 * started the way an inetd-style launcher starts it (the connection on
 * fds 0 and 1), but by the cheapest launcher there is: this loop. Run on
 * bench/greeter it gives the machine's floor for connect-to-greeting under
 * any per-connection launcher; run on a handler, that handler's own start.
 *
 *     spawn-floor [-n COUNT] [-s] PROGRAM [ARGS...]
 *
 * By default the child is made with fork(), as xinetd, systemd-socket-
 * activate and systemd 252 do; with -s with posix_spawn() (a vfork-style
 * clone that copies no page tables), as newer systemd does. On a machine
 * where page faults and TLB flushes are dear the two differ by
 * milliseconds. Prints the median and the 10th/90th percentiles in ms, one
 * spawn at a time, and a RESULT line for scripts. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-util.h"

extern char **environ;

static void usage(FILE *f) {
    fputs("usage: spawn-floor [-n COUNT] [-s] PROGRAM [ARGS...]\n"
          "Starts PROGRAM COUNT times (default 300), one at a time, with a socketpair\n"
          "as its stdin/stdout, and reports the time from fork() (-s: posix_spawn())\n"
          "to its first line.\n",
          f);
}

/* One spawn: microseconds until the first line, or negative errno. */
static long spawn_once(char **argv, bool use_spawn) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
    double t0 = bench_now();
    pid_t pid;
    if (use_spawn) {
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
        posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        int r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (r) {
            close(sv[0]);
            close(sv[1]);
            return -r;
        }
    } else {
        pid = fork();
        if (pid < 0) {
            int e = errno;
            close(sv[0]);
            close(sv[1]);
            return -e;
        }
        if (pid == 0) {
            int null = open("/dev/null", O_WRONLY);
            if (dup2(sv[1], 0) < 0 || dup2(sv[1], 1) < 0 || null < 0 || dup2(null, 2) < 0)
                _exit(127);
            execv(argv[0], argv);
            _exit(127);
        }
    }
    close(sv[1]);
    bench_set_timeouts(sv[0]);
    char buf[512];
    size_t got = 0;
    long us = -EPROTO;
    while (got < sizeof buf) {
        ssize_t n = read(sv[0], buf + got, sizeof buf - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (memchr(buf + got, '\n', (size_t)n)) {
            us = (long)bench_us_since(t0);
            break;
        }
        got += (size_t)n;
    }
    close(sv[0]);  /* the program sees EOF and ends */
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return us;
}

int main(int argc, char **argv) {
    unsigned long count = 300;
    int i = 1;
    if (i < argc && (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))) {
        usage(stdout);
        return 0;
    }
    bool use_spawn = false;
    if (i < argc && !strcmp(argv[i], "-s")) {
        use_spawn = true;
        i++;
    }
    if (i + 1 < argc && !strcmp(argv[i], "-n")) {
        char *end;
        count = strtoul(argv[i + 1], &end, 10);
        if (*end || count == 0 || count > 1000000) {
            usage(stderr);
            return 2;
        }
        i += 2;
    }
    if (i < argc && !strcmp(argv[i], "-s")) {
        use_spawn = true;
        i++;
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    uint32_t *us = calloc(count, sizeof *us);
    if (!us) return 1;
    for (unsigned long k = 0; k < count; k++) {
        long r = spawn_once(argv + i, use_spawn);
        if (r < 0) {
            fprintf(stderr, "spawn-floor: %s gave no line: %s\n", argv[i], strerror((int)-r));
            free(us);
            return 1;
        }
        us[k] = (uint32_t)r;
    }
    bench_sort_u32(us, count);
    double p10 = bench_pct_ms(us, count, 10), p50 = bench_pct_ms(us, count, 50),
           p90 = bench_pct_ms(us, count, 90);
    printf("%s: %s to first line, %lu spawns: p10 %.3f  p50 %.3f  p90 %.3f ms\n", argv[i],
           use_spawn ? "posix_spawn" : "fork", count, p10, p50, p90);
    printf("RESULT spawn_p50=%.3f spawn_p10=%.3f spawn_p90=%.3f\n", p50, p10, p90);
    free(us);
    return 0;
}
