/* fuzz-passwd.c — sm_passwd_verify / sm_passwd_scheme on arbitrary input.
 *
 * Input: STORED NUL PASSWORD (no NUL: the password is empty). Checked:
 * verify answers 1, 0 or -EINVAL; {PLAIN}X matches exactly X; every
 * dummy is a hash that verifies to 0. Expensive hashes (bcrypt, yescrypt,
 * scrypt, explicit rounds) are skipped so the fuzzer stays fast: their
 * parsing is libxcrypt's, not ours. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "passwd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool expensive(const char *s) {
    const char *h = s;
    if (h[0] == '{') {
        const char *e = strchr(h, '}');
        if (e) h = e + 1;
    }
    return strncmp(h, "$2", 2) == 0 || strncmp(h, "$y$", 3) == 0 || strncmp(h, "$gy$", 4) == 0 ||
           strncmp(h, "$7$", 3) == 0 || strstr(h, "rounds=") || strncmp(h, "$sha1$", 6) == 0 ||
           strncmp(h, "$md5", 4) == 0 || strncmp(h, "_", 1) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *buf = malloc(size + 2);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    buf[size + 1] = 0;
    const char *stored = buf;
    const char *password = buf + strlen(buf) + 1;  /* after the first NUL, or "" */

    const char *scheme = sm_passwd_scheme(stored);
    if (!scheme) abort();
    const char *dummy = sm_passwd_dummy(stored);
    if (!dummy || strcmp(sm_passwd_scheme(dummy), "UNKNOWN") == 0) abort();

    if (!expensive(stored)) {
        int r = sm_passwd_verify(stored, password);
        if (r != 1 && r != 0 && r != -EINVAL) abort();
        if (strncmp(stored, "{PLAIN}", 7) == 0 && stored[7]) {
            if ((r == 1) != (strcmp(stored + 7, password) == 0)) abort();
        }
    }
    free(buf);
    return 0;
}
