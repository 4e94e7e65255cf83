/* mariadb-static.c — libmariadb linked statically (the default; see
 * mariadb-link.h for the measurements behind it). */
#include <stddef.h>
#include <stdint.h>

#include "mariadb-link.h"

/* Declared here rather than through <openssl/ssl.h>: one function, and the
 * dlopen build must not need OpenSSL's headers. */
int OPENSSL_init_ssl(uint64_t opts, const void *settings);

void sm_mariadb_prepare(void) {
    OPENSSL_init_ssl(SM_OPENSSL_QUIET_INIT, NULL);
}
