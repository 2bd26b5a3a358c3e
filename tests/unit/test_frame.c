/* SPDX-License-Identifier: MIT
 *
 * Unit tests of ipc/frame.c and ipc/sock.c: every message round-trips, and every malformed frame
 * (bad magic, other version, length lies, oversized bodies, unknown types and flags, strings
 * without NUL, inconsistent chunk counts, chunk streams out of order or truncated) is refused
 * with its own error. Socket helpers are checked on a real socketpair and a real listen socket.
 */
#include "frame.h"
#include "sock.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static unsigned char buf[ST_WIRE_MAX_FRAME + 64];

static int encode_hello(void)
{
    st_wire_hello_t h;
    memset(&h, 0, sizeof(h));
    h.pid = 42;
    h.ppid = 1;
    h.start_time = 12345;
    st_wire_strcpy(h.exe, sizeof(h.exe), "/usr/bin/true");
    return st_frame_encode(buf, sizeof(buf), ST_MSG_HELLO, 0, &h, sizeof(h));
}

static void test_roundtrip_fixed(void **state)
{
    (void)state;
    int n = encode_hello();
    assert_int_equal(n, 16 + (int)sizeof(st_wire_hello_t));
    st_frame_t f;
    const char *why = NULL;
    assert_int_equal(st_frame_decode(buf, (size_t)n, &f, &why), 0);
    assert_int_equal(f.hdr.type, ST_MSG_HELLO);
    const st_wire_hello_t *h = f.body;
    assert_int_equal(h->pid, 42);
    assert_int_equal(h->start_time, 12345);
    assert_string_equal(h->exe, "/usr/bin/true");

    st_wire_dump_request_t r = {.dump_id = 7, .level = ST_LEVEL_LIGHT};
    n = st_frame_encode(buf, sizeof(buf), ST_MSG_DUMP_REQUEST, 0, &r, sizeof(r));
    assert_int_equal(st_frame_decode(buf, (size_t)n, &f, &why), 0);
    assert_int_equal(((const st_wire_dump_request_t *)f.body)->dump_id, 7);

    n = st_frame_encode_error(buf, sizeof(buf), ST_WERR_UID, "go away");
    assert_int_equal(st_frame_decode(buf, (size_t)n, &f, &why), 0);
    assert_int_equal(((const st_wire_error_t *)f.body)->code, ST_WERR_UID);
    assert_string_equal(((const st_wire_error_t *)f.body)->text, "go away");
    assert_string_equal(st_wire_type_name(ST_MSG_PROCESS_DUMP), "PROCESS_DUMP");
    assert_string_equal(st_wire_type_name(999), "?");
    assert_string_equal(st_wire_event_name(ST_EVENT_LABEL), "label");
}

static void test_roundtrip_events_and_chunks(void **state)
{
    (void)state;
    st_wire_event_t ev[3];
    memset(ev, 0, sizeof(ev));
    for (int i = 0; i < 3; i++) {
        ev[i].type = ST_EVENT_MAPPED;
        ev[i].key.kind = 1;
        ev[i].key.ino = (uint64_t)i + 100;
        st_wire_strcpy(ev[i].name, sizeof(ev[i].name), "x");
    }
    int n = st_frame_encode(buf, sizeof(buf), ST_MSG_OBJECT_EVENT, 0, ev, sizeof(ev));
    st_frame_t f;
    assert_int_equal(st_frame_decode(buf, (size_t)n, &f, NULL), 0);
    const st_wire_event_t *got;
    size_t cnt;
    st_frame_events(&f, &got, &cnt);
    assert_int_equal(cnt, 3);
    assert_int_equal(got[2].key.ino, 102);

    /* chunk 0 with totals and two objects */
    unsigned char body[sizeof(st_wire_dump_chunk_t) + sizeof(st_wire_totals_t) +
                       2 * sizeof(st_wire_object_t)];
    memset(body, 0, sizeof(body));
    st_wire_dump_chunk_t c = {.dump_id = 9, .seq = 0, .n_objects = 2};
    st_wire_totals_t t = {.resident_set_bytes = 4096, .present = 1};
    st_wire_object_t o[2];
    memset(o, 0, sizeof(o));
    o[0].resident = 8192;
    o[1].flags = ST_OBJ_F_CREATOR | ST_OBJ_F_EXPLICIT;
    memcpy(body, &c, sizeof(c));
    memcpy(body + sizeof(c), &t, sizeof(t));
    memcpy(body + sizeof(c) + sizeof(t), o, sizeof(o));
    n = st_frame_encode(buf, sizeof(buf), ST_MSG_PROCESS_DUMP, ST_WIRE_F_LAST, body, sizeof(body));
    assert_int_equal(st_frame_decode(buf, (size_t)n, &f, NULL), 0);
    const st_wire_dump_chunk_t *pc;
    const st_wire_totals_t *pt;
    const st_wire_object_t *po;
    st_frame_dump_parts(&f, &pc, &pt, &po, &cnt);
    assert_non_null(pt);
    assert_int_equal(pt->resident_set_bytes, 4096);
    assert_int_equal(cnt, 2);
    assert_int_equal(po[0].resident, 8192);
    assert_int_equal(f.hdr.flags, ST_WIRE_F_LAST);

    /* the largest chunk the sender may build fits exactly */
    size_t max = sizeof(c) + sizeof(t) + ST_WIRE_OBJECTS_PER_CHUNK * sizeof(st_wire_object_t);
    assert_true(max <= ST_WIRE_MAX_BODY);
}

