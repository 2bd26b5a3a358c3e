/* SPDX-License-Identifier: MIT
 *
 * Encoding and strict decoding of wire frames (private to ipc/ and its users). This is the one
 * place that turns bytes into messages: every check a peer's bytes must pass is here, so the
 * coordinator, the client and the fuzzer all see the same rules. Allocation-free and
 * async-signal-safe (no stdio, no malloc), as the client library runs it inside a preload.
 *
 * Decode failures return a negative errno and a static sentence (why):
 *   -EBADMSG         malformed: short header, bad magic, unknown flags, length lies, a body of the
 *                    wrong shape, a string without its NUL, an out-of-range enum
 *   -EPROTONOSUPPORT the peer speaks another version (the header is otherwise well formed; answer
 *                    with an ERROR frame, whose layout never changes)
 *   -EMSGSIZE        the body exceeds ST_WIRE_MAX_BODY
 *   -EPROTO          an unknown message type, or chunks out of order / truncated / mixed
 */
#ifndef SHMTRACK_IPC_FRAME_H
#define SHMTRACK_IPC_FRAME_H

#include "wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A decoded frame: the header and a pointer to the body inside the caller's buffer. */
typedef struct st_frame {
    st_wire_header_t hdr;
    const void *body;
    /* a PROCESS_DUMP chunk decoded from two parts (st_frame_decode_split): its objects, which
     * do not follow the chunk header; NULL otherwise */
    const void *objects;
} st_frame_t;

const char *st_wire_type_name(unsigned type);  /* "HELLO"...; "?" when unknown */
const char *st_wire_event_name(unsigned type); /* "created"...; "?" */
const char *st_wire_error_name(unsigned code); /* the frozen sentence of an ST_WERR_* code */

/* Writes header + body (len bytes) into buf. Returns the frame's length, or -EMSGSIZE when
 * len > ST_WIRE_MAX_BODY or the frame does not fit cap. pre: body != NULL || len == 0. */
int st_frame_encode(void *buf, size_t cap, unsigned type, unsigned flags, const void *body,
                    size_t len);

/* Writes an ERROR frame (text truncated to fit) into buf; returns its length or -EMSGSIZE. */
int st_frame_encode_error(void *buf, size_t cap, unsigned code, const char *text);

/* Validates n bytes received as one packet and fills out. Returns 0, or a negative errno (see
 * above) with *why (optional) set to a static sentence. On -EPROTONOSUPPORT out->hdr is filled.
 * pre: buf != NULL || n == 0. */
int st_frame_decode(const void *buf, size_t n, st_frame_t *out, const char **why);

/* The same rules for a packet received in two parts: head (n_head bytes) and, right after it in
 * the packet, tail (n_tail bytes, 0 < n_tail). Accepted only when head is exactly a
 * PROCESS_DUMP chunk's header part (the frame header, the chunk header and, for chunk 0, the
 * totals), so that tail holds its objects, which are then checked in place (out->objects): a
 * receiver lands a dump's records where it keeps them, without a copy. For any other packet
 * (another type, another split, a header it cannot read) it returns -EINVAL and validates
 * nothing: join the parts and call st_frame_decode. */
int st_frame_decode_split(const void *head, size_t n_head, const void *tail, size_t n_tail,
                          st_frame_t *out, const char **why);

/* The bytes before the objects of a PROCESS_DUMP chunk seq, frame header included. */
size_t st_frame_dump_head(uint32_t seq);

/* Views of a decoded PROCESS_DUMP chunk: totals is NULL unless seq == 0. */
void st_frame_dump_parts(const st_frame_t *f, const st_wire_dump_chunk_t **chunk,
                         const st_wire_totals_t **totals, const st_wire_object_t **objects,
                         size_t *n_objects);
/* Views of a decoded TRACE_CHUNK. */
void st_frame_trace_parts(const st_frame_t *f, const st_wire_trace_chunk_t **chunk,
                          const char **bytes);
/* Views of a decoded OBJECT_EVENT frame. */
void st_frame_events(const st_frame_t *f, const st_wire_event_t **events, size_t *n);

/* Reassembly bookkeeping for one chunked stream: chunks of one id, numbered 0, 1, 2..., the last
 * flagged ST_WIRE_F_LAST. */
typedef struct st_chunk_rx {
    uint64_t id;
    uint32_t next_seq;
    bool active; /* a stream has started and its last chunk has not arrived */
} st_chunk_rx_t;

/* Accepts the next chunk (id, seq, header flags) or returns -EPROTO with *why: a chunk out of
 * order, a chunk of another id in the middle of a stream, a stream restarted before its last
 * chunk. Returns 1 when this chunk completes the stream, else 0. */
int st_chunk_accept(st_chunk_rx_t *rx, uint64_t id, uint32_t seq, unsigned flags, const char **why);

/* Copies src into a fixed char array of cap bytes, truncating, always NUL-terminated and zero
 * padded (so no stack bytes leak onto the wire). */
void st_wire_strcpy(char *dst, size_t cap, const char *src);

#endif
