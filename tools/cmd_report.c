/* SPDX-License-Identifier: MIT
 *
 * `shmtrack report TRACE [--dump ID|last|all] [--format table|json|csv] [--bytes]`: reads a
 * trace, runs the graph processor over each selected dump (effective sizes written in the file
 * are not trusted: they are recomputed) and prints the summary. Thin on purpose: reading is
 * trace_json.c, the numbers are graph.c and summary.c, the layout is report.c.
 *
 * Options are parsed with glibc's getopt_long, so GNU argument permutation applies (TRACE may
 * come before or after the options). Exit status: 0 printed, 1 the work failed (out of memory,
 * output error), 2 bad usage or unreadable/malformed input or an unknown dump id.
 */
#include "cli.h"

#include "error.h"
#include "graph.h"
#include "report.h"
#include "summary.h"
#include "trace_json.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: shmtrack report TRACE [--dump ID|last|all] [--format table|json|csv] [--bytes]\n"
    "\n"
    "Summarises a trace written by shmtrack (Chrome's JSON trace format, memory-infra\n"
    "flavour): for each process its resident, PSS and private footprint bytes, the shared\n"
    "memory it maps and the shared memory it owns; for each shared memory object its sizes,\n"
    "its owner and its holders. Effective sizes are recomputed with the ownership graph\n"
    "processor; any effective_size stored in TRACE is ignored. TRACE \"-\" reads stdin.\n"
    "\n"
    "options:\n"
    "  -d, --dump ID|last|all  which global dump: its id as the report prints it (\"0x2\";\n"
    "                          hexadecimal with or without 0x), the last one in the file\n"
    "                          (default), or all of them in file order\n"
    "  -f, --format FMT        table (default), json (docs/report.md) or csv\n"
    "  -b, --bytes             table: exact byte counts instead of KiB/MiB/GiB\n"
    "  -h, --help              this text\n"
    "\n"
    "exit status: 0 printed; 1 out of memory or output error; 2 bad usage, unreadable or\n"
    "malformed TRACE, or no dump with that id.\n";

/* Parses a dump id: hexadecimal, with or without 0x (ids are hex strings in the format). */
static int parse_id(const char *s, uint64_t *out)
{
    if (strncmp(s, "0x", 2) == 0 || strncmp(s, "0X", 2) == 0)
        s += 2;
    if (*s == '\0' || strspn(s, "0123456789abcdefABCDEF") != strlen(s) || strlen(s) > 16)
        return ST_EUSAGE;
    *out = strtoull(s, NULL, 16);
    return 0;
}

int st_cmd_report(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dump", required_argument, NULL, 'd'},
        {"format", required_argument, NULL, 'f'},
        {"bytes", no_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int status = ST_EXIT_USAGE;
    const char *dump_arg = "last";
    st_report_options_t opt = {ST_REPORT_TABLE, false};
    st_trace_t *trace = NULL;
    st_summary_t **summaries = NULL;
    size_t n = 0;

    opterr = 0; /* our own messages, prefixed "shmtrack report:" */
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":d:f:bh", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            dump_arg = optarg;
            break;
        case 'f':
            if (st_report_format_parse(optarg, &opt.format) < 0) {
                fprintf(stderr, "shmtrack report: unknown format '%s' (table, json or csv)\n",
                        optarg);
                goto out;
            }
            break;
        case 'b':
            opt.bytes = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            status = ST_EXIT_OK;
            goto out;
        case ':':
            fprintf(stderr, "shmtrack report: option '%s' needs a value (see --help)\n",
                    argv[optind - 1]);
            goto out;
        default:
            fprintf(stderr, "shmtrack report: unknown option '%s' (see --help)\n",
                    argv[optind - 1]);
            goto out;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "shmtrack report: missing TRACE (see --help)\n");
        goto out;
    }
    if (optind + 1 < argc) {
        fprintf(stderr, "shmtrack report: unexpected argument '%s' (see --help)\n",
                argv[optind + 1]);
        goto out;
    }
    const char *path = argv[optind];

    bool all = strcmp(dump_arg, "all") == 0, last = strcmp(dump_arg, "last") == 0;
    uint64_t want = 0;
    if (!all && !last && parse_id(dump_arg, &want) < 0) {
        fprintf(stderr,
                "shmtrack report: --dump wants a hexadecimal id, 'last' or 'all', not '%s'\n",
                dump_arg);
        goto out;
    }

    st_error_t err = {0};
    int rc = st_trace_read_file(path, &trace, &err);
    if (rc < 0) {
        char line[1024];
        if (err.text[0] == '\0')
            st_error_set(&err, rc, -1, "%s", st_strerror(rc));
        if (err.source[0] == '\0')
            snprintf(err.source, sizeof(err.source), "%s", path);
        st_error_format(&err, "event", line, sizeof(line));
        fprintf(stderr, "shmtrack report: %s\n", line);
        status = rc == -ENOMEM ? ST_EXIT_FAIL : ST_EXIT_USAGE;
        goto out;
    }

    size_t first = 0, count = trace->n_dumps;
    if (last) {
        if (trace->n_dumps == 0) {
            fprintf(stderr, "shmtrack report: %s: the trace holds no dump\n", path);
            goto out;
        }
        first = trace->n_dumps - 1;
        count = 1;
    } else if (!all) {
        const st_global_dump_t *d = st_trace_find_dump(trace, want);
        if (d == NULL) {
            fprintf(stderr, "shmtrack report: %s: no dump with id 0x%" PRIx64 "\n", path, want);
            goto out;
        }
        first = (size_t)(d - trace->dumps);
        count = 1;
    }

    status = ST_EXIT_FAIL;
    if (count > 0 && (summaries = calloc(count, sizeof(*summaries))) == NULL) {
        fprintf(stderr, "shmtrack report: %s\n", st_strerror(-ENOMEM));
        goto out;
    }
    for (; n < count; n++) {
        if ((rc = st_summary_compute(&trace->dumps[first + n], &summaries[n])) < 0) {
            fprintf(stderr, "shmtrack report: dump 0x%" PRIx64 ": %s\n", trace->dumps[first + n].id,
                    st_strerror(rc));
            goto out;
        }
    }
    rc = st_report_write(stdout, summaries, n, &opt);
    if (rc == 0 && fflush(stdout) != 0)
        rc = -errno;
    if (rc < 0) {
        fprintf(stderr, "shmtrack report: writing the report: %s\n", st_strerror(rc));
        goto out;
    }
    status = ST_EXIT_OK;
out:
    for (size_t i = 0; i < n; i++)
        st_summary_free(summaries[i]);
    free(summaries);
    st_trace_free(trace);
    return status;
}
