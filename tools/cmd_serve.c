/* SPDX-License-Identifier: MIT
 *
 * `shmtrack serve (TRACE | --socket PATH) [--port N] [--bind ADDR]`: the memory-infra page live,
 * with /api/dumps and Prometheus /metrics (src/serve.h). With TRACE the file is summarised at
 * start and again whenever it changes (a `shmtrack run -o TRACE` rewrites it atomically), so the
 * page follows a running trace. With --socket it asks the coordinator on PATH for a dump every
 * --interval ms (src/control.h), keeps the last --keep dumps in memory as one trace and serves
 * that trace's report; when the coordinator cannot be reached it counts the failure in /metrics
 * (shmtrack_dump_errors_total), keeps serving what it has and tries again at the next tick. Prints
 * "listening on http://ADDR:PORT/" on stdout once ready. Runs until SIGINT or SIGTERM.
 */
#include "cli.h"
#include "report_source.h"

#include "control.h"
#include "error.h"
#include "serve.h"
#include "trace_json.h"

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
    fprintf(
        f,
        "usage: shmtrack serve TRACE [--port N] [--bind ADDR] [--interval MS]\n"
        "       shmtrack serve --socket PATH [--port N] [--bind ADDR] [--interval MS] [--keep N]\n"
        "       shmtrack serve --report REPORT.json [--port N] [--bind ADDR]\n\n"
        "Serves the memory-infra page live, refreshing itself, plus:\n"
        "  /api/dumps   the report JSON (as `shmtrack report --format json`)\n"
        "  /metrics     Prometheus text format\n\n"
        "  -p, --port N        TCP port (default 9464; 0 picks a free one)\n"
        "  -b, --bind ADDR     address to listen on (default 127.0.0.1)\n"
        "  -i, --interval MS   how often TRACE is checked for changes (default 1000), or\n"
        "                      a dump is taken with --socket (default 2000)\n"
        "  -s, --socket PATH   a running coordinator (`shmtrack daemon`, `shmtrack run`):\n"
        "                      take a dump every --interval ms and serve the last --keep\n"
        "                      ones; an unreachable coordinator is retried every tick\n"
        "  -k, --keep N        dumps kept in memory with --socket (default 30, 1..1000)\n"
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

/* --socket: the last `keep` dumps fetched from the coordinator, each its own one-dump trace. */
typedef struct live {
    st_trace_t **ring; /* oldest first */
    size_t n, keep;
    bool failing; /* the last fetch failed (so a failure streak is reported once) */
} live_t;

static void live_free(live_t *lv)
{
    for (size_t i = 0; i < lv->n; i++)
        st_trace_free(lv->ring[i]);
    free(lv->ring);
}

/* Fetches one dump, appends it (dropping the oldest beyond keep) and publishes the report of
 * everything kept. The published duration is the fetch plus the rebuild. */
static int live_tick(st_server_t *server, live_t *lv, const char *socket_path)
{
    st_wire_dump_done_t done;
    st_trace_t *t = NULL, view;
    st_global_dump_t *dumps = NULL;
    char *trace = NULL, *json = NULL, *extra = NULL, msg[1024];
    size_t len = 0, n = 0;
    double t0 = now_s();
    int rc = st_control_fetch_trace(socket_path, 10000, &done, &trace, &len, msg, sizeof(msg));
    if (rc == 0) {
        st_error_t err;
        memset(&err, 0, sizeof(err));
        if ((rc = st_trace_read_buffer(trace, len, "coordinator", &t, &err)) != 0) {
            char text[900];
            st_error_format(&err, "event", text, sizeof(text));
            snprintf(msg, sizeof(msg), "the coordinator's trace does not parse: %s", text);
        } else if (t->n_dumps == 0) {
            rc = ST_EFORMAT;
            snprintf(msg, sizeof(msg), "the coordinator's trace has no dump");
        }
    }
    if (rc != 0)
        goto out;
    if (lv->n == lv->keep) {
        st_trace_free(lv->ring[0]);
        memmove(lv->ring, lv->ring + 1, (lv->n - 1) * sizeof(*lv->ring));
        lv->n--;
    }
    lv->ring[lv->n++] = t;
    t = NULL;

    /* One trace over the kept dumps: a shallow view (the report side only reads it). */
    for (size_t i = 0; i < lv->n; i++)
        n += lv->ring[i]->n_dumps;
    if ((dumps = malloc(n * sizeof(*dumps))) == NULL) {
        rc = -ENOMEM;
        snprintf(msg, sizeof(msg), "out of memory");
        goto out;
    }
    n = 0;
    for (size_t i = 0; i < lv->n; i++)
        for (size_t j = 0; j < lv->ring[i]->n_dumps; j++)
            dumps[n++] = lv->ring[i]->dumps[j];
    view = *lv->ring[lv->n - 1];
    view.dumps = dumps;
    view.n_dumps = view.cap_dumps = n;
    if ((rc = st_cli_report_of_trace(&view, &json, &len, &extra)) != 0 ||
        (rc = st_server_publish(server, json, len, extra, now_s() - t0)) != 0)
        snprintf(msg, sizeof(msg), "the report of the coordinator's dumps: %s", st_strerror(rc));
out:
    if (rc != 0) {
        if (!lv->failing)
            fprintf(stderr, "shmtrack serve: %s; retrying every tick\n", msg);
        lv->failing = true;
        st_server_publish_failed(server);
    } else if (lv->failing) {
        fprintf(stderr, "shmtrack serve: dumps from %s again\n", socket_path);
        lv->failing = false;
    }
    st_trace_free(t);
    free(dumps);
    free(trace);
    free(json);
    free(extra);
    return rc;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void print_listening(const st_server_t *server, const st_server_options_t *sopts)
{
    bool v6 = strchr(sopts->bind, ':') != NULL;
    printf("listening on http://%s%s%s:%u/\n", v6 ? "[" : "", sopts->bind, v6 ? "]" : "",
           st_server_port(server));
    fflush(stdout);
}

/* --socket: a dump now, then one every interval_ms until a signal; the server answers 503 until
 * the first dump arrives. */
static int serve_live(st_server_t *server, const st_server_options_t *sopts,
                      const char *socket_path, unsigned interval_ms, unsigned keep)
{
    live_t lv = {NULL, 0, keep, false};
    if ((lv.ring = calloc(keep, sizeof(*lv.ring))) == NULL) {
        fprintf(stderr, "shmtrack serve: out of memory\n");
        return ST_EXIT_FAIL;
    }
    print_listening(server, sopts);
    while (!stop_requested) {
        double t0 = now_s();
        live_tick(server, &lv, socket_path);
        double spent_ms = (now_s() - t0) * 1000.0;
        if (!stop_requested && spent_ms < interval_ms)
            sleep_ms(interval_ms - (unsigned)spent_ms);
    }
    live_free(&lv);
    return ST_EXIT_OK;
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
                                         {"keep", required_argument, NULL, 'k'},
                                         {"report", required_argument, NULL, OPT_REPORT},
                                         {"max-connections", required_argument, NULL, OPT_MAXCONN},
                                         {"timeout", required_argument, NULL, OPT_TIMEOUT},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    st_server_options_t sopts = {"127.0.0.1", 9464, 0, 0, 0};
    const char *socket_path = NULL, *report = NULL, *path = NULL;
    unsigned interval_ms = 0, keep = 30;
    st_server_t *server = NULL;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "p:b:i:s:k:h", opts, NULL)) != -1) {
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
        case 'k':
            if (!parse_uint(optarg, 1000, &keep) || keep == 0) {
                fprintf(stderr, "shmtrack serve: --keep: '%s' is not 1..1000\n", optarg);
                return ST_EXIT_USAGE;
            }
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
    if (interval_ms == 0)
        interval_ms = socket_path ? 2000 : 1000;
    path = socket_path ? NULL : report ? report : argv[optind];
    sopts.refresh_ms = interval_ms;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = st_server_start(&sopts, &server);
    if (rc == -ELIBACC) {
        fprintf(stderr, "shmtrack serve: cannot load libmicrohttpd (Debian: apt-get install "
                        "libmicrohttpd12)\n");
        return ST_EXIT_FAIL;
    }
    if (rc != 0) {
        fprintf(stderr, "shmtrack serve: cannot listen on %s port %u: %s\n", sopts.bind, sopts.port,
                st_strerror(rc));
        return rc == -EINVAL ? ST_EXIT_USAGE : ST_EXIT_FAIL;
    }
    if (socket_path) {
        rc = serve_live(server, &sopts, socket_path, interval_ms, keep);
        st_server_stop(server);
        return rc;
    }
    if (load_and_publish(server, path, report != NULL) != 0) {
        st_server_stop(server);
        return ST_EXIT_USAGE;
    }
    print_listening(server, &sopts);

    /* Reload when the file is replaced or rewritten; keep serving the old data on failure. */
    struct stat last, st;
    memset(&last, 0, sizeof(last));
    stat(path, &last);
    while (!stop_requested) {
        sleep_ms(interval_ms);
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
