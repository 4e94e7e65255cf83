/* address.h — RFC 5321 mailbox syntax (with RFC 6531 UTF-8), pure functions.
 *
 * A mailbox is local-part "@" domain. The local part is a dot-string or a
 * quoted string; the domain is a host name (LDH labels, or UTF-8 U-labels
 * when SMTPUTF8 is allowed) or an address literal [1.2.3.4] / [IPv6:...].
 * Limits: local part 64 octets, domain 255, whole path 256 (RFC 5321
 * §4.5.3.1). NUL and control characters are never accepted. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum {
    SM_ADDR_UTF8 = 1 << 0,  /* allow UTF-8 in local part and domain */
};

/* Checks S (LEN bytes, no angle brackets) and writes its normal form into
 * RET (malloc'd): the domain lower-cased (ASCII), a quoted local part
 * unquoted when it needs no quotes. 0, or -EINVAL with a reason in WHY
 * (static text such as "domain missing"). */
int sm_addr_normalize(const char *s, size_t len, unsigned flags, char **ret, const char **why);

/* Splits a normalized ADDRESS at its last '@' into freshly allocated parts.
 * 0 or -EINVAL / -ENOMEM. */
int sm_addr_split(const char *address, char **ret_local, char **ret_domain);
