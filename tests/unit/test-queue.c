/* test-queue.c — the durable queue: xtext, envelope round trip and parser
 * edge cases, commit/open/mark/finish, locking, a "crash" after the commit
 * (the process state dropped, the files kept) picked up by the flush, and
 * the cleanup of bodies that were never committed. Everything happens in a
 * mkdtemp directory that is removed at the end. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "macro.h"
#include "queue.h"
#include "tap.h"

static char base[64];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st; (void)flag; (void)f;
    return remove(p);
}

static int count_dir(const char *q, const char *sub, const char *suffix) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", q, sub);
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] != '.' && l > strlen(suffix) && streq(e->d_name + l - strlen(suffix), suffix)) n++;
    }
    closedir(d);
    return n;
}

static void test_xtext(void) {
    _cleanup_free_ char *e = sm_xtext_encode("a b+c=d\xc3\xa9\t");
    is_str(e, "a+20b+2Bc+3Dd+C3+A9+09", "xtext encodes space, + = UTF-8 and TAB");
    char *d = NULL;
    is_int(sm_xtext_decode(e, strlen(e), &d), 0, "xtext decodes");
    is_str(d, "a b+c=d\xc3\xa9\t", "xtext round trip");
    free(d);
    d = NULL;
    is_int(sm_xtext_decode("", 0, &d), 0, "empty decodes");
    is_str(d, "", "to empty");
    free(d);
    const char *bad[] = { "+", "+4", "+4G", "a=b", "a b", "+00", "x\x7f" };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        d = NULL;
        is_int(sm_xtext_decode(bad[i], strlen(bad[i]), &d), -EINVAL, bad[i]);
        ok(d == NULL, "nothing returned for bad xtext");
    }
    /* Truncated in every position: never reads past LEN. */
    const char *good = "ab+2Bcd";
    for (size_t n = 0; n <= strlen(good); n++) {
        d = NULL;
        int r = sm_xtext_decode(good, n, &d);
        ok(r == 0 || r == -EINVAL, "prefix %zu decodes or is refused", n);
        free(d);
    }
}

static struct sm_queue_env sample(const char *id) {
    static struct sm_queue_rcpt rc[3];
    rc[0] = (struct sm_queue_rcpt){ .dest = "alice@example.com", .rcpt = "all@example.com",
                                    .notify = "SUCCESS,FAILURE", .orcpt = "rfc822;all+40example.com",
                                    .local = true, .state = 'P' };
    rc[1] = (struct sm_queue_rcpt){ .dest = "bob@example.com", .rcpt = "all@example.com",
                                    .local = true, .state = 'P' };
    rc[2] = (struct sm_queue_rcpt){ .dest = "x y@remote.example", .rcpt = "fwd@example.com",
                                    .local = false, .state = 'P' };
    struct sm_queue_env env = {
        .received = 1700000000, .sender = "j\xc3\xb6rg@example.org", .smtputf8 = true,
        .body = "8BITMIME", .ret = "HDRS", .envid = "id+2B1", .auth = NULL,
        .head = "Received: from x (1.2.3.4)\n\tby y; date\n", .rcpts = rc, .n_rcpts = 3,
    };
    snprintf(env.id, sizeof env.id, "%s", id);
    return env;
}