/* Decodes buf[0..n) and expects rc. */
static void expect(size_t n, int rc)
{
    st_frame_t f;
    const char *why = NULL;
    assert_int_equal(st_frame_decode(buf, n, &f, &why), rc);
    assert_non_null(why);
}

static st_wire_header_t *hdr(void)
{
    return (st_wire_header_t *)buf;
}

static void test_malformed(void **state)
{
    (void)state;
    int n = encode_hello();
    expect(0, -EBADMSG);
    expect(15, -EBADMSG); /* truncated header */

    hdr()->magic ^= 1; /* bad magic */
    expect((size_t)n, -EBADMSG);
    hdr()->magic ^= 1;

    hdr()->version = ST_WIRE_VERSION + 1; /* another version */
    expect((size_t)n, -EPROTONOSUPPORT);
    hdr()->version = ST_WIRE_VERSION;

    expect((size_t)n - 1, -EBADMSG); /* packet shorter than length says */
    expect((size_t)n + 1, -EBADMSG); /* longer */

    hdr()->length = ST_WIRE_MAX_BODY + 1; /* oversized */
    expect((size_t)n, -EMSGSIZE);
    hdr()->length = sizeof(st_wire_hello_t);

    hdr()->type = 0; /* unknown types */
    expect((size_t)n, -EPROTO);
    hdr()->type = ST_MSG_MAX;
    expect((size_t)n, -EPROTO);
    hdr()->type = ST_MSG_DUMP_REQUEST; /* a known type of another size */
    expect((size_t)n, -EBADMSG);
    hdr()->type = ST_MSG_HELLO;

    hdr()->flags = 0x80; /* unknown flag */
    expect((size_t)n, -EBADMSG);
    hdr()->flags = ST_WIRE_F_LAST; /* LAST on a fixed message */
    expect((size_t)n, -EBADMSG);
    hdr()->flags = 0;

    st_wire_hello_t *h = (void *)(buf + 16); /* string without NUL */
    memset(h->exe, 'a', sizeof(h->exe));
    expect((size_t)n, -EBADMSG);
    n = encode_hello();
    h->role = 7;
    expect((size_t)n, -EBADMSG);

    /* an ERROR of another version is still readable (frozen layout) */
    n = st_frame_encode_error(buf, sizeof(buf), ST_WERR_VERSION, "old");
    hdr()->version = 99;
    st_frame_t f;
    assert_int_equal(st_frame_decode(buf, (size_t)n, &f, NULL), 0);
    assert_int_equal(f.hdr.version, 99);

    /* events: not a whole number of records; bad event type; bad kind */
    st_wire_event_t ev;
    memset(&ev, 0, sizeof(ev));
    n = st_frame_encode(buf, sizeof(buf), ST_MSG_OBJECT_EVENT, 0, &ev, sizeof(ev));
    expect((size_t)n - 1, -EBADMSG);
    hdr()->length -= 8;
    expect((size_t)n - 8, -EBADMSG);
    ev.type = ST_EVENT_COUNT;
    n = st_frame_encode(buf, sizeof(buf), ST_MSG_OBJECT_EVENT, 0, &ev, sizeof(ev));
    expect((size_t)n, -EBADMSG);
    ev.type = 0;
    ev.key.kind = ST_WIRE_KIND_COUNT;
    n = st_frame_encode(buf, sizeof(buf), ST_MSG_OBJECT_EVENT, 0, &ev, sizeof(ev));
    expect((size_t)n, -EBADMSG);

    /* dump chunk whose count lies */
    unsigned char
        body[sizeof(st_wire_dump_chunk_t) + sizeof(st_wire_totals_t) + sizeof(st_wire_object_t)];
    memset(body, 0, sizeof(body));
    st_wire_dump_chunk_t c = {.dump_id = 1, .seq = 0, .n_objects = 2};
    memcpy(body, &c, sizeof(c));
    n = st_frame_encode(buf, sizeof(buf), ST_MSG_PROCESS_DUMP, 0, body, sizeof(body));
    expect((size_t)n, -EBADMSG);
    c.n_objects = 0xffffffffu;
    memcpy(body, &c, sizeof(c));
    n = st_frame_encode(buf, sizeof(buf), ST_MSG_PROCESS_DUMP, 0, body, sizeof(body));
    expect((size_t)n, -EBADMSG);
    c.n_objects = 1; /* right count, unknown object flag */
    memcpy(body, &c, sizeof(c));
    ((st_wire_object_t *)(body + sizeof(c) + sizeof(st_wire_totals_t)))->flags = 0x100;
    n = st_frame_encode(buf, sizeof(buf), ST_MSG_PROCESS_DUMP, 0, body, sizeof(body));
    expect((size_t)n, -EBADMSG);
    /* chunk header alone is too short */
    n = st_frame_encode(buf, sizeof(buf), ST_MSG_PROCESS_DUMP, 0, body, 8);
    expect((size_t)n, -EBADMSG);

    /* trace chunk whose byte count lies */
    st_wire_trace_chunk_t tc = {.dump_id = 1, .seq = 0, .n_bytes = 10};
    n = st_frame_encode(buf, sizeof(buf), ST_MSG_TRACE_CHUNK, 0, &tc, sizeof(tc));
    expect((size_t)n, -EBADMSG);

    /* encoder refuses oversized bodies and short buffers */
    assert_int_equal(
        st_frame_encode(buf, sizeof(buf), ST_MSG_OBJECT_EVENT, 0, buf, ST_WIRE_MAX_BODY + 1),
        -EMSGSIZE);
    assert_int_equal(st_frame_encode(buf, 20, ST_MSG_HELLO, 0, h, sizeof(*h)), -EMSGSIZE);
}

