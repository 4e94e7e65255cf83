/* deliver.c — one message into one mailbox; see deliver.h. */
#include "deliver.h"

#include "config.h"
#include "macro.h"
#include "maildir.h"

int sm_deliver_mailbox(const struct sm_config *cfg, const char *mailbox, const char *return_path,
                       const char *extra_head, int body_fd, off_t body_len, char **ret_name) {
    _cleanup_free_ char *path = NULL, *head = NULL;
    int r = sm_maildir_path(cfg->mail_location, mailbox, &path);
    if (r < 0) return r;
    int n = asprintf(&head, "Return-Path: <%s>\nDelivered-To: %s\n%s", return_path, mailbox,
                     extra_head ? extra_head : "");
    if (n < 0) return -ENOMEM;
    return sm_maildir_deliver(path, head, (size_t)n, body_fd, body_len, ret_name);
}

bool sm_deliver_permanent(int err) { return err == -EINVAL; }

const char *sm_deliver_reply(int err) {
    switch (err) {
    case -EINVAL: return "550 5.1.3 Mailbox name cannot be used as a path";
    case -ENOSPC:
    case -EDQUOT:
    case -EIO: return "452 4.3.1 Insufficient system storage";
    default: return "451 4.3.0 Cannot store the message, try again later";
    }
}
