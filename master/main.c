/*
 * main.c: sockd's command line. Parses options, loads and checks the
 * configuration (-t), and runs the server: with `workers = 0` one worker
 * in this process (the debugging mode, like nginx's master_process off).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "apps.h"
#include "config.h"
#include "config_keys.h"
#include "ctl.h"
#include "master.h"
#include "tls.h"
#include "log.h"
#include "worker.h"

/* CMake sets it from the configured sysconfdir (/etc with prefix /usr). */
#ifndef SOCKD_DEFAULT_CONFIG
#define SOCKD_DEFAULT_CONFIG "/etc/sockd/sockd.conf"
#endif

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: sockd [-c FILE] [-t | -T] [-s SIGNAL] [-v] [-h]\n"
            "  -c, --config FILE    configuration file (default "
            SOCKD_DEFAULT_CONFIG ")\n"
            "  -t, --test           check the configuration and exit\n"
            "  -T, --print-config   check it, print every key with its "
            "effective value\n"
            "                       (defaults included) and exit\n"
            "  -s, --signal SIGNAL  tell the running master: reload, stop, "
            "quit, reopen,\n"
            "                       status\n"
            "  -v, --version        print the version and exit\n"
            "  -h, --help           print this help and exit\n");
}

/* What -t checks beyond the parser: every route's app loads, every TLS
   certificate and key can be read and belong together. */
static int
check_apps(const struct config *cfg)
{
    int bad = 0;

    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct listener_cfg *l = &cfg->listeners[i];
        char why[512];

        if (l->tls_certificate != NULL &&
            tls_check_listener(l, why, sizeof(why)) != 0) {
            fprintf(stderr, "%s:%d: %s\n", cfg->path, l->line, why);
            bad++;
        }
    }

    for (size_t i = 0; i < cfg->n_routes; i++) {
        const sock_app *app;
        void *dl;
        char why[512];

        if (apps_load(cfg->routes[i].app, &app, &dl, why, sizeof(why)) != 0) {
            fprintf(stderr, "%s:%d: %s\n", cfg->path,
                    cfg->routes[i].app_line, why);
            bad++;
            continue;
        }
        apps_unload(dl);
    }
    return bad;
}

static int
open_listeners(const struct config *cfg, int *fds)
{
    if (cfg->admin.listen != NULL) {
        int fd = worker_listen(&cfg->admin.l);
        char name[80];

        if (fd < 0) {
            fprintf(stderr, "%s:%d: cannot listen on %s: %s\n", cfg->path,
                    cfg->admin.line, cfg->admin.listen, strerror(-fd));
            return -1;
        }
        fds[cfg->n_listeners] = fd;
        worker_sockname(fd, name, sizeof(name));
        log_info("event=listening addr=%s role=admin", name);
    }
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct listener_cfg *l = &cfg->listeners[i];
        char name[80];

        fds[i] = worker_listen(l);
        if (fds[i] < 0) {
            fprintf(stderr, "%s:%d: cannot listen on %s: %s\n", cfg->path,
                    l->line, l->address, strerror(-fds[i]));
            while (i-- > 0)
                close(fds[i]);
            return -1;
        }
        worker_sockname(fds[i], name, sizeof(name));
        log_info("event=listening addr=%s", name);
    }
    return 0;
}

static void
single_on_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
    const struct config *cfg = s->data;
    int rc;

    (void)loop;
    (void)revents;
    if (s->signum == SIGHUP) {
        log_warn("event=reload_unsupported reason=\"workers = 0 runs "
                 "without a master; restart to apply a new configuration\"");
        return;
    }
    rc = log_reopen(cfg->server.log_file);
    if (rc != 0)
        log_err("event=reopen_failed error=\"%s\"", strerror(-rc));
}

