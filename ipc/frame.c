/* SPDX-License-Identifier: MIT
 *
 * Frame encoding and strict decoding (see frame.h). The decoder trusts nothing: each message's
 * shape comes from wire.h's one list, every length is checked against both the header and the
 * packet, every fixed string must hold its NUL, every enum must be in range. Pure functions over
 * caller buffers; no allocation, no stdio, safe in a signal handler.
 */
#include "frame.h"

#include <errno.h>
#include <string.h>

static const struct msg_desc {
    const char *name;
    size_t size; /* FIXED: body size; ARRAY: element size; CHUNKED: chunk header size */
    int shape;
} msgs[ST_MSG_MAX] = {
#define XX(e, v, s, t, shape) [v] = {s, sizeof(t), shape},
    ST_WIRE_MSG_MAP(XX)
#undef XX
};

static const char *const event_names[] = {
#define XX(e, s) s,
    ST_WIRE_EVENT_MAP(XX)
#undef XX
};

const char *st_wire_type_name(unsigned type)
{
    return type < ST_MSG_MAX && msgs[type].name ? msgs[type].name : "?";
}

const char *st_wire_event_name(unsigned type)
{
    return type < ST_EVENT_COUNT ? event_names[type] : "?";
}

const char *st_wire_error_name(unsigned code)
{
    switch (code) {
#define XX(e, v, s)                                                                                \
    case v:                                                                                        \
        return s;
        ST_WIRE_ERR_MAP(XX)
#undef XX
    }
    return "unknown error";
}

void st_wire_strcpy(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    if (src != NULL)
        while (n + 1 < cap && src[n] != '\0')
            n++;
    if (n > 0)
        memcpy(dst, src, n);
    memset(dst + n, 0, cap - n);
}

int st_frame_encode(void *buf, size_t cap, unsigned type, unsigned flags, const void *body,
                    size_t len)
{
    if (len > ST_WIRE_MAX_BODY || cap < sizeof(st_wire_header_t) + len)
        return -EMSGSIZE;
    st_wire_header_t h = {ST_WIRE_MAGIC, ST_WIRE_VERSION, (uint16_t)type, flags, (uint32_t)len};
    memcpy(buf, &h, sizeof(h));
    if (len > 0)
        memmove((char *)buf + sizeof(h), body, len);
    return (int)(sizeof(h) + len);
}

int st_frame_encode_error(void *buf, size_t cap, unsigned code, const char *text)
{
    st_wire_error_t e;
    memset(&e, 0, sizeof(e));
    e.code = code;
    e.version = ST_WIRE_VERSION;
    st_wire_strcpy(e.text, sizeof(e.text), text);
    return st_frame_encode(buf, cap, ST_MSG_ERROR, 0, &e, sizeof(e));
}

/* True when the fixed array holds a NUL. The client library ends every string field with one
 * (st_client_write_object), so the last byte answers at once; a dump is 1000s of records with
 * two strings each. */
static bool has_nul(const char *s, size_t cap)
{
    return s[cap - 1] == '\0' || memchr(s, '\0', cap) != NULL;
}

static bool key_ok(const st_wire_key_t *k)
{
    return k->kind < ST_WIRE_KIND_COUNT;
}

/* The objects of a PROCESS_DUMP chunk: known kinds and flags, strings with their NUL. */
static int check_objects(const st_wire_object_t *o, size_t n, const char **why)
{
    for (size_t i = 0; i < n; i++) {
        if (!key_ok(&o[i].key) || (o[i].flags & ~ST_OBJ_F_KNOWN) != 0) {
            *why = "PROCESS_DUMP object with an unknown kind or flags";
            return -EBADMSG;
        }
        if (!has_nul(o[i].name, sizeof(o[i].name)) || !has_nul(o[i].label, sizeof(o[i].label))) {
            *why = "PROCESS_DUMP string without its terminating NUL";
            return -EBADMSG;
        }
    }
    return 0;
}

/* Per-message checks of the body's content, after its size was found right. objects: where a
 * PROCESS_DUMP chunk's objects are (NULL: right after its header part, in body). */
