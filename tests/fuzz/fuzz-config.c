/* fuzz-config.c — sm_config_parse on arbitrary text.
 *
 * Checked: a refusal has a message naming the file; an accepted config
 * dumps to text that parses back to the same dump. Inputs naming a
 * `*_file` key are skipped: they would make the parser open whatever path
 * the fuzzer writes (a FIFO or a terminal would block). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *dump(const struct sm_config *c, size_t *len) {
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f) abort();
    sm_config_dump(c, f);
    fclose(f);
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool init;
    if (!init) {
        unsetenv("CREDENTIALS_DIRECTORY");
        init = true;
    }
    if (size > 65536 || memmem(data, size, "_file", 5)) return 0;

    struct sm_config *c = NULL;
    char err[512] = "";
    if (sm_config_parse("fuzz.conf", (const char *)data, size, &c, err, sizeof err) < 0) {
        if (c || strncmp(err, "fuzz.conf", 9) != 0) abort();
        return 0;
    }
    if (!c) abort();
    size_t l1 = 0, l2 = 0;
    char *d1 = dump(c, &l1);
    struct sm_config *c2 = NULL;
    if (sm_config_parse("dump", d1, l1, &c2, err, sizeof err) < 0) abort();
    char *d2 = dump(c2, &l2);
    if (l1 != l2 || memcmp(d1, d2, l1) != 0) abort();
    free(d1);
    free(d2);
    sm_config_free(c);
    sm_config_free(c2);
    return 0;
}
