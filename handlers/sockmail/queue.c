/* queue.c — `sockmail queue list|show|del`: what smtp-handler's queue
 * holds (common/queue.h): messages whose local copies failed for a
 * temporary reason and wait for the flush, and messages for remote
 * recipients, which wait for outbound delivery. Reading takes no lock, so
 * a listing never delays a delivery; `del` takes the message's lock. */
#include <getopt.h>
#include <time.h>
#include <unistd.h>

#include "queue.h"
#include "sockmail.h"

struct queue_opts {
    bool json, message;
};

static int parse(int argc, char **argv, struct queue_opts *o) {
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"message", no_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int c;
    while ((c = cli_getopt("queue", argc, argv, "jmh", opts)) != -1) {
        switch (c) {
        case 'j': o->json = true; break;
        case 'm': o->message = true; break;
        case 'h': cli_usage("queue", stdout); return SM_EXIT_OK;
        default: return SM_EXIT_USAGE;
        }
    }
    return -1;
}

static const char *state_name(char state) {
    switch (state) {
    case SM_QUEUE_PENDING: return "pending";
    case SM_QUEUE_DONE: return "delivered";
    case SM_QUEUE_FAILED: return "failed";
    default: return "unknown";
    }
}

static void utc(time_t t, char *buf, size_t len) {
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm))
        snprintf(buf, len, "%lld", (long long)t);
}

static void json_message(struct json *j, const struct sm_queue_msg *m) {
    const struct sm_queue_env *e = &m->env;
    json_object(j);
    json_key(j, "id"); json_str(j, e->id);
    json_key(j, "received"); json_uint(j, e->received > 0 ? (unsigned long long)e->received : 0);
    json_key(j, "size"); json_uint(j, (unsigned long long)m->body_size);
    json_key(j, "from"); json_str(j, e->sender);
    json_key(j, "auth"); json_str(j, e->auth);
    json_key(j, "recipients");
    json_array(j);
    for (size_t i = 0; i < e->n_rcpts; i++) {
        const struct sm_queue_rcpt *rc = &e->rcpts[i];
        json_object(j);
        json_key(j, "destination"); json_str(j, rc->dest);
        json_key(j, "rcpt"); json_str(j, rc->rcpt);
        json_key(j, "local"); json_bool(j, rc->local);
        json_key(j, "state"); json_str(j, state_name(rc->state));
        json_object_end(j);
    }
    json_array_end(j);
    json_object_end(j);
}

static void text_message(const struct sm_queue_msg *m) {
    const struct sm_queue_env *e = &m->env;
    char when[32];
    utc(e->received, when, sizeof when);
    printf("%s  %s  %lld bytes  from <%s>%s%s\n", e->id, when, (long long)m->body_size, e->sender,
           e->auth ? "  auth " : "", e->auth ? e->auth : "");
    for (size_t i = 0; i < e->n_rcpts; i++) {
        const struct sm_queue_rcpt *rc = &e->rcpts[i];
        printf("    %-9s  %-6s  %s", state_name(rc->state), rc->local ? "local" : "remote", rc->dest);
        if (rc->rcpt && !streq(rc->rcpt, rc->dest)) printf("  (RCPT %s)", rc->rcpt);
        putchar('\n');
    }
}

/* Why a message could not be read, for the messages of `list` and `show`. */
static const char *peek_error(int r) {
    switch (r) {
    case -ENOENT: return "it is not in the queue (delivered or deleted meanwhile?)";
    case -EBADMSG: return "its envelope is not one sockmail wrote";
    case -EACCES: return "permission denied (run as root or as the mail user)";
    default: return strerror(-r);
    }
}

/* Adds M's pending recipients and age to S. */
static void summarize(struct queue_summary *s, const struct sm_queue_msg *m) {
    s->messages++;
    if (m->env.received > 0 && (!s->oldest || m->env.received < s->oldest)) s->oldest = m->env.received;
    for (size_t k = 0; k < m->env.n_rcpts; k++) {
        if (m->env.rcpts[k].state != SM_QUEUE_PENDING) continue;
        if (m->env.rcpts[k].local) s->pending_local++;
        else s->pending_remote++;
    }
}

/* Calls FN for each message that can be read, oldest first; unreadable
 * ones are reported on stderr when LOUD. 0 or -errno (the queue itself). */
static int each_message(const char *queue, bool loud,
                        void (*fn)(const struct sm_queue_msg *m, void *userdata), void *userdata) {
    char **ids = NULL;
    size_t n = 0;
    int r = sm_queue_ids(queue, &ids, &n);
    if (r < 0) return r;
    for (size_t i = 0; i < n; i++) {
        struct sm_queue_msg *m = NULL;
        r = sm_queue_peek(queue, ids[i], &m);
        if (r == -ENOENT) continue;  /* finished since the listing */
        if (r < 0) {
            if (loud) cli_error("message %s: %s", ids[i], peek_error(r));
            continue;
        }
        fn(m, userdata);
        sm_queue_msg_free(m);
    }
    sm_queue_ids_free(ids, n);
    return 0;
}

static void summarize_fn(const struct sm_queue_msg *m, void *userdata) { summarize(userdata, m); }

int cli_queue_summary(const char *queue, struct queue_summary *ret) {
    *ret = (struct queue_summary){0};
    return each_message(queue, false, summarize_fn, ret);
}

struct list_ctx {
    struct json *json;         /* NULL: text */
    bool started;              /* the JSON array is open */
    struct queue_summary sum;
};

