/* tls.h — the GnuTLS transport for sm_io (implicit TLS and STARTTLS).
 *
 * TLS 1.2 and 1.3 only; certificate, key and priority string from [tls] in
 * the config. The credentials are loaded once per process (one connection
 * per process, so that is once per connection: prefer ECDSA keys, see
 * PLATFORM.md).
 *
 *     struct sm_tls_server *srv;
 *     if (sm_tls_server_new(cfg, &srv, err, sizeof err) < 0) ...
 *     // STARTTLS: reply "220 go ahead", flush, then:
 *     sm_io_discard_input(io);   // no plaintext command injection
 *     if (sm_tls_start(srv, io, err, sizeof err) < 0) ... close
 */
#pragma once

#include <stddef.h>

struct sm_config;
struct sm_io;
struct sm_tls_server;

/* Loads cert and key and checks the priority string. -1 with ERR set. */
int sm_tls_server_new(const struct sm_config *cfg, struct sm_tls_server **ret,
                      char *err, size_t errlen);
void sm_tls_server_free(struct sm_tls_server *srv);

/* Runs the server handshake on IO's fds (within the config's handshake
 * timeout) and switches IO to the TLS transport. -1 with ERR set; the
 * connection should then be closed. */
int sm_tls_start(struct sm_tls_server *srv, struct sm_io *io, char *err, size_t errlen);

/* "TLSv1.3 cipher=TLS_AES_256_GCM_SHA384" style text for Received: headers
 * and logs; "" when IO is not TLS. */
const char *sm_tls_describe(struct sm_io *io, char *buf, size_t len);
