/* SPDX-License-Identifier: MIT
 *
 * Formatting report summaries (private): the table people read, the JSON of DESIGN §5 and a CSV
 * for spreadsheets, as `shmtrack report` prints them. docs/report.md is the contract for JSON and
 * CSV. The functions write to a stream the caller owns and decide nothing else: which dumps to
 * show and where the output goes is the tool's business.
 */
#ifndef SHMTRACK_REPORT_H
#define SHMTRACK_REPORT_H

#include "summary.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Output formats: enum value, name on the command line. */
#define ST_REPORT_FORMAT_MAP(XX)                                                                   \
    XX(ST_REPORT_TABLE, "table")                                                                   \
    XX(ST_REPORT_JSON, "json")                                                                     \
    XX(ST_REPORT_CSV, "csv")

typedef enum st_report_format {
#define XX(e, s) e,
    ST_REPORT_FORMAT_MAP(XX)
#undef XX
        ST_REPORT_FORMAT_COUNT
} st_report_format_t;

const char *st_report_format_name(st_report_format_t format);       /* "?" when out of range */
int st_report_format_parse(const char *s, st_report_format_t *out); /* 0 or ST_EUSAGE */

typedef struct st_report_options {
    st_report_format_t format;
    bool bytes; /* table: exact byte counts instead of KiB/MiB/GiB */
} st_report_options_t;

/* Writes n summaries to f in opt->format: tables one after another, one JSON document
 * {"dumps":[...]}, or one CSV with a single header. Returns 0, -ENOMEM, or -EIO when the stream
 * reports an error. */
int st_report_write(FILE *f, st_summary_t *const *summaries, size_t n,
                    const st_report_options_t *opt);

/* v in human units into buf: "512 B", "1.5 KiB", "12.0 MiB", "3.2 GiB", "1.0 TiB"; one decimal,
 * rounded half up, carried into the next unit when rounding reaches 1024. */
void st_report_human(uint64_t v, char *buf, size_t len);

#endif