/* The array opens with the first message, so a queue that cannot be read
 * prints no half document. */
static void json_start(struct list_ctx *c) {
    if (c->started) return;
    json_begin(c->json, stdout);
    json_array(c->json);
    c->started = true;
}

static void list_fn(const struct sm_queue_msg *m, void *userdata) {
    struct list_ctx *c = userdata;
    summarize(&c->sum, m);
    if (c->json) {
        json_start(c);
        json_message(c->json, m);
    } else {
        text_message(m);
    }
}

static int queue_list(const char *queue, bool json) {
    struct json j;
    struct list_ctx c = { .json = json ? &j : NULL };
    int r = each_message(queue, true, list_fn, &c);
    if (r < 0) {
        cli_error("cannot read the queue %s: %s", queue, peek_error(r));
        return r == -EACCES ? SM_EXIT_REFUSED : SM_EXIT_TEMPFAIL;
    }
    if (json) {
        json_start(&c);
        json_array_end(&j);
        json_end(&j);
    } else if (c.sum.messages == 0) {
        printf("the queue is empty\n");
    } else {
        printf("%zu message%s; pending: %zu local (retried by smtp-handler --flush-queue), "
               "%zu remote (outbound delivery is not part of sockmail yet)\n",
               c.sum.messages, c.sum.messages == 1 ? "" : "s", c.sum.pending_local,
               c.sum.pending_remote);
    }
    return SM_EXIT_OK;
}

/* Copies the message as it would be delivered (our header lines, then the
 * body as received) to stdout. */
static int print_message(const struct sm_queue_msg *m) {
    if (m->env.head) fputs(m->env.head, stdout);
    fflush(stdout);
    char buf[65536];
    off_t off = 0;
    while (off < m->body_size) {
        ssize_t n = pread(m->body_fd, buf, sizeof buf, off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            cli_error("reading message %s: %s", m->env.id, n < 0 ? strerror(errno) : "short file");
            return SM_EXIT_TEMPFAIL;
        }
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) return SM_EXIT_TEMPFAIL;
        off += n;
    }
    return fflush(stdout) == 0 ? SM_EXIT_OK : SM_EXIT_TEMPFAIL;
}

static int queue_show(const char *queue, const char *id, const struct queue_opts *o) {
    struct sm_queue_msg *m = NULL;
    int r = sm_queue_peek(queue, id, &m);
    if (r < 0) {
        cli_error("message %s: %s (see: sockmail queue list)", id,
                  r == -EINVAL ? "not a queue id" : peek_error(r));
        return r == -EIO || r == -ENOMEM ? SM_EXIT_TEMPFAIL : SM_EXIT_REFUSED;
    }
    int rc = SM_EXIT_OK;
    if (o->message) {
        rc = print_message(m);
    } else if (o->json) {
        struct json j;
        json_begin(&j, stdout);
        json_message(&j, m);
        json_end(&j);
    } else {
        text_message(m);
    }
    sm_queue_msg_free(m);
    return rc;
}

static int queue_del(const char *queue, const char *id) {
    struct sm_queue_msg *m = NULL;
    int r = sm_queue_open(queue, id, &m);
    if (r == -EWOULDBLOCK) {
        cli_error("message %s is being delivered right now; try again in a moment", id);
        return SM_EXIT_TEMPFAIL;
    }
    if (r < 0) {
        cli_error("message %s: %s (see: sockmail queue list)", id,
                  r == -EINVAL ? "not a queue id" : peek_error(r));
        return SM_EXIT_REFUSED;
    }
    size_t pending = 0;
    for (size_t i = 0; i < m->env.n_rcpts; i++)
        if (m->env.rcpts[i].state == SM_QUEUE_PENDING) pending++;
    r = sm_queue_drop(m);
    sm_queue_msg_free(m);
    if (r < 0) {
        cli_error("deleting message %s: %s", id, strerror(-r));
        return SM_EXIT_TEMPFAIL;
    }
    printf("deleted message %s (%zu recipient%s had not received it)\n", id, pending,
           pending == 1 ? "" : "s");
    return SM_EXIT_OK;
}

int cmd_queue(struct cli *cli, int argc, char **argv) {
    /* `sockmail queue` alone lists. */
    const char *action = "list";
    if (argc >= 2 && streq(argv[1], "help")) {
        cli_usage("queue", stdout);
        return SM_EXIT_OK;
    }
    if (argc >= 2 && argv[1][0] != '-') {
        action = argv[1];
        argc--;
        argv++;
    }
    struct queue_opts o = {0};
    int r = parse(argc, argv, &o);
    if (r >= 0) return r;
    r = cli_config(cli, false);
    if (r) return r;
    const char *queue = cli->cfg->queue;
    int rest = argc - optind;
    if (streq(action, "list")) {
        if (rest != 0 || o.message) return cli_usage_error("queue", "list takes only --json");
        return queue_list(queue, o.json);
    }
    if (streq(action, "show")) {
        if (rest != 1) return cli_usage_error("queue", "show needs one message id");
        if (o.json && o.message) return cli_usage_error("queue", "--json or --message, not both");
        return queue_show(queue, argv[optind], &o);
    }
    if (streq(action, "del")) {
        if (rest != 1 || o.json || o.message)
            return cli_usage_error("queue", "del needs one message id and no options");
        return queue_del(queue, argv[optind]);
    }
    return cli_usage_error("queue", "unknown action \"%s\" (list, show or del)", action);
}
