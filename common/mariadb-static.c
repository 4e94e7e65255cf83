/* mariadb-static.c — libmariadb linked statically (the default; see
 * mariadb-link.h for the measurements behind it). */
#include <mysql.h>

#include "mariadb-link.h"

void sm_mariadb_prepare(void) {
    /* With mysql_port still 0, mysql_library_init() asks getservbyname()
     * for "mysql", which loads the NSS machinery and reads /etc/services
     * in every process. db.c always passes a port, so the answer is never
     * used. */
    if (!mysql_port) mysql_port = SM_MARIADB_DEFAULT_PORT;
}

/* Only the authentication methods built into libmariadb.a. Any other one
 * (client_ed25519, caching_sha2_password...) is a shared plugin that would
 * be dlopen'ed: in a static PIE that maps a second libc into the process,
 * and in any program with a static libmariadb it bypasses what this build
 * chose. The server's refusal names the plugin; accounts made as in the
 * tutorial (IDENTIFIED BY) use mysql_native_password. Builds that need the
 * others use -Dmariadb_link=dlopen. */
void sm_mariadb_connect_options(void *m) {
    mysql_optionsv(m, MARIADB_OPT_RESTRICTED_AUTH, "mysql_native_password");
}
