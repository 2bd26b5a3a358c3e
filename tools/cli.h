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
 * --deadline ('d'), --policy ('p'), --socket ('s'), into cfg. Returns 1 when c was one of them,
 * 0 when it was not (the caller handles it), ST_EUSAGE after printing "shmtrack CMD: ..." for a
 * bad value. */
struct st_coord_config;
int st_cli_coord_option(const char *cmd, int c, const char *arg, struct st_coord_config *cfg,
                        long *interval_ms);

/* Exit statuses shared by the subcommands. */
enum { ST_EXIT_OK = 0, ST_EXIT_FAIL = 1, ST_EXIT_USAGE = 2 };

#endif
