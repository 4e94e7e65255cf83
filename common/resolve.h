/* resolve.h — what happens to one recipient address, as Postfix's
 * virtual_alias_maps + virtual_mailbox_maps would decide it.
 *
 * 1. The domain is compared case-insensitively. An address in a domain that
 *    is not local is REMOTE.
 * 2. An address with an alias row expands to its destinations, recursively
 *    (depth limit alias_max_depth, at most alias_max_expansion results),
 *    duplicates removed. A destination equal to an address already on the
 *    path is not expanded again: if it is a user it is delivered to that
 *    mailbox (so `alice -> alice, bob` keeps a copy), else the branch is a
 *    loop and dropped.
 * 3. An address that is no user and has no alias row uses the domain's
 *    catch-all alias (`@example.com`), if any. A user is never swallowed by
 *    the catch-all (where Postfix would need identity aliases for that).
 * 4. A local address that is neither user nor alias is unknown.
 * With recipient_delimiter set, `user+ext@d` falls back to `user@d`. */
#pragma once

#include <stddef.h>

struct sm_config;
struct sm_db;

struct sm_resolved {
    char **mailboxes;   /* canonical user addresses (as the database spells them) */
    size_t n_mailboxes;
    char **remote;      /* addresses outside the local domains */
    size_t n_remote;
    char *note;         /* why some branch was dropped (loop, depth, unknown), or NULL */
};

/* Resolves ADDRESS (local@domain, already syntax-checked). Returns SM_FOUND
 * (at least one mailbox or remote address), SM_NOTFOUND (unknown local
 * address, or every branch dropped; RET->note says why) or SM_TEMPFAIL (ERR
 * says why). RET is filled in every case and freed with sm_resolved_free. */
int sm_resolve(struct sm_db *db, const struct sm_config *cfg, const char *address,
               struct sm_resolved *ret, char *err, size_t errlen);
void sm_resolved_free(struct sm_resolved *r);

