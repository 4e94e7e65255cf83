/* test-config.c — the configuration file parser and loader. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "tap.h"

static char tmpdir[] = "/tmp/test-config-XXXXXX";

/* Writes LEN bytes of TEXT (0: strlen). */
static void write_file(const char *path, const char *text, size_t len) {
    if (!len) len = strlen(text);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
        printf("Bail out! cannot write %s\n", path);
        exit(1);
    }
    close(fd);
}

static char *path_in(const char *name) {
    char *p;
    if (asprintf(&p, "%s/%s", tmpdir, name) < 0) exit(1);
    return p;
}

/* Parses TEXT; returns the config or NULL with the error in ERR. */
static struct sm_config *parse(const char *text, char *err, size_t errlen) {
    struct sm_config *c = NULL;
    err[0] = 0;
    if (sm_config_parse("test.conf", text, strlen(text), &c, err, errlen) < 0) return NULL;
    return c;
}

/* Expects TEXT to fail with an error that contains every one of the
 * NULL-terminated fragments. */
static void fails_with(const char *what, const char *text, size_t len, ...) {
    struct sm_config *c = NULL;
    char err[512] = "";
    int r = sm_config_parse("test.conf", text, len ? len : strlen(text), &c, err, sizeof err);
    bool all = r < 0 && c == NULL;
    va_list ap;
    va_start(ap, len);
    for (const char *frag; (frag = va_arg(ap, const char *));)
        if (!strstr(err, frag)) all = false;
    va_end(ap);
    if (!ok(all, "%s refused", what)) printf("#   r=%d err=\"%s\"\n", r, err);
    sm_config_free(c);
}

static void test_defaults(void) {
    struct sm_config *c = sm_config_defaults();
    ok(c != NULL, "defaults");
    is_str(c->mail_location, "/var/mail/vhosts/%d/%n", "default mail_location");
    is_str(c->hostname, "", "default hostname empty");
    is_str(c->log, "auto", "default log");
    is_str(c->log_level, "info", "default log_level");
    is_str(c->db_hosts, "/run/mysqld/mysqld.sock", "default database hosts");
    is_str(c->db_name, "mailserver", "default database name");
    is_str(c->db_auth_password, "", "default secret is empty");
    is_int(c->db_connect_timeout, 5, "default connect_timeout");
    is_int(c->alias_max_depth, 10, "default alias_max_depth");
    is_str(c->recipient_delimiter, "", "default recipient_delimiter");
    is_int(c->lmtp.max_line, 4096, "default lmtp max_line");
    is_int(c->lmtp.max_message_size, 64 << 20, "default lmtp max_message_size 64M");
    is_int(c->lmtp.max_recipients, 1000, "default lmtp max_recipients");
    ok(c->source == NULL, "defaults have no source file");
    sm_config_free(c);

    char err[256];
    c = parse("", err, sizeof err);
    ok(c != NULL, "empty text parses");
    if (c) {
        is_str(c->source, "test.conf", "source is the name given");
        is_int(c->db_read_timeout, 10, "empty text keeps defaults");
    }
    sm_config_free(c);
    sm_config_free(NULL);
}

