/* SPDX-License-Identifier: MIT
 *
 * libFuzzer target for the wire frame decoder (ipc/frame.c). The input is a sequence of packets,
 * each prefixed by a 2-byte little-endian length, as a peer could send them on one connection:
 * every packet is decoded; decoded PROCESS_DUMP and TRACE_CHUNK frames go through the chunk
 * sequencer and their record views are read in full, so an out-of-bounds view shows up under
 * ASan. A frame that decodes must re-encode to the same bytes. Every packet is also decoded in
 * two parts split where a dump chunk's objects would start (st_frame_decode_split, as the
 * coordinator receives chunks): unless the split decoder declines, it must agree with the
 * whole-packet decoder.
 */
#include "frame.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned char out[ST_WIRE_MAX_FRAME];

/* pkt (n bytes) split at both possible dump heads agrees with whole, the result of
 * st_frame_decode. */
static void check_split(const unsigned char *pkt, size_t n, int whole)
{
    for (uint32_t seq = 0; seq < 2; seq++) {
        size_t head = st_frame_dump_head(seq);
        if (n <= head)
            continue;
        unsigned char *tail = malloc(n - head);
        if (tail == NULL)
            return;
        memcpy(tail, pkt + head, n - head);
        st_frame_t f;
        const char *why = NULL;
        int rc = st_frame_decode_split(pkt, head, tail, n - head, &f, &why);
        if (rc != -EINVAL && rc != whole)
            abort();
        if (rc == 0) {
            const st_wire_dump_chunk_t *c;
            const st_wire_totals_t *t;
            const st_wire_object_t *o;
            size_t k;
            volatile uint64_t sink = 0;
            st_frame_dump_parts(&f, &c, &t, &o, &k);
            for (size_t i = 0; i < k; i++)
                sink += o[i].resident + strlen(o[i].name) + strlen(o[i].label);
            (void)sink;
        }
        free(tail);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_chunk_rx_t dump_rx = {0}, trace_rx = {0};
    while (size >= 2) {
        size_t n = (size_t)data[0] | (size_t)data[1] << 8;
        data += 2;
        size -= 2;
        if (n > size)
            n = size;
        /* copy so that ASan sees reads past the packet */
        unsigned char *pkt = malloc(n ? n : 1);
        if (pkt == NULL)
            return 0;
        memcpy(pkt, data, n);
        st_frame_t f;
        const char *why = NULL;
        int whole = st_frame_decode(pkt, n, &f, &why);
        check_split(pkt, n, whole);
        if (whole == 0) {
            volatile uint64_t sink = 0;
            if (f.hdr.type == ST_MSG_PROCESS_DUMP) {
                const st_wire_dump_chunk_t *c;
                const st_wire_totals_t *t;
                const st_wire_object_t *o;
                size_t k;
                st_frame_dump_parts(&f, &c, &t, &o, &k);
                if (t)
                    sink += t->resident_set_bytes;
                for (size_t i = 0; i < k; i++)
                    sink += o[i].resident + strlen(o[i].name) + strlen(o[i].label);
                (void)st_chunk_accept(&dump_rx, c->dump_id, c->seq, f.hdr.flags, &why);
            } else if (f.hdr.type == ST_MSG_TRACE_CHUNK) {
                const st_wire_trace_chunk_t *c;
                const char *b;
                st_frame_trace_parts(&f, &c, &b);
                for (uint32_t i = 0; i < c->n_bytes; i++)
                    sink += (unsigned char)b[i];
                (void)st_chunk_accept(&trace_rx, c->dump_id, c->seq, f.hdr.flags, &why);
            } else if (f.hdr.type == ST_MSG_OBJECT_EVENT) {
                const st_wire_event_t *e;
                size_t k;
                st_frame_events(&f, &e, &k);
                for (size_t i = 0; i < k; i++)
                    sink += strlen(e[i].name) + strlen(st_wire_event_name(e[i].type));
            }
            (void)sink;
            if (f.hdr.version == ST_WIRE_VERSION) {
                int m = st_frame_encode(out, sizeof(out), f.hdr.type, f.hdr.flags, f.body,
                                        f.hdr.length);
                if (m != (int)n || memcmp(out, pkt, n) != 0)
                    abort();
            }
        } else if (why == NULL) {
            abort(); /* every refusal has a reason */
        }
        free(pkt);
        data += n;
        size -= n;
    }
    return 0;
}
