/* test-uidlist — dovecot-uidlist parsing, writing, syncing and locking. */
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <utime.h>

#include "macro.h"
#include "tap.h"
#include "uidlist.h"

static char tmpl[] = "/tmp/test-uidlist-XXXXXX";

static void put(const char *dir, const char *sub, const char *name, const char *body) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s/%s", dir, sub, name);
    FILE *f = fopen(p, "w");
    fputs(body, f);
    fclose(f);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void test_parse(void) {
    /* As Dovecot 2.3 writes it (a file from the lab, names shortened). */
    const char *t = "3 V1700000000 N4 G0123456789abcdef0123456789abcdef\n"
                    "1 :1700000001.M1P2.host,S=10,W=12\n"
                    "2 W33 M0000beef :1700000002.M5P2.host,S=30\n"
                    "3 :1700000003.M9P2.host\n";
    struct sm_uidlist *ul = NULL;
    is_int(sm_uidlist_parse(t, strlen(t), &ul), 0, "v3 parses");
    is_int(ul->version, 3, "version");
    is_int(ul->uidvalidity, 1700000000, "uidvalidity");
    is_int(ul->next_uid, 4, "next uid");
    is_str(ul->guid, "0123456789abcdef0123456789abcdef", "guid");
    is_int(ul->count, 3, "3 records");
    is_int(ul->recs[0].vsize, 12, "W from the name");
    is_int(ul->recs[1].vsize, 33, "W field");
    is_str(ul->recs[1].pop3_uidl, "0000beef", "M field");
    is_str(ul->recs[1].ext, "W33 M0000beef", "fields kept verbatim");
    ok(ul->recs[2].vsize == UINT64_MAX, "no size known");
    ok(sm_uidlist_find(ul, 2) == &ul->recs[1], "find 2");
    ok(sm_uidlist_find(ul, 4) == NULL, "find 4 none");
    char *out;
    size_t len;
    is_int(sm_uidlist_format(ul, &out, &len), 0, "format");
    is_str(out, t, "round trip is byte-exact");
    free(out);
    sm_uidlist_free(ul);

    /* The same fed in every prefix that ends at a line end still parses. */
    const char *v1 = "1 1234 7\n3 1234.abc\n6 1240.def:2,S\n";
    is_int(sm_uidlist_parse(v1, strlen(v1), &ul), 0, "v1 (Courier) parses");
    is_int(ul->uidvalidity, 1234, "v1 uidvalidity");
    is_int(ul->next_uid, 7, "v1 next");
    is_str(ul->recs[1].base, "1240.def:2,S", "v1 name");
    is_int(sm_uidlist_format(ul, &out, &len), 0, "v1 formats");
    is_str(out, "3 V1234 N7\n3 :1234.abc\n6 :1240.def:2,S\n", "written back as v3");
    free(out);
    sm_uidlist_free(ul);

    const char *hx = "3 V5 N2 Gab X1 Y2\n1 :a";
    is_int(sm_uidlist_parse(hx, strlen(hx), &ul), 0, "unknown header fields, no final LF");
    is_str(ul->hdr_ext, "X1 Y2", "header extras kept");
    sm_uidlist_free(ul);

    const char *n_low = "3 V5 N2\n5 :a\n";
    is_int(sm_uidlist_parse(n_low, strlen(n_low), &ul), 0, "uid >= N accepted");
    is_int(ul->next_uid, 6, "N raised past it");
    sm_uidlist_free(ul);

    static const char *bad[] = {
        "", "\n", "2 V1 N1\n", "3 N1\n", "3 V1\n", "3 Vx N1\n", "3 V1 N1\nx :a\n",
        "3 V1 N5\n0 :a\n", "3 V1 N5\n2 :a\n1 :b\n", "3 V1 N5\n1 :a\n1 :b\n",
        "3 V1 N5\n1 a\n", "3 V1 N5\n1 :\n", "3 V1 N5\n1 :a/b\n", "3 V1 N5\n1 :..\n",
        "3 V1 N5\n1 W1\n", "3 V99999999999 N1\n", "1 5\n", "3 V1 N5\n4294967295 :a\n",
        "3 V1 N5\n1  :a\n",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        ul = NULL;
        int r = sm_uidlist_parse(bad[i], strlen(bad[i]), &ul);
        ok(r == -EINVAL && !ul, "refused: %zu", i);
    }
    char nul[] = "3 V1 N5\n1 :a\0b\n";
    is_int(sm_uidlist_parse(nul, sizeof nul - 1, &ul), -EINVAL, "NUL in a name refused");
    char longname[400];
    memset(longname, 'a', sizeof longname);
    memcpy(longname, "3 V1 N5\n1 :", 11);
    is_int(sm_uidlist_parse(longname, sizeof longname, &ul), -EINVAL, "name > 255 refused");
}

static void test_names(void) {
    is_int(sm_uidlist_base_len("123.abc:2,S"), 7, "base up to :2,");
    is_int(sm_uidlist_base_len("123.abc"), 7, "no flags");
    is_int(sm_uidlist_name_vsize("1.M2.h,S=10,W=12:2,S"), 12, ",W= found");
    is_int(sm_uidlist_name_vsize("1.M2.h,W=12"), 12, ",W= at the end");
    ok(sm_uidlist_name_vsize("1.M2.h,S=10") == UINT64_MAX, "no ,W=");
    ok(sm_uidlist_name_vsize("1.M2.h,W=x") == UINT64_MAX, ",W= without digits");
    ok(sm_uidlist_name_vsize("1.M2.h:2,W=5") == UINT64_MAX, ",W= in the flags ignored");
}

