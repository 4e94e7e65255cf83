/* check.c — user lookup and password verification for auth-checker. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "auth-checker.h"
#include "auth-protocol.h"
#include "macro.h"
#include "passwd.h"

struct row {
    char *email, *password;
    bool bad_columns;
};

static int take_row(void *userdata, unsigned ncols, const char *const *cols) {
    struct row *r = userdata;
    if (ncols < 2) {
        r->bad_columns = true;
        return 1;
    }
    r->email = cols[0] ? strdup(cols[0]) : NULL;
    r->password = cols[1] ? strdup(cols[1]) : NULL;
    return 1;  /* the first row only: email is a unique key */
}

/* Burns the same verification time as a real user would. */
static void verify_dummy(const struct ac_ctx *a, const char *password) {
    (void)sm_passwd_verify(sm_passwd_dummy(a->cfg->auth_default_scheme), password);
}

int ac_check(struct ac_ctx *a, const char *user, const char *password, char **ret_user,
             const char **ret_scheme) {
    a->err[0] = 0;
    if (ret_scheme) *ret_scheme = NULL;
    _cleanup_free_ char *norm = NULL, *local = NULL, *domain = NULL;
    const char *why = NULL;
    if (sm_addr_normalize(user, strlen(user), SM_ADDR_UTF8, &norm, &why) < 0 ||
        sm_addr_split(norm, &local, &domain) < 0) {
        verify_dummy(a, password);
        return AC_NOUSER;
    }
    if (!a->db) {
        a->db = sm_db_new(a->cfg, SM_DB_AUTH);
        if (!a->db) return -ENOMEM;
    }
    struct sm_db_param params[] = {
        {"address", norm},
        {"localpart", local},
        {"domain", domain},
    };
    struct row row = {0};
    int r = sm_db_query(a->db, a->cfg->query_password, params, ARRAY_SIZE(params), take_row, &row,
                        a->err, sizeof a->err);
    int ret;
    if (r == SM_TEMPFAIL) {
        ret = AC_TEMPFAIL;
    } else if (r == SM_NOTFOUND) {
        verify_dummy(a, password);
        ret = AC_NOUSER;
    } else if (row.bad_columns) {
        snprintf(a->err, sizeof a->err, "query_password must return email, password");
        ret = AC_TEMPFAIL;
    } else if (!row.password) {
        verify_dummy(a, password);  /* no password stored: a locked account */
        ret = AC_BADPASS;
    } else {
        if (ret_scheme) *ret_scheme = sm_passwd_scheme(row.password);
        int v = sm_passwd_verify(row.password, password);
        if (v == 1) ret = AC_OK;
        else if (v == 0) ret = AC_BADPASS;
        else if (v == -ENOMEM) ret = -ENOMEM;
        else {
            snprintf(a->err, sizeof a->err, "stored hash has scheme %s, which cannot be verified",
                     sm_passwd_scheme(row.password));
            ret = AC_UNSUPPORTED;
        }
    }
    if (ret == AC_OK) {
        /* The canonical name goes into a protocol line: it must not break it. */
        const char *canon = row.email && *row.email ? row.email : norm;
        if (!sm_auth_value_ok(canon)) {
            snprintf(a->err, sizeof a->err, "email column holds control characters");
            ret = AC_UNSUPPORTED;
        } else if (ret_user && !(*ret_user = strdup(canon))) {
            ret = -ENOMEM;
        }
    }
    free(row.email);
    sm_auth_free_secret(row.password, SIZE_MAX);
    return ret;
}
