/* SPDX-License-Identifier: MIT
 *
 * `shmtrack view TRACE -o OUT.html`: writes the memory-infra page (src/view.h) with the report of
 * every dump of TRACE embedded, one file that opens in any browser with no network. `--report
 * FILE` takes a saved `report --format json` output instead of a trace.
 */
#include "cli.h"

#include "fileio.h"
#include "report_source.h"
#include "view.h"

#include "error.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: shmtrack view TRACE -o OUT.html\n"
               "       shmtrack view --report REPORT.json -o OUT.html\n\n"
               "Writes one self-contained HTML page (no network needed) showing, for every dump\n"
               "of TRACE: the per-process overview, the shared objects and who is charged for\n"
               "them, a timeline, a diff between two dumps and a treemap.\n\n"
               "  -o, --output FILE   the page to write ('-' for stdout)\n"
               "      --report FILE   use this `shmtrack report --format json` output\n"
               "  -h, --help          this text\n");
}

/* Writes data to path ("-": stdout) through a temporary file and rename, so a browser reloading
 * the page never sees half of it. */
int st_cmd_view(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                         {"report", required_argument, NULL, 'r'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *output = NULL, *report = NULL;
    char *json = NULL, *page = NULL, *extra = NULL;
    size_t json_len = 0, page_len = 0;
    char msg[512];
    int c, status = ST_EXIT_FAIL;

    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            output = optarg;
            break;
        case 'r':
            report = optarg;
            break;
        case 'h':
            usage(stdout);
            return ST_EXIT_OK;
        default:
            usage(stderr);
            return ST_EXIT_USAGE;
        }
    }
    if (!output || (report ? optind != argc : optind != argc - 1)) {
        fprintf(stderr, "shmtrack view: %s\n",
                !output ? "-o OUT.html is required" : "give one TRACE, or --report FILE");
        usage(stderr);
        return ST_EXIT_USAGE;
    }
    int rc =
        report ? st_cli_report_from_file(report, &json, &json_len, msg, sizeof(msg))
               : st_cli_report_from_trace(argv[optind], &json, &json_len, &extra, msg, sizeof(msg));
    if (rc != 0) {
        fprintf(stderr, "shmtrack view: %s\n", msg);
        status = ST_EXIT_USAGE;
        goto out;
    }
    rc = st_view_render(json, json_len, extra, NULL, &page, &page_len);
    if (rc != 0) {
        fprintf(stderr, "shmtrack view: cannot build the page: %s\n", st_strerror(rc));
        goto out;
    }
    rc = st_file_write(output, page, page_len);
    if (rc != 0) {
        fprintf(stderr, "shmtrack view: %s: %s\n", output, st_strerror(rc));
        goto out;
    }
    status = ST_EXIT_OK;
out:
    free(json);
    free(page);
    free(extra);
    return status;
}
