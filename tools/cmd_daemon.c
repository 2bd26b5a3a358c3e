/* SPDX-License-Identifier: MIT
 *
 * `shmtrack daemon --socket PATH [-o TRACE] [--interval MS] [--policy P] [--deadline MS]
 * [--ask-window N|all] [--keep N] [--allow-root]`: runs a coordinator until SIGTERM or SIGINT (read
 * through a signalfd, so a signal never interrupts a dump half-way), takes a global dump every
 * --interval ms when asked and whenever `shmtrack dump` asks, then writes the trace (every dump, or
 * the newest N with
 * --keep) atomically (temporary name + rename: a reader never sees a truncated file). Without
 * --keep each dump goes to a spool beside TRACE as it is taken (cli.h, st_cli_trace_out_t), so
 * memory does not grow with the run.
 */
#include "cli.h"

#include "coordinator.h"
#include "error.h"
#include "sock.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static volatile int g_stop;

static void log_line(void *ud, const char *msg)
{
    (void)ud;
    fprintf(stderr, "shmtrack daemon: %s\n", msg);
}

static void on_dump(void *ud, const st_global_dump_t *d)
{
    fprintf(stderr, "shmtrack daemon: dump 0x%llx: %zu processes, %zu objects%s\n",
            (unsigned long long)d->id, d->n_procs, d->n_globals, d->partial ? " (partial)" : "");
    st_cli_trace_out_dump(ud, d);
}

static void on_signal(void *ud, int fd)
{
    (void)ud;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        g_stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: shmtrack daemon --socket PATH [-o TRACE] [--interval MS] [--policy P]\n"
               "                       [--deadline MS] [--ask-window N|all] [--keep N]\n"
               "                       [--allow-root]\n"
               "Runs a coordinator on PATH (created 0600 in a 0700 directory) until SIGTERM or\n"
               "SIGINT, then writes the trace to TRACE (default shmtrack-trace.json).\n"
               "  --interval MS  take a dump every MS milliseconds (default: only on request)\n"
               "  --policy P     creator (default), equal or first-touch\n"
               "  --deadline MS  how long a dump waits for clients (default 1000)\n"
               "  --ask-window N clients asked for their report at a time (default 32; the next\n"
               "                 when one answers, or has kept its request 25 ms; everyone left\n"
               "                 at half the deadline); 'all': every client at once\n"
               "  --keep N       keep only the newest N dumps (the trace then holds those N;\n"
               "                 default: every dump, each written beside TRACE as it is\n"
               "                 taken, so memory stays bounded either way)\n"
               "  --allow-root   accept root clients besides this user's\n");
}

int st_cmd_daemon(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},   {"output", required_argument, NULL, 'o'},
        {"interval", required_argument, NULL, 'i'}, {"policy", required_argument, NULL, 'p'},
        {"deadline", required_argument, NULL, 'd'}, {"ask-window", required_argument, NULL, 'w'},
        {"allow-root", no_argument, NULL, 'r'},     {"keep", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    st_cli_trace_out_t trace_out;
    st_coord_config_t cfg = {.log = log_line, .on_dump = on_dump, .ud = &trace_out};
    const char *out = "shmtrack-trace.json";
    long interval = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:o:h", opts, NULL)) != -1) {
        int handled = st_cli_coord_option("daemon", c, optarg, &cfg, &interval);
        if (handled < 0)
            return ST_EXIT_USAGE;
        if (handled > 0)
            continue;
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'r':
            cfg.allow_root = true;
            break;
        case 'k': {
            char *end = NULL;
            errno = 0;
            unsigned long long keep = strtoull(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-' || keep == 0) {
                fprintf(stderr, "shmtrack daemon: --keep takes a number of dumps > 0, not '%s'\n",
                        optarg);
                return ST_EXIT_USAGE;
            }
            cfg.max_dumps = (size_t)keep;
            break;
        }
        case 'h':
            usage(stdout);
            return ST_EXIT_OK;
        default:
            usage(stderr);
            return ST_EXIT_USAGE;
        }
    }
    if (cfg.socket_path == NULL || optind != argc || interval < 0 || cfg.deadline_ms < 0) {
        usage(stderr);
        return ST_EXIT_USAGE;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (st_cli_trace_out_open(&trace_out, "daemon", out, &cfg) < 0) {
        if (sfd >= 0)
            close(sfd);
        return ST_EXIT_FAIL;
    }
    st_coord_t *co = NULL;
    int rc = st_coord_open(&cfg, &co);
    if (rc < 0) {
        fprintf(stderr, "shmtrack daemon: cannot listen on %s: %s%s\n", cfg.socket_path,
                st_strerror(rc),
                rc == -EPERM ? " (its directory must be ours with mode 0700)" : "");
        st_cli_trace_out_discard(&trace_out);
        return ST_EXIT_FAIL;
    }
    if (sfd < 0 || st_coord_watch(co, sfd, on_signal, NULL) < 0) {
        fprintf(stderr, "shmtrack daemon: signalfd failed\n");
        st_cli_trace_out_discard(&trace_out);
        st_coord_close(co);
        return ST_EXIT_FAIL;
    }
    fprintf(stderr, "shmtrack daemon: listening on %s\n", cfg.socket_path);
    uint64_t next = interval > 0 ? st_clock_ms() + (uint64_t)interval : UINT64_MAX;
    while (!g_stop || st_coord_dump_busy(co)) {
        uint64_t now = st_clock_ms();
        if (!g_stop && now >= next) {
            if (!st_coord_dump_busy(co))
                st_coord_dump_start(co, "periodic_interval", NULL);
            next = now + (uint64_t)interval;
        }
        int timeout = next == UINT64_MAX ? 1000 : (int)(next > now ? next - now : 0);
        if ((rc = st_coord_run(co, timeout)) < 0) {
            fprintf(stderr, "shmtrack daemon: event loop failed: %s\n", st_strerror(rc));
            break;
        }
    }
    size_t n_dumps = 0;
    int wrc = st_cli_trace_out_close(&trace_out, co, &n_dumps);
    if (wrc >= 0)
        fprintf(stderr, "shmtrack daemon: wrote %s (%zu dumps)\n", out, n_dumps);
    st_coord_close(co);
    close(sfd);
    return rc < 0 || wrc != 0 ? ST_EXIT_FAIL : ST_EXIT_OK;
}
