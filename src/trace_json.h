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

/* path "-" writes stdout; otherwise atomically (a temporary file in the same directory, renamed
 * over path), and durably: the file and its directory are fsync'd (ST_WRITE_FSYNC). */
int st_trace_write_file(const st_trace_t *trace, const char *path, st_error_t *err);

/* When st_trace_write_file_ex fsyncs. Without fsync the rename still makes the write atomic for
 * readers; only a machine crash soon after can leave a new file empty (an invalid trace, never
 * a misread one) or missing. */
typedef enum st_write_sync {
    ST_WRITE_FSYNC,         /* always (st_trace_write_file) */
    ST_WRITE_FSYNC_REPLACE, /* only when path is a non-empty file, which a crash must not lose */
} st_write_sync_t;
int st_trace_write_file_ex(const st_trace_t *trace, const char *path, st_write_sync_t sync,
                           st_error_t *err);
int st_trace_write_stream(const st_trace_t *trace, FILE *f, st_error_t *err);
/* The same with this many threads building event texts (0: one per online CPU, at most 4, and
 * one for a dump of few processes). The output does not depend on it; tests compare. */
int st_trace_write_stream_threads(const st_trace_t *trace, FILE *f, unsigned threads,
                                  st_error_t *err);

/* A trace written as its dumps come, so that a long run need not keep them in memory: each dump's
 * events go to a spool file beside path (path.spool.PID.N) as it is added; commit appends the
 * process names and the metadata (meta's version, policy, host and kernel; each dump's flags,
 * warnings and problems) after traceEvents, as DESIGN §5 shows them, and renames the spool to
 * path: atomic like st_trace_write_file_ex, with no copy. It reads as the trace of every dump
 * added, in order (the writer gives the same bytes for it). A dump that could not be added whole
 * is not in the spool (the error says why); those before it stay. If its bytes cannot be taken
 * back (the truncation fails too), the spool refuses every later dump and the commit, rather than
 * write a file that is not a trace. st_trace_spool_free removes the spool file unless a commit
 * renamed it. */
typedef struct st_trace_spool st_trace_spool_t;
int st_trace_spool_open(const char *path, st_trace_spool_t **out, st_error_t *err);
int st_trace_spool_add(st_trace_spool_t *s, const st_global_dump_t *dump, st_error_t *err);
size_t st_trace_spool_dumps(const st_trace_spool_t *s);
int st_trace_spool_commit(st_trace_spool_t *s, const st_trace_t *meta, st_write_sync_t sync,
                          st_error_t *err);
void st_trace_spool_free(st_trace_spool_t *s);

#endif
