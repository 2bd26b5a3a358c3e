/* SPDX-License-Identifier: MIT
 *
 * Perfetto export (private): a trace as a Perfetto protobuf trace, so it opens in the Perfetto UI
 * and in trace_processor's memory snapshot tables. Written: one TracePacket with a TrackDescriptor
 * (ProcessDescriptor: pid, name) per process of the trace, then one TracePacket per global dump
 * holding a MemoryTrackerSnapshot: a ProcessSnapshot per process (its allocator nodes with their
 * entries, and its ownership edges) and one for pid 0 holding the shared "global/" nodes.
 * Entries are written as the trace has them, except "effective_size": Perfetto's importer runs
 * the graph processor itself, as for Chrome's snapshots, which never carry one.
 *
 * The field numbers are those of Perfetto's protos/perfetto/trace/{trace,trace_packet,
 * memory_graph}.proto and track_event/{track,process}_descriptor.proto; tests/data/perfetto/
 * keeps the subset used here, and the tests decode our output with `protoc --decode`. The
 * protobuf encoding (varints and length-delimited fields) is done by hand: it is a page of code,
 * where a protobuf library would add a code generator and a runtime dependency.
 */
#ifndef SHMTRACK_PERFETTO_H
#define SHMTRACK_PERFETTO_H

#include "model.h"

#include <stddef.h>

/* The whole trace as a perfetto.protos.Trace message; *out is malloc'ed. Returns 0 or -ENOMEM. */
int st_perfetto_encode(const st_trace_t *trace, unsigned char **out, size_t *out_len);

#endif
