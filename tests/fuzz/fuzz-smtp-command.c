/* fuzz-smtp-command.c — sm_smtp_parse on arbitrary lines.
 *
 * Input: byte 0 chooses the flags (bit 0: SM_ADDR_UTF8), the rest is the
 * line. Checked: a refusal has a reply of the form "DDD D.D.D text"; an
 * accepted MAIL/RCPT has a path that is "" (MAIL only), "postmaster"
 * (RCPT only) or an address in normal form; parameters are at most
 * SM_SMTP_MAX_PARAMS with upper-case unique keys; clear frees everything
 * (the sanitizer finds leaks). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "smtp-command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reply(const char *r) {
    if (!r || strlen(r) < 10) abort();
    if (r[0] < '4' || r[0] > '5' || r[3] != ' ' || r[4] != r[0] || r[5] != '.') abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned flags = (data[0] & 1) ? SM_ADDR_UTF8 : 0;
    struct sm_smtp_cmd cmd;
    const char *reply = NULL;
    int r = sm_smtp_parse((const char *)data + 1, size - 1, flags, &cmd, &reply);
    if (r < 0) {
        check_reply(reply);
        sm_smtp_cmd_clear(&cmd);
        return 0;
    }
    if (cmd.verb == SM_SMTP_UNKNOWN) abort();
    bool pathcmd = cmd.verb == SM_SMTP_MAIL || cmd.verb == SM_SMTP_RCPT;
    if (pathcmd != (cmd.path != NULL)) abort();
    if (!pathcmd && cmd.n_params) abort();
    if (cmd.path) {
        if (!*cmd.path) {
            if (cmd.verb != SM_SMTP_MAIL) abort();
        } else if (strcmp(cmd.path, "postmaster") == 0) {
            if (cmd.verb != SM_SMTP_RCPT) abort();
        } else {
            char *again = NULL;
            if (sm_addr_normalize(cmd.path, strlen(cmd.path), flags, &again, NULL) < 0) abort();
            if (strcmp(again, cmd.path) != 0) abort();
            free(again);
        }
    }
    if (cmd.n_params > SM_SMTP_MAX_PARAMS) abort();
    for (size_t i = 0; i < cmd.n_params; i++) {
        const char *k = cmd.params[i].key;
        if (!k || !*k) abort();
        for (const char *p = k; *p; p++)
            if (*p >= 'a' && *p <= 'z') abort();
        for (size_t j = 0; j < i; j++)
            if (strcmp(cmd.params[j].key, k) == 0) abort();
        bool present = false;
        if (sm_smtp_param(&cmd, k, &present) != cmd.params[i].value || !present) abort();
    }
    sm_smtp_cmd_clear(&cmd);
    return 0;
}
