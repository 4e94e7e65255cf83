/* resolve.c — recipient resolution over the configured queries; see resolve.h.
 *
 * Per address: is the domain local (query_domain)? has it alias rows
 * (query_alias)? is it a user (query_user)? Aliases are looked at first, so
 * a user is asked for only when needed: a plain mailbox costs two lookups
 * (domains are remembered for the call). Every lookup counts against a
 * budget, so a huge or hostile alias graph ends with a note, not a hang. */
#include "resolve.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <strings.h>

#include "address.h"
#include "config.h"
#include "db.h"
#include "macro.h"

#define MAX_NOTE 1024
#define MAX_DOMAIN_CACHE 64

struct domain_seen {
    char *name;
    bool local;
};

struct ctx {
    struct sm_db *db;
    const struct sm_config *cfg;
    struct sm_resolved *ret;
    size_t cap_mailboxes, cap_remote;
    const char **path;          /* addresses being expanded, outermost first */
    size_t depth;
    uint64_t lookups_left;
    bool truncated;             /* expansion limit reached: stop adding */
    bool note_full;
    struct domain_seen domains[MAX_DOMAIN_CACHE];
    size_t n_domains;
    char *err;
    size_t errlen;
    struct sm_explain *trace;   /* sm_resolve_explain only; NULL otherwise */
    unsigned trace_extra;       /* indentation of a delimiter retry */
    size_t trace_max;
    bool trace_oom;
};

static void add_note(struct ctx *c, const char *fmt, ...) _printf_(2, 3);
static void add_note(struct ctx *c, const char *fmt, ...) {
    if (c->note_full) return;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t old = c->ret->note ? strlen(c->ret->note) : 0;
    if (old + strlen(buf) + 2 > MAX_NOTE) {
        /* Full: end it with "..." once, then say nothing more. */
        snprintf(buf, sizeof buf, "...");
        c->note_full = true;
    }
    size_t add = strlen(buf) + (old ? 2 : 0);
    char *n = realloc(c->ret->note, old + add + 1);
    if (!n) return;
    snprintf(n + old, add + 1, "%s%s", old ? "; " : "", buf);
    c->ret->note = n;
}

/* Records one node of the expansion tree (sm_resolve_explain); does nothing
 * for sm_resolve, so both take exactly the same path. */
static void trace(struct ctx *c, enum sm_explain_kind kind, const char *address,
                  const char *fmt, ...) _printf_(4, 5);
static void trace(struct ctx *c, enum sm_explain_kind kind, const char *address,
                  const char *fmt, ...) {
    struct sm_explain *t = c->trace;
    if (!t || c->trace_oom || t->truncated) return;
    if (t->n >= c->trace_max) {
        t->truncated = 1;
        return;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        struct sm_explain_step *v = realloc(t->steps, cap * sizeof *v);
        if (!v) {
            c->trace_oom = true;
            return;
        }
        t->steps = v, t->cap = cap;
    }
    char *detail = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&detail, fmt, ap) < 0) detail = NULL, c->trace_oom = true;
        va_end(ap);
    }
    char *a = strdup(address);
    if (!a || c->trace_oom) {
        free(a);
        free(detail);
        c->trace_oom = true;
        return;
    }
    t->steps[t->n++] = (struct sm_explain_step){
        .depth = (unsigned)c->depth + c->trace_extra, .kind = kind, .address = a, .detail = detail,
    };
}

/* Splits a normalized address at its last '@' (both parts point into BUF). */
static bool split(char *buf, const char **local, const char **domain) {
    char *at = strrchr(buf, '@');
    if (!at || at == buf || !at[1]) return false;
    *at = 0;
    *local = buf;
    *domain = at + 1;
    return true;
}

