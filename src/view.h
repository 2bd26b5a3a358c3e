/* SPDX-License-Identifier: MIT
 *
 * The memory-infra page (private): one self-contained HTML document, the page of tools/view/
 * (CSS and JS inlined at build time by cmake/EmbedPage.cmake) with the report JSON of a trace
 * embedded as data. `shmtrack view` writes it to a file; `shmtrack serve` serves it and lets it
 * refresh itself from /api/dumps. No I/O here: the caller writes the buffer.
 */
#ifndef SHMTRACK_VIEW_H
#define SHMTRACK_VIEW_H

#include "graph.h"
#include "model.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct st_view_options {
    bool live;            /* the page refreshes itself from api_path */
    unsigned refresh_ms;  /* live refresh period; 0 means 2000 */
    const char *api_path; /* relative URL of the report JSON; NULL means "api/dumps" */
} st_view_options_t;

/* The page with report_json (the text of `report --format json`, DESIGN §5; len bytes, need not
 * be NUL-terminated) embedded as it is in a <script type="application/json" id="shmtrack-data">
 * element, and extra_json (st_view_extra_json's text, NUL-terminated; NULL for none) in
 * #shmtrack-extra. Embedded JSON is escaped so that no byte sequence in it can end the element
 * or open a comment ('<', '>', '&', U+2028 and U+2029 become \u escapes, which JSON.parse reads
 * back unchanged). opts may be NULL. *out is malloc'ed and NUL-terminated. Returns 0, -EINVAL
 * (report_json is not a JSON object or array) or -ENOMEM. */
int st_view_render(const char *report_json, size_t len, const char *extra_json,
                   const st_view_options_t *opts, char **out, size_t *out_len);

/* What the report JSON leaves out and the page shows, as JSON text:
 *   {"mapped":{"<dump id, 0x..>":{"<pid>":{"<key>":bytes,...},...},...},
 *    "allocators":{"<dump id>":{"<pid>":{"<allocator>":bytes,...},...},...}}
 * "mapped": the bytes each holder maps, from its "shared_memory/<key>" node's mapped_size entry
 * (holders without one are left out). "allocators": for the overview's allocator columns, the
 * effective size of each process's other top-level nodes ("malloc", "partition_alloc", ...; not
 * "shared_memory", whose numbers are the report's) from graphs[i], the graph processor's result
 * for trace->dumps[i]; graphs, or any graphs[i], may be NULL: that dump gets no allocators.
 * Returns 0 or -ENOMEM. */
int st_view_extra_json(const st_trace_t *trace, st_graph_result_t *const *graphs, char **out,
                       size_t *out_len);

/* The escaping st_view_render applies, appended to *out (malloc'ed, NUL-terminated). */
int st_view_escape_json(const char *json, size_t len, char **out, size_t *out_len);

#endif
