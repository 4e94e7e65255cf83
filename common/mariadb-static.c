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
