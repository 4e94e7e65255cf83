/* bench-util — the pieces the load generators in bench/ share: connecting
 * to a target ("/path", "unix:/path" or "host:port") with bounded socket
 * waits, writing a whole buffer, reading bounded lines through a buffer,
 * monotonic timing, percentiles of latency samples, and running N worker
 * processes that report through shared memory.
 *
 * Nothing here prints; errors come back as negative errno. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Every socket read and write of a benchmark connection gives up after this. */
#define BENCH_IO_TIMEOUT_S 30

/* Monotonic time in seconds. */
double bench_now(void);

/* Microseconds since T0 (a bench_now() value), saturated at UINT32_MAX. */
uint32_t bench_us_since(double t0);

/* Sets FD's send and receive timeouts to BENCH_IO_TIMEOUT_S. */
void bench_set_timeouts(int fd);

/* Connects a stream socket to the unix socket PATH (timeouts set); the fd or
 * negative errno. */
int bench_connect_unix(const char *path);

/* Connects to TARGET: "/path" or "unix:/path" (a unix socket), otherwise
 * "host:port" split at the last colon; timeouts set, and TCP_NODELAY when
 * NODELAY and the target is TCP. Returns the fd or negative errno. */
int bench_connect(const char *target, bool nodelay);

/* Sends all N bytes of P on FD (no SIGPIPE, EINTR retried); 0 or negative errno. */
int bench_write_all(int fd, const char *p, size_t n);

/* Refills BUF (SIZE bytes) from a connection: bytes read (> 0), 0 at end of
 * file, or negative errno. */
typedef ssize_t (*BenchFill)(void *userdata, char *buf, size_t size);

/* recv() on the fd that USERDATA (an int *) points at, EINTR retried; a BenchFill. */
ssize_t bench_fill_recv(void *userdata, char *buf, size_t size);

/* The input buffer of one connection; BUF belongs to the caller. */
typedef struct {
        char *buf;
        size_t size, start, end;
} BenchIn;

/* Empties IN and makes it use BUF of SIZE bytes. */
void bench_in_init(BenchIn *in, char *buf, size_t size);

/* Whether IN holds bytes that no read_line has consumed yet. */
bool bench_in_pending(const BenchIn *in);

/* Reads one LF-terminated line, without the LF (and without a CR before it
 * when STRIP_CR), into LINE (MAX + 1 bytes, NUL-terminated), refilling IN
 * with FILL(USERDATA). *RET_WIRE (may be NULL) gets the line's length on
 * the wire, terminator included. Returns 0, -E2BIG for a line longer than
 * MAX, -ECONNRESET at end of file, or FILL's negative errno. */
int bench_read_line(BenchIn *in, BenchFill fill, void *userdata, char *line, size_t max,
                    bool strip_cr, size_t *ret_wire);

/* Sorts N samples ascending. */
void bench_sort_u32(uint32_t *v, size_t n);

/* One kind of latency sample from every worker, joined into a fresh array
 * sorted ascending (the caller frees it; NULL when out of memory), its
 * length in *RET_N. The workers' stats are WORKERS structs of STRIDE bytes
 * from STATS; SAMPLES_OFF and COUNT_OFF are the offsets, in one struct, of
 * the kind's uint32_t array and of its uint32_t count. BENCH_JOIN says it
 * with field names. */
uint32_t *bench_join_samples(const void *stats, size_t stride, unsigned workers,
                             size_t samples_off, size_t count_off, size_t *ret_n);
#define BENCH_JOIN(stats, workers, samples, count, ret_n)                                \
    bench_join_samples((stats), sizeof *(stats), (workers),                             \
                       offsetof(__typeof__(*(stats)), samples),                         \
                       offsetof(__typeof__(*(stats)), count), (ret_n))

/* The P-th percentile (0..100, nearest rank by rounding) of N ascending
 * samples in microseconds, in milliseconds; 0 when N is 0. */
double bench_pct_ms(const uint32_t *sorted, size_t n, double p);

/* SIZE zeroed bytes of memory shared with forked children; NULL (errno set)
 * on failure. Release with munmap(). */
void *bench_map_shared(size_t size);

/* Forks N workers, each running WORK(index, USERDATA) and then _exit(0), and
 * waits for all of them. Returns 0 when every worker exited with status 0,
 * 1 when one did not, negative errno when a fork failed (the workers
 * started before it are waited for first). */
int bench_run_workers(unsigned n, void (*work)(unsigned index, void *userdata), void *userdata);
