/* SPDX-License-Identifier: MIT
 *
 * The shmtrack command's subcommands (private to tools/). Each lives in tools/cmd_<name>.c as
 * `int st_cmd_<name>(int argc, char **argv)`, gets argv starting at its own name, parses its
 * arguments with getopt_long, prints errors to stderr as "shmtrack <name>: ..." and returns the
 * process exit status: 0 success, 1 failure of the work, 2 bad usage or unreadable input.
 * ST_CMD_MAP is the one list: the dispatcher and `shmtrack --help` are generated from it.
 */
#ifndef SHMTRACK_CLI_H
#define SHMTRACK_CLI_H

#include <stddef.h>

/* name, one-line summary */
#define ST_CMD_MAP(XX)                                                                             \
    XX(report, "summarise a trace: per-process and per-object ownership")                          \
    XX(scan, "one global dump from /proc alone, for any processes (no preload)")                   \
    XX(daemon, "run a coordinator on a socket until SIGTERM/SIGINT, then write the trace")         \
    XX(run, "run a program under the tracker (preload + coordinator), write its trace")            \
    XX(dump, "ask a running coordinator for a global dump now")                                    \
    XX(view, "write a self-contained HTML page of a trace (memory-infra view)")                    \
    XX(export, "convert a trace for other tools (Perfetto)")                                       \
    XX(serve, "serve the view live over HTTP, with /api/dumps and Prometheus /metrics")

#define XX(name, summary) int st_cmd_##name(int argc, char **argv);
ST_CMD_MAP(XX)
#undef XX

/* Parses a whole decimal number of milliseconds in [0, 86400000] into *out: 0 or ST_EUSAGE. */
int st_cli_parse_ms(const char *s, long *out);

/* The coordinator options `run` and `daemon` share: --interval (c 'i', into *interval_ms),
 * --deadline ('d'), --policy ('p'), --socket ('s'), --ask-window ('w'), into cfg. Returns 1 when c
 * was one of them, 0 when it was not (the caller handles it), ST_EUSAGE after printing "shmtrack
 * CMD: ..." for a bad value. */
struct st_coord_config;
int st_cli_coord_option(const char *cmd, int c, const char *arg, struct st_coord_config *cfg,
                        long *interval_ms);

/* Where `run` and `daemon` put their trace. Without --keep, into a spool beside the file
 * (st_trace_spool_t): each dump is written as it is taken and the coordinator keeps only the
 * newest in memory (max_dumps 1), so a long run does not grow, and the file appears whole at the
 * end. To stdout ("-"), a special file, or with --keep (cfg->max_dumps set): the coordinator's
 * trace, written at the end. A dump the spool could not take is reported on stderr at once; the
 * close then writes the others and returns 1. */
struct st_trace_spool;
struct st_coord;
struct st_global_dump;
typedef struct st_cli_trace_out {
    const char *cmd, *path;
    struct st_trace_spool *spool; /* NULL: the coordinator's trace */
    size_t lost;                  /* dumps the spool could not take */
} st_cli_trace_out_t;
/* Opens the spool when there is one (and sets cfg->max_dumps); < 0 after printing why. */
int st_cli_trace_out_open(st_cli_trace_out_t *o, const char *cmd, const char *path,
                          struct st_coord_config *cfg);
/* For the coordinator's on_dump: the dump into the spool. */
void st_cli_trace_out_dump(st_cli_trace_out_t *o, const struct st_global_dump *d);
/* Writes the trace (the spool's commit, or the coordinator's trace) and prints any error; the
 * number of dumps it holds in *n_dumps. 0, 1 (written, but dumps were lost), or < 0. */
int st_cli_trace_out_close(st_cli_trace_out_t *o, struct st_coord *co, size_t *n_dumps);
/* When the command fails before it could run: removes the spool (no trace is written). */
void st_cli_trace_out_discard(st_cli_trace_out_t *o);

/* Exit statuses shared by the subcommands. */
enum { ST_EXIT_OK = 0, ST_EXIT_FAIL = 1, ST_EXIT_USAGE = 2 };

#endif
