/* mariadb-dl.c — the MariaDB client library, loaded on first use
 * (meson -Dmariadb_link=dlopen; see mariadb-link.h for the choice).
 *
 * Why: libmariadb brings libssl, libcrypto and libz. Linked normally, the
 * dynamic loader maps and relocates all four before main() of every
 * lmtp-handler/smtp-handler process, whether or not the connection ever
 * looks anything up. Measured here (bench/run): that costs about 1 ms
 * before the greeting and about 2.5 MiB of RSS per process. Loading it at
 * the first lookup lets the greeting go out first and spares connections
 * that never reach RCPT.
 *
 * db.c calls the library's own names; these definitions forward each call
 * to the symbol in the dlopen'ed library. The program is not linked with
 * libmariadb, so no definition here can clash with or interpose on the
 * library's own. If the library cannot be loaded, mysql_init() returns NULL
 * and db.c reports a temporary failure. */
#include <dlfcn.h>

#include "mariadb-link.h"
#include <errmsg.h>
#include <mysql.h>
#include <stdbool.h>
#include <stddef.h>

#define LIBRARY "libmariadb.so.3"

/* See mariadb-link.h: OpenSSL is set up without openssl.cnf and error
 * strings before libmariadb sets it up with them. */
static void quiet_openssl_init(void) {
    void *ssl = dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (!ssl) return;
    int (*init)(unsigned long long, const void *);
    *(void **)&init = dlsym(ssl, "OPENSSL_init_ssl");
    if (init) init(SM_OPENSSL_QUIET_INIT, NULL);
    dlclose(ssl);
}

static void *resolve(const char *name) {
    static void *lib;
    static bool tried;
    if (!tried) {
        tried = true;
        lib = dlopen(LIBRARY, RTLD_NOW | RTLD_LOCAL);
        if (lib) quiet_openssl_init();
    }
    return lib ? dlsym(lib, name) : NULL;
}

/* FORWARD(return type, name, value when unavailable, (parameters), (arguments)) */
#define FORWARD(ret, name, fail, params, args)          \
    ret STDCALL name params {                           \
        static ret(STDCALL * fn) params;                \
        if (!fn) *(void **)&fn = resolve(#name);        \
        if (!fn) return fail;                           \
        return fn args;                                 \
    }
#define FORWARD_VOID(name, params, args)                \
    void STDCALL name params {                          \
        static void(STDCALL * fn) params;               \
        if (!fn) *(void **)&fn = resolve(#name);        \
        if (fn) fn args;                                \
    }

FORWARD(int, mysql_server_init, 1, (int argc, char **argv, char **groups), (argc, argv, groups))
FORWARD(MYSQL *, mysql_init, NULL, (MYSQL *m), (m))
FORWARD(int, mysql_options, 1, (MYSQL *m, enum mysql_option o, const void *v), (m, o, v))
FORWARD(MYSQL *, mysql_real_connect, NULL,
        (MYSQL *m, const char *host, const char *user, const char *passwd, const char *db,
         unsigned int port, const char *unix_socket, unsigned long flags),
        (m, host, user, passwd, db, port, unix_socket, flags))
FORWARD(unsigned int, mysql_errno, CR_UNKNOWN_ERROR, (MYSQL *m), (m))
FORWARD(const char *, mysql_error, "the MariaDB client library (" LIBRARY ") cannot be loaded",
        (MYSQL *m), (m))
FORWARD_VOID(mysql_close, (MYSQL *m), (m))
FORWARD(MYSQL_STMT *, mysql_stmt_init, NULL, (MYSQL *m), (m))
FORWARD(int, mysql_stmt_prepare, 1, (MYSQL_STMT *s, const char *q, unsigned long n), (s, q, n))
FORWARD(unsigned long, mysql_stmt_param_count, 0, (MYSQL_STMT *s), (s))
FORWARD(unsigned int, mysql_stmt_field_count, 0, (MYSQL_STMT *s), (s))
FORWARD(my_bool, mysql_stmt_bind_param, 1, (MYSQL_STMT *s, MYSQL_BIND *b), (s, b))
FORWARD(my_bool, mysql_stmt_bind_result, 1, (MYSQL_STMT *s, MYSQL_BIND *b), (s, b))
FORWARD(int, mysql_stmt_execute, 1, (MYSQL_STMT *s), (s))
FORWARD(int, mysql_stmt_store_result, 1, (MYSQL_STMT *s), (s))
FORWARD(int, mysql_stmt_fetch, 1, (MYSQL_STMT *s), (s))
FORWARD(int, mysql_stmt_fetch_column, 1,
        (MYSQL_STMT *s, MYSQL_BIND *b, unsigned int column, unsigned long offset),
        (s, b, column, offset))
FORWARD(my_bool, mysql_stmt_free_result, 1, (MYSQL_STMT *s), (s))
FORWARD(my_bool, mysql_stmt_close, 1, (MYSQL_STMT *s), (s))
FORWARD(unsigned int, mysql_stmt_errno, CR_UNKNOWN_ERROR, (MYSQL_STMT *s), (s))
FORWARD(const char *, mysql_stmt_error, "the MariaDB client library cannot be loaded",
        (MYSQL_STMT *s), (s))
FORWARD(unsigned long long, mysql_stmt_affected_rows, 0, (MYSQL_STMT *s), (s))

void sm_mariadb_prepare(void) {
    /* The first lookup loads the library and quiets OpenSSL. A port set
     * here spares mysql_library_init() its getservbyname("mysql"), which
     * loads NSS and reads /etc/services; db.c always passes a port. */
    unsigned int *port = resolve("mysql_port");
    if (port && !*port) *port = SM_MARIADB_DEFAULT_PORT;
}

/* The shared library loads authentication plugins as it was built to. */
void sm_mariadb_connect_options(void *m) {
    (void)m;
}