static int check_body(unsigned type, const void *body, size_t len, unsigned flags,
                      const void *objects, const char **why)
{
    switch (type) {
    case ST_MSG_HELLO: {
        const st_wire_hello_t *h = body;
        if (!has_nul(h->exe, sizeof(h->exe)) || !has_nul(h->argv, sizeof(h->argv))) {
            *why = "HELLO string without its terminating NUL";
            return -EBADMSG;
        }
        if (h->role > ST_ROLE_CONTROL) {
            *why = "HELLO with an unknown role";
            return -EBADMSG;
        }
        return 0;
    }
    case ST_MSG_ERROR: {
        const st_wire_error_t *e = body;
        if (!has_nul(e->text, sizeof(e->text))) {
            *why = "ERROR text without its terminating NUL";
            return -EBADMSG;
        }
        return 0;
    }
    case ST_MSG_OBJECT_EVENT: {
        const st_wire_event_t *ev = body;
        for (size_t i = 0; i < len / sizeof(*ev); i++) {
            if (ev[i].type >= ST_EVENT_COUNT || !key_ok(&ev[i].key)) {
                *why = "OBJECT_EVENT with an unknown event type or object kind";
                return -EBADMSG;
            }
            if (!has_nul(ev[i].name, sizeof(ev[i].name)) ||
                !has_nul(ev[i].label, sizeof(ev[i].label))) {
                *why = "OBJECT_EVENT string without its terminating NUL";
                return -EBADMSG;
            }
        }
        return 0;
    }
    case ST_MSG_PROCESS_DUMP: {
        st_wire_dump_chunk_t c;
        memcpy(&c, body, sizeof(c));
        size_t want = sizeof(c) + (c.seq == 0 ? sizeof(st_wire_totals_t) : 0);
        if (c.n_objects > ST_WIRE_MAX_BODY / sizeof(st_wire_object_t) ||
            len != want + (size_t)c.n_objects * sizeof(st_wire_object_t)) {
            *why = "PROCESS_DUMP chunk whose object count does not match its length";
            return -EBADMSG;
        }
        if (objects == NULL)
            objects = (const char *)body + want;
        return check_objects(objects, c.n_objects, why);
    }
    case ST_MSG_TRACE_CHUNK: {
        st_wire_trace_chunk_t c;
        memcpy(&c, body, sizeof(c));
        if (len != sizeof(c) + (size_t)c.n_bytes) {
            *why = "TRACE_CHUNK whose byte count does not match its length";
            return -EBADMSG;
        }
        return 0;
    }
    case ST_MSG_DUMP_REQUEST: {
        const st_wire_dump_request_t *r = body;
        if (r->level > ST_LEVEL_LIGHT) {
            *why = "DUMP_REQUEST with an unknown level";
            return -EBADMSG;
        }
        return 0;
    }
    default:
        (void)flags;
        return 0;
    }
}

/* st_frame_decode of a packet of n bytes whose first bytes are at buf; objects: where a split
 * PROCESS_DUMP chunk's objects are (st_frame_decode_split), NULL when the packet is whole in
 * buf. */
static int decode(const void *buf, size_t n, const void *objects, st_frame_t *out, const char **why)
{
    const char *dummy = NULL;
    if (why == NULL)
        why = &dummy;
    *why = NULL;
    memset(out, 0, sizeof(*out));
    if (n < sizeof(st_wire_header_t)) {
        *why = "frame shorter than its header";
        return -EBADMSG;
    }
    st_wire_header_t h;
    memcpy(&h, buf, sizeof(h));
    if (h.magic != ST_WIRE_MAGIC) {
        *why = "bad magic: not a shmtrack peer";
        return -EBADMSG;
    }
    out->hdr = h;
    if (h.version != ST_WIRE_VERSION) {
        /* ERROR frames are frozen across versions: let them through so the refusal is read. */
        if (!(h.type == ST_MSG_ERROR && h.length == sizeof(st_wire_error_t) &&
              n == sizeof(h) + h.length)) {
            *why = "peer speaks another protocol version";
            return -EPROTONOSUPPORT;
        }
    }
    if (h.length > ST_WIRE_MAX_BODY) {
        *why = "frame body larger than the protocol maximum";
        return -EMSGSIZE;
    }
    if (n != sizeof(h) + (size_t)h.length) {
        *why = "frame length field disagrees with the packet size";
        return -EBADMSG;
    }
    if (h.type == 0 || h.type >= ST_MSG_MAX || msgs[h.type].name == NULL) {
        *why = "unknown message type";
        return -EPROTO;
    }
    if ((h.flags & ~ST_WIRE_F_KNOWN) != 0) {
        *why = "unknown header flags";
        return -EBADMSG;
    }
    const struct msg_desc *d = &msgs[h.type];
    bool size_ok;
    switch (d->shape) {
    case ST_SHAPE_FIXED:
        size_ok = h.length == d->size;
        break;
    case ST_SHAPE_ARRAY:
        size_ok = h.length >= d->size && h.length % d->size == 0;
        break;
    default:
        size_ok = h.length >= d->size;
        break;
    }
    if (!size_ok) {
        *why = "message body of the wrong size for its type";
        return -EBADMSG;
    }
    if ((h.flags & ST_WIRE_F_LAST) && d->shape != ST_SHAPE_CHUNKED) {
        *why = "LAST flag on a message that is not chunked";
        return -EBADMSG;
    }
    const void *body = (const char *)buf + sizeof(h);
    int rc = check_body(h.type, body, h.length, h.flags, objects, why);
    if (rc < 0)
        return rc;
    out->body = body;
    out->objects = objects;
    return 0;
}

