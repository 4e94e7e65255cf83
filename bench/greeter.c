/* greeter — the smallest possible inetd-style "server": writes one 220 line
 * to stdout and exits. bench/run starts it under the same launcher as
 * lmtp-handler to measure the launcher's own connect-to-greeting floor. */
#include <unistd.h>

int main(void) {
        static const char line[] = "220 greeter ready\r\n";
        return write(STDOUT_FILENO, line, sizeof(line) - 1) == (ssize_t) (sizeof(line) - 1) ? 0 : 1;
}
