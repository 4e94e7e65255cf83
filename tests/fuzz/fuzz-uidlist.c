/* fuzz-uidlist — dovecot-uidlist parser; whatever parses must format and
 * parse again to the same text. */
#include <assert.h>

#include "uidlist.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct sm_uidlist *ul = NULL;
    if (sm_uidlist_parse((const char *)data, size, &ul) < 0) return 0;
    char *t1 = NULL, *t2 = NULL;
    size_t l1, l2;
    struct sm_uidlist *ul2 = NULL;
    assert(sm_uidlist_format(ul, &t1, &l1) == 0);
    assert(sm_uidlist_parse(t1, l1, &ul2) == 0);
    assert(sm_uidlist_format(ul2, &t2, &l2) == 0);
    assert(l1 == l2 && memcmp(t1, t2, l1) == 0);
    for (size_t i = 0; i < ul->count; i++) (void)sm_uidlist_find(ul, ul->recs[i].uid);
    free(t1);
    free(t2);
    sm_uidlist_free(ul);
    sm_uidlist_free(ul2);
    return 0;
}