static void test_values(void) {
    char err[512];
    struct sm_config *c = parse(
        "# a comment\n"
        "; another comment\n"
        "   # indented comment\n"
        "\n"
        "   \t\n"
        "[general]\n"
        "hostname=mx.example.org\n"
        "  mail_location   =   /srv/mail/%d/%n   \n"
        "\tlog\t=\tsyslog\t\n"
        "log_level = debug\n"
        "[database]\n"
        "hosts = db1:3306,db2\n"
        "connect_timeout = 1\n"
        "read_timeout = 600\n"
        "query_user = SELECT a = b FROM t WHERE x = :address\n"
        "auth_password = inline\n"
        "[delivery]\n"
        "recipient_delimiter = +\n"
        "alias_max_expansion = 100000\n"
        "[lmtp]\n"
        "max_line = 1K\n"
        "max_message_size = 10m\n"
        "timeout_data = 86400\n"
        "[general]\n"
        "log_level = warning\n",
        err, sizeof err);
    if (!ok(c != NULL, "a full file parses")) {
        printf("#   %s\n", err);
        return;
    }
    is_str(c->hostname, "mx.example.org", "no spaces around =");
    is_str(c->mail_location, "/srv/mail/%d/%n", "spaces trimmed");
    is_str(c->log, "syslog", "tabs trimmed");
    is_str(c->log_level, "warning", "a section may come back; the last value wins");
    is_str(c->db_hosts, "db1:3306,db2", "database hosts");
    is_int(c->db_connect_timeout, 1, "number at its minimum");
    is_int(c->db_read_timeout, 600, "number at its maximum");
    is_str(c->query_user, "SELECT a = b FROM t WHERE x = :address", "value split at the first =");
    is_str(c->db_auth_password, "inline", "inline secret");
    is_str(c->recipient_delimiter, "+", "one-character value");
    is_int(c->alias_max_expansion, 100000, "large number");
    is_int(c->lmtp.max_line, 1024, "size with K");
    is_int(c->lmtp.max_message_size, 10 << 20, "size with lower-case m");
    is_int(c->lmtp.timeout_data, 86400, "timeout at its maximum");
    sm_config_free(c);

    c = parse("[lmtp]\nmax_message_size = 1G\n", err, sizeof err);
    ok(c && c->lmtp.max_message_size == (uint64_t)1 << 30, "size with G");
    sm_config_free(c);
    c = parse("[lmtp]\nmax_message_size = 1T\n", err, sizeof err);
    ok(c && c->lmtp.max_message_size == (uint64_t)1 << 40, "size with T at the maximum");
    sm_config_free(c);
    c = parse("[lmtp]\nmax_message_size = 1024\n", err, sizeof err);
    ok(c && c->lmtp.max_message_size == 1024, "plain size at the minimum");
    sm_config_free(c);
    c = parse("[general]\nhostname =\n", err, sizeof err);
    ok(c && strcmp(c->hostname, "") == 0, "empty value");
    sm_config_free(c);
    c = parse("[general]\nhostname = a # not a comment\n", err, sizeof err);
    ok(c && strcmp(c->hostname, "a # not a comment") == 0, "# inside a value is part of it");
    sm_config_free(c);
}

static void test_bools(void) {
    char err[256];
    struct sm_config *c = sm_config_defaults();
    ok(c && !c->auth_allow_plaintext && c->smtp_mx_starttls, "boolean defaults (no, yes)");
    sm_config_free(c);
    static const char *yes[] = { "yes", "YES", "true", "on", "1" }, *no[] = { "no", "False", "off", "0" };
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        char text[128];
        snprintf(text, sizeof text, "[auth]\nallow_plaintext = %s\n", yes[i]);
        c = parse(text, err, sizeof err);
        ok(c && c->auth_allow_plaintext, "boolean %s", yes[i]);
        sm_config_free(c);
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        char text[128];
        snprintf(text, sizeof text, "[smtp]\nmx_starttls = %s\n", no[i]);
        c = parse(text, err, sizeof err);
        ok(c && !c->smtp_mx_starttls, "boolean %s", no[i]);
        sm_config_free(c);
    }
    fails_with("bad boolean", "[auth]\nallow_plaintext = maybe\n", 0, "test.conf:2:", "maybe", NULL);
    fails_with("empty boolean", "[auth]\nallow_plaintext =\n", 0, "test.conf:2:", NULL);
}

