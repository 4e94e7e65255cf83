/* passwd.h — password hashes: verify and generate, Dovecot-compatible.
 *
 * Stored hashes come with or without Dovecot's scheme prefix:
 * {SHA512-CRYPT}$6$..., {SHA256-CRYPT}$5$..., {BLF-CRYPT}$2y$...,
 * {MD5-CRYPT}$1$..., {CRYPT}<any crypt(3) hash>, or a bare crypt(3) hash
 * ($y$, $7$, $gy$, $2b$, $6$, $5$, $1$, DES). Verification uses libxcrypt's
 * crypt_r and compares in constant time. */
#pragma once

#include <stddef.h>

/* 1: PASSWORD matches STORED; 0: it does not; -EINVAL: STORED is not a hash
 * we can check (unknown scheme, malformed, locked "!"/"*", empty);
 * -ENOMEM. {PLAIN}/{CLEARTEXT} (Dovecot) are compared in constant time. */
int sm_passwd_verify(const char *stored, const char *password);

/* The scheme name of STORED ("SHA512-CRYPT", "YESCRYPT", ...), or
 * "UNKNOWN". */
const char *sm_passwd_scheme(const char *stored);

/* A new hash of PASSWORD in SCHEME (SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT,
 * YESCRYPT) in the prefixed form `doveadm pw -s SCHEME` prints; yescrypt
 * is written {CRYPT}$y$.... 0, -EINVAL (unknown scheme) or -errno. */
int sm_passwd_hash(const char *scheme, const char *password, char **ret);

/* A fixed valid hash of SCHEME — a scheme name ("BLF-CRYPT") or a stored
 * hash whose scheme is to be matched — else of SHA512-CRYPT, to verify
 * against when a user does not exist, so the time taken does not tell.
 * No password matches it. */
const char *sm_passwd_dummy(const char *scheme);
