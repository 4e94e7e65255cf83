/* deliver.h — final delivery of one stored message into one mailbox.
 *
 * Shared by lmtp-handler and smtp-handler (via the queue): expands
 * mail_location for the mailbox, puts the trace lines every final delivery
 * adds (Return-Path:, Delivered-To:) and the caller's own header lines above
 * the body, and stores it with sm_maildir_deliver (durable on 0). Also maps
 * the errors to SMTP replies, so both protocols answer alike. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

struct sm_config;

/* Stores BODY_LEN bytes of BODY_FD (from offset 0) for MAILBOX with
 * "Return-Path: <RETURN_PATH>", "Delivered-To: MAILBOX" and EXTRA_HEAD
 * (complete "Name: value\n" lines, may be NULL) above it. 0 or -errno
 * (-EINVAL: the mailbox cannot be a path). RET_NAME may be NULL. */
int sm_deliver_mailbox(const struct sm_config *cfg, const char *mailbox, const char *return_path,
                       const char *extra_head, int body_fd, off_t body_len, char **ret_name);

/* True when ERR from sm_deliver_mailbox will not go away by retrying. */
bool sm_deliver_permanent(int err);

/* The SMTP/LMTP reply (without CRLF) for ERR. */
const char *sm_deliver_reply(int err);
