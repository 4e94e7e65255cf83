/* gnutls-dl.c — GnuTLS, loaded when a connection first uses TLS
 * (meson -Dgnutls_link=dlopen, the default, for smtp-handler and
 * pop3-handler; every other program links GnuTLS normally).
 *
 * Why: every connection is a new process. Linked normally, the dynamic
 * loader maps and relocates libgnutls.so.30 and its eight dependencies
 * (p11-kit, idn2, unistring, tasn1, nettle, hogweed, gmp, ffi) and runs
 * their constructors before main() — also for the plain-text sessions that
 * never start TLS (MX traffic without STARTTLS, POP3 over a local link).
 * Measured with bench/session-phases (one session per process on a
 * socketpair, 300 runs, medians; tests/lab, debugoptimized builds before
 * and after this file, 2-core machine, 2026-11-30):
 *   session (per process)         GnuTLS   greeting  whole     faults  peak RSS
 *   POP3: CAPA, QUIT              linked   6.60 ms    7.78 ms  223     4252 KiB
 *                                 dlopen   2.55 ms    3.08 ms   71     1764 KiB
 *   SMTP mx: EHLO, MAIL, RCPT,    linked   7.46 ms   11.08 ms  257     4682 KiB
 *            QUIT                 dlopen   3.18 ms    6.01 ms  107     2284 KiB
 *   POP3: STLS, CAPA, QUIT        linked   7.37 ms   12.98 ms  264     5396 KiB
 *                                 dlopen   3.06 ms   13.25 ms  268     5484 KiB
 *   SMTP mx: EHLO, STARTTLS,      linked   7.83 ms   16.12 ms  291     5800 KiB
 *            EHLO...QUIT          dlopen   3.34 ms   15.82 ms  294     5884 KiB
 * The dynamic loader's start (LD_DEBUG=statistics pop3-handler --help)
 * went from 1.94 M to 0.60 M cycles. A TLS session pays the same load
 * later, so it costs what it did (within the noise of these runs).
 *
 * tls.c calls GnuTLS's own names; each definition here forwards the call
 * to the symbol in dlopen("libgnutls.so.30"). gnutls/gnutls.h stays
 * included, so the compiler checks every definition against the real
 * prototype. The program is not linked with GnuTLS and exports none of
 * these names, so nothing here clashes with or interposes on the library's
 * own. Every symbol is looked up at the first call: if the library cannot
 * be loaded, or lacks one of them, none is used, each call fails with
 * GNUTLS_E_INTERNAL_ERROR (NULL, 0 for the others), and gnutls_strerror()
 * says why, so sm_tls_server_new() fails with that text and the handlers
 * answer "TLS not available" as for any local TLS problem.
 *
 * Tests make the load fail with LD_LIBRARY_PATH naming a directory whose
 * libgnutls.so.30 is not a library (tests/integration/test_tls_dl.py), so
 * nothing here needs a test hook. Handlers are single-threaded: the first
 * use needs no lock. */
#include <dlfcn.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdio.h>

#define LIBRARY "libgnutls.so.30"

/* Every GnuTLS function tls.c calls (none of them is a macro or variadic
 * in gnutls.h, and tls.c uses none of the library's variables), as
 *   CALL(return type, name, value when unavailable, (parameters), (arguments))
 *   CALL_VOID(name, (parameters), (arguments)) */
