/* SPDX-License-Identifier: MIT
 *
 * `shmtrack export TRACE --format perfetto -o OUT.pftrace`: the trace as Perfetto protobuf
 * (src/perfetto.h), for the Perfetto UI and trace_processor's memory snapshot tables.
 */
#include "cli.h"

#include "fileio.h"
#include "report_source.h"

#include "error.h"
#include "perfetto.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: shmtrack export TRACE --format perfetto -o OUT.pftrace\n\n"
               "Converts TRACE to another tool's format:\n"
               "  perfetto   Perfetto TracePackets: a MemoryTrackerSnapshot per global dump\n"
               "             (global nodes under pid 0) and a process descriptor per process\n\n"
               "  -f, --format FMT    output format (perfetto)\n"
               "  -o, --output FILE   where to write ('-' for stdout)\n"
               "  -h, --help          this text\n");
}

int st_cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *format = NULL, *output = NULL;
    st_trace_t *trace = NULL;
    unsigned char *data = NULL;
    size_t len = 0;
    char msg[1024];
    int c, status = ST_EXIT_FAIL;

    optind = 1;
    while ((c = getopt_long(argc, argv, "f:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            format = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case 'h':
            usage(stdout);
            return ST_EXIT_OK;
        default:
            usage(stderr);
            return ST_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || !format || !output) {
        fprintf(stderr, "shmtrack export: %s\n",
                optind != argc - 1 ? "give one TRACE"
                : !format          ? "--format is required"
                                   : "-o OUT is required");
        usage(stderr);
        return ST_EXIT_USAGE;
    }
    if (strcmp(format, "perfetto") != 0) {
        fprintf(stderr, "shmtrack export: unknown format '%s' (known: perfetto)\n", format);
        return ST_EXIT_USAGE;
    }
    if (st_cli_load_trace(argv[optind], &trace, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "shmtrack export: %s\n", msg);
        return ST_EXIT_USAGE;
    }
    int rc = st_perfetto_encode(trace, &data, &len);
    if (rc != 0) {
        fprintf(stderr, "shmtrack export: %s\n", st_strerror(rc));
        goto out;
    }
    rc = st_file_write(output, data, len);
    if (rc != 0) {
        fprintf(stderr, "shmtrack export: %s: %s\n", output, st_strerror(rc));
        goto out;
    }
    status = ST_EXIT_OK;
out:
    free(data);
    st_trace_free(trace);
    return status;
}
