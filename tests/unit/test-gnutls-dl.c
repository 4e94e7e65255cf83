/* test-gnutls-dl.c — tls.c as smtp-handler and pop3-handler get it by
 * default (common/gnutls-dl.c): this program is linked without GnuTLS, which
 * is loaded only when a TLS server is first set up; and when the library
 * cannot be loaded, the error names it. For that case the test runs itself
 * again with LD_LIBRARY_PATH naming a directory whose libgnutls.so.30 is
 * not a library. A throwaway certificate is made with certtool. */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "tap.h"
#include "tls.h"

static char dir[] = "/tmp/test-gnutls-dl-XXXXXX";
static char cert[256], key[256];

static bool gnutls_loaded(void) {
    void *h = dlopen("libgnutls.so.30", RTLD_NOW | RTLD_NOLOAD);
    if (h) dlclose(h);
    return h != NULL;
}

static int server_new(const char *c, const char *k, struct sm_tls_server **srv, char *err,
                      size_t errlen) {
    char text[1024];
    snprintf(text, sizeof text, "[tls]\ncert = %s\nkey = %s\n", c, k);
    struct sm_config *cfg = NULL;
    if (sm_config_parse("test.conf", text, strlen(text), &cfg, err, errlen) < 0) return -2;
    int r = sm_tls_server_new(cfg, srv, err, errlen);
    sm_config_free(cfg);
    return r;
}

/* The run with the broken library: prints the error of the first set-up. */
static int broken_run(const char *c, const char *k) {
    char err[1024] = "";
    struct sm_tls_server *srv = NULL;
    int r = server_new(c, k, &srv, err, sizeof err);
    printf("%d %s\n", r, err);
    sm_tls_server_free(srv);
    return 0;
}

/* Runs this program again (broken_run) with LD_LIBRARY_PATH=LIBDIR; its
 * output goes into OUT. */
static int run_broken(const char *libdir, char *out, size_t outlen) {
    int p[2];
    if (pipe(p) < 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        setenv("LD_LIBRARY_PATH", libdir, 1);
        execl("/proc/self/exe", "test-gnutls-dl", "--broken", cert, key, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < outlen && (r = read(p[0], out + n, outlen - 1 - n)) > 0) n += (size_t)r;
    out[n] = '\0';
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--broken") == 0) return broken_run(argv[2], argv[3]);

    char cmd[1024], err[1024];
    struct sm_tls_server *srv = NULL;
    ok(!gnutls_loaded(), "GnuTLS is not loaded at start");

    is_int(server_new("", "", &srv, err, sizeof err), -1, "no certificate configured");
    ok(!gnutls_loaded(), "a config without certificate does not load GnuTLS");

    if (!ok(mkdtemp(dir) != NULL, "temporary directory")) return tap_done();
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(cmd, sizeof cmd,
             "cd %s && printf 'cn = localhost\\nexpiration_days = 2\\ntls_www_server\\n' > tmpl && "
             "certtool --generate-privkey --key-type=ecdsa --outfile key.pem 2>/dev/null && "
             "certtool --generate-self-signed --load-privkey key.pem --template tmpl "
             "--outfile cert.pem >/dev/null 2>&1 && mkdir lib && echo 'not a library' > lib/libgnutls.so.30",
             dir);
    if (!ok(system(cmd) == 0, "certtool made a throwaway certificate")) return tap_done();

    int r = server_new(cert, key, &srv, err, sizeof err);
    if (!ok(r == 0, "TLS server set up through the loaded library")) printf("# %s\n", err);
    ok(gnutls_loaded(), "GnuTLS is loaded now");
    sm_tls_server_free(srv);

    char libdir[300], out[2048];
    snprintf(libdir, sizeof libdir, "%s/lib", dir);
    is_int(run_broken(libdir, out, sizeof out), 0, "run with a broken libgnutls.so.30");
    printf("# %s", out);
    ok(strncmp(out, "-1 tls: GnuTLS (libgnutls.so.30) cannot be loaded: ", 51) == 0,
       "the set-up fails and the error names the library");
    ok(strstr(out, libdir) != NULL, "and says which file it tried");

    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
    return tap_done();
}