/* One lookup with the three standard parameters. */
static int lookup(struct ctx *c, const char *query, const char *address, sm_db_row_fn fn,
                  void *userdata) {
    if (c->lookups_left == 0) return -E2BIG;
    c->lookups_left--;
    _cleanup_free_ char *copy = strdup(address);
    const char *local = "", *domain = "";
    if (!copy) {
        snprintf(c->err, c->errlen, "out of memory");
        return SM_TEMPFAIL;
    }
    if (copy[0] == '@') domain = copy + 1;       /* catch-all source "@domain" */
    else if (!split(copy, &local, &domain)) local = copy;
    struct sm_db_param params[] = {
        { "address", address },
        { "localpart", local },
        { "domain", domain },
    };
    return sm_db_query(c->db, query, params, ARRAY_SIZE(params), fn, userdata, c->err, c->errlen);
}

static int domain_is_local(struct ctx *c, const char *domain, bool *ret) {
    for (size_t i = 0; i < c->n_domains; i++)
        if (streq(c->domains[i].name, domain)) {
            *ret = c->domains[i].local;
            return 0;
        }
    /* query_domain uses :domain; :address is "@domain" for completeness. */
    _cleanup_free_ char *at = NULL;
    if (asprintf(&at, "@%s", domain) < 0) {
        snprintf(c->err, c->errlen, "out of memory");
        return SM_TEMPFAIL;
    }
    int r = lookup(c, c->cfg->query_domain, at, NULL, NULL);
    if (r < 0) return r;
    if (r == SM_TEMPFAIL) return r;
    *ret = r == SM_FOUND;
    if (c->n_domains < MAX_DOMAIN_CACHE) {
        char *d = strdup(domain);
        if (d) c->domains[c->n_domains++] = (struct domain_seen){ d, *ret };
    }
    return 0;
}

/* A list of strings collected from rows. */
struct strv {
    char **v;
    size_t n, cap, max;
    bool overflow, oom;
};

static void strv_free(struct strv *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
}

static bool strv_push(struct strv *s, const char *str, size_t len) {
    if (s->n >= s->max) {
        s->overflow = true;
        return false;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            s->oom = true;
            return false;
        }
        s->v = v, s->cap = cap;
    }
    char *d = strndup(str, len);
    if (!d) {
        s->oom = true;
        return false;
    }
    s->v[s->n++] = d;
    return true;
}

/* Alias rows: one destination each, or a comma list in one row (as
 * Postfix reads a table result, and as Postfixadmin stores them). */
static int collect_destinations(void *userdata, unsigned ncols, const char *const *cols) {
    struct strv *s = userdata;
    if (ncols < 1 || !cols[0]) return 0;
    for (const char *p = cols[0]; *p;) {
        p += strspn(p, ", \t\r\n");
        size_t l = strcspn(p, ", \t\r\n");
        if (l && !strv_push(s, p, l)) return 1;
        p += l;
    }
    return 0;
}

static int first_column(void *userdata, unsigned ncols, const char *const *cols) {
    char **ret = userdata;
    if (ncols >= 1 && cols[0] && cols[0][0] && !*ret) *ret = strdup(cols[0]);
    return 1;
}

/* Is ADDRESS a user? RET_MAILBOX gets the canonical spelling. */
static int user_lookup(struct ctx *c, const char *address, char **ret_mailbox) {
    char *canon = NULL;
    int r = lookup(c, c->cfg->query_user, address, first_column, &canon);
    if (r != SM_FOUND) {
        free(canon);
        return r;
    }
    if (!canon) canon = strdup(address);   /* the query returned no name: keep ours */
    if (!canon) {
        snprintf(c->err, c->errlen, "out of memory");
        return SM_TEMPFAIL;
    }
    *ret_mailbox = canon;
    return SM_FOUND;
}

static bool grow(char ***v, size_t n, size_t *cap) {
    if (n < *cap) return true;
    size_t nc = *cap ? *cap * 2 : 4;
    char **nv = realloc(*v, nc * sizeof **v);
    if (!nv) return false;
    *v = nv, *cap = nc;
    return true;
}

