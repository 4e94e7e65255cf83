/* sm-auth-client — drives common/auth-client.c for the integration tests.
 *
 *   sm-auth-client -c CONF [--login] [--secured] [--rip IP] [--lip IP] USER PASSWORD
 *
 * Default: sm_auth_plain_login(). --login: LOGIN through sm_auth_connect /
 * sm_auth_begin / sm_auth_continue, answering the challenges it is given.
 * Prints "ok USER", "refused REASON", "tempfail REASON" or "mechs LIST";
 * exits 0 / 1 / 75. (A test tool: the password is on the command line.)
 *
 *   sm-auth-client --hash SCHEME PASSWORD
 *
 * prints sm_passwd_hash()'s hash (common/passwd.c), for checking it with
 * `doveadm pw -t`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth-client.h"
#include "config.h"
#include "macro.h"
#include "passwd.h"

static int answer_for(const char *challenge_b64, const char *user, const char *pw, char **ret) {
    char *ch;
    size_t n;
    if (sm_auth_b64_decode(challenge_b64, &ch, &n) < 0) return -1;
    const char *a = strcasecmp(ch, "Username:") == 0 ? user : strcasecmp(ch, "Password:") == 0 ? pw : NULL;
    free(ch);
    if (!a) return -1;
    return sm_auth_b64_encode(a, strlen(a), ret);
}

static int login(const struct sm_config *cfg, const char *user, const char *pw, bool secured,
                 const char *rip, const char *lip) {
    struct sm_auth_client *c;
    int r = sm_auth_connect(cfg->auth_socket, (unsigned)cfg->auth_timeout, &c);
    if (r < 0) {
        printf("tempfail connect: %s\n", strerror(-r));
        return SM_EXIT_TEMPFAIL;
    }
    printf("mechs %s\n", sm_auth_mech_list(c));
    if (!sm_auth_has_mech(c, "login")) {
        printf("tempfail no LOGIN\n");
        sm_auth_close(c);
        return SM_EXIT_TEMPFAIL;
    }
    struct sm_auth_result res = {0};
    r = sm_auth_begin(c, "LOGIN", "smtp", NULL, secured, rip, lip, &res);
    for (int steps = 0; r == 0 && res.kind == SM_AUTH_REPLY_CONT && steps < 4; steps++) {
        char *ans = NULL;
        if (answer_for(res.challenge, user, pw, &ans) < 0) {
            printf("refused unexpected challenge\n");
            sm_auth_result_clear(&res);
            sm_auth_close(c);
            return SM_EXIT_REFUSED;
        }
        sm_auth_result_clear(&res);
        r = sm_auth_continue(c, ans, &res);
        free(ans);
    }
    int code;
    if (r < 0) {
        printf("tempfail %s\n", strerror(-r));
        code = SM_EXIT_TEMPFAIL;
    } else if (res.kind == SM_AUTH_REPLY_OK) {
        printf("ok %s\n", res.user ? res.user : "(none)");
        code = SM_EXIT_OK;
    } else if (res.kind == SM_AUTH_REPLY_FAIL && res.temp) {
        printf("tempfail %s\n", res.reason ? res.reason : "");
        code = SM_EXIT_TEMPFAIL;
    } else {
        printf("refused %s\n", res.reason ? res.reason : "");
        code = SM_EXIT_REFUSED;
    }
    sm_auth_result_clear(&res);
    sm_auth_close(c);
    return code;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"login", no_argument, NULL, 'L'}, {"secured", no_argument, NULL, 'S'},
        {"rip", required_argument, NULL, 'r'}, {"lip", required_argument, NULL, 'l'},
        {"hash", required_argument, NULL, 'H'},
        {0},
    };
    const char *config = NULL, *rip = NULL, *lip = NULL, *scheme = NULL;
    bool use_login = false, secured = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'L': use_login = true; break;
        case 'S': secured = true; break;
        case 'r': rip = optarg; break;
        case 'l': lip = optarg; break;
        case 'H': scheme = optarg; break;
        default: return SM_EXIT_USAGE;
        }
    }
    if (scheme && argc - optind == 1) {
        char *h = NULL;
        int r = sm_passwd_hash(scheme, argv[optind], &h);
        if (r < 0) {
            fprintf(stderr, "sm-auth-client: hash: %s\n", strerror(-r));
            return SM_EXIT_REFUSED;
        }
        printf("%s\n", h);
        free(h);
        return SM_EXIT_OK;
    }
    if (argc - optind != 2) {
        fprintf(stderr, "usage: sm-auth-client -c CONF [--login] [--secured] [--rip IP] [--lip IP] USER PASSWORD\n");
        return SM_EXIT_USAGE;
    }
    char err[512];
    struct sm_config *cfg;
    if (sm_config_load(config, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "sm-auth-client: %s\n", err);
        return SM_EXIT_USAGE;
    }
    const char *user = argv[optind], *pw = argv[optind + 1];
    int code;
    if (use_login) {
        code = login(cfg, user, pw, secured, rip, lip);
    } else {
        char *canon = NULL;
        int r = sm_auth_plain_login(cfg, "smtp", user, pw, secured, rip, lip, &canon);
        if (r == SM_FOUND) printf("ok %s\n", canon);
        else if (r == SM_NOTFOUND) printf("refused\n");
        else printf("tempfail\n");
        code = r == SM_FOUND ? SM_EXIT_OK : r == SM_NOTFOUND ? SM_EXIT_REFUSED : SM_EXIT_TEMPFAIL;
        free(canon);
    }
    sm_config_free(cfg);
    return code;
}
