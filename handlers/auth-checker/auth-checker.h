/* auth-checker.h — the parts of auth-checker shared by its three modes
 * (auth protocol server, checkpassword, --test): look a user up with the
 * auth database account and verify a password. */
#pragma once

#include <stdbool.h>

#include "config.h"
#include "db.h"
#include "io.h"

enum ac_result {
    AC_OK,           /* password matches */
    AC_NOUSER,       /* no such user (or a name that cannot be one) */
    AC_BADPASS,      /* wrong password, or no password stored */
    AC_UNSUPPORTED,  /* the stored hash is not one we can check: admin problem */
    AC_TEMPFAIL,     /* database unavailable */
};

struct ac_ctx {
    const struct sm_config *cfg;
    struct sm_db *db;     /* SM_DB_AUTH, connected at the first check */
    char err[512];        /* why TEMPFAIL/UNSUPPORTED, for the log */
};

/* Looks USER up (domain lower-cased first) and verifies PASSWORD. An
 * unknown user is verified against a dummy hash of the default scheme so
 * that the time taken does not tell. On AC_OK RET_USER is the canonical
 * name from the database (malloc'd); RET_SCHEME (if not NULL) gets the
 * stored hash's scheme name when a hash was found. -ENOMEM is negative. */
int ac_check(struct ac_ctx *a, const char *user, const char *password, char **ret_user,
             const char **ret_scheme);

/* Serves the Dovecot auth protocol on IO until the client leaves.
 * Returns an exit code. */
int ac_serve(struct ac_ctx *a, struct sm_io *io);