static bool limit_reached(struct ctx *c) {
    if (c->ret->n_mailboxes + c->ret->n_remote < c->cfg->alias_max_expansion) return false;
    if (!c->truncated) add_note(c, "expansion limit (%llu) reached",
                                (unsigned long long)c->cfg->alias_max_expansion);
    c->truncated = true;
    return true;
}

/* Takes MAILBOX (always freed). */
static int add_mailbox(struct ctx *c, char *mailbox) {
    struct sm_resolved *r = c->ret;
    for (size_t i = 0; i < r->n_mailboxes; i++)
        if (strcasecmp(r->mailboxes[i], mailbox) == 0) {
            free(mailbox);
            return 0;
        }
    if (limit_reached(c) || !grow(&r->mailboxes, r->n_mailboxes, &c->cap_mailboxes)) {
        free(mailbox);
        return c->truncated ? 0 : -ENOMEM;
    }
    r->mailboxes[r->n_mailboxes++] = mailbox;
    return 0;
}

static int add_remote(struct ctx *c, const char *address) {
    struct sm_resolved *r = c->ret;
    for (size_t i = 0; i < r->n_remote; i++)
        if (streq(r->remote[i], address)) return 0;
    if (limit_reached(c)) return 0;
    char *d = strdup(address);
    if (!d || !grow(&r->remote, r->n_remote, &c->cap_remote)) {
        free(d);
        return -ENOMEM;
    }
    r->remote[r->n_remote++] = d;
    return 0;
}

static bool on_path(struct ctx *c, const char *address) {
    for (size_t i = 0; i < c->depth; i++)
        if (strcasecmp(c->path[i], address) == 0) return true;
    return false;
}

static int expand(struct ctx *c, const char *address);

/* Expands the alias rows SOURCE_ROWS of ADDRESS (which goes on the path). */
static int expand_destinations(struct ctx *c, const char *address, struct strv *dests) {
    if (dests->overflow) add_note(c, "%s: more alias rows than the expansion limit", address);
    c->path[c->depth++] = address;
    int r = 0;
    for (size_t i = 0; i < dests->n && r == 0 && !c->truncated; i++) {
        _cleanup_free_ char *norm = NULL;
        const char *why = NULL;
        if (sm_addr_normalize(dests->v[i], strlen(dests->v[i]), SM_ADDR_UTF8, &norm, &why) < 0) {
            trace(c, SM_EXPLAIN_MALFORMED, dests->v[i], "%s", why ? why : "bad syntax");
            add_note(c, "%s: dropped malformed destination \"%.100s\" (%s)", address, dests->v[i],
                     why ? why : "bad syntax");
            continue;
        }
        if (on_path(c, norm)) {
            /* Self-reference or loop: a user keeps its mailbox, else drop. */
            char *mailbox = NULL;
            bool local = false;
            _cleanup_free_ char *copy = strdup(norm);
            const char *lp, *dom;
            if (!copy || !split(copy, &lp, &dom)) {
                r = -ENOMEM;
                break;
            }
            r = domain_is_local(c, dom, &local);
            if (r != 0) break;
            if (!local) continue;   /* cannot be: a remote address has no alias row */
            r = user_lookup(c, norm, &mailbox);
            if (r == SM_FOUND) {
                trace(c, SM_EXPLAIN_USER, mailbox, "already on the alias path: its own mailbox");
                r = add_mailbox(c, mailbox);
            } else if (r == SM_NOTFOUND) {
                trace(c, SM_EXPLAIN_LOOP, norm, "alias loop, dropped");
                add_note(c, "alias loop at %s dropped", norm);
                r = 0;
            }
            continue;
        }
        if (c->depth > c->cfg->alias_max_depth) {
            trace(c, SM_EXPLAIN_DEPTH, norm, "alias_max_depth (%llu) reached, dropped",
                  (unsigned long long)c->cfg->alias_max_depth);
            add_note(c, "alias depth limit (%llu) reached at %s",
                     (unsigned long long)c->cfg->alias_max_depth, norm);
            continue;
        }
        r = expand(c, norm);
    }
    c->depth--;
    return r;
}

