/* SPDX-License-Identifier: MIT
 *
 * Reading and writing traces in the memory-infra flavour of Chrome's JSON trace format
 * (shared/DESIGN.md §5). Private; the only place besides summary output that uses jansson.
 *
 * The reader accepts what catapult's importer accepts (hex with or without 0x, several "v" events
 * for one pid and id, events of other phases) and rejects the rest with an st_error_t naming the
 * source, the event index and the field. The writer is deterministic (sorted keys, processes by
 * pid, globals by name), writes each global node once, in its carrier process's event, and writes
 * files atomically (temporary name + rename) so a reader never sees a truncated trace.
 */
#ifndef SHMTRACK_TRACE_JSON_H
#define SHMTRACK_TRACE_JSON_H

#include "error.h"
#include "model.h"

#include <stdio.h>

/* Largest input the reader takes (bytes); beyond it: ST_ETOOBIG. */
#define ST_TRACE_MAX_BYTES (1ull << 30)

/* path "-" reads stdin. err->source is set to path. */
int st_trace_read_file(const char *path, st_trace_t **out, st_error_t *err);
int st_trace_read_buffer(const char *buf, size_t len, const char *source, st_trace_t **out,
                         st_error_t *err);

/* path "-" writes stdout; otherwise atomically. */
int st_trace_write_file(const st_trace_t *trace, const char *path, st_error_t *err);
int st_trace_write_stream(const st_trace_t *trace, FILE *f, st_error_t *err);

#endif
