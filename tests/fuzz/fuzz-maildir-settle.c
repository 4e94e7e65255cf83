/* fuzz-maildir-settle.c — sm_maildir_settled_path on arbitrary Maildir paths (file
 * names are made by whatever else writes the Maildir: other MDAs, IMAP
 * servers, users).
 *
 * Input: byte 0 bit 0 says "seen", the rest is the path. Checked: either
 * nothing to do (NULL, and "same" set) or a path in cur/ whose base (the
 * name up to the first ':') is the input's, followed by ":2," and flags
 * that are the input's flags plus S when seen — each flag kept, S once —
 * in ASCII order when the input's were; never a '/' after "cur/". */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maildir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool sorted(const char *s) {
    for (; s[0] && s[1]; s++)
        if ((unsigned char)s[0] > (unsigned char)s[1]) return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    bool seen = data[0] & 1;
    char *path = malloc(size);
    if (!path) return 0;
    memcpy(path, data + 1, size - 1);
    path[size - 1] = 0;
    if (strlen(path) != size - 1) {  /* names hold no NUL */
        free(path);
        return 0;
    }
    bool same = false;
    char *out = sm_maildir_settled_path(path, seen, &same);
    if (!out) {
        if (!same) abort();  /* only out of memory gives NULL without same */
        free(path);
        return 0;
    }
    const char *slash = strchr(path, '/');
    if (!slash || strncmp(out, "cur/", 4) != 0) abort();
    const char *name = slash + 1, *oname = out + 4;
    size_t blen = strcspn(name, ":");
    if (strncmp(oname, name, blen) != 0 || strncmp(oname + blen, ":2,", 3) != 0) abort();
    if (strchr(oname, '/') && !memchr(name, '/', blen)) abort();
    const char *in_flags = name[blen] ? name + blen + 3 : "";
    const char *out_flags = oname + blen + 3;
    /* Every input flag is kept; S is there when seen; nothing else added. */
    for (const char *f = in_flags; *f; f++)
        if (!strchr(out_flags, *f)) abort();
    if (seen && !strchr(out_flags, 'S')) abort();
    size_t extra = strlen(out_flags) - strlen(in_flags);
    if (extra > 1 || (extra == 1 && (!seen || strchr(in_flags, 'S')))) abort();
    if (sorted(in_flags) && !sorted(out_flags)) abort();
    if (strcmp(out, path) == 0) abort();  /* "nothing to do" is NULL */
    free(out);
    free(path);
    return 0;
}