/* What ADDRESS (normalized) itself is: its alias rows, or a user. Returns
 * SM_FOUND when handled, SM_NOTFOUND when it is neither. */
static int resolve_local(struct ctx *c, const char *address) {
    struct strv dests = { .max = c->cfg->alias_max_expansion };
    int r = lookup(c, c->cfg->query_alias, address, collect_destinations, &dests);
    if (dests.oom) r = -ENOMEM;
    if (r == SM_FOUND && dests.n == 0) r = SM_NOTFOUND;   /* only empty rows */
    if (r == SM_FOUND) {
        trace(c, SM_EXPLAIN_ALIAS, address, "%zu destination%s", dests.n, dests.n == 1 ? "" : "s");
        r = expand_destinations(c, address, &dests);
        strv_free(&dests);
        return r == 0 ? SM_FOUND : r;
    }
    strv_free(&dests);
    if (r != SM_NOTFOUND) return r;

    char *mailbox = NULL;
    r = user_lookup(c, address, &mailbox);
    if (r != SM_FOUND) return r;
    trace(c, SM_EXPLAIN_USER, mailbox, NULL);
    r = add_mailbox(c, mailbox);
    return r == 0 ? SM_FOUND : r;
}

static int expand(struct ctx *c, const char *address) {
    _cleanup_free_ char *copy = strdup(address);
    const char *local, *domain;
    if (!copy) return -ENOMEM;
    if (!split(copy, &local, &domain)) {
        trace(c, SM_EXPLAIN_MALFORMED, address, "no local part or domain");
        add_note(c, "dropped malformed address \"%.100s\"", address);
        return 0;
    }
    bool is_local;
    int r = domain_is_local(c, domain, &is_local);
    if (r != 0) return r;
    if (!is_local) {
        trace(c, SM_EXPLAIN_REMOTE, address, "%s is not a local domain", domain);
        return add_remote(c, address);
    }

    r = resolve_local(c, address);
    if (r != SM_NOTFOUND) return r == SM_FOUND ? 0 : r;

    /* user+ext@d -> user@d (Postfix's order: then the catch-all). */
    const char *delims = c->cfg->recipient_delimiter;
    if (delims && *delims) {
        size_t base = strcspn(local, delims);
        if (base > 0 && local[base]) {
            _cleanup_free_ char *plain = NULL;
            if (asprintf(&plain, "%.*s@%s", (int)base, local, domain) < 0) return -ENOMEM;
            trace(c, SM_EXPLAIN_DELIMITER, address, "recipient_delimiter: tried as %s", plain);
            c->trace_extra++;
            r = resolve_local(c, plain);
            c->trace_extra--;
            if (r != SM_NOTFOUND) return r == SM_FOUND ? 0 : r;
        }
    }

    /* Neither user nor alias: the domain's catch-all, if any. */
    _cleanup_free_ char *catchall = NULL;
    if (asprintf(&catchall, "@%s", domain) < 0) return -ENOMEM;
    struct strv dests = { .max = c->cfg->alias_max_expansion };
    r = lookup(c, c->cfg->query_alias, catchall, collect_destinations, &dests);
    if (dests.oom) r = -ENOMEM;
    if (r == SM_FOUND && dests.n > 0) {
        trace(c, SM_EXPLAIN_CATCHALL, address, "no user or alias: catch-all %s", catchall);
        r = expand_destinations(c, address, &dests);
    } else if (r == SM_FOUND || r == SM_NOTFOUND) {
        trace(c, SM_EXPLAIN_UNKNOWN, address, "no user, alias or catch-all");
        add_note(c, "unknown address %s", address);
        r = 0;
    }
    strv_free(&dests);
    return r;
}