static void test_bad_values(void) {
    fails_with("number below minimum", "[database]\nconnect_timeout = 0\n", 0, "test.conf:2:", "connect_timeout", NULL);
    fails_with("number above maximum", "[database]\nconnect_timeout = 601\n", 0, "test.conf:2:", "601", NULL);
    fails_with("negative number", "[database]\nconnect_timeout = -1\n", 0, "test.conf:2:", NULL);
    fails_with("signed number", "[database]\nconnect_timeout = +5\n", 0, "test.conf:2:", NULL);
    fails_with("number with junk", "[database]\nconnect_timeout = 5s\n", 0, "test.conf:2:", NULL);
    fails_with("number with a size suffix", "[database]\nconnect_timeout = 1K\n", 0, "test.conf:2:", NULL);
    fails_with("empty number", "[database]\nconnect_timeout =\n", 0, "test.conf:2:", NULL);
    fails_with("hex number", "[database]\nconnect_timeout = 0x10\n", 0, "test.conf:2:", NULL);
    fails_with("number overflowing 64 bits", "[lmtp]\nmax_recipients = 99999999999999999999\n", 0,
               "test.conf:2:", NULL);
    fails_with("size overflowing with its suffix", "[lmtp]\nmax_message_size = 17179869184T\n", 0,
               "test.conf:2:", NULL);
    fails_with("size above maximum", "[lmtp]\nmax_message_size = 2T\n", 0, "test.conf:2:", NULL);
    fails_with("size below minimum", "[lmtp]\nmax_line = 511\n", 0, "test.conf:2:", NULL);
    fails_with("unknown size suffix", "[lmtp]\nmax_line = 4P\n", 0, "test.conf:2:", NULL);
    fails_with("size with two suffixes", "[lmtp]\nmax_line = 4KK\n", 0, "test.conf:2:", NULL);
    fails_with("size with a space before the suffix", "[lmtp]\nmax_line = 4 K\n", 0, "test.conf:2:", NULL);
}

static void test_syntax_errors(void) {
    fails_with("unknown key", "[general]\n\nnosuchkey = 1\n", 0, "test.conf:3:", "nosuchkey", NULL);
    fails_with("unknown section", "# x\n[nosuch]\n", 0, "test.conf:2:", "nosuch", NULL);
    fails_with("key in the wrong section", "[lmtp]\nhostname = x\n", 0, "test.conf:2:", "hostname", NULL);
    fails_with("key outside a section", "hostname = x\n", 0, "test.conf:1:", "outside", NULL);
    fails_with("missing =", "[general]\nhostname x\n", 0, "test.conf:2:", "key = value", NULL);
    fails_with("empty section name", "[]\n", 0, "test.conf:1:", NULL);
    fails_with("unterminated section", "[general\n", 0, "test.conf:1:", NULL);
    fails_with("text after section", "[general] x\n", 0, "test.conf:1:", NULL);
    fails_with("empty key", "[general]\n = x\n", 0, "test.conf:2:", NULL);
    fails_with("section name too long",
               "[aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n", 0,
               "test.conf:1:", NULL);
    fails_with("NUL in a line", "[general]\nhostname = a\0b\n", 24, "test.conf:2:", "NUL", NULL);
    fails_with("NUL in a comment", "# a\0b\n", 6, "test.conf:1:", "NUL", NULL);
    fails_with("error on line 4 of a CRLF file", "[general]\r\n\r\n# c\r\nbogus = 1\r\n", 0, "test.conf:4:",
               NULL);

    /* a line of 8191 bytes is fine, 8192 is not */
    size_t n = 8191;
    char *long_line = malloc(32 + n + 2);
    if (!long_line) exit(1);
    int h = sprintf(long_line, "[general]\n");
    memcpy(long_line + h, "hostname = ", 11);
    memset(long_line + h + 11, 'a', n - 11);
    long_line[h + n] = '\n';
    long_line[h + n + 1] = 0;
    struct sm_config *c = NULL;
    char err[256];
    is_int(sm_config_parse("t", long_line, strlen(long_line), &c, err, sizeof err), 0, "8191-byte line accepted");
    ok(c && strlen(c->hostname) == n - 11, "its value kept whole");
    sm_config_free(c);
    c = NULL;
    long_line[h + n] = 'a';
    long_line[h + n + 1] = '\n';
    is_int(sm_config_parse("t", long_line, (size_t)h + n + 2, &c, err, sizeof err), -1, "8192-byte line refused");
    ok(strstr(err, "t:2:") && strstr(err, "too long"), "says line too long: %s", err);
    free(long_line);

    /* err may be small or NULL */
    char tiny[8];
    c = NULL;
    is_int(sm_config_parse("test.conf", "bogus\n", 6, &c, tiny, sizeof tiny), -1, "small err buffer");
    is_int((long long)strlen(tiny), 7, "error cut to the buffer");
    is_int(sm_config_parse("test.conf", "bogus\n", 6, &c, NULL, 0), -1, "NULL err buffer");
}

