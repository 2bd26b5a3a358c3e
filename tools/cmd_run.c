/* SPDX-License-Identifier: MIT
 *
 * `shmtrack run [-o TRACE] [--interval MS] [--socket PATH] [--policy P] [--deadline MS]
 * [--ask-window N|all] -- CMD [ARG...]`: runs CMD under the tracker.
 *
 * It starts a coordinator (on a private socket in a fresh 0700 directory unless --socket names
 * one), starts CMD with libshmtrack.so prepended to LD_PRELOAD and SHMTRACK_SOCKET set, takes a
 * global dump every --interval ms and whenever `shmtrack dump --socket PATH` asks, forwards
 * SIGINT/SIGTERM/SIGHUP to CMD, and when CMD's whole process tree is gone writes the trace
 * atomically and exits with CMD's status (128+N when a signal N ended it).
 *
 * Every dump also scans CMD's whole process tree through /proc (the coordinator's scan_tree_root),
 * so processes the preload cannot reach are counted by the catch-all: static binaries, children
 * whose environment dropped LD_PRELOAD, peers the coordinator refused (another uid).
 *
 * "The whole tree" is exact because this process makes itself a child subreaper
 * (PR_SET_CHILD_SUBREAPER): descendants that outlive their parents (daemons, double forks) are
 * re-parented here, so the run ends only when waitpid() has nobody left.
 */
#include "cli.h"

#include "coordinator.h"
#include "error.h"
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct run_state {
    pid_t child;      /* CMD's own process */
    int child_status; /* its wait status, once reaped */
    bool child_reaped;
    bool tree_gone; /* waitpid() reports no children left */
    int forwarded;  /* last signal forwarded, for the message */
};

static void log_line(void *ud, const char *msg)
{
    (void)ud;
    fprintf(stderr, "shmtrack run: %s\n", msg);
}

static void on_dump(void *ud, const st_global_dump_t *d)
{
    st_cli_trace_out_dump(ud, d);
}

static void reap(struct run_state *st)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            if (pid == st->child) {
                st->child_status = status;
                st->child_reaped = true;
            }
            continue;
        }
        if (pid < 0 && errno == ECHILD)
            st->tree_gone = true;
        if (pid < 0 && errno == EINTR)
            continue;
        return;
    }
}

static void on_signal(void *ud, int fd)
{
    struct run_state *st = ud;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGCHLD) {
            reap(st);
        } else if (!st->child_reaped) {
            kill(st->child, (int)si.ssi_signo);
            st->forwarded = (int)si.ssi_signo;
        }
    }
}

/* The preload: $SHMTRACK_PRELOAD, else libshmtrack.so in ../lib next to this executable (the
 * build tree's build/bin + build/lib, and an install's bin + lib). */
static int find_preload(char *buf, size_t len)
{
    const char *env = getenv("SHMTRACK_PRELOAD");
    if (env != NULL && env[0] != '\0') {
        if (access(env, R_OK) != 0)
            return -errno;
        snprintf(buf, len, "%s", env);
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n < 0)
        return -errno;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
        return -ENOENT;
    *slash = '\0';
    static const char *const rel[] = {"/../lib/libshmtrack.so", "/../lib64/libshmtrack.so",
                                      "/../lib/x86_64-linux-gnu/libshmtrack.so"};
    for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
        char cand[PATH_MAX + 64];
        snprintf(cand, sizeof(cand), "%s%s", exe, rel[i]);
        char *real = realpath(cand, NULL);
        if (real != NULL) {
            snprintf(buf, len, "%s", real);
            free(real);
            return 0;
        }
    }
    return -ENOENT;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shmtrack run [-o TRACE] [--interval MS] [--socket PATH] [--policy P]\n"
            "                    [--deadline MS] [--ask-window N|all] -- CMD [ARG...]\n"
            "Runs CMD with libshmtrack.so preloaded and a coordinator listening, takes a global\n"
            "dump every MS milliseconds and whenever `shmtrack dump --socket PATH` asks, and\n"
            "when CMD and every process it started have exited, writes TRACE and exits with\n"
            "CMD's exit status. SIGINT, SIGTERM and SIGHUP are forwarded to CMD. Each dump also\n"
            "scans CMD's process tree through /proc, so programs without the preload count too.\n"
            "  -o, --output TRACE  where the trace goes (default shmtrack-trace.json); each\n"
            "                      dump is written beside it as it is taken, the trace at the end\n"
            "  --interval MS       dump period (default 1000; 0: only on request)\n"
            "  --socket PATH       the coordinator's socket (default: a private one, in a new\n"
            "                      0700 directory under $TMPDIR or /tmp, removed at exit)\n"
            "  --policy P          creator (default), equal or first-touch\n"
            "  --deadline MS       how long a dump waits for processes (default 1000)\n"
            "  --ask-window N      processes asked for their report at a time (default 32; the\n"
            "                      next when one answers, or has kept its request 25 ms;\n"
            "                      everyone left at half the deadline); 'all': all at once\n"
            "Environment: SHMTRACK_PRELOAD overrides the preload's path; CMD sees\n"
            "SHMTRACK_SOCKET and may set SHMTRACK_IMPORTANCE, SHMTRACK_DISABLE=1.\n");
}

