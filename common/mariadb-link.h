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
 * Instructions are not the whole cost: on this machine a page fault costs
 * about 15 us, and the static OpenSSL still brought 21,400 relocations of
 * 430 KB of pointer tables that every process wrote (copy-on-write) before
 * main(). So the default (-Dmariadb_link=static) links libmariadb.a and
 * libz.a without OpenSSL (mariadb-notls.c: the database link has no TLS),
 * and lmtp-handler and auth-checker are static PIEs (meson.build). One LMTP
 * delivery per process (bench/lmtp-phases), median greeting / MAIL+RCPT /
 * whole session, page faults and peak RSS:
 *   PIE, libssl.a + libcrypto.a     5.7 / 3.0 / 12.0 ms, 256 faults, 4.3 MiB
 *   same without OpenSSL            3.4 / 2.3 /  8.5 ms, 131 faults, 2.4 MiB
 *   static PIE, no OpenSSL          2.5 / 1.4 /  6.8 ms,  98 faults, 1.6 MiB
 * The price is that a security update of libmariadb, zlib or glibc needs a
 * rebuild of sockmail. -Dmariadb_link=dlopen keeps them shared (loaded at
 * the first lookup, so connections that never look anything up do not
 * pay) and keeps libmariadb's TLS, for distributions that prefer that. */
#pragma once

/* For the dlopen build: OpenSSL 3's OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS |
 * _NO_LOAD_CONFIG | _NO_LOAD_SSL_STRINGS. Our database connections never
 * use TLS (db.c sets no TLS option; the usual link is a unix socket), so
 * neither openssl.cnf nor the error strings are needed; libmariadb's own
 * later set-up finds these parts done, as OpenSSL runs each of them once.
 * No OpenSSL header is included: no build links OpenSSL. */
#define SM_OPENSSL_QUIET_INIT (0x00000001ULL | 0x00000080ULL | 0x00100000ULL)

/* MariaDB's port, used when a host in the config names none. */
#define SM_MARIADB_DEFAULT_PORT 3306u

/* Makes the client library ready before mysql_library_init(). */
void sm_mariadb_prepare(void);

/* Options every connection gets from the way the library is linked, set
 * between mysql_init() and mysql_real_connect(). M is a MYSQL *. */
void sm_mariadb_connect_options(void *m);