int st_frame_decode(const void *buf, size_t n, st_frame_t *out, const char **why)
{
    return decode(buf, n, NULL, out, why);
}

size_t st_frame_dump_head(uint32_t seq)
{
    return sizeof(st_wire_header_t) + sizeof(st_wire_dump_chunk_t) +
           (seq == 0 ? sizeof(st_wire_totals_t) : 0);
}

int st_frame_decode_split(const void *head, size_t n_head, const void *tail, size_t n_tail,
                          st_frame_t *out, const char **why)
{
    st_wire_header_t h;
    st_wire_dump_chunk_t c;
    if (n_tail == 0 || n_head < sizeof(h) + sizeof(c))
        return -EINVAL;
    memcpy(&h, head, sizeof(h));
    memcpy(&c, (const char *)head + sizeof(h), sizeof(c));
    if (h.magic != ST_WIRE_MAGIC || h.version != ST_WIRE_VERSION || h.type != ST_MSG_PROCESS_DUMP ||
        n_head != st_frame_dump_head(c.seq))
        return -EINVAL;
    /* the header part is whole in head and the objects are all of tail: every check reads the
     * one or the other, never across */
    return decode(head, n_head + n_tail, tail, out, why);
}

void st_frame_dump_parts(const st_frame_t *f, const st_wire_dump_chunk_t **chunk,
                         const st_wire_totals_t **totals, const st_wire_object_t **objects,
                         size_t *n_objects)
{
    const st_wire_dump_chunk_t *c = f->body;
    const char *p = (const char *)f->body + sizeof(*c);
    *chunk = c;
    *totals = NULL;
    if (c->seq == 0) {
        *totals = (const void *)p;
        p += sizeof(st_wire_totals_t);
    }
    *objects = f->objects != NULL ? f->objects : (const void *)p;
    *n_objects = c->n_objects;
}

void st_frame_trace_parts(const st_frame_t *f, const st_wire_trace_chunk_t **chunk,
                          const char **bytes)
{
    *chunk = f->body;
    *bytes = (const char *)f->body + sizeof(st_wire_trace_chunk_t);
}

void st_frame_events(const st_frame_t *f, const st_wire_event_t **events, size_t *n)
{
    *events = f->body;
    *n = f->hdr.length / sizeof(st_wire_event_t);
}

int st_chunk_accept(st_chunk_rx_t *rx, uint64_t id, uint32_t seq, unsigned flags, const char **why)
{
    const char *dummy = NULL;
    if (why == NULL)
        why = &dummy;
    if (seq == 0) {
        if (rx->active) {
            *why = "a chunk stream restarted before its last chunk (truncated stream)";
            return -EPROTO;
        }
        rx->id = id;
        rx->next_seq = 0;
        rx->active = true;
    } else if (!rx->active) {
        *why = "a chunk arrived without its stream's first chunk";
        return -EPROTO;
    }
    if (id != rx->id) {
        *why = "a chunk of another id arrived in the middle of a stream";
        return -EPROTO;
    }
    if (seq != rx->next_seq) {
        *why = "a chunk arrived out of order";
        return -EPROTO;
    }
    rx->next_seq++;
    if (flags & ST_WIRE_F_LAST) {
        rx->active = false;
        return 1;
    }
    return 0;
}
