/* mariadb-notls.c — the TLS layer of the static libmariadb, without TLS.
 *
 * Debian's libmariadb.a reaches OpenSSL only through one object
 * (openssl.c.o), which the library's own code enters through the
 * ma_tls_* functions below. Defining them here keeps the linker from
 * pulling that object, and with it libssl.a and libcrypto.a, into every
 * program that looks things up. Measured on one LMTP delivery per process
 * (mariadb-link.h has the commands): 21,400 start-up relocations become
 * 3,000, the binary shrinks from 5.5 MB to 0.4 MB, peak RSS from 4.3 to
 * 2.5 MiB, and the greeting comes about 2 ms sooner.
 *
 * The price: the connection to the database cannot use TLS. sockmail never
 * asks for it (db.c sets no MYSQL_OPT_SSL_* option and reads no option
 * file); the usual link is a unix socket. A server that insists on TLS
 * (require_secure_transport) refuses the login with its own clear error,
 * which db.c reports as a temporary failure. Builds that need TLS to the
 * database use -Dmariadb_link=dlopen, which loads the shared library.
 *
 * These are internal functions of Connector/C (ma_tls.h, stable since 3.0);
 * meson.build links this file only against the 3.x series it was checked
 * with. Nothing here is ever called with a TLS object: ma_tls_init()
 * refuses, so no connection reaches the others. */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>

/* Connector/C's layout: char tls_library_version[TLS_VERSION_LENGTH]. */
char tls_library_version[64] = "none (sockmail: no TLS to the database in static builds)";

int ma_tls_start(char *errmsg, size_t errmsg_len);
void ma_tls_end(void);
void *ma_tls_init(void *mysql);
char ma_tls_connect(void *ctls);
ssize_t ma_tls_read(void *ctls, const unsigned char *buf, size_t len);
ssize_t ma_tls_write(void *ctls, const unsigned char *buf, size_t len);
ssize_t ma_tls_read_async(void *pvio, const unsigned char *buf, size_t len);
ssize_t ma_tls_write_async(void *pvio, const unsigned char *buf, size_t len);
char ma_tls_close(void *ctls);
int ma_tls_verify_server_cert(void *ctls);
const char *ma_tls_get_cipher(void *ctls);
unsigned int ma_tls_get_finger_print(void *ctls, char *fp, unsigned int fp_len);
int ma_tls_get_protocol_version(void *ctls);
void ma_tls_set_connection(void *mysql);

/* Library start-up succeeds: there is simply nothing to set up. */
int ma_tls_start(char *errmsg, size_t errmsg_len) {
    (void)errmsg;
    (void)errmsg_len;
    return 0;
}

void ma_tls_end(void) {}

/* A request for TLS fails here, before any byte is sent in clear. */
void *ma_tls_init(void *mysql) {
    (void)mysql;
    return NULL;
}

char ma_tls_connect(void *ctls) {
    (void)ctls;
    return 1;
}

ssize_t ma_tls_read(void *ctls, const unsigned char *buf, size_t len) {
    (void)ctls, (void)buf, (void)len;
    return -1;
}

ssize_t ma_tls_write(void *ctls, const unsigned char *buf, size_t len) {
    (void)ctls, (void)buf, (void)len;
    return -1;
}

ssize_t ma_tls_read_async(void *pvio, const unsigned char *buf, size_t len) {
    (void)pvio, (void)buf, (void)len;
    return -1;
}

ssize_t ma_tls_write_async(void *pvio, const unsigned char *buf, size_t len) {
    (void)pvio, (void)buf, (void)len;
    return -1;
}

char ma_tls_close(void *ctls) {
    (void)ctls;
    return 0;
}

/* Never "verified": 1 is Connector/C's failure. */
int ma_tls_verify_server_cert(void *ctls) {
    (void)ctls;
    return 1;
}

const char *ma_tls_get_cipher(void *ctls) {
    (void)ctls;
    return NULL;
}

unsigned int ma_tls_get_finger_print(void *ctls, char *fp, unsigned int fp_len) {
    (void)ctls;
    if (fp && fp_len) memset(fp, 0, fp_len);
    return 0;
}

int ma_tls_get_protocol_version(void *ctls) {
    (void)ctls;
    return -1;
}

void ma_tls_set_connection(void *mysql) {
    (void)mysql;
}