static void test_chunks(void **state)
{
    (void)state;
    st_chunk_rx_t rx = {0};
    const char *why = NULL;
    assert_int_equal(st_chunk_accept(&rx, 5, 0, 0, &why), 0);
    assert_int_equal(st_chunk_accept(&rx, 5, 1, 0, &why), 0);
    assert_int_equal(st_chunk_accept(&rx, 5, 2, ST_WIRE_F_LAST, &why), 1);
    assert_false(rx.active);
    /* single-chunk stream */
    assert_int_equal(st_chunk_accept(&rx, 6, 0, ST_WIRE_F_LAST, &why), 1);
    /* out of order */
    assert_int_equal(st_chunk_accept(&rx, 7, 0, 0, &why), 0);
    assert_int_equal(st_chunk_accept(&rx, 7, 2, 0, &why), -EPROTO);
    assert_non_null(why);
    /* truncated: restarted before LAST */
    rx = (st_chunk_rx_t){0};
    assert_int_equal(st_chunk_accept(&rx, 8, 0, 0, &why), 0);
    assert_int_equal(st_chunk_accept(&rx, 9, 0, 0, &why), -EPROTO);
    /* another id in the middle */
    rx = (st_chunk_rx_t){0};
    assert_int_equal(st_chunk_accept(&rx, 8, 0, 0, &why), 0);
    assert_int_equal(st_chunk_accept(&rx, 9, 1, 0, &why), -EPROTO);
    /* a chunk without its start */
    rx = (st_chunk_rx_t){0};
    assert_int_equal(st_chunk_accept(&rx, 8, 3, ST_WIRE_F_LAST, &why), -EPROTO);
    /* a repeated chunk */
    rx = (st_chunk_rx_t){0};
    assert_int_equal(st_chunk_accept(&rx, 8, 0, 0, &why), 0);
    assert_int_equal(st_chunk_accept(&rx, 8, 0, 0, &why), -EPROTO);
}

