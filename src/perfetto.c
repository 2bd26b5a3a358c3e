/* SPDX-License-Identifier: MIT
 *
 * The Perfetto encoder; see perfetto.h for what is written. A message is built in its own buffer
 * and appended to its parent as tag + length + bytes: traces are small (a few thousand nodes per
 * dump), so the copies cost less than the bookkeeping of patching lengths in place would.
 */
#include "perfetto.h"

#include "strbuf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Field numbers (Perfetto's protos; checked against protos/perfetto/trace/). */
enum {
    TRACE_PACKET = 1, /* Trace.packet */

    PACKET_TIMESTAMP = 8,
    PACKET_SEQUENCE_ID = 10, /* trusted_packet_sequence_id */
    PACKET_TRACK_DESCRIPTOR = 60,
    PACKET_MEMORY_SNAPSHOT = 73, /* memory_tracker_snapshot */

    TRACK_UUID = 1,
    TRACK_NAME = 2,
    TRACK_PROCESS = 3,

    PROCDESC_PID = 1,
    PROCDESC_NAME = 6,

    SNAPSHOT_GLOBAL_DUMP_ID = 1,
    SNAPSHOT_LEVEL_OF_DETAIL = 2,
    SNAPSHOT_PROCESS_DUMPS = 3,

    PROCSNAP_PID = 1,
    PROCSNAP_NODES = 2, /* allocator_dumps */
    PROCSNAP_EDGES = 3, /* memory_edges */

    NODE_ID = 1,
    NODE_ABSOLUTE_NAME = 2,
    NODE_WEAK = 3,
    NODE_ENTRIES = 4,

    ENTRY_NAME = 1,
    ENTRY_UNITS = 2,
    ENTRY_VALUE_UINT64 = 3,
    ENTRY_VALUE_STRING = 4,

    EDGE_SOURCE = 1,
    EDGE_TARGET = 2,
    EDGE_IMPORTANCE = 3,
};

enum { WIRE_VARINT = 0, WIRE_LEN = 2 };
enum { UNITS_UNSPECIFIED = 0, UNITS_BYTES = 1, UNITS_COUNT = 2 };
enum { DETAIL_FULL = 0, DETAIL_LIGHT = 1, DETAIL_BACKGROUND = 2 };

/* Every packet of this writer is on one sequence. */
#define SEQUENCE_ID 1
/* Track uuids of process descriptors: a constant prefix keeps them apart from other writers'. */
#define PROCESS_TRACK_UUID(pid) (0x5348540000000000ull | (uint32_t)(pid))

static void varint(st_strbuf_t *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    st_strbuf_append(b, tmp, n);
}

static void field_varint(st_strbuf_t *b, unsigned field, uint64_t v)
{
    varint(b, (uint64_t)field << 3 | WIRE_VARINT);
    varint(b, v);
}

static void field_bytes(st_strbuf_t *b, unsigned field, const void *data, size_t len)
{
    varint(b, (uint64_t)field << 3 | WIRE_LEN);
    varint(b, len);
    st_strbuf_append(b, data, len);
}

static void field_string(st_strbuf_t *b, unsigned field, const char *s)
{
    field_bytes(b, field, s, strlen(s));
}

/* Appends msg to b as field number `field`, then frees msg; carries msg's error over. */
static void field_message(st_strbuf_t *b, unsigned field, st_strbuf_t *msg)
{
    if (msg->err && !b->err)
        b->err = msg->err;
    field_bytes(b, field, msg->data ? msg->data : "", msg->len);
    st_strbuf_free(msg);
}

static unsigned units_of(const char *units)
{
    if (!units)
        return UNITS_UNSPECIFIED;
    if (strcmp(units, "bytes") == 0)
        return UNITS_BYTES;
    if (strcmp(units, "objects") == 0 || strcmp(units, "count") == 0)
        return UNITS_COUNT;
    return UNITS_UNSPECIFIED;
}

static unsigned level_of(const char *level)
{
    if (level && strcmp(level, "light") == 0)
        return DETAIL_LIGHT;
    if (level && strcmp(level, "background") == 0)
        return DETAIL_BACKGROUND;
    return DETAIL_FULL;
}

static void encode_node(st_strbuf_t *snap, const st_node_t *node)
{
    st_strbuf_t m = ST_STRBUF_INIT;
    field_varint(&m, NODE_ID, node->guid);
    field_string(&m, NODE_ABSOLUTE_NAME, node->name);
    if (node->weak)
        field_varint(&m, NODE_WEAK, 1);
    for (size_t i = 0; i < node->n_entries; i++) {
        const st_entry_t *e = &node->entries[i];
        /* Perfetto computes effective sizes itself, as it does for Chrome's snapshots (which
         * never carry them); leaving ours out lets its numbers be compared with the report. */
        if (strcmp(e->name, "effective_size") == 0)
            continue;
        st_strbuf_t em = ST_STRBUF_INIT;
        field_string(&em, ENTRY_NAME, e->name);
        if (e->type == ST_ENTRY_SCALAR) {
            field_varint(&em, ENTRY_UNITS, units_of(e->units));
            field_varint(&em, ENTRY_VALUE_UINT64, e->value);
        } else {
            field_string(&em, ENTRY_VALUE_STRING, e->string ? e->string : "");
        }
        field_message(&m, NODE_ENTRIES, &em);
    }
    field_message(snap, PROCSNAP_NODES, &m);
}

