/* SPDX-License-Identifier: MIT
 *
 * st_control_fetch_trace (control.h): one control connection, one dump. The frame buffer is
 * allocated per call (64 KiB), so concurrent callers do not share state. Every wait is bounded;
 * a coordinator that stops talking half-way costs the caller at most timeout_ms per frame.
 */
#include "control.h"

#include "error.h"
#include "frame.h"
#include "sock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TRACE_MAX (1ull << 31)

/* Receives the next frame within timeout_ms. */
static int next_frame(int fd, unsigned char *buf, int timeout_ms, st_frame_t *f, const char **why)
{
    int n = st_sock_recv(fd, buf, ST_WIRE_MAX_FRAME, timeout_ms);
    if (n < 0) {
        *why = n == -EAGAIN ? "the coordinator did not answer in time"
                            : "the coordinator closed the connection";
        return n;
    }
    int rc = st_frame_decode(buf, (size_t)n, f, why);
    return rc < 0 ? rc : 0;
}

/* The sentence for an answer that is not the one expected. */
static int unexpected(const st_frame_t *f, char *msg, size_t msglen)
{
    if (f->hdr.type == ST_MSG_ERROR)
        snprintf(msg, msglen, "refused by the coordinator: %s",
                 ((const st_wire_error_t *)f->body)->text);
    else
        snprintf(msg, msglen, "unexpected %s from the coordinator", st_wire_type_name(f->hdr.type));
    return -EPROTO;
}

int st_control_fetch_trace(const char *socket_path, int timeout_ms, st_wire_dump_done_t *done,
                           char **trace, size_t *len, char *msg, size_t msglen)
{
    unsigned char *buf = NULL;
    char *data = NULL;
    const char *why = NULL;
    int fd = -1, n, rc;
    st_frame_t f;
    size_t got = 0;

    *trace = NULL;
    *len = 0;
    memset(done, 0, sizeof(*done));
    if ((buf = malloc(ST_WIRE_MAX_FRAME)) == NULL) {
        rc = -ENOMEM;
        snprintf(msg, msglen, "out of memory");
        goto out;
    }
    if ((rc = st_sock_connect(socket_path, 2000, &fd)) < 0) {
        snprintf(msg, msglen, "cannot connect to %s: %s", socket_path, st_strerror(rc));
        goto out;
    }
    st_wire_hello_t h;
    memset(&h, 0, sizeof(h));
    h.pid = (uint32_t)getpid();
    h.ppid = (uint32_t)getppid();
    h.role = ST_ROLE_CONTROL;
    st_wire_strcpy(h.exe, sizeof(h.exe), "shmtrack");
    n = st_frame_encode(buf, ST_WIRE_MAX_FRAME, ST_MSG_HELLO, 0, &h, sizeof(h));
    if ((rc = st_sock_send(fd, buf, (size_t)n, 2000)) < 0 ||
        (rc = next_frame(fd, buf, timeout_ms, &f, &why)) < 0)
        goto fail;
    if (f.hdr.type != ST_MSG_HELLO_ACK) {
        rc = unexpected(&f, msg, msglen);
        goto out;
    }
    st_wire_dump_now_t now = {ST_DUMP_NOW_F_TRACE, ST_LEVEL_DETAILED};
    n = st_frame_encode(buf, ST_WIRE_MAX_FRAME, ST_MSG_DUMP_NOW, 0, &now, sizeof(now));
    if ((rc = st_sock_send(fd, buf, (size_t)n, 2000)) < 0 ||
        (rc = next_frame(fd, buf, timeout_ms, &f, &why)) < 0)
        goto fail;
    if (f.hdr.type != ST_MSG_DUMP_DONE) {
        rc = unexpected(&f, msg, msglen);
        goto out;
    }
    memcpy(done, f.body, sizeof(*done));
    if (done->rc < 0) {
        rc = done->rc;
        snprintf(msg, msglen, "the coordinator could not take the dump: %s", st_strerror(rc));
        goto out;
    }
    if (done->trace_bytes == 0) {
        rc = -ENODATA;
        snprintf(msg, msglen, "the coordinator sent no trace (no JSON writer)");
        goto out;
    }
    if (done->trace_bytes > TRACE_MAX) {
        rc = ST_ETOOBIG;
        snprintf(msg, msglen, "a trace of %llu bytes is too large",
                 (unsigned long long)done->trace_bytes);
        goto out;
    }
    if ((data = malloc((size_t)done->trace_bytes + 1)) == NULL) {
        rc = -ENOMEM;
        snprintf(msg, msglen, "out of memory for a trace of %llu bytes",
                 (unsigned long long)done->trace_bytes);
        goto out;
    }
    st_chunk_rx_t rx = {0};
    for (;;) {
        if ((rc = next_frame(fd, buf, timeout_ms, &f, &why)) < 0)
            goto fail;
        if (f.hdr.type != ST_MSG_TRACE_CHUNK) {
            rc = unexpected(&f, msg, msglen);
            goto out;
        }
        const st_wire_trace_chunk_t *tc;
        const char *bytes;
        st_frame_trace_parts(&f, &tc, &bytes);
        int last = st_chunk_accept(&rx, tc->dump_id, tc->seq, f.hdr.flags, &why);
        if (last < 0 || got + tc->n_bytes > done->trace_bytes) {
            rc = -EPROTO;
            why = last < 0 ? why : "more trace bytes than announced";
            goto fail;
        }
        memcpy(data + got, bytes, tc->n_bytes);
        got += tc->n_bytes;
        if (last)
            break;
    }
    data[got] = '\0';
    *trace = data;
    *len = got;
    data = NULL;
    rc = 0;
    goto out;
fail:
    snprintf(msg, msglen, "%s (%s)", why ? why : "failed", st_strerror(rc));
out:
    free(data);
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}