void sm_resolved_free(struct sm_resolved *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_mailboxes; i++) free(r->mailboxes[i]);
    for (size_t i = 0; i < r->n_remote; i++) free(r->remote[i]);
    free(r->mailboxes);
    free(r->remote);
    free(r->note);
    *r = (struct sm_resolved){ 0 };
}

static int resolve_traced(struct sm_db *db, const struct sm_config *cfg, const char *address,
                          struct sm_resolved *ret, struct sm_explain *tr, char *err,
                          size_t errlen) {
    char dummy[1];
    if (!err || !errlen) err = dummy, errlen = sizeof dummy;
    err[0] = 0;
    *ret = (struct sm_resolved){ 0 };

    struct ctx *c = calloc(1, sizeof *c);
    _cleanup_free_ const char **path = calloc(cfg->alias_max_depth + 2, sizeof *path);
    if (!c || !path) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return SM_TEMPFAIL;
    }
    *c = (struct ctx){
        .db = db, .cfg = cfg, .ret = ret, .path = path,
        .lookups_left = cfg->alias_max_expansion * 2 + 16,
        .err = err, .errlen = errlen,
        .trace = tr, .trace_max = cfg->alias_max_expansion * 4 + 64,
    };

    _cleanup_free_ char *norm = NULL;
    const char *why = NULL;
    int r;
    if (sm_addr_normalize(address, strlen(address), SM_ADDR_UTF8, &norm, &why) < 0) {
        trace(c, SM_EXPLAIN_MALFORMED, address, "%s", why ? why : "bad syntax");
        add_note(c, "malformed address (%s)", why ? why : "bad syntax");
        r = 0;
    } else
        r = expand(c, norm);

    for (size_t i = 0; i < c->n_domains; i++) free(c->domains[i].name);
    bool trace_oom = c->trace_oom;
    free(c);

    if (r == -E2BIG) {
        /* Too many lookups: what was found stands, the rest is noted. */
        add_note(&(struct ctx){ .ret = ret }, "lookup limit reached, the rest dropped");
        r = 0;
    }
    if (r == -ENOMEM || (r == 0 && trace_oom)) {
        snprintf(err, errlen, "out of memory");
        return SM_TEMPFAIL;
    }
    if (r != 0) return SM_TEMPFAIL;   /* SM_TEMPFAIL from a lookup: ERR is set */
    return ret->n_mailboxes + ret->n_remote > 0 ? SM_FOUND : SM_NOTFOUND;
}

int sm_resolve(struct sm_db *db, const struct sm_config *cfg, const char *address,
               struct sm_resolved *ret, char *err, size_t errlen) {
    return resolve_traced(db, cfg, address, ret, NULL, err, errlen);
}

int sm_resolve_explain(struct sm_db *db, const struct sm_config *cfg, const char *address,
                       struct sm_resolved *ret, struct sm_explain *ret_explain, char *err,
                       size_t errlen) {
    *ret_explain = (struct sm_explain){ 0 };
    return resolve_traced(db, cfg, address, ret, ret_explain, err, errlen);
}

void sm_explain_free(struct sm_explain *e) {
    if (!e) return;
    for (size_t i = 0; i < e->n; i++) {
        free(e->steps[i].address);
        free(e->steps[i].detail);
    }
    free(e->steps);
    *e = (struct sm_explain){ 0 };
}

const char *sm_explain_kind_name(enum sm_explain_kind kind) {
    switch (kind) {
    case SM_EXPLAIN_USER: return "user";
    case SM_EXPLAIN_ALIAS: return "alias";
    case SM_EXPLAIN_CATCHALL: return "catch-all";
    case SM_EXPLAIN_DELIMITER: return "delimiter";
    case SM_EXPLAIN_REMOTE: return "remote";
    case SM_EXPLAIN_UNKNOWN: return "unknown";
    case SM_EXPLAIN_LOOP: return "loop";
    case SM_EXPLAIN_DEPTH: return "depth-limit";
    case SM_EXPLAIN_MALFORMED: return "malformed";
    }
    return "?";
}