static void test_crlf(void) {
    char err[256];
    struct sm_config *c = parse("[general]\r\nhostname = mx.example\r\n# c\r\n\r\n[lmtp]\r\nmax_line = 2K\r\n", err,
                                sizeof err);
    if (!ok(c != NULL, "CRLF file parses")) printf("#   %s\n", err);
    if (c) {
        is_str(c->hostname, "mx.example", "CR not part of the value");
        is_int(c->lmtp.max_line, 2048, "CR not part of a number");
    }
    sm_config_free(c);
    c = parse("[general]\nhostname = no-final-newline", err, sizeof err);
    ok(c && strcmp(c->hostname, "no-final-newline") == 0, "last line without newline");
    sm_config_free(c);
}

/* The secret NAME of C, or NULL with ERR set. */
static char *secret(const struct sm_config *c, const char *name, char *err, size_t len) {
    char *v = NULL;
    err[0] = 0;
    if (!c || sm_config_secret(c, name, &v, err, len) < 0) return NULL;
    return v;
}

static void is_secret(const struct sm_config *c, const char *name, const char *want, const char *what) {
    char err[512];
    char *v = secret(c, name, err, sizeof err);
    is_str(v, want, what);
    if (!v) printf("#   %s\n", err);
    free(v);
}

static void test_secret_files(void) {
    char *pw = path_in("pw"), *pw_crlf = path_in("pw-crlf"), *pw_two = path_in("pw-two"),
         *pw_big = path_in("pw-big"), *missing = path_in("missing");
    write_file(pw, "s3cret\n", 0);
    write_file(pw_crlf, "s3cret\r\n", 0);
    write_file(pw_two, "s3cret\n\n", 0);
    char big[2000];
    memset(big, 'x', sizeof big);
    write_file(pw_big, big, sizeof big);

    char text[1024], err[512];
    snprintf(text, sizeof text, "[database]\nlookup_password_file = %s\nauth_password_file=%s\n", pw, pw_crlf);
    struct sm_config *c = parse(text, err, sizeof err);
    if (!ok(c != NULL, "password file keys parse")) printf("#   %s\n", err);
    ok(c && c->db_lookup_password[0] == 0, "secrets are not read while parsing");
    is_secret(c, "lookup_password", "s3cret", "trailing newline stripped");
    is_secret(c, "auth_password", "s3cret", "trailing CRLF stripped");
    is_secret(c, "admin_password", "", "other secrets empty");
    ok(c && sm_config_secret(c, "hostname", &(char *){NULL}, err, sizeof err) == -EINVAL, "not a secret: refused");
    sm_config_free(c);

    snprintf(text, sizeof text, "[database]\nlookup_password_file = %s\n", pw_two);
    c = parse(text, err, sizeof err);
    is_secret(c, "lookup_password", "s3cret\n", "only one trailing newline stripped");
    sm_config_free(c);

    snprintf(text, sizeof text, "[database]\nlookup_password = inline\nlookup_password_file = %s\n", pw);
    c = parse(text, err, sizeof err);
    is_secret(c, "lookup_password", "s3cret", "_file wins over an inline value");
    sm_config_free(c);

    /* A missing or bad file of another account does not stop loading: the
     * program that needs that account gets the error when it asks. */
    snprintf(text, sizeof text, "[database]\n\nadmin_password_file = %s\nlookup_password = ok\n", missing);
    c = parse(text, err, sizeof err);
    ok(c != NULL, "unreadable secret of another account: config still loads");
    is_secret(c, "lookup_password", "ok", "the account in use is unaffected");
    char *v = secret(c, "admin_password", err, sizeof err);
    ok(!v && strstr(err, "admin_password_file") && strstr(err, "missing"), "missing password file: %s", err);
    sm_config_free(c);
    snprintf(text, sizeof text, "[database]\nadmin_password_file = %s\n", pw_big);
    c = parse(text, err, sizeof err);
    ok(c && !secret(c, "admin_password", err, sizeof err), "oversized password file refused: %s", err);
    sm_config_free(c);
    snprintf(text, sizeof text, "[database]\nadmin_password_file = %s\n", tmpdir);
    c = parse(text, err, sizeof err);
    ok(c && !secret(c, "admin_password", err, sizeof err), "directory as password file refused: %s", err);
    sm_config_free(c);
    char *fifo = path_in("pw-fifo");
    if (mkfifo(fifo, 0600) == 0) {
        snprintf(text, sizeof text, "[database]\nadmin_password_file = %s\n", fifo);
        c = parse(text, err, sizeof err);
        ok(c && !secret(c, "admin_password", err, sizeof err), "a FIFO as password file is refused, not waited on: %s", err);
        sm_config_free(c);
        unlink(fifo);
    } else {
        ok(0, "mkfifo failed");
    }
    free(fifo);
    c = parse("[database]\nadmin_password_file =\n", err, sizeof err);
    is_secret(c, "admin_password", "", "empty _file is no file");
    sm_config_free(c);

    /* the secret is never printed by sm_config_dump */
    c = parse("[database]\nlookup_password = s3cret\n", err, sizeof err);
    char *dump = NULL;
    size_t dlen = 0;
    FILE *f = open_memstream(&dump, &dlen);
    sm_config_dump(c, f);
    fclose(f);
    ok(dump && !strstr(dump, "s3cret") && strstr(dump, "lookup_password = (set)"), "dump hides secrets");
    free(dump);
    sm_config_free(c);

    free(pw), free(pw_crlf), free(pw_two), free(pw_big), free(missing);
}