static void test_strcpy(void **state)
{
    (void)state;
    char s[4];
    memset(s, 'x', sizeof(s));
    st_wire_strcpy(s, sizeof(s), "abcdef");
    assert_string_equal(s, "abc");
    st_wire_strcpy(s, sizeof(s), "a");
    assert_int_equal(s[1], 0);
    assert_int_equal(s[3], 0);
    st_wire_strcpy(s, sizeof(s), NULL);
    assert_string_equal(s, "");
}

/* A PROCESS_DUMP chunk received in two parts, split where its objects start, decodes with its
 * objects in place and the same checks; any other split or packet is left to st_frame_decode. */
static void test_decode_split(void **state)
{
    (void)state;
    enum { N = 3 };
    static unsigned char pkt[ST_WIRE_MAX_FRAME];
    static st_wire_object_t tail[N];
    st_frame_t f;
    const char *why = NULL;
    for (uint32_t seq = 0; seq < 2; seq++) {
        unsigned char body[sizeof(st_wire_dump_chunk_t) + sizeof(st_wire_totals_t) +
                           N * sizeof(st_wire_object_t)];
        memset(body, 0, sizeof(body));
        st_wire_dump_chunk_t c = {.dump_id = 9, .seq = seq, .n_objects = N};
        st_wire_totals_t t = {.resident_set_bytes = 4096, .present = 1};
        size_t off = sizeof(c);
        memcpy(body, &c, sizeof(c));
        if (seq == 0) {
            memcpy(body + off, &t, sizeof(t));
            off += sizeof(t);
        }
        st_wire_object_t *o = (st_wire_object_t *)(void *)(body + off);
        for (int i = 0; i < N; i++)
            o[i].resident = 4096 * (uint64_t)(i + 1);
        int n = st_frame_encode(pkt, sizeof(pkt), ST_MSG_PROCESS_DUMP, 0, body,
                                off + N * sizeof(st_wire_object_t));
        size_t head = st_frame_dump_head(seq);
        assert_int_equal(head, sizeof(st_wire_header_t) + off);
        memcpy(tail, pkt + head, (size_t)n - head);
        assert_int_equal(st_frame_decode_split(pkt, head, tail, (size_t)n - head, &f, &why), 0);
        const st_wire_dump_chunk_t *pc;
        const st_wire_totals_t *pt;
        const st_wire_object_t *po;
        size_t cnt;
        st_frame_dump_parts(&f, &pc, &pt, &po, &cnt);
        assert_ptr_equal(po, tail);
        assert_int_equal(cnt, N);
        assert_int_equal(pc->seq, seq);
        assert_int_equal(pt != NULL, seq == 0);
        assert_int_equal(po[2].resident, 3 * 4096);
        /* another split point is not this decoder's */
        assert_int_equal(st_frame_decode_split(pkt, head - 8, tail, (size_t)n - head + 8, &f, &why),
                         -EINVAL);
        /* the objects in the tail are checked like any */
        tail[1].flags = 0x80;
        assert_int_equal(st_frame_decode_split(pkt, head, tail, (size_t)n - head, &f, &why),
                         -EBADMSG);
        assert_non_null(why);
        tail[1].flags = 0;
        tail[2].name[sizeof(tail[2].name) - 1] = 'x';
        memset(tail[2].name, 'x', sizeof(tail[2].name));
        assert_int_equal(st_frame_decode_split(pkt, head, tail, (size_t)n - head, &f, &why),
                         -EBADMSG);
        /* a length that disagrees with the packet is refused as in one piece */
        assert_int_equal(st_frame_decode_split(pkt, head, tail, (size_t)n - head - 1, &f, &why),
                         -EBADMSG);
    }
    /* not a dump chunk: left to st_frame_decode */
    int n = encode_hello();
    assert_int_equal(st_frame_decode_split(buf, 32, buf + 32, (size_t)n - 32, &f, &why), -EINVAL);
}

