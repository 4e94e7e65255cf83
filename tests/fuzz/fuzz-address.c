/* fuzz-address.c — sm_addr_normalize on arbitrary bytes.
 *
 * Input: byte 0 chooses the flags (bit 0: SM_ADDR_UTF8), the rest is the
 * address. Checked: a refusal has a reason; an accepted address has a
 * normal form that is accepted again unchanged (idempotence), is at most
 * 254 octets, and splits into a local part and a domain. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned flags = (data[0] & 1) ? SM_ADDR_UTF8 : 0;
    const char *s = (const char *)data + 1;
    size_t len = size - 1;

    char *out = NULL;
    const char *why = NULL;
    if (sm_addr_normalize(s, len, flags, &out, &why) < 0) {
        if (!why || out) abort();
        return 0;
    }
    size_t n = strlen(out);
    /* not n <= len: an IPv6 literal may grow ("::ffff:0" -> "::255.255.0.0") */
    if (n == 0 || n > 254) abort();

    char *again = NULL;
    why = NULL;
    if (sm_addr_normalize(out, n, flags, &again, &why) < 0) abort();
    if (strcmp(out, again) != 0) abort();

    char *local = NULL, *domain = NULL;
    if (sm_addr_split(out, &local, &domain) < 0) abort();
    if (strlen(local) + 1 + strlen(domain) != n) abort();
    free(local);
    free(domain);
    free(again);
    free(out);
    return 0;
}
