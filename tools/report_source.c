/* SPDX-License-Identifier: MIT
 *
 * The data source shared by `view`, `serve` and `export`: a trace read with the JSON reader,
 * summarised per dump by src/summary.h (which runs the graph processor), printed with the same
 * jansson flags as `report --format json` so the numbers are the report's, byte for byte.
 */
#include "report_source.h"

#include "error.h"
#include "view.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "report.h"
#include "summary.h"
#include "trace_json.h"

int st_cli_read_all(const char *path, size_t max, char **data, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    *data = NULL;
    if (!f)
        return -errno;
    for (;;) {
        if (cap - n < 65536) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *p = realloc(buf, ncap + 1);
            if (!p) {
                rc = -ENOMEM;
                goto out;
            }
            buf = p;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n > max) {
            rc = ST_ETOOBIG;
            goto out;
        }
        if (got == 0) {
            if (ferror(f))
                rc = -EIO;
            break;
        }
    }
out:
    if (f != stdin)
        fclose(f);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

int st_cli_report_from_file(const char *path, char **json, size_t *len, char *msg, size_t msglen)
{
    int rc = st_cli_read_all(path, 1u << 30, json, len);
    if (rc != 0) {
        snprintf(msg, msglen, "%s: %s", path, st_strerror(rc));
        return rc;
    }
    const char *p = *json;
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
        p++;
    if (*p != '{' || !strstr(p, "\"dumps\"")) {
        snprintf(msg, msglen, "%s: not a `shmtrack report --format json` output", path);
        free(*json);
        *json = NULL;
        return ST_EFORMAT;
    }
    return 0;
}

int st_cli_load_trace(const char *path, st_trace_t **trace, char *msg, size_t msglen)
{
    st_error_t err;
    memset(&err, 0, sizeof(err));
    int rc = st_trace_read_file(path, trace, &err);
    if (rc != 0) {
        char text[900];
        st_error_format(&err, "event", text, sizeof(text));
        snprintf(msg, msglen, "%s", text[0] ? text : st_strerror(rc));
    }
    return rc;
}

/* The page's extra data, with the graph processor run over each dump for the allocator columns. */
static int extra_of(const st_trace_t *trace, char **extra)
{
    st_graph_result_t **graphs = calloc(trace->n_dumps ? trace->n_dumps : 1, sizeof(*graphs));
    int rc = graphs ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < trace->n_dumps; i++)
        rc = st_graph_process(&trace->dumps[i], &graphs[i]);
    if (rc == 0)
        rc = st_view_extra_json(trace, graphs, extra, NULL);
    for (size_t i = 0; graphs && i < trace->n_dumps; i++)
        st_graph_result_free(graphs[i]);
    free(graphs);
    return rc;
}

/* Every dump's summary, printed by the report's own JSON writer into memory: the bytes are the
 * ones `shmtrack report TRACE --format json --dump all` prints. */
int st_cli_report_of_trace(const st_trace_t *trace, char **json, size_t *len, char **extra)
{
    st_summary_t **summaries = NULL;
    size_t n = 0;
    FILE *mem = NULL;
    const st_report_options_t opt = {ST_REPORT_JSON, false};
    int rc;

    *json = NULL;
    *len = 0;
    if (extra)
        *extra = NULL;
    summaries = calloc(trace->n_dumps ? trace->n_dumps : 1, sizeof(*summaries));
    if (!summaries) {
        rc = -ENOMEM;
        goto out;
    }
    for (n = 0; n < trace->n_dumps; n++)
        if ((rc = st_summary_compute(&trace->dumps[n], &summaries[n])) != 0)
            goto out;
    mem = open_memstream(json, len);
    if (!mem) {
        rc = -errno;
        goto out;
    }
    rc = st_report_write(mem, summaries, n, &opt);
    if (fclose(mem) != 0 && rc == 0)
        rc = -EIO;
    if (rc == 0 && extra)
        rc = extra_of(trace, extra);
out:
    if (rc != 0) {
        free(*json);
        *json = NULL;
        *len = 0;
    }
    for (size_t i = 0; i < n; i++)
        st_summary_free(summaries[i]);
    free(summaries);
    return rc;
}

int st_cli_report_from_trace(const char *path, char **json, size_t *len, char **extra, char *msg,
                             size_t msglen)
{
    st_trace_t *trace = NULL;
    int rc;

    *json = NULL;
    *len = 0;
    if (extra)
        *extra = NULL;
    rc = st_cli_load_trace(path, &trace, msg, msglen);
    if (rc == 0 && (rc = st_cli_report_of_trace(trace, json, len, extra)) != 0)
        snprintf(msg, msglen, "%s: %s", path, st_strerror(rc));
    st_trace_free(trace);
    return rc;
}