static void test_credentials(void) {
    char *cred = path_in("creds");
    mkdir(cred, 0700);
    char *auth = NULL, *lookup = NULL;
    if (asprintf(&auth, "%s/db-auth-password", cred) < 0 || asprintf(&lookup, "%s/db-lookup-password", cred) < 0)
        exit(1);
    write_file(auth, "from-cred\n", 0);
    write_file(lookup, "lookup-cred", 0);
    setenv("CREDENTIALS_DIRECTORY", cred, 1);

    char err[512];
    struct sm_config *c = parse("[database]\nlookup_password = inline\n", err, sizeof err);
    if (!ok(c != NULL, "parse with $CREDENTIALS_DIRECTORY")) printf("#   %s\n", err);
    is_secret(c, "auth_password", "from-cred", "credential picked up, newline stripped");
    is_secret(c, "lookup_password", "inline", "an inline value wins over the credential");
    is_secret(c, "admin_password", "", "absent credential: still empty");
    sm_config_free(c);

    /* an unreadable credential is an error, not silently empty */
    unlink(auth);
    mkdir(auth, 0700);  /* a directory where the credential should be */
    c = parse("", err, sizeof err);
    ok(c && !secret(c, "auth_password", err, sizeof err) && strstr(err, "auth_password"),
       "credential that is a directory refused: %s", err);
    sm_config_free(c);
    rmdir(auth);

    setenv("CREDENTIALS_DIRECTORY", "", 1);
    c = parse("", err, sizeof err);
    is_secret(c, "lookup_password", "", "empty $CREDENTIALS_DIRECTORY ignored");
    sm_config_free(c);
    unsetenv("CREDENTIALS_DIRECTORY");
    unlink(lookup);
    rmdir(cred);
    free(auth), free(lookup), free(cred);
}