static void encode_edge(st_strbuf_t *snap, const st_edge_t *edge)
{
    st_strbuf_t m = ST_STRBUF_INIT;
    field_varint(&m, EDGE_SOURCE, edge->source);
    field_varint(&m, EDGE_TARGET, edge->target);
    /* uint32 in the schema: a negative importance (none of our policies makes one) becomes 0. */
    if (edge->importance > 0)
        field_varint(&m, EDGE_IMPORTANCE, (uint32_t)edge->importance);
    field_message(snap, PROCSNAP_EDGES, &m);
}

static void encode_dump(st_strbuf_t *out, const st_global_dump_t *dump)
{
    st_strbuf_t packet = ST_STRBUF_INIT, snapshot = ST_STRBUF_INIT;

    field_varint(&snapshot, SNAPSHOT_GLOBAL_DUMP_ID, dump->id);
    field_varint(&snapshot, SNAPSHOT_LEVEL_OF_DETAIL, level_of(dump->level_of_detail));
    for (size_t p = 0; p < dump->n_procs; p++) {
        const st_process_dump_t *proc = &dump->procs[p];
        st_strbuf_t ps = ST_STRBUF_INIT;
        field_varint(&ps, PROCSNAP_PID, (uint64_t)(uint32_t)proc->pid);
        for (size_t n = 0; n < proc->n_nodes; n++)
            encode_node(&ps, &proc->nodes[n]);
        for (size_t e = 0; e < proc->n_edges; e++)
            encode_edge(&ps, &proc->edges[e]);
        field_message(&snapshot, SNAPSHOT_PROCESS_DUMPS, &ps);
    }
    if (dump->n_globals) {
        st_strbuf_t ps = ST_STRBUF_INIT;
        field_varint(&ps, PROCSNAP_PID, 0);
        for (size_t g = 0; g < dump->n_globals; g++)
            encode_node(&ps, &dump->globals[g]);
        field_message(&snapshot, SNAPSHOT_PROCESS_DUMPS, &ps);
    }

    field_varint(&packet, PACKET_TIMESTAMP, dump->ts_us * 1000u);
    field_varint(&packet, PACKET_SEQUENCE_ID, SEQUENCE_ID);
    field_message(&packet, PACKET_MEMORY_SNAPSHOT, &snapshot);
    field_message(out, TRACE_PACKET, &packet);
}

static void encode_process(st_strbuf_t *out, int pid, const char *name)
{
    st_strbuf_t packet = ST_STRBUF_INIT, track = ST_STRBUF_INIT, proc = ST_STRBUF_INIT;
    field_varint(&proc, PROCDESC_PID, (uint64_t)(uint32_t)pid);
    if (name)
        field_string(&proc, PROCDESC_NAME, name);
    field_varint(&track, TRACK_UUID, PROCESS_TRACK_UUID(pid));
    if (name)
        field_string(&track, TRACK_NAME, name);
    field_message(&track, TRACK_PROCESS, &proc);
    field_varint(&packet, PACKET_SEQUENCE_ID, SEQUENCE_ID);
    field_message(&packet, PACKET_TRACK_DESCRIPTOR, &track);
    field_message(out, TRACE_PACKET, &packet);
}

/* One descriptor per pid, in order of first appearance, with the first name the trace gives. */
static int encode_processes(st_strbuf_t *out, const st_trace_t *trace)
{
    int *seen = NULL;
    size_t n_seen = 0, cap = 0;
    for (size_t d = 0; d < trace->n_dumps; d++) {
        const st_global_dump_t *dump = &trace->dumps[d];
        for (size_t p = 0; p < dump->n_procs; p++) {
            int pid = dump->procs[p].pid;
            bool known = false;
            for (size_t i = 0; i < n_seen && !known; i++)
                known = seen[i] == pid;
            if (known)
                continue;
            if (n_seen == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                int *ns = realloc(seen, ncap * sizeof(*seen));
                if (!ns) {
                    free(seen);
                    return -ENOMEM;
                }
                seen = ns;
                cap = ncap;
            }
            seen[n_seen++] = pid;
            const char *name = dump->procs[p].name;
            for (size_t e = d + 1; !name && e < trace->n_dumps; e++) {
                const st_process_dump_t *later = st_dump_find_process(&trace->dumps[e], pid);
                name = later ? later->name : NULL;
            }
            encode_process(out, pid, name);
        }
    }
    free(seen);
    return 0;
}

int st_perfetto_encode(const st_trace_t *trace, unsigned char **out, size_t *out_len)
{
    st_strbuf_t b = ST_STRBUF_INIT;
    int rc = encode_processes(&b, trace);

    *out = NULL;
    if (rc != 0) {
        st_strbuf_free(&b);
        return rc;
    }
    for (size_t d = 0; d < trace->n_dumps; d++)
        encode_dump(&b, &trace->dumps[d]);
    st_strbuf_append(&b, "", 0); /* an empty trace is a valid, empty buffer */
    rc = st_strbuf_error(&b);
    *out = (unsigned char *)st_strbuf_steal(&b, out_len);
    if (!*out)
        return rc ? rc : -ENOMEM;
    return 0;
}
