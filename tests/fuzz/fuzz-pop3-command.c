/* fuzz-pop3-command.c — sm_pop3_parse on arbitrary lines.
 *
 * Input: byte 0 chooses the line limit (16 * (byte + 1)), the rest is the
 * line. Checked: a refusal has a "-ERR " reply and no results; an accepted
 * command has a known verb, numbers in range only where the verb takes
 * them, strings only where the verb takes them (PASS may hold anything but
 * NUL; the others no control characters; an AUTH mechanism in upper case);
 * clear frees everything (the sanitizer finds leaks). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3-command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool no_ctrl(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t max = 16 * ((size_t)data[0] + 1);
    /* An exact-size copy so ASan sees reads past the end. */
    size_t len = size - 1;
    char *line = malloc(len ? len : 1);
    if (!line) return 0;
    memcpy(line, data + 1, len);
    struct sm_pop3_cmd cmd;
    const char *reply = NULL;
    int r = sm_pop3_parse(line, len, max, &cmd, &reply);
    if (r < 0) {
        if (!reply || strncmp(reply, "-ERR ", 5) != 0) abort();
        if (cmd.arg || cmd.initial_response || cmd.has_msg) abort();
        goto out;
    }
    if (r != 0 || cmd.verb == SM_POP3_UNKNOWN || len > max || memchr(line, 0, len)) abort();
    switch (cmd.verb) {
    case SM_POP3_RETR: case SM_POP3_DELE: case SM_POP3_TOP:
        if (!cmd.has_msg) abort();
        break;
    case SM_POP3_LIST: case SM_POP3_UIDL:
        break;
    default:
        if (cmd.has_msg) abort();
    }
    if (cmd.has_msg && cmd.msg == 0) abort();
    if (cmd.verb != SM_POP3_TOP && cmd.lines) abort();
    if (cmd.lines > SM_POP3_MAX_TOP_LINES) abort();
    bool takes_arg = cmd.verb == SM_POP3_USER || cmd.verb == SM_POP3_PASS || cmd.verb == SM_POP3_AUTH;
    if (!takes_arg && cmd.arg) abort();
    if ((cmd.verb == SM_POP3_USER || cmd.verb == SM_POP3_PASS) && !cmd.arg) abort();
    if (cmd.verb == SM_POP3_USER && (!*cmd.arg || !no_ctrl(cmd.arg))) abort();
    if (cmd.verb == SM_POP3_AUTH && cmd.arg) {
        size_t n = strlen(cmd.arg);
        if (n == 0 || n > SM_POP3_MAX_MECH) abort();
        for (const char *p = cmd.arg; *p; p++)
            if ((*p >= 'a' && *p <= 'z') || *p == ' ') abort();
    }
    if (cmd.initial_response) {
        if (cmd.verb != SM_POP3_AUTH || !cmd.arg || !*cmd.initial_response) abort();
        if (strchr(cmd.initial_response, ' ') || !no_ctrl(cmd.initial_response)) abort();
    }
    /* The parse is a pure function of the bytes: the same again. */
    struct sm_pop3_cmd again;
    const char *reply2 = NULL;
    if (sm_pop3_parse(line, len, max, &again, &reply2) != 0 || again.verb != cmd.verb ||
        again.msg != cmd.msg || again.lines != cmd.lines)
        abort();
    sm_pop3_cmd_clear(&again);
out:
    sm_pop3_cmd_clear(&cmd);
    free(line);
    return 0;
}
