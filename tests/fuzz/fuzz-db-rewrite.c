/* fuzz-db-rewrite.c — sm_db_rewrite (`:name` → `?`) on arbitrary SQL text,
 * against an independent character-by-character model of the same rules
 * (db.h): quotes ' " ` with doubled quotes, backslash escapes in ' and ",
 * comments #, "-- ", and C-style; a bare ? outside them refused.
 *
 * Checked: success or -EINVAL exactly as the model says (with a message in
 * ERR); on success the same SQL text and names as the model, the number of
 * `?` outside quotes and comments in the output equal to the number of
 * placeholders, each name a valid identifier found at its place in the
 * query, and (under ASan) nothing leaked once the caller frees. */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

enum state { NORMAL, QUOTED, LINE_COMMENT, BLOCK_COMMENT };

struct model {
    char *sql;
    size_t o;
    size_t n;                    /* placeholders (or `?` when counting) */
    size_t name_off[SM_DB_MAX_PLACEHOLDERS + 1], name_len[SM_DB_MAX_PLACEHOLDERS + 1];
};

static bool is_name_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
static bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

/* 0 or -EINVAL. COUNT_ONLY: `?` outside quotes and comments is counted
 * instead of refused, and placeholders are not rewritten (for the output). */
static int model_run(const char *q, size_t len, bool count_only, struct model *m) {
    enum state st = NORMAL;
    char quote = 0;
    m->o = m->n = 0;
    size_t i = 0;
    while (i < len) {
        char c = q[i];
        switch (st) {
        case NORMAL:
            if (c == '\'' || c == '"' || c == '`') {
                st = QUOTED;
                quote = c;
            } else if (c == '#') {
                st = LINE_COMMENT;
            } else if (c == '-' && i + 1 < len && q[i + 1] == '-' &&
                       (i + 2 == len || isspace((unsigned char)q[i + 2]))) {
                st = LINE_COMMENT;
            } else if (c == '/' && i + 1 < len && q[i + 1] == '*') {
                st = BLOCK_COMMENT;
                m->sql[m->o++] = '/';
                m->sql[m->o++] = '*';
                i += 2;
                continue;
            } else if (c == '?') {
                if (!count_only) return -EINVAL;
                m->n++;
            } else if (c == ':' && !count_only && i + 1 < len && is_name_start(q[i + 1])) {
                if (m->n == SM_DB_MAX_PLACEHOLDERS) return -EINVAL;
                size_t j = i + 1;
                while (j < len && is_name_char(q[j])) j++;
                m->name_off[m->n] = i + 1;
                m->name_len[m->n] = j - i - 1;
                m->n++;
                m->sql[m->o++] = '?';
                i = j;
                continue;
            }
            m->sql[m->o++] = c;
            i++;
            break;
        case QUOTED:
            m->sql[m->o++] = c;
            i++;
            if (c == '\\' && quote != '`') {
                if (i == len) return -EINVAL;
                m->sql[m->o++] = q[i++];
            } else if (c == quote) {
                if (i < len && q[i] == quote)
                    m->sql[m->o++] = q[i++];   /* doubled: still inside */
                else
                    st = NORMAL;
            }
            break;
        case LINE_COMMENT:
            if (c == '\n') st = NORMAL;
            m->sql[m->o++] = c;
            i++;
            break;
        case BLOCK_COMMENT:
            if (c == '*' && i + 1 < len && q[i + 1] == '/') {
                m->sql[m->o++] = '*';
                m->sql[m->o++] = '/';
                i += 2;
                st = NORMAL;
                continue;
            }
            m->sql[m->o++] = c;
            i++;
            break;
        }
    }
    if (st == QUOTED || st == BLOCK_COMMENT) return -EINVAL;
    m->sql[m->o] = 0;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > SM_DB_MAX_QUERY + 16) return 0;
    char *q = malloc(size + 1);
    if (!q) return 0;
    memcpy(q, data, size);
    q[size] = 0;
    size_t len = strlen(q);  /* the API takes a C string: stop at a NUL */

    static struct model m;
    m.sql = malloc(len + 1);
    if (!m.sql) abort();
    int want = len > SM_DB_MAX_QUERY ? -EINVAL : model_run(q, len, false, &m);

    char *sql = NULL, **names = NULL;
    size_t n = 0;
    char err[256] = "";
    int r = sm_db_rewrite(q, &sql, &names, &n, err, sizeof err);
    if (r != want) abort();
    if (r < 0) {
        if (!err[0] || !memchr(err, 0, sizeof err)) abort();
    } else {
        if (!sql || !names || n != m.n || n > SM_DB_MAX_PLACEHOLDERS) abort();
        if (strcmp(sql, m.sql) != 0) abort();
        for (size_t k = 0; k < n; k++) {
            size_t nl = strlen(names[k]);
            if (nl == 0 || nl != m.name_len[k] || !is_name_start(names[k][0])) abort();
            for (size_t c = 0; c < nl; c++)
                if (!is_name_char(names[k][c])) abort();
            if (memcmp(names[k], q + m.name_off[k], nl) != 0 || q[m.name_off[k] - 1] != ':') abort();
        }
        /* the statement the server sees has exactly N parameters */
        size_t slen = strlen(sql);
        struct model c;
        c.sql = malloc(slen + 1);
        if (!c.sql) abort();
        if (model_run(sql, slen, true, &c) != 0 || c.n != n) abort();
        free(c.sql);
        free(sql);
        free(names);
    }
    free(m.sql);
    free(q);
    return 0;
}