static void test_load(void) {
    char *file = path_in("sockmail.conf"), *other = path_in("other.conf"), *missing = path_in("nope.conf"),
         *crlf = path_in("crlf.conf"), *empty = path_in("empty.conf"), *bad = path_in("bad.conf");
    write_file(file, "[general]\nhostname = from-file\n", 0);
    write_file(other, "[general]\nhostname = from-env\n", 0);
    write_file(crlf, "[general]\r\nhostname = crlf\r\n", 0);
    int efd = open(empty, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    close(efd);
    write_file(bad, "[general]\n\nbogus = 1\n", 0);
    struct sm_config *c = NULL;
    char err[512];

    unsetenv("SOCKMAIL_CONFIG");
    is_int(sm_config_load(file, &c, err, sizeof err), 0, "load a file");
    ok(c && strcmp(c->hostname, "from-file") == 0 && strcmp(c->source, file) == 0, "its values and source");
    sm_config_free(c);
    c = NULL;

    setenv("SOCKMAIL_CONFIG", other, 1);
    is_int(sm_config_load(NULL, &c, err, sizeof err), 0, "NULL path: $SOCKMAIL_CONFIG");
    ok(c && strcmp(c->hostname, "from-env") == 0, "values from $SOCKMAIL_CONFIG");
    sm_config_free(c);
    c = NULL;
    is_int(sm_config_load("", &c, err, sizeof err), 0, "empty path: $SOCKMAIL_CONFIG");
    sm_config_free(c);
    c = NULL;
    is_int(sm_config_load(file, &c, err, sizeof err), 0, "an explicit path beats $SOCKMAIL_CONFIG");
    ok(c && strcmp(c->hostname, "from-file") == 0, "values from the explicit path");
    sm_config_free(c);
    c = NULL;

    setenv("SOCKMAIL_CONFIG", "", 1);
    int r = sm_config_load(NULL, &c, err, sizeof err);
    if (access(SM_DEFAULT_CONFIG, F_OK) < 0)
        ok(r == -1 && strstr(err, SM_DEFAULT_CONFIG), "empty $SOCKMAIL_CONFIG: the default path (%s)", err);
    else
        ok(strcmp(c ? c->source : err, SM_DEFAULT_CONFIG) == 0 || strstr(err, SM_DEFAULT_CONFIG),
           "empty $SOCKMAIL_CONFIG: the default path");
    sm_config_free(c);
    c = NULL;
    unsetenv("SOCKMAIL_CONFIG");

    is_int(sm_config_load(missing, &c, err, sizeof err), -1, "nonexistent file");
    ok(strstr(err, missing) != NULL, "error names the file: %s", err);
    is_int(sm_config_load(tmpdir, &c, err, sizeof err), -1, "a directory");
    ok(strstr(err, tmpdir) != NULL, "error names the directory: %s", err);
    is_int(sm_config_load("/dev/null", &c, err, sizeof err), -1, "a character device");
    is_int(sm_config_load(bad, &c, err, sizeof err), -1, "a file with an error");
    char want[600];
    snprintf(want, sizeof want, "%s:3:", bad);
    ok(strstr(err, want) != NULL, "error names file and line: %s", err);
    is_int(sm_config_load(crlf, &c, err, sizeof err), 0, "CRLF file loads");
    ok(c && strcmp(c->hostname, "crlf") == 0, "CRLF value");
    sm_config_free(c);
    c = NULL;
    is_int(sm_config_load(empty, &c, err, sizeof err), 0, "empty file loads");
    sm_config_free(c);
    c = NULL;

    /* a FIFO without a writer is refused, not waited on (checked in a
     * child that an alarm ends, so a regression cannot hang the suite) */
    char *fifo = path_in("fifo");
    ok(mkfifo(fifo, 0600) == 0, "made a FIFO");
    pid_t pid = fork();
    if (pid == 0) {
        alarm(5);
        struct sm_config *fc = NULL;
        char ferr[256];
        _exit(sm_config_load(fifo, &fc, ferr, sizeof ferr) == -1 ? 0 : 1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a FIFO is refused at once (status %d)", status);
    unlink(fifo);
    free(fifo);

    /* a file over 1 MiB is refused before it is read */
    char *huge = path_in("huge.conf");
    int fd = open(huge, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ok(fd >= 0 && ftruncate(fd, (1 << 20) + 1) == 0, "made a sparse 1 MiB + 1 file");
    close(fd);
    is_int(sm_config_load(huge, &c, err, sizeof err), -1, "file over 1 MiB refused");
    unlink(huge);

    unlink(file), unlink(other), unlink(crlf), unlink(empty), unlink(bad);
    free(file), free(other), free(missing), free(crlf), free(empty), free(bad), free(huge);
}

/* The dump of a config parses back to the same config. */
static void test_dump_roundtrip(void) {
    char err[512];
    struct sm_config *c = parse("[general]\nhostname = mx\n[lmtp]\nmax_line = 1K\n", err, sizeof err);
    char *d1 = NULL, *d2 = NULL;
    size_t l1 = 0, l2 = 0;
    FILE *f = open_memstream(&d1, &l1);
    sm_config_dump(c, f);
    fclose(f);
    struct sm_config *c2 = NULL;
    int r = sm_config_parse("dump", d1, l1, &c2, err, sizeof err);
    if (!ok(r == 0, "dump parses back")) printf("#   %s\n", err);
    f = open_memstream(&d2, &l2);
    if (c2) sm_config_dump(c2, f);
    fclose(f);
    ok(d1 && d2 && strcmp(d1, d2) == 0, "and dumps the same");
    sm_config_free(c), sm_config_free(c2);
    free(d1), free(d2);
}

/* etc/sockmail.conf parses, documents every key the parser knows, and
 * each commented-out key in it is a real key of its section. */
static void test_shipped_file(void) {
    const char *root = getenv("SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/etc/sockmail.conf", root ? root : ".");
    if (access(path, F_OK) < 0) {
        ok(0, "etc/sockmail.conf missing (%s)", path);
        return;
    }
    struct sm_config *c = NULL;
    char err[512];
    unsetenv("CREDENTIALS_DIRECTORY");
    int r = sm_config_load(path, &c, err, sizeof err);
    if (!ok(r == 0, "etc/sockmail.conf parses")) printf("#   %s\n", err);

    /* read it whole for the checks below */
    FILE *f = fopen(path, "re");
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = f ? getdelim(&text, &cap, 0, f) : -1;
    if (f) fclose(f);
    ok(n > 0, "read etc/sockmail.conf");
    if (n <= 0) {
        sm_config_free(c);
        free(text);
        return;
    }

    /* commented-out keys: "# key = ..." under a [section] */
    char section[64] = "";
    size_t checked = 0, wrong = 0;
    char *pw = path_in("dummy-secret");
    write_file(pw, "x\n", 0);
    char *save = NULL;
    char *copy = strdup(text);
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char key[128];
        if (sscanf(line, "[%63[^]]]", section) == 1) continue;
        /* exactly "#", spaces, a key, spaces, "=": not prose that contains "=" */
        if (line[0] != '#') continue;
        const char *q = line + 1;
        while (*q == ' ' || *q == '\t') q++;
        size_t kn = strspn(q, "abcdefghijklmnopqrstuvwxyz0123456789_");
        if (!kn || kn >= sizeof key) continue;
        memcpy(key, q, kn);
        key[kn] = 0;
        q += kn;
        while (*q == ' ' || *q == '\t') q++;
        if (*q != '=') continue;
        char snippet[512];
        size_t kl = strlen(key);
        bool is_file = kl > 5 && strcmp(key + kl - 5, "_file") == 0;
        snprintf(snippet, sizeof snippet, "[%s]\n%s = %s\n", section, key, is_file ? pw : "");
        struct sm_config *k = NULL;
        checked++;
        /* empty values are not numbers; a number key shows as a bad value, not an unknown key */
        if (sm_config_parse(path, snippet, strlen(snippet), &k, err, sizeof err) < 0 &&
            (strstr(err, "unknown") || strstr(err, "outside"))) {
            wrong++;
            printf("#   commented key not known: [%s] %s: %s\n", section, key, err);
        }
        sm_config_free(k);
    }
    free(copy);
    ok(wrong == 0, "%zu commented-out keys are known keys of their section", checked);

    /* every key the parser dumps is documented in its section */
    char *dump = NULL;
    size_t dl = 0;
    FILE *m = open_memstream(&dump, &dl);
    if (c) sm_config_dump(c, m);
    fclose(m);
    size_t keys = 0, undocumented = 0;
    section[0] = 0;
    save = NULL;
    for (char *line = strtok_r(dump, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char key[128];
        if (sscanf(line, "[%63[^]]]", section) == 1) continue;
        if (sscanf(line, "%127[a-z0-9_] =", key) != 1) continue;
        keys++;
        /* find "[section]" in the file, then the key (set or commented) before the next section */
        char hdr[80];
        snprintf(hdr, sizeof hdr, "\n[%s]", section);
        const char *s = strstr(text, hdr);
        if (!s && strncmp(text, hdr + 1, strlen(hdr + 1)) == 0) s = text;
        const char *end = s ? strstr(s + 1, "\n[") : NULL;
        if (!end) end = text + n;
        bool found = false;
        for (const char *p = s; p && p < end && !found; p = strchr(p + 1, '\n')) {
            const char *q = p + 1;
            if (p == text && *p != '\n') q = p;
            if (*q == '#') q++;
            while (*q == ' ') q++;
            if (strncmp(q, key, strlen(key)) == 0) {
                const char *after = q + strlen(key);
                while (*after == ' ' || *after == '\t') after++;
                if (*after == '=') found = true;
            }
        }
        if (!found) {
            undocumented++;
            printf("#   not documented in etc/sockmail.conf: [%s] %s\n", section, key);
        }
    }
    ok(keys > 20 && undocumented == 0, "all %zu keys documented in etc/sockmail.conf", keys);
    free(dump);
    free(text);
    unlink(pw);
    free(pw);
    sm_config_free(c);
}

/* Every prefix of a valid file is accepted or refused with a message. */
static void test_prefixes(void) {
    const char *text = "[general]\r\nhostname = mx\n# c\n[lmtp]\nmax_line = 4K\nmax_recipients = 10\n";
    size_t n = strlen(text), bad = 0;
    for (size_t cut = 0; cut <= n; cut++) {
        struct sm_config *c = NULL;
        char err[256] = "";
        int r = sm_config_parse("p", text, cut, &c, err, sizeof err);
        if (r < 0 && (!err[0] || c)) bad++;
        if (r == 0 && !c) bad++;
        sm_config_free(c);
    }
    ok(bad == 0, "%zu prefixes parse or fail with a message", n + 1);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    unsetenv("CREDENTIALS_DIRECTORY");
    test_defaults();
    test_values();
    test_bools();
    test_bad_values();
    test_syntax_errors();
    test_crlf();
    test_secret_files();
    test_credentials();
    test_load();
    test_dump_roundtrip();
    test_shipped_file();
    test_prefixes();
    rmdir(tmpdir);
    return tap_done();
}
