/* mariadb-link.h — how the MariaDB client library gets into a process.
 *
 * Every lookup of a connection runs in a fresh process, so what the dynamic
 * loader does for libmariadb and the OpenSSL it pulls in is paid once per
 * connection. Measured with callgrind on one LMTP delivery (tests/lab,
 * `valgrind --tool=callgrind lmtp-handler < session`):
 *   linked normally, OpenSSL set up by libmariadb     8.0 M instructions
 *   dlopen at the first lookup, OpenSSL set up quietly 6.0 M (4.5 M of it
 *                                                      symbol relocation)
 *   static archives, OpenSSL set up quietly            1.5 M
 * So the default (-Dmariadb_link=static) links libmariadb.a, libssl.a,
 * libcrypto.a and libz.a into the programs that look things up; the price
 * is that a security update of those libraries needs a rebuild of sockmail.
 * -Dmariadb_link=dlopen keeps them shared (loaded at the first lookup, so
 * connections that never look anything up do not pay) for distributions
 * that prefer that. */
#pragma once

/* OpenSSL 3's OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS | _NO_LOAD_CONFIG |
 * _NO_LOAD_SSL_STRINGS. Our database connections never use TLS (db.c sets
 * no TLS option; the usual link is a unix socket), so neither openssl.cnf
 * nor the error strings are needed; libmariadb's own later set-up finds
 * these parts done, as OpenSSL runs each of them once. No OpenSSL header is
 * included: the dlopen build does not link OpenSSL. */
#define SM_OPENSSL_QUIET_INIT (0x00000001ULL | 0x00000080ULL | 0x00100000ULL)

/* Makes the client library ready before mysql_library_init(). */
void sm_mariadb_prepare(void);
