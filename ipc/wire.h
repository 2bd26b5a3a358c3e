/* SPDX-License-Identifier: MIT
 *
 * The shmtrack wire protocol (private to ipc/ and its users: the coordinator, the client library
 * and the tools). One SOCK_SEQPACKET Unix socket carries frames; each frame is one packet:
 *
 *     st_wire_header_t (16 bytes: magic, version, type, flags, length) + body (length bytes)
 *
 * Everything is little-endian; both ends always live on one host, so the structs below are the
 * encoding and a host of another byte order is refused at compile time. Every struct is
 * _Static_assert'ed to its size and has explicit padding, so the layout does not depend on the
 * compiler. A body is at most ST_WIRE_MAX_BODY bytes (64 KiB); a PROCESS_DUMP or TRACE_CHUNK larger
 * than that is cut into chunks numbered from 0, the last one carrying ST_WIRE_F_LAST.
 *
 * Compatibility: the header layout, the magic and the ERROR message are frozen for every version,
 * so that a peer of another version can always be told why it is refused. Everything else may
 * change with ST_WIRE_VERSION.
 *
 * Message flow:
 *   client -> coordinator  HELLO, then OBJECT_EVENT*, PROCESS_DUMP chunks (answers), BYE
 *   coordinator -> client  HELLO_ACK or ERROR, DUMP_REQUEST
 *   tool -> coordinator    HELLO, DUMP_NOW; coordinator -> tool  DUMP_DONE, TRACE_CHUNK*
 */
#ifndef SHMTRACK_IPC_WIRE_H
#define SHMTRACK_IPC_WIRE_H

#include <stddef.h>
#include <stdint.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the wire structs are little-endian as laid out in memory");

#define ST_WIRE_MAGIC 0x4b525453u /* "STRK" as little-endian bytes */
#define ST_WIRE_VERSION 1u
#define ST_WIRE_MAX_BODY 65536u /* the documented maximum body of one frame */
#define ST_WIRE_MAX_FRAME (sizeof(st_wire_header_t) + ST_WIRE_MAX_BODY)

/* Header flags. */
#define ST_WIRE_F_LAST 0x1u  /* the last chunk of a chunked body */
#define ST_WIRE_F_KNOWN 0x1u /* every flag this version knows; others are refused */

typedef struct st_wire_header {
    uint32_t magic;   /* ST_WIRE_MAGIC */
    uint16_t version; /* ST_WIRE_VERSION */
    uint16_t type;    /* st_wire_type_t */
    uint32_t flags;   /* ST_WIRE_F_* */
    uint32_t length;  /* body bytes that follow, <= ST_WIRE_MAX_BODY */
} st_wire_header_t;
_Static_assert(sizeof(st_wire_header_t) == 16, "wire header");

/* ---- records ------------------------------------------------------------------------------ */

/* An object's kernel identity. kind uses the numbering of st_kind_t (anon, memfd, posix, sysv,
 * hugetlb). For sysv, ino is the IPC namespace's inode and shmid the segment id; for the others
 * (major, minor, ino) is the backing inode and shmid is -1. */
typedef struct st_wire_key {
    uint32_t kind;
    uint32_t major;
    uint32_t minor;
    int32_t shmid;
    uint64_t ino;
} st_wire_key_t;
_Static_assert(sizeof(st_wire_key_t) == 24, "wire key");

#define ST_WIRE_KIND_COUNT 5u
#define ST_WIRE_NAME_MAX 64  /* object name, NUL-terminated, truncated */
#define ST_WIRE_LABEL_MAX 32 /* label, NUL-terminated, truncated */

/* Object events: enum value, name. */
#define ST_WIRE_EVENT_MAP(XX)                                                                      \
    XX(ST_EVENT_CREATED, "created")                                                                \
    XX(ST_EVENT_MAPPED, "mapped")                                                                  \
    XX(ST_EVENT_UNMAPPED, "unmapped")                                                              \
    XX(ST_EVENT_DESTROYED, "destroyed")                                                            \
    XX(ST_EVENT_IMPORTANCE, "importance")                                                          \
    XX(ST_EVENT_LABEL, "label")

typedef enum st_wire_event_type {
#define XX(e, s) e,
    ST_WIRE_EVENT_MAP(XX)
#undef XX
        ST_EVENT_COUNT
} st_wire_event_type_t;

/* One object event. Sizes are what the sender knows (0 when not known). */
typedef struct st_wire_event {
    uint32_t type;      /* st_wire_event_type_t */
    int32_t importance; /* ST_EVENT_IMPORTANCE: the explicit claim */
    st_wire_key_t key;
    uint64_t ts_ns; /* CLOCK_REALTIME when the event happened */
    uint64_t virtual_size;
    uint64_t mapped_bytes; /* MAPPED/UNMAPPED: the length of the (un)mapped range */
    uint64_t resident;     /* a hint; dumps carry the real value */
    char name[ST_WIRE_NAME_MAX];
    char label[ST_WIRE_LABEL_MAX];
} st_wire_event_t;
_Static_assert(sizeof(st_wire_event_t) == 160, "wire event");