static void test_sync(void) {
    char *dir = mkdtemp(tmpl);
    char p[PATH_MAX];
    for (const char *const *s = (const char *const[]){ "new", "cur", "tmp", NULL }; *s; s++) {
        snprintf(p, sizeof p, "%s/%s", dir, *s);
        mkdir(p, 0700);
    }
    struct sm_uidlist *ul = NULL;
    is_int(sm_uidlist_sync(dir, 5, &ul), 0, "empty maildir syncs");
    is_int(ul->count, 0, "no records");
    sm_uidlist_free(ul);
    snprintf(p, sizeof p, "%s/dovecot-uidlist", dir);
    ok(access(p, F_OK) < 0, "nothing written for an empty maildir");

    /* Order by the time in the name, not by name: 9 < 10 seconds, and
     * M5 < M40 microseconds. */
    put(dir, "new", "10.M5P1.h,S=3", "x\n\n");
    put(dir, "new", "9.M99P1.h,S=3", "a\n");
    put(dir, "cur", "10.M40P1.h,S=3,W=5:2,S", "b\n");
    put(dir, "new", "10.M5P0.h", "c\n");
    put(dir, "new", ".hidden", "x");
    time_t before = time(NULL);
    is_int(sm_uidlist_sync(dir, 5, &ul), 0, "sync numbers files");
    is_int(ul->count, 4, "4 records");
    is_str(ul->recs[0].path, "new/9.M99P1.h,S=3", "uid 1: oldest seconds");
    is_str(ul->recs[1].path, "new/10.M5P0.h", "uid 2: same usecs, name order");
    is_str(ul->recs[2].path, "new/10.M5P1.h,S=3", "uid 3");
    is_str(ul->recs[3].path, "cur/10.M40P1.h,S=3,W=5:2,S", "uid 4: later usecs");
    is_str(ul->recs[3].base, "10.M40P1.h,S=3,W=5", "base without flags");
    is_int(ul->recs[3].vsize, 5, "W from the name");
    is_int(ul->recs[3].uid, 4, "uids 1..4");
    ok(ul->uidvalidity >= before && ul->uidvalidity <= time(NULL), "uidvalidity is now");
    uint32_t uv = ul->uidvalidity;
    sm_uidlist_free(ul);
    char *text = slurp(p);
    ok(text && strncmp(text, "3 V", 3) == 0 && strstr(text, " N5 G"), "header written: %s", text);
    ok(text && strstr(text, "\n4 :10.M40P1.h,S=3,W=5\n"), "record written");
    snprintf(p, sizeof p, "%s/dovecot-uidlist.lock", dir);
    ok(access(p, F_OK) < 0, "lock gone");

    /* new -> cur with flags, one deleted, one delivered: UIDs stay. */
    char a[PATH_MAX], b[PATH_MAX];
    snprintf(a, sizeof a, "%s/new/10.M5P1.h,S=3", dir);
    snprintf(b, sizeof b, "%s/cur/10.M5P1.h,S=3:2,RS", dir);
    rename(a, b);
    snprintf(a, sizeof a, "%s/new/9.M99P1.h,S=3", dir);
    unlink(a);
    put(dir, "new", "5.M1P1.h", "old time, new file\n");
    is_int(sm_uidlist_sync(dir, 5, &ul), 0, "resync");
    is_int(ul->count, 4, "4 records again");
    is_int(ul->recs[0].uid, 2, "uid 1 gone");
    is_int(ul->recs[1].uid, 3, "uid 3 kept after the move");
    is_str(ul->recs[1].path, "cur/10.M5P1.h,S=3:2,RS", "found in cur");
    is_int(ul->recs[3].uid, 5, "new file gets N even with an older time");
    is_int(ul->uidvalidity, uv, "uidvalidity kept");
    is_int(ul->next_uid, 6, "N advanced");
    sm_uidlist_free(ul);

    /* A busy lock: timeout; a stale one (dead pid, our host): taken over. */
    int fd;
    is_int(sm_uidlist_lock(dir, 1, &fd), 0, "lock taken");
    int fd2;
    is_int(sm_uidlist_lock(dir, 1, &fd2), -ETIMEDOUT, "second lock times out");
    put(dir, "new", "20.M1P1.h", "z\n");
    is_int(sm_uidlist_sync(dir, 1, &ul), -ETIMEDOUT, "sync with new mail waits for the lock");
    sm_uidlist_unlock(dir, fd);
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
    char host[256], content[300];
    gethostname(host, sizeof host);
    snprintf(content, sizeof content, "%d:%s", (int)pid, host);
    put(dir, ".", "dovecot-uidlist.lock", content);
    is_int(sm_uidlist_sync(dir, 1, &ul), 0, "dead owner's lock taken over");
    is_int(ul->recs[ul->count - 1].uid, 6, "and the new file numbered");
    sm_uidlist_free(ul);
    snprintf(content, sizeof content, "1:%s", host); /* pid 1 lives */
    put(dir, ".", "dovecot-uidlist.lock", content);
    struct utimbuf old = { time(NULL) - 600, time(NULL) - 600 };
    utime(p, &old);
    is_int(sm_uidlist_lock(dir, 1, &fd), 0, "old lock taken over");
    sm_uidlist_unlock(dir, fd);

    /* A list with no change is not rewritten (readers need no lock). */
    struct stat st1, st2;
    snprintf(p, sizeof p, "%s/dovecot-uidlist", dir);
    stat(p, &st1);
    is_int(sm_uidlist_sync(dir, 1, &ul), 0, "sync again");
    sm_uidlist_free(ul);
    stat(p, &st2);
    ok(st1.st_ino == st2.st_ino, "unchanged list not rewritten");

    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) ok(0, "cleanup");
}

int main(void) {
    test_parse();
    test_names();
    test_sync();
    return tap_done();
}
