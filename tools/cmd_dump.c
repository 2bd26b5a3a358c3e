/* SPDX-License-Identifier: MIT
 *
 * `shmtrack dump [--socket PATH] [-o TRACE]`: asks a running coordinator (`shmtrack daemon`,
 * `shmtrack run`) for a global dump now, over the coordinator's own socket (HELLO as a control
 * peer, then DUMP_NOW). The coordinator answers DUMP_DONE and the dump as a one-dump JSON trace in
 * TRACE_CHUNK frames; this command writes that trace to TRACE atomically (`-o -`: stdout), or,
 * without -o, prints the report of that dump (as `shmtrack report` does). A one-line summary goes
 * to stderr. The socket defaults to $SHMTRACK_SOCKET. The protocol is src/control.h's.
 */
#include "cli.h"

#include "fileio.h"

#include "control.h"
#include "error.h"
#include "report.h"
#include "summary.h"
#include "trace_json.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads the one-dump trace the coordinator sent and prints its report. */
static int print_report(const char *json, size_t len)
{
    st_trace_t *t = NULL;
    st_summary_t *sum = NULL;
    st_error_t err;
    memset(&err, 0, sizeof(err));
    int rc = st_trace_read_buffer(json, len, "coordinator", &t, &err);
    if (rc < 0) {
        char msg[1024];
        st_error_format(&err, "event", msg, sizeof(msg));
        fprintf(stderr, "shmtrack dump: the coordinator's trace does not parse: %s\n", msg);
        return ST_EXIT_FAIL;
    }
    if (t->n_dumps == 0 || (rc = st_summary_compute(&t->dumps[0], &sum)) < 0) {
        fprintf(stderr, "shmtrack dump: no dump to report\n");
        st_trace_free(t);
        return ST_EXIT_FAIL;
    }
    st_report_options_t opt = {.format = ST_REPORT_TABLE};
    rc = st_report_write(stdout, &sum, 1, &opt);
    st_summary_free(sum);
    st_trace_free(t);
    return rc < 0 ? ST_EXIT_FAIL : ST_EXIT_OK;
}

int st_cmd_dump(int argc, char **argv)
{
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *sock = getenv("SHMTRACK_SOCKET"), *out = NULL;
    int c, rc, status = ST_EXIT_FAIL;
    char *trace = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            sock = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'h':
            printf("usage: shmtrack dump [--socket PATH] [-o TRACE]\n"
                   "Asks the coordinator on PATH (default $SHMTRACK_SOCKET) for a global dump now\n"
                   "and prints its report, or writes it as a trace to TRACE (-: stdout).\n");
            return ST_EXIT_OK;
        default:
            fprintf(stderr, "usage: shmtrack dump [--socket PATH] [-o TRACE]\n");
            return ST_EXIT_USAGE;
        }
    }
    if (sock == NULL || optind != argc) {
        fprintf(stderr, "shmtrack dump: no socket: pass --socket PATH or set SHMTRACK_SOCKET\n");
        return ST_EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    st_wire_dump_done_t done;
    size_t got = 0;
    char msg[1024];
    rc = st_control_fetch_trace(sock, 120000, &done, &trace, &got, msg, sizeof(msg));
    if (rc < 0 && done.dump_id == 0) {
        fprintf(stderr, "shmtrack dump: %s\n", msg);
        goto out;
    }
    fprintf(stderr, "shmtrack dump: dump 0x%llx: %u processes, %u objects%s\n",
            (unsigned long long)done.dump_id, done.n_processes, done.n_objects,
            done.partial ? " (partial: some clients did not answer)" : "");
    if (rc < 0) {
        fprintf(stderr, "shmtrack dump: %s\n", msg);
        goto out;
    }
    if (out == NULL) {
        status = print_report(trace, got);
        goto out;
    }
    if ((rc = st_file_write(out, trace, got)) < 0) {
        fprintf(stderr, "shmtrack dump: cannot write %s: %s\n", out, strerror(-rc));
        goto out;
    }
    status = ST_EXIT_OK;
out:
    free(trace);
    return status;
}
