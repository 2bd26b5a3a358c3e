/* SPDX-License-Identifier: MIT
 *
 * Where the view, serve and export commands get their data (private to tools/): a trace file read,
 * annotated by the graph processor and summarised into the report JSON of DESIGN §5 (exactly what
 * `shmtrack report --format json` prints), or a report JSON file given as it is.
 */
#ifndef SHMTRACK_REPORT_SOURCE_H
#define SHMTRACK_REPORT_SOURCE_H

#include "model.h"

#include <stddef.h>

/* The report JSON of the trace at path (malloc'ed, NUL-terminated) and, when extra is not NULL,
 * what the page shows beyond the report (st_view_extra_json). On failure returns non-zero and
 * writes a sentence for the user into msg. */
int st_cli_report_from_trace(const char *path, char **json, size_t *len, char **extra, char *msg,
                             size_t msglen);

/* The same for a trace in memory (not modified): 0, -ENOMEM or -errno. */
int st_cli_report_of_trace(const st_trace_t *trace, char **json, size_t *len, char **extra);

/* The trace at path, read with the JSON reader (not annotated). */
int st_cli_load_trace(const char *path, st_trace_t **trace, char *msg, size_t msglen);

/* A report JSON file read as it is (checked to be a JSON object with a "dumps" array). */
int st_cli_report_from_file(const char *path, char **json, size_t *len, char *msg, size_t msglen);

/* Reads a whole file ("-": stdin) into a malloc'ed NUL-terminated buffer; 0 or -errno. */
int st_cli_read_all(const char *path, size_t max, char **data, size_t *len);

#endif