static void test_sock_packets(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    int n = encode_hello();
    assert_int_equal(st_sock_send(sv[0], buf, (size_t)n, 100), 0);
    static unsigned char in[ST_WIRE_MAX_FRAME];
    assert_int_equal(st_sock_recv(sv[1], in, sizeof(in), 100), n);
    /* in two parts: the first bytes in one buffer, the rest in the other */
    static unsigned char rest[ST_WIRE_MAX_FRAME];
    assert_int_equal(st_sock_send(sv[0], buf, (size_t)n, 100), 0);
    assert_int_equal(st_sock_recv2(sv[1], in, 32, rest, sizeof(rest), 100), n);
    assert_memory_equal(in, buf, 32);
    assert_memory_equal(rest, buf + 32, (size_t)n - 32);
    /* nothing pending: times out */
    uint64_t t0 = st_clock_ms();
    assert_int_equal(st_sock_recv(sv[1], in, sizeof(in), 50), -EAGAIN);
    assert_true(st_clock_ms() - t0 >= 40);
    /* an oversized packet is consumed and reported */
    static unsigned char big[ST_WIRE_MAX_FRAME + 16];
    assert_int_equal(st_sock_send(sv[0], big, sizeof(big), 100), 0);
    assert_int_equal(st_sock_recv(sv[1], in, sizeof(in), 100), -EMSGSIZE);
    pid_t pid;
    uid_t uid;
    assert_int_equal(st_sock_peercred(sv[1], &pid, &uid), 0);
    assert_int_equal(pid, getpid());
    assert_int_equal(uid, getuid());
    close(sv[0]);
    assert_int_equal(st_sock_recv(sv[1], in, sizeof(in), 100), -ECONNRESET);
    assert_int_equal(st_sock_send(sv[1], buf, (size_t)n, 100), -EPIPE);
    close(sv[1]);
}

static void test_sock_listen(void **state)
{
    (void)state;
    char base[] = "/tmp/st_frame_XXXXXX";
    assert_non_null(mkdtemp(base));
    char dir[128], path[160];
    snprintf(dir, sizeof(dir), "%s/run", base);
    snprintf(path, sizeof(path), "%s/sock", dir);
    int lfd = -1, cfd = -1, afd = -1;
    assert_int_equal(st_sock_listen(path, 16, &lfd), 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* a second coordinator on the same path is refused */
    int lfd2 = -1;
    assert_int_equal(st_sock_listen(path, 16, &lfd2), -EADDRINUSE);
    assert_int_equal(st_sock_connect(path, 100, &cfd), 0);
    /* the probe of the refused listen is queued first, then ours; then nothing */
    assert_int_equal(st_sock_accept(lfd, &afd), 0);
    close(afd);
    assert_int_equal(st_sock_accept(lfd, &afd), 0);
    assert_int_equal(st_sock_accept(lfd, &lfd2), -EAGAIN);
    close(cfd);
    close(afd);
    /* a stale socket (listener gone) is replaced */
    close(lfd);
    assert_int_equal(st_sock_listen(path, 16, &lfd), 0);
    close(lfd);
    /* a directory others may enter is refused */
    chmod(dir, 0755);
    assert_int_equal(st_sock_listen(path, 16, &lfd), -EPERM);
    unlink(path);
    rmdir(dir);
    rmdir(base);
    assert_int_equal(st_sock_connect(path, 0, &cfd), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_fixed), cmocka_unit_test(test_roundtrip_events_and_chunks),
        cmocka_unit_test(test_malformed),       cmocka_unit_test(test_chunks),
        cmocka_unit_test(test_strcpy),          cmocka_unit_test(test_decode_split),
        cmocka_unit_test(test_sock_packets),    cmocka_unit_test(test_sock_listen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