static int write_body(int fd, const char *text) {
    return write(fd, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -1;
}

struct calls {
    int n;
    int fail_for_bob;   /* errno to return for bob, 0: succeed */
    char seen[8][64];
};

static int cb(struct sm_queue_msg *m, size_t i, void *userdata) {
    struct calls *c = userdata;
    const char *dest = m->env.rcpts[i].dest;
    if (c->n < 8) snprintf(c->seen[c->n], sizeof c->seen[0], "%s", dest);
    c->n++;
    char buf[64] = "";
    ssize_t n = pread(m->body_fd, buf, sizeof buf - 1, 0);
    ok(n == 6 && streq(buf, "hello\n"), "callback reads the body (%zd)", n);
    if (streq(dest, "bob@example.com") && c->fail_for_bob) return -c->fail_for_bob;
    return 0;
}

static bool perm(int err) { return err == -EINVAL; }

static void test_commit_and_crash(void) {
    char q[128];
    snprintf(q, sizeof q, "%s/q1", base);
    char id[40];
    int fd = -1;
    is_int(sm_queue_body_new(q, id, &fd), 0, "body_new");
    ok(fd >= 0 && strlen(id) > 10, "id %s", id);
    is_int(count_dir(q, "msg", ".body"), 1, "body exists before commit");
    is_int(write_body(fd, "hello\n"), 0, "body written");

    struct sm_queue_env env = sample(id);
    struct sm_queue_msg *m = NULL;
    is_int(sm_queue_commit(q, fd, &env, &m), 0, "commit");
    is_int(count_dir(q, "msg", ".env"), 1, "envelope committed");
    is_int(count_dir(q, "tmp", ".env"), 0, "nothing left in tmp/");
    is_int((int)m->body_size, 6, "body size");

    /* Someone else cannot take it while we hold it. */
    struct sm_queue_msg *other = NULL;
    is_int(sm_queue_open(q, id, &other), -EWOULDBLOCK, "locked against a second opener");

    /* Bob fails temporarily: alice D, bob stays P, the remote stays P. */
    struct calls c = { .fail_for_bob = ENOSPC };
    is_int(sm_queue_deliver_local(m, cb, perm, &c), 1, "one local pending");
    is_int(c.n, 2, "two local callbacks");
    is_int(sm_queue_finish(m), 0, "not finished");
    /* "Crash": the process state is dropped, the files stay. */
    sm_queue_msg_free(m);

    is_int(sm_queue_open(q, id, &m), 0, "reopened after the crash");
    is_int(m->env.n_rcpts, 3, "three destinations");
    is_int(m->env.rcpts[0].state, 'D', "alice done on disk");
    is_int(m->env.rcpts[1].state, 'P', "bob pending on disk");
    is_int(m->env.rcpts[2].state, 'P', "remote pending");
    ok(!m->env.rcpts[2].local, "remote is remote");
    is_str(m->env.sender, "j\xc3\xb6rg@example.org", "sender round trip");
    is_str(m->env.head, "Received: from x (1.2.3.4)\n\tby y; date\n", "head round trip");
    is_str(m->env.rcpts[0].orcpt, "rfc822;all+40example.com", "orcpt round trip");
    is_str(m->env.rcpts[0].notify, "SUCCESS,FAILURE", "notify round trip");
    ok(m->env.rcpts[1].notify == NULL, "absent notify is NULL");
    ok(m->env.auth == NULL, "absent auth is NULL");
    is_str(m->env.rcpts[2].dest, "x y@remote.example", "dest with a space");
    is_str(m->env.ret, "HDRS", "ret");
    is_str(m->env.envid, "id+2B1", "envid");
    ok(m->env.smtputf8, "smtputf8");
    is_int((long long)m->env.received, 1700000000, "received");
    sm_queue_msg_free(m);

    /* The flush delivers only bob (alice is not stored twice). */
    c = (struct calls){0};
    unsigned msgs = 99, pend = 99;
    is_int(sm_queue_flush_local(q, cb, perm, &c, &msgs, &pend), 0, "flush");
    is_int(c.n, 1, "one delivery in the flush");
    is_str(c.seen[0], "bob@example.com", "bob only");
    is_int(msgs, 1, "one message seen");
    is_int(pend, 0, "nothing local pending");
    /* The remote recipient keeps the message queued. */
    is_int(count_dir(q, "msg", ".env"), 1, "still queued for the remote");
    c = (struct calls){0};
    is_int(sm_queue_flush_local(q, cb, perm, &c, NULL, NULL), 0, "second flush");
    is_int(c.n, 0, "nothing delivered again");

    /* Mark the remote done by hand: then it finishes. */
    is_int(sm_queue_open(q, id, &m), 0, "open for the outbound side");
    is_int(sm_queue_mark(m, 2, 'D'), 0, "mark remote done");
    is_int(sm_queue_mark(m, 7, 'D'), -EINVAL, "mark out of range");
    is_int(sm_queue_finish(m), 1, "finished");
    sm_queue_msg_free(m);
    is_int(count_dir(q, "msg", ""), 0, "both files gone");
    is_int(sm_queue_open(q, id, &m), -ENOENT, "gone");
}

static void test_permanent_and_all_local(void) {
    char q[128];
    snprintf(q, sizeof q, "%s/q2", base);
    char id[40];
    int fd;
    is_int(sm_queue_body_new(q, id, &fd), 0, "body_new");
    write_body(fd, "hello\n");
    struct sm_queue_env env = sample(id);
    env.n_rcpts = 2;  /* local only */
    struct sm_queue_msg *m = NULL;
    is_int(sm_queue_commit(q, fd, &env, &m), 0, "commit");
    struct calls c = { .fail_for_bob = EINVAL };
    is_int(sm_queue_deliver_local(m, cb, perm, &c), 0, "permanent failure is not pending");
    is_int(m->env.rcpts[1].state, 'F', "bob failed for good");
    is_int(sm_queue_finish(m), 1, "finished");
    sm_queue_msg_free(m);
    is_int(count_dir(q, "msg", ""), 0, "nothing left");
}

static void test_orphans_and_abort(void) {
    char q[128];
    snprintf(q, sizeof q, "%s/q3", base);
    char id[40], id2[40];
    int fd, fd2;
    is_int(sm_queue_body_new(q, id, &fd), 0, "body_new");
    close(fd);
    sm_queue_body_abort(q, id);
    is_int(count_dir(q, "msg", ".body"), 0, "abort removes the body");

    is_int(sm_queue_body_new(q, id, &fd), 0, "orphan body");
    close(fd);
    is_int(sm_queue_body_new(q, id2, &fd2), 0, "young body");
    close(fd2);
    ok(!streq(id, id2), "ids differ");
    char path[256];
    snprintf(path, sizeof path, "%s/msg/%s.body", q, id);
    struct timeval old[2] = { { time(NULL) - 2 * 86400, 0 }, { time(NULL) - 2 * 86400, 0 } };
    is_int(utimes(path, old), 0, "age the orphan");
    snprintf(path, sizeof path, "%s/tmp/%s.env", q, id);
    int t = open(path, O_CREAT | O_WRONLY, 0600);
    close(t);
    utimes(path, old);
    struct calls c = {0};
    is_int(sm_queue_flush_local(q, cb, perm, &c, NULL, NULL), 0, "flush");
    is_int(count_dir(q, "msg", ".body"), 1, "old orphan removed, young body kept");
    is_int(count_dir(q, "tmp", ".env"), 0, "old tmp envelope removed");
    is_int(c.n, 0, "no delivery for orphans");
}

static void test_parser(void) {
    const char *bad[] = {
        "",
        "sockmail-queue 2\nid=1.2 received=1 from= smtputf8=0 body=\n\nhead=\n",
        "sockmail-queue 1\n",
        "sockmail-queue 1\nid=1.2 received=1 from= smtputf8=0 body=\nret= envid= auth=\n",
        "sockmail-queue 1\nid=../x received=1 from= smtputf8=0 body=\nret= envid= auth=\nhead=\n",
        "sockmail-queue 1\nid=1.2 received=1 from= smtputf8=0 body=\nret= envid= auth=\nhead=\nr X L dest=a rcpt=b notify= orcpt=\n",
        "sockmail-queue 1\nid=1.2 received=1 from= smtputf8=0 body=\nret= envid= auth=\nhead=\nr P Q dest=a rcpt=b notify= orcpt=\n",
        "sockmail-queue 1\nid=1.2 received=1 from= smtputf8=0 body=\nret= envid= auth=\nhead=\nr P L rcpt=b notify= orcpt=\n",
        "sockmail-queue 1\nid=1.2 received=1 from= smtputf8=0 body=\nret= envid= auth=\nhead=\nr P L dest=a+ZZ rcpt=b\n",
        "sockmail-queue 1\nid=1.2 received=1 from= smtputf8=0 body=\nret= envid= auth=\nhead=\nr\n",
        "sockmail-queue 1\nid=1.2 received=1 from= smtputf8=0 body=\nret= envid= auth=\nhead=",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        _cleanup_free_ char *t = strdup(bad[i]);
        struct sm_queue_env env;
        int r = sm_queue_env_parse(t, strlen(t), &env);
        ok(r < 0, "bad envelope %zu refused (%d)", i, r);
        sm_queue_env_clear(&env);
    }
    _cleanup_free_ char *t = strdup(
        "sockmail-queue 1\nid=1.2 received=5 from= smtputf8=0 body=\nret= envid= auth=\nhead=\n"
        "r P L dest=a@b rcpt=a@b notify= orcpt=\n");
    struct sm_queue_env env;
    is_int(sm_queue_env_parse(t, strlen(t), &env), 0, "minimal envelope");
    is_str(env.sender, "", "null sender");
    is_int(env.n_rcpts, 1, "one rcpt");
    sm_queue_env_clear(&env);
}

/* What `sockmail queue` uses: ids sorted, peek without the lock, drop
 * under it, and ids that could leave the queue directory refused. */
static void test_ids_peek_drop(void) {
    char q[128];
    snprintf(q, sizeof q, "%s/q5", base);
    char **ids = NULL;
    size_t n = 99;
    is_int(sm_queue_ids(q, &ids, &n), 0, "ids of a queue not made yet");
    ok(n == 0 && !ids, "none");

    char made[3][40];
    for (int k = 0; k < 3; k++) {
        int fd = -1;
        ok(sm_queue_body_new(q, made[k], &fd) == 0, "body_new %d", k);
        ok(write_body(fd, "hello\n") == 0, "body %d written", k);
        struct sm_queue_env env = sample(made[k]);
        struct sm_queue_msg *m = NULL;
        ok(sm_queue_commit(q, fd, &env, &m) == 0, "commit %d", k);
        sm_queue_msg_free(m);
    }
    int fd = -1;
    char uncommitted[40];
    is_int(sm_queue_body_new(q, uncommitted, &fd), 0, "a body without envelope");
    close(fd);

    is_int(sm_queue_ids(q, &ids, &n), 0, "ids");
    is_int((int)n, 3, "only committed messages are listed");
    ok(n == 3 && strcmp(ids[0], ids[1]) < 0 && strcmp(ids[1], ids[2]) < 0, "sorted");
    ok(n == 3 && streq(ids[0], made[0]) && streq(ids[2], made[2]), "oldest first");
    sm_queue_ids_free(ids, n);

    struct sm_queue_msg *held = NULL, *peeked = NULL, *other = NULL;
    is_int(sm_queue_open(q, made[1], &held), 0, "open locks");
    is_int(sm_queue_peek(q, made[1], &peeked), 0, "peek works while it is locked");
    ok(peeked && peeked->env.n_rcpts == 3 && peeked->body_size == 6, "peek reads the envelope");
    sm_queue_msg_free(peeked);
    is_int(sm_queue_drop(held), 0, "drop");
    sm_queue_msg_free(held);
    is_int(sm_queue_peek(q, made[1], &other), -ENOENT, "dropped: gone");
    is_int(count_dir(q, "msg", ".env"), 2, "two envelopes left");

    const char *bad[] = { "", "../q1/x", "a/b", ".hidden", "0123456789012345678901234567890123456789" };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        ok(sm_queue_peek(q, bad[k], &other) == -EINVAL, "peek refuses id \"%s\"", bad[k]);
        ok(sm_queue_open(q, bad[k], &other) == -EINVAL, "open refuses id \"%s\"", bad[k]);
    }
}

int main(void) {
    snprintf(base, sizeof base, "/tmp/test-queue.XXXXXX");
    if (!mkdtemp(base)) return 1;
    test_xtext();
    test_commit_and_crash();
    test_permanent_and_all_local();
    test_orphans_and_abort();
    test_parser();
    test_ids_peek_drop();
    nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return tap_done();
}