/* Object record flags. */
#define ST_OBJ_F_CREATOR 0x1u  /* this process created the object */
#define ST_OBJ_F_EXPLICIT 0x2u /* importance is an explicit claim (overrides the policy) */
#define ST_OBJ_F_KNOWN 0x3u

/* One object held by the reporting process, in a PROCESS_DUMP. */
typedef struct st_wire_object {
    st_wire_key_t key;
    uint64_t resident; /* object's resident bytes (page cache + swap cache) */
    uint64_t swapped;
    uint64_t virtual_size;
    uint64_t mapped_bytes; /* bytes this process maps of it */
    int32_t importance;
    uint32_t flags; /* ST_OBJ_F_* */
    char name[ST_WIRE_NAME_MAX];
    char label[ST_WIRE_LABEL_MAX];
} st_wire_object_t;
_Static_assert(sizeof(st_wire_object_t) == 160, "wire object");

/* Process totals; present uses the bit order of model.h's ST_TOTALS_MAP. */
typedef struct st_wire_totals {
    uint64_t resident_set_bytes;
    uint64_t private_footprint_bytes;
    uint64_t pss_bytes;
    uint64_t uss_bytes;
    uint64_t swap_bytes;
    uint64_t rss_shmem_bytes;
    uint32_t present;
    uint32_t reserved;
} st_wire_totals_t;
_Static_assert(sizeof(st_wire_totals_t) == 56, "wire totals");

/* ---- message bodies ----------------------------------------------------------------------- */

#define ST_WIRE_EXE_MAX 256
#define ST_WIRE_ARGV_MAX 256

/* HELLO roles. */
#define ST_ROLE_CLIENT 0u  /* a tracked process: answers DUMP_REQUEST */
#define ST_ROLE_CONTROL 1u /* a tool: sends DUMP_NOW, never asked for dumps */

typedef struct st_wire_hello {
    uint32_t pid; /* informational: the server uses SO_PEERCRED */
    uint32_t ppid;
    uint64_t start_time; /* /proc/self/stat field 22 (clock ticks after boot) */
    uint32_t role;       /* ST_ROLE_* */
    uint32_t reserved;
    char exe[ST_WIRE_EXE_MAX];   /* NUL-terminated */
    char argv[ST_WIRE_ARGV_MAX]; /* arguments separated by NUL, ends with two NULs */
} st_wire_hello_t;
_Static_assert(sizeof(st_wire_hello_t) == 536, "wire hello");

typedef struct st_wire_hello_ack {
    uint32_t server_pid;
    uint32_t peer_pid; /* the pid the server saw through SO_PEERCRED */
    uint64_t session;  /* a number unique per connection */
} st_wire_hello_ack_t;
_Static_assert(sizeof(st_wire_hello_ack_t) == 16, "wire hello ack");

/* Error codes carried by ERROR frames (frozen, like the ERROR layout): name, value, text. */
#define ST_WIRE_ERR_MAP(XX)                                                                        \
    XX(ST_WERR_VERSION, 1, "incompatible protocol version")                                        \
    XX(ST_WERR_PROTO, 2, "protocol violation")                                                     \
    XX(ST_WERR_UID, 3, "peer runs as another user")                                                \
    XX(ST_WERR_BUSY, 4, "too many clients")                                                        \
    XX(ST_WERR_DUMP, 5, "the dump failed")

enum {
#define XX(e, v, s) e = v,
    ST_WIRE_ERR_MAP(XX)
#undef XX
};

#define ST_WIRE_ERROR_TEXT 240
typedef struct st_wire_error {
    uint32_t code;    /* ST_WERR_* */
    uint16_t version; /* the sender's ST_WIRE_VERSION */
    uint16_t reserved;
    char text[ST_WIRE_ERROR_TEXT]; /* a sentence for humans, NUL-terminated */
} st_wire_error_t;
_Static_assert(sizeof(st_wire_error_t) == 248, "wire error");

/* Dump levels of detail. */
#define ST_LEVEL_DETAILED 0u
#define ST_LEVEL_BACKGROUND 1u
#define ST_LEVEL_LIGHT 2u

typedef struct st_wire_dump_request {
    uint64_t dump_id;
    uint32_t level; /* ST_LEVEL_* */
    uint32_t reserved;
} st_wire_dump_request_t;
_Static_assert(sizeof(st_wire_dump_request_t) == 16, "wire dump request");

