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

/* ---- the expansion as a tree, for `sockmail lookup` ---- */

/* One node of the expansion, in the order the resolution visited it
 * (pre-order: a node's children follow it, DEPTH one more). */
enum sm_explain_kind {
    SM_EXPLAIN_USER,       /* a mailbox; ADDRESS as the database spells it */
    SM_EXPLAIN_ALIAS,      /* alias rows; the destinations follow one deeper */
    SM_EXPLAIN_CATCHALL,   /* no user or alias: the @domain rows follow one deeper */
    SM_EXPLAIN_DELIMITER,  /* user+ext@d unknown: user@d follows one deeper */
    SM_EXPLAIN_REMOTE,     /* not a local domain: relayed */
    SM_EXPLAIN_UNKNOWN,    /* local domain, but no user, alias or catch-all */
    SM_EXPLAIN_LOOP,       /* already on the path and no user: dropped */
    SM_EXPLAIN_DEPTH,      /* alias_max_depth reached: dropped */
    SM_EXPLAIN_MALFORMED,  /* a destination with bad syntax: dropped */
};

struct sm_explain_step {
    unsigned depth;
    enum sm_explain_kind kind;
    char *address;
    char *detail;          /* a short reason, or NULL */
};

struct sm_explain {
    struct sm_explain_step *steps;
    size_t n, cap;
    int truncated;         /* more steps than alias_max_expansion * 4 + 64: the rest left out */
};

/* Exactly sm_resolve (same lookups, same result in RET, same return), and
 * also records the expansion tree in RET_EXPLAIN (filled in every case,
 * freed with sm_explain_free). */
int sm_resolve_explain(struct sm_db *db, const struct sm_config *cfg, const char *address,
                       struct sm_resolved *ret, struct sm_explain *ret_explain, char *err,
                       size_t errlen);
void sm_explain_free(struct sm_explain *e);

/* "user", "alias", "catch-all", "delimiter", "remote", "unknown", "loop",
 * "depth-limit", "malformed". */
const char *sm_explain_kind_name(enum sm_explain_kind kind);
