/* SPDX-License-Identifier: MIT
 *
 * Prometheus metrics (private): the latest dump of a report, in the text exposition format
 * (version 0.0.4), for `shmtrack serve`'s /metrics. Built from the report JSON of DESIGN §5, the
 * same text /api/dumps serves, so a scrape and the page can never disagree. Label values are
 * escaped as the format requires (backslash, double quote and newline).
 */
#ifndef SHMTRACK_METRICS_H
#define SHMTRACK_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* What the server knows beyond the report. */
typedef struct st_metrics_state {
    uint64_t dumps_total;          /* dumps taken or loaded since the server started */
    uint64_t partial_dumps_total;  /* of those, partial ones */
    double dump_duration_seconds;  /* time to produce the latest report */
    uint64_t publish_errors_total; /* reloads or dumps that failed */
} st_metrics_state_t;

/* The metrics text for the last dump of report_json (len bytes). *out is malloc'ed. Returns
 * 0, ST_EFORMAT (not a report: no "dumps" array, or a dump without the schema's fields) or
 * -ENOMEM. */
int st_metrics_render(const char *report_json, size_t len, char **out, size_t *out_len);

/* The server's counter families (st_metrics_state_t), to append to st_metrics_render's text. */
int st_metrics_render_state(const st_metrics_state_t *state, char **out, size_t *out_len);

/* Counts the dumps of report_json whose id is above *max_id, and the partial ones among them,
 * then raises *max_id: how the server advances its counters. ST_EFORMAT when not a report. */
int st_metrics_count_new(const char *report_json, size_t len, uint64_t *max_id, uint64_t *n_new,
                         uint64_t *n_new_partial);

#endif