/* PROCESS_DUMP chunk: this header; chunk 0 then carries one st_wire_totals_t; then n_objects
 * st_wire_object_t. The last chunk has ST_WIRE_F_LAST. */
typedef struct st_wire_dump_chunk {
    uint64_t dump_id;
    uint32_t seq;
    uint32_t n_objects;
} st_wire_dump_chunk_t;
_Static_assert(sizeof(st_wire_dump_chunk_t) == 16, "wire dump chunk");

#define ST_WIRE_OBJECTS_PER_CHUNK                                                                  \
    ((ST_WIRE_MAX_BODY - sizeof(st_wire_dump_chunk_t) - sizeof(st_wire_totals_t)) /                \
     sizeof(st_wire_object_t))
#define ST_WIRE_EVENTS_PER_FRAME (ST_WIRE_MAX_BODY / sizeof(st_wire_event_t))

typedef struct st_wire_bye {
    uint32_t reason; /* 0: normal exit */
    uint32_t reserved;
} st_wire_bye_t;
_Static_assert(sizeof(st_wire_bye_t) == 8, "wire bye");

/* DUMP_NOW flags. */
#define ST_DUMP_NOW_F_TRACE 0x1u /* send the dump back as a trace (TRACE_CHUNK frames) */

typedef struct st_wire_dump_now {
    uint32_t flags;
    uint32_t level;
} st_wire_dump_now_t;
_Static_assert(sizeof(st_wire_dump_now_t) == 8, "wire dump now");

typedef struct st_wire_dump_done {
    uint64_t dump_id;
    uint32_t n_processes;
    uint32_t n_objects;
    uint32_t partial;     /* 1 when some client could not report */
    int32_t rc;           /* 0 or -errno of the coordinator's work */
    uint64_t trace_bytes; /* bytes of trace that TRACE_CHUNK frames will carry (0: none) */
} st_wire_dump_done_t;
_Static_assert(sizeof(st_wire_dump_done_t) == 32, "wire dump done");

/* TRACE_CHUNK: this header, then n_bytes of JSON. */
typedef struct st_wire_trace_chunk {
    uint64_t dump_id;
    uint32_t seq;
    uint32_t n_bytes;
} st_wire_trace_chunk_t;
_Static_assert(sizeof(st_wire_trace_chunk_t) == 16, "wire trace chunk");

/* ---- the message list --------------------------------------------------------------------- */

/* Body shapes. FIXED: exactly the struct. ARRAY: 1..n whole elements. CHUNKED: a chunk header and
 * a payload whose size the header states. */
#define ST_SHAPE_FIXED 0
#define ST_SHAPE_ARRAY 1
#define ST_SHAPE_CHUNKED 2

/* enum, value, name, body struct (element struct for ARRAY), shape */
#define ST_WIRE_MSG_MAP(XX)                                                                        \
    XX(ST_MSG_HELLO, 1, "HELLO", st_wire_hello_t, ST_SHAPE_FIXED)                                  \
    XX(ST_MSG_HELLO_ACK, 2, "HELLO_ACK", st_wire_hello_ack_t, ST_SHAPE_FIXED)                      \
    XX(ST_MSG_ERROR, 3, "ERROR", st_wire_error_t, ST_SHAPE_FIXED)                                  \
    XX(ST_MSG_OBJECT_EVENT, 4, "OBJECT_EVENT", st_wire_event_t, ST_SHAPE_ARRAY)                    \
    XX(ST_MSG_DUMP_REQUEST, 5, "DUMP_REQUEST", st_wire_dump_request_t, ST_SHAPE_FIXED)             \
    XX(ST_MSG_PROCESS_DUMP, 6, "PROCESS_DUMP", st_wire_dump_chunk_t, ST_SHAPE_CHUNKED)             \
    XX(ST_MSG_BYE, 7, "BYE", st_wire_bye_t, ST_SHAPE_FIXED)                                        \
    XX(ST_MSG_DUMP_NOW, 8, "DUMP_NOW", st_wire_dump_now_t, ST_SHAPE_FIXED)                         \
    XX(ST_MSG_DUMP_DONE, 9, "DUMP_DONE", st_wire_dump_done_t, ST_SHAPE_FIXED)                      \
    XX(ST_MSG_TRACE_CHUNK, 10, "TRACE_CHUNK", st_wire_trace_chunk_t, ST_SHAPE_CHUNKED)

typedef enum st_wire_type {
#define XX(e, v, s, t, shape) e = v,
    ST_WIRE_MSG_MAP(XX)
#undef XX
        ST_MSG_MAX
} st_wire_type_t;

/* Every body fits a frame. */
#define XX(e, v, s, t, shape) _Static_assert(sizeof(t) <= ST_WIRE_MAX_BODY, s " fits a frame");
ST_WIRE_MSG_MAP(XX)
#undef XX

#endif