#define GNUTLS_CALLS(CALL, CALL_VOID)                                                          \
    CALL(const char *, gnutls_check_version, NULL, (const char *req), (req))                   \
    CALL(const char *, gnutls_strerror, unavailable, (int error), (error))                     \
    CALL(int, gnutls_priority_init, GNUTLS_E_INTERNAL_ERROR,                                   \
         (gnutls_priority_t * prio, const char *priorities, const char **err_pos),             \
         (prio, priorities, err_pos))                                                          \
    CALL_VOID(gnutls_priority_deinit, (gnutls_priority_t prio), (prio))                        \
    CALL(int, gnutls_priority_protocol_list, GNUTLS_E_INTERNAL_ERROR,                          \
         (gnutls_priority_t prio, const unsigned int **list), (prio, list))                    \
    CALL(const char *, gnutls_protocol_get_name, NULL, (gnutls_protocol_t version), (version)) \
    CALL(int, gnutls_certificate_allocate_credentials, GNUTLS_E_INTERNAL_ERROR,                \
         (gnutls_certificate_credentials_t * cred), (cred))                                    \
    CALL_VOID(gnutls_certificate_free_credentials, (gnutls_certificate_credentials_t cred),    \
              (cred))                                                                          \
    CALL(int, gnutls_certificate_set_x509_key_file2, GNUTLS_E_INTERNAL_ERROR,                  \
         (gnutls_certificate_credentials_t cred, const char *certfile, const char *keyfile,    \
          gnutls_x509_crt_fmt_t type, const char *pass, unsigned int flags),                   \
         (cred, certfile, keyfile, type, pass, flags))                                         \
    CALL(int, gnutls_init, GNUTLS_E_INTERNAL_ERROR,                                            \
         (gnutls_session_t * session, unsigned int flags), (session, flags))                   \
    CALL_VOID(gnutls_deinit, (gnutls_session_t session), (session))                            \
    CALL(int, gnutls_priority_set, GNUTLS_E_INTERNAL_ERROR,                                    \
         (gnutls_session_t session, gnutls_priority_t prio), (session, prio))                  \
    CALL(int, gnutls_credentials_set, GNUTLS_E_INTERNAL_ERROR,                                 \
         (gnutls_session_t session, gnutls_credentials_type_t type, void *cred),               \
         (session, type, cred))                                                                \
    CALL_VOID(gnutls_certificate_server_set_request,                                           \
              (gnutls_session_t session, gnutls_certificate_request_t req), (session, req))    \
    CALL_VOID(gnutls_transport_set_int2, (gnutls_session_t session, int r, int s),             \
              (session, r, s))                                                                 \
    CALL_VOID(gnutls_handshake_set_timeout, (gnutls_session_t session, unsigned int ms),       \
              (session, ms))                                                                   \
    CALL(int, gnutls_handshake, GNUTLS_E_INTERNAL_ERROR, (gnutls_session_t session),           \
         (session))                                                                            \
    CALL(gnutls_alert_description_t, gnutls_alert_get, GNUTLS_A_INTERNAL_ERROR,                \
         (gnutls_session_t session), (session))                                                \
    CALL(const char *, gnutls_alert_get_name, NULL, (gnutls_alert_description_t alert),        \
         (alert))                                                                              \
    CALL(int, gnutls_alert_send_appropriate, GNUTLS_E_INTERNAL_ERROR,                          \
         (gnutls_session_t session, int err), (session, err))                                  \
    CALL(int, gnutls_record_get_direction, 0, (gnutls_session_t session), (session))           \
    CALL(ssize_t, gnutls_record_recv, GNUTLS_E_INTERNAL_ERROR,                                 \
         (gnutls_session_t session, void *data, size_t size), (session, data, size))           \
    CALL(ssize_t, gnutls_record_send, GNUTLS_E_INTERNAL_ERROR,                                 \
         (gnutls_session_t session, const void *data, size_t size), (session, data, size))     \
    CALL(size_t, gnutls_record_check_pending, 0, (gnutls_session_t session), (session))        \
    CALL(int, gnutls_bye, GNUTLS_E_INTERNAL_ERROR,                                             \
         (gnutls_session_t session, gnutls_close_request_t how), (session, how))               \
    CALL(gnutls_protocol_t, gnutls_protocol_get_version, GNUTLS_VERSION_UNKNOWN,              \
         (gnutls_session_t session), (session))                                                \
    CALL(const char *, gnutls_ciphersuite_get, NULL, (gnutls_session_t session), (session))

/* The library's functions, once loaded. */
static struct {
#define POINTER(ret, name, fail, params, args) ret(*name) params;
#define POINTER_VOID(name, params, args) void(*name) params;
    GNUTLS_CALLS(POINTER, POINTER_VOID)
} lib;

/* What gnutls_strerror() says when the library is unavailable. */
static char unavailable[512];

static bool load(void) {
    static int state;  /* 0: not tried yet, 1: loaded, -1: unavailable */
    if (state) return state > 0;
    state = -1;
    void *handle = dlopen(LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        snprintf(unavailable, sizeof unavailable, "GnuTLS (" LIBRARY ") cannot be loaded: %s",
                 why ? why : "unknown error");
        return false;
    }
    const char *missing = NULL;
#define LOOKUP(ret, name, fail, params, args) \
    if (!missing && !(*(void **)&lib.name = dlsym(handle, #name))) missing = #name;
#define LOOKUP_VOID(name, params, args) LOOKUP(void, name, , params, args)
    GNUTLS_CALLS(LOOKUP, LOOKUP_VOID)
    if (missing) {
        snprintf(unavailable, sizeof unavailable,
                 "GnuTLS (" LIBRARY ") cannot be loaded: it has no %s (older than 3.7?)", missing);
        dlclose(handle);
        return false;
    }
    state = 1;
    return true;
}

/* gnutls.h declares gnutls_check_version, gnutls_strerror,
 * gnutls_protocol_get_name and gnutls_ciphersuite_get
 * __attribute__((const)), which a first call that loads the library does
 * not strictly keep. It does not matter: the library is loaded (or found
 * unavailable) once, and each of them gives the same answer every time
 * after that, so a call the compiler merges, moves or drops changes
 * nothing. */
#define FORWARD(ret, name, fail, params, args) \
    ret name params {                          \
        if (!load()) return fail;              \
        return lib.name args;                  \
    }
#define FORWARD_VOID(name, params, args) \
    void name params {                   \
        if (load()) lib.name args;       \
    }
GNUTLS_CALLS(FORWARD, FORWARD_VOID)