/* workers = 0: one worker, in this process, until TERM/QUIT/INT. */
static int
run_single(const struct config *cfg)
{
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    struct worker *w;
    ev_signal hup, usr1;
    char err[1024];
    int *fds = calloc(cfg->n_listeners + 1, sizeof(int));

    if (loop == NULL || fds == NULL) {
        fprintf(stderr, "sockd: cannot create the event loop\n");
        return 1;
    }
    if (open_listeners(cfg, fds) != 0) {
        free(fds);
        return 1;
    }
    w = worker_new(loop, cfg, fds, 1, 0, err, sizeof(err));
    if (w != NULL && (worker_load_tls(w, NULL, err, sizeof(err)) != 0 ||
                      worker_load_apps(w, err, sizeof(err)) != 0)) {
        worker_free(w);
        w = NULL;
    }
    if (w == NULL) {
        fprintf(stderr, "%s\n", err);
        free(fds);
        return 1;
    }
    log_set_role("worker", 0);
    worker_start(w);
    /* No master here: HUP cannot start a new generation; USR1 reopens. */
    ev_signal_init(&hup, single_on_signal, SIGHUP);
    ev_signal_init(&usr1, single_on_signal, SIGUSR1);
    hup.data = usr1.data = (void *)cfg;
    ev_signal_start(loop, &hup);
    ev_signal_start(loop, &usr1);
    log_info("event=ready workers=0 routes=%zu", cfg->n_routes);
    ev_run(loop, 0);
    log_info("event=exit accepted=%llu opened=%llu closed=%llu "
             "msgs_in=%llu msgs_out=%llu handshake_failed=%llu",
             (unsigned long long)w->stats->accepted,
             (unsigned long long)w->stats->opened,
             (unsigned long long)w->stats->closed,
             (unsigned long long)w->stats->msgs_in,
             (unsigned long long)w->stats->msgs_out,
             (unsigned long long)w->stats->handshake_failed);
    ev_signal_stop(loop, &hup);
    ev_signal_stop(loop, &usr1);
    worker_free(w); /* closes the listening sockets */
    free(fds);
    return 0;
}

/* -s: one command to the running master over its control socket. */
static int
send_command(const char *path, const char *cmd)
{
    static const char *known[] = { "reload", "stop", "quit", "reopen",
                                   "status" };
    char sock[512], *dir;

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(cmd, known[i]) != 0)
            continue;
        dir = ctl_runtime_dir(path);
        ctl_path(dir, sock, sizeof(sock));
        free(dir);
        return ctl_client(sock, cmd, 120);
    }
    fprintf(stderr, "sockd: unknown signal \"%s\" (reload, stop, quit, "
            "reopen, status)\n", cmd);
    return 2;
}

int
main(int argc, char **argv)
{
    const char *path = SOCKD_DEFAULT_CONFIG;
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "test", no_argument, NULL, 't' },
        { "print-config", no_argument, NULL, 'T' },
        { "signal", required_argument, NULL, 's' },
        { "version", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool test = false, dump = false;
    const char *signal_cmd = NULL;
    struct config *cfg;
    char *errors = NULL;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "c:tTs:vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test = true;
            break;
        case 'T':
            test = dump = true;
            break;
        case 's':
            signal_cmd = optarg;
            break;
        case 'v':
            printf("sockd %s\n", SOCK_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "sockd: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (signal_cmd != NULL)
        return send_command(path, signal_cmd);
    cfg = config_load(path, &errors);
    if (cfg == NULL) {
        fputs(errors ? errors : "sockd: cannot load the configuration\n",
              stderr);
        free(errors);
        if (test)
            fprintf(stderr, "sockd: configuration file %s test failed\n",
                    path);
        return 1;
    }
    log_set_level(cfg->server.log_level);
    if (test) {
        rc = check_apps(cfg) == 0 ? 0 : 1;
        if (dump && rc == 0)
            config_dump(cfg, stdout);
        fprintf(stderr, "sockd: configuration file %s test %s\n", path,
                rc == 0 ? "is successful" : "failed");
        config_free(cfg);
        return rc;
    }
    signal(SIGPIPE, SIG_IGN);
    if (cfg->server.log_file != NULL &&
        (rc = log_reopen(cfg->server.log_file)) != 0) {
        fprintf(stderr, "%s: cannot open log_file %s: %s\n", path,
                cfg->server.log_file, strerror(-rc));
        config_free(cfg);
        return 1;
    }
    rc = cfg->server.workers == 0 ? run_single(cfg) : master_run(path, cfg);
    config_free(cfg);
    return rc;
}