/* LD_PRELOAD with our library first; keeps what the user preloads already. */
static int set_preload_env(const char *lib)
{
    const char *old = getenv("LD_PRELOAD");
    char *val = NULL;
    if (old != NULL && old[0] != '\0') {
        if (asprintf(&val, "%s:%s", lib, old) < 0)
            return -ENOMEM;
    } else if ((val = strdup(lib)) == NULL) {
        return -ENOMEM;
    }
    int rc = setenv("LD_PRELOAD", val, 1);
    free(val);
    return rc < 0 ? -errno : 0;
}

int st_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},   {"interval", required_argument, NULL, 'i'},
        {"socket", required_argument, NULL, 's'},   {"policy", required_argument, NULL, 'p'},
        {"deadline", required_argument, NULL, 'd'}, {"ask-window", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    /* The merge also scans every descendant of this process through /proc, so what the preload
     * cannot reach (a static binary, a worker whose connection SO_PEERCRED refused, a child
     * started with a scrubbed environment) is still counted: `shmtrack scan --tree` semantics. */
    st_cli_trace_out_t trace_out = {0};
    st_coord_config_t cfg = {
        .log = log_line, .on_dump = on_dump, .ud = &trace_out, .scan_tree_root = (int)getpid()};
    const char *out = "shmtrack-trace.json";
    long interval = 1000;
    int c;
    optind = 1;
    /* "+": stop at the first non-option, so CMD's own options are left alone. */
    while ((c = getopt_long(argc, argv, "+o:h", opts, NULL)) != -1) {
        int handled = st_cli_coord_option("run", c, optarg, &cfg, &interval);
        if (handled < 0)
            return ST_EXIT_USAGE;
        if (handled > 0)
            continue;
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'h':
            usage(stdout);
            return ST_EXIT_OK;
        default:
            usage(stderr);
            return ST_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "shmtrack run: no command given (shmtrack run [options] -- CMD ...)\n");
        return ST_EXIT_USAGE;
    }
    char preload[PATH_MAX];
    int rc = find_preload(preload, sizeof(preload));
    if (rc < 0) {
        fprintf(stderr,
                "shmtrack run: cannot find libshmtrack.so next to this program (%s); set "
                "SHMTRACK_PRELOAD\n",
                st_strerror(rc));
        return ST_EXIT_FAIL;
    }

    char dir[PATH_MAX] = "", sock[PATH_MAX + 16];
    if (cfg.socket_path == NULL) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof(dir), "%s/shmtrack-run.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        if (mkdtemp(dir) == NULL) {
            fprintf(stderr, "shmtrack run: cannot create a private directory %s: %s\n", dir,
                    strerror(errno));
            return ST_EXIT_FAIL;
        }
        snprintf(sock, sizeof(sock), "%s/sock", dir);
        cfg.socket_path = sock;
    }

    struct run_state st = {0};
    int status = ST_EXIT_FAIL;
    st_coord_t *co = NULL;
    int sfd = -1;
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &old);
    signal(SIGPIPE, SIG_IGN);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        fprintf(stderr,
                "shmtrack run: not a subreaper (%s): descendants that outlive CMD's "
                "process are not waited for\n",
                strerror(errno));

    if (st_cli_trace_out_open(&trace_out, "run", out, &cfg) < 0)
        goto out;
    if ((rc = st_coord_open(&cfg, &co)) < 0) {
        fprintf(stderr, "shmtrack run: cannot listen on %s: %s\n", cfg.socket_path,
                st_strerror(rc));
        goto out;
    }
    sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0 || st_coord_watch(co, sfd, on_signal, &st) < 0) {
        fprintf(stderr, "shmtrack run: signalfd: %s\n", strerror(errno));
        goto out;
    }

    /* Prepare CMD's environment here, before fork: the child only execs. */
    if (set_preload_env(preload) < 0 || setenv("SHMTRACK_SOCKET", cfg.socket_path, 1) < 0) {
        fprintf(stderr, "shmtrack run: cannot set the environment\n");
        goto out;
    }
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0) {
        fprintf(stderr, "shmtrack run: pipe: %s\n", strerror(errno));
        goto out;
    }
    st.child = fork();
    if (st.child < 0) {
        fprintf(stderr, "shmtrack run: fork: %s\n", strerror(errno));
        close(ready[0]);
        close(ready[1]);
        goto out;
    }
    if (st.child == 0) {
        close(ready[0]);
        sigprocmask(SIG_SETMASK, &old, NULL);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[optind], argv + optind);
        int e = errno;
        if (write(ready[1], &e, sizeof(e)) < 0) {
        }
        _exit(127);
    }
    close(ready[1]);
    int exec_errno = 0;
    ssize_t got = read(ready[0], &exec_errno, sizeof(exec_errno));
    close(ready[0]);
    if (got == (ssize_t)sizeof(exec_errno)) {
        fprintf(stderr, "shmtrack run: cannot run %s: %s\n", argv[optind], strerror(exec_errno));
        waitpid(st.child, NULL, 0);
        status = 127;
        goto out;
    }
    fprintf(stderr, "shmtrack run: tracking %s (pid %d) on %s\n", argv[optind], (int)st.child,
            cfg.socket_path);

    uint64_t next = interval > 0 ? st_clock_ms() + (uint64_t)interval : UINT64_MAX;
    reap(&st); /* a CMD that exited before the signalfd saw SIGCHLD */
    while (!st.tree_gone || st_coord_dump_busy(co)) {
        uint64_t now = st_clock_ms();
        if (!st.tree_gone && now >= next) {
            if (!st_coord_dump_busy(co))
                st_coord_dump_start(co, "periodic_interval", NULL);
            next = now + (uint64_t)interval;
        }
        int timeout = next == UINT64_MAX ? 1000 : (int)(next > now ? next - now : 0);
        if (timeout > 1000)
            timeout = 1000;
        if ((rc = st_coord_run(co, timeout)) < 0) {
            fprintf(stderr, "shmtrack run: event loop failed: %s\n", st_strerror(rc));
            break;
        }
        reap(&st);
    }

    size_t n_dumps = 0;
    int wrc = st_cli_trace_out_close(&trace_out, co, &n_dumps);
    if (wrc >= 0)
        fprintf(stderr, "shmtrack run: wrote %s (%zu dump%s)%s\n", out, n_dumps,
                n_dumps == 1 ? "" : "s",
                n_dumps == 0 ? ": CMD ended before the first --interval" : "");
    if (!st.child_reaped)
        status = ST_EXIT_FAIL;
    else if (WIFEXITED(st.child_status))
        status = WEXITSTATUS(st.child_status);
    else if (WIFSIGNALED(st.child_status))
        status = 128 + WTERMSIG(st.child_status);
    if (wrc != 0 && status == 0)
        status = ST_EXIT_FAIL;
out:
    st_cli_trace_out_discard(&trace_out); /* when it failed before the close */
    st_coord_close(co);
    if (sfd >= 0)
        close(sfd);
    if (dir[0] != '\0') {
        unlink(sock);
        rmdir(dir);
    }
    return status;
}
