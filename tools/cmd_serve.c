/* SPDX-License-Identifier: MIT
 *
 * `shmtrack serve (TRACE | --socket PATH) [--port N] [--bind ADDR]`: the memory-infra page live,
 * with /api/dumps and Prometheus /metrics (src/serve.h). With TRACE the file is summarised at
 * start and again whenever it changes (a `shmtrack run -o TRACE` rewrites it atomically), so the
 * page follows a running trace. Prints "listening on http://ADDR:PORT/" on stdout once ready.
 * Runs until SIGINT or SIGTERM.
 */
#include "cli.h"
#include "report_source.h"

#include "error.h"
#include "serve.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: shmtrack serve TRACE [--port N] [--bind ADDR] [--interval MS]\n"
               "       shmtrack serve --socket PATH [--port N] [--bind ADDR] [--interval MS]\n"
               "       shmtrack serve --report REPORT.json [--port N] [--bind ADDR]\n\n"
               "Serves the memory-infra page live, refreshing itself, plus:\n"
               "  /api/dumps   the report JSON (as `shmtrack report --format json`)\n"
               "  /metrics     Prometheus text format\n\n"
               "  -p, --port N        TCP port (default 9464; 0 picks a free one)\n"
               "  -b, --bind ADDR     address to listen on (default 127.0.0.1)\n"
               "  -i, --interval MS   how often TRACE is checked for changes (default 1000)\n"
               "  -s, --socket PATH   a running coordinator (live dumps)\n"
               "      --report FILE   serve a saved `shmtrack report --format json` output\n"
               "      --max-connections N   concurrent connections (default 512)\n"
               "      --timeout S     close connections idle for S seconds (default 15)\n"
               "  -h, --help          this text\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Loads path (a trace, or a report when is_report) and publishes it. */
static int load_and_publish(st_server_t *server, const char *path, bool is_report)
{
    char *json = NULL, *extra = NULL, msg[1024];
    size_t len = 0;
    double t0 = now_s();
    int rc = is_report ? st_cli_report_from_file(path, &json, &len, msg, sizeof(msg))
                       : st_cli_report_from_trace(path, &json, &len, &extra, msg, sizeof(msg));
    if (rc == 0) {
        rc = st_server_publish(server, json, len, extra, now_s() - t0);
        if (rc != 0)
            snprintf(msg, sizeof(msg), "%s: %s", path, st_strerror(rc));
    }
    if (rc != 0) {
        fprintf(stderr, "shmtrack serve: %s\n", msg);
        st_server_publish_failed(server);
    }
    free(json);
    free(extra);
    return rc;
}

static bool parse_uint(const char *s, unsigned long max, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || !*s || *end || v > max || s[0] == '-')
        return false;
    *out = (unsigned)v;
    return true;
}

int st_cmd_serve(int argc, char **argv)
{
    enum { OPT_REPORT = 256, OPT_MAXCONN, OPT_TIMEOUT };
    static const struct option opts[] = {{"port", required_argument, NULL, 'p'},
                                         {"bind", required_argument, NULL, 'b'},
                                         {"interval", required_argument, NULL, 'i'},
                                         {"socket", required_argument, NULL, 's'},
                                         {"report", required_argument, NULL, OPT_REPORT},
                                         {"max-connections", required_argument, NULL, OPT_MAXCONN},
                                         {"timeout", required_argument, NULL, OPT_TIMEOUT},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    st_server_options_t sopts = {"127.0.0.1", 9464, 0, 0, 0};
    const char *socket_path = NULL, *report = NULL, *path = NULL;
    unsigned interval_ms = 1000;
    st_server_t *server = NULL;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "p:b:i:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (!parse_uint(optarg, 65535, &sopts.port)) {
                fprintf(stderr, "shmtrack serve: --port: '%s' is not a port number\n", optarg);
                return ST_EXIT_USAGE;
            }
            break;
        case 'b':
            sopts.bind = optarg;
            break;
        case 'i':
            if (!parse_uint(optarg, 86400000, &interval_ms) || interval_ms < 10) {
                fprintf(stderr, "shmtrack serve: --interval: '%s' is not 10..86400000 ms\n",
                        optarg);
                return ST_EXIT_USAGE;
            }
            break;
        case 's':
            socket_path = optarg;
            break;
        case OPT_REPORT:
            report = optarg;
            break;
        case OPT_MAXCONN:
            if (!parse_uint(optarg, 100000, &sopts.max_connections) || !sopts.max_connections) {
                fprintf(stderr, "shmtrack serve: --max-connections: '%s' is not 1..100000\n",
                        optarg);
                return ST_EXIT_USAGE;
            }
            break;
        case OPT_TIMEOUT:
            if (!parse_uint(optarg, 3600, &sopts.timeout_s) || !sopts.timeout_s) {
                fprintf(stderr, "shmtrack serve: --timeout: '%s' is not 1..3600 s\n", optarg);
                return ST_EXIT_USAGE;
            }
            break;
        case 'h':
            usage(stdout);
            return ST_EXIT_OK;
        default:
            usage(stderr);
            return ST_EXIT_USAGE;
        }
    }
    int sources = (socket_path != NULL) + (report != NULL) + (optind < argc);
    if (sources != 1 || optind + (optind < argc) != argc) {
        fprintf(stderr, "shmtrack serve: give one of TRACE, --socket PATH or --report FILE\n");
        usage(stderr);
        return ST_EXIT_USAGE;
    }
    if (socket_path) {
        fprintf(stderr, "shmtrack serve: --socket (live dumps from a coordinator) is not "
                        "available yet: the coordinator is not part of this build; serve a "
                        "TRACE written by `shmtrack run -o TRACE` instead\n");
        return ST_EXIT_FAIL;
    }
    path = report ? report : argv[optind];
    sopts.refresh_ms = interval_ms;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = st_server_start(&sopts, &server);
    if (rc != 0) {
        fprintf(stderr, "shmtrack serve: cannot listen on %s port %u: %s\n", sopts.bind, sopts.port,
                st_strerror(rc));
        return rc == -EINVAL ? ST_EXIT_USAGE : ST_EXIT_FAIL;
    }
    if (load_and_publish(server, path, report != NULL) != 0) {
        st_server_stop(server);
        return ST_EXIT_USAGE;
    }
    bool v6 = strchr(sopts.bind, ':') != NULL;
    printf("listening on http://%s%s%s:%u/\n", v6 ? "[" : "", sopts.bind, v6 ? "]" : "",
           st_server_port(server));
    fflush(stdout);

    /* Reload when the file is replaced or rewritten; keep serving the old data on failure. */
    struct stat last, st;
    memset(&last, 0, sizeof(last));
    stat(path, &last);
    while (!stop_requested) {
        struct timespec ts = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (stop_requested || stat(path, &st) != 0)
            continue;
        if (st.st_ino == last.st_ino && st.st_size == last.st_size &&
            st.st_mtim.tv_sec == last.st_mtim.tv_sec && st.st_mtim.tv_nsec == last.st_mtim.tv_nsec)
            continue;
        last = st;
        load_and_publish(server, path, report != NULL);
    }
    st_server_stop(server);
    return ST_EXIT_OK;
}
