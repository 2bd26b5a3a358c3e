/* SPDX-License-Identifier: MIT
 *
 * The coordinator's connection layer (see server.h). One epoll set holds the listening socket,
 * every connection and the user's extra descriptors (signalfd, timerfd). Each connection moves
 * through: accepted (SO_PEERCRED read; another uid is marked for refusal) -> HELLO (version and
 * shape checked by the frame decoder; answered by HELLO_ACK or ERROR) -> ready (frames handed to
 * the user) -> closed. A closed connection's memory is freed after the current st_server_run
 * round, so callbacks may drop connections freely.
 */
#include "server.h"

#include "sock.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

enum { W_LISTEN, W_CONN, W_USER };

typedef struct watch {
    int kind;
    int fd;
    void (*cb)(void *ud, int fd);
    void *ud;
    struct watch *next; /* user watches */
} watch_t;

typedef struct outbuf {
    struct outbuf *next;
    size_t len;
    unsigned char data[];
} outbuf_t;

typedef struct conn {
    st_conn_t pub; /* first: st_conn_t * and conn_t * convert */
    watch_t w;
    struct conn *prev, *next;
    bool closed;
    bool refuse_uid;
    bool want_out;
    uint64_t accepted_ms;
    st_chunk_rx_t dump_rx;
    outbuf_t *outq, *outq_tail;
    size_t outq_bytes;
} conn_t;

struct st_server {
    st_server_config_t cfg;
    st_server_ops_t ops;
    void *ud;
    char *path;
    int epfd;
    watch_t listen;
    watch_t *user;
    conn_t *conns; /* live */
    conn_t *dead;  /* closed, freed after the round */
    size_t n_conns;
    uint64_t next_session;
    uint64_t last_sweep_ms;
    unsigned char *rx;
    unsigned char *tx;
};

static void logf_(st_server_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(st_server_t *s, const char *fmt, ...)
{
    if (s->ops.log == NULL)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    s->ops.log(s->ud, msg);
}

int st_server_open(const st_server_config_t *cfg, const st_server_ops_t *ops, void *ud,
                   st_server_t **out)
{
    int rc = -ENOMEM;
    st_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->cfg = *cfg;
    s->ops = *ops;
    s->ud = ud;
    s->epfd = -1;
    s->listen.fd = -1;
    if (s->cfg.max_conns <= 0)
        s->cfg.max_conns = 4096;
    if (s->cfg.handshake_timeout_ms <= 0)
        s->cfg.handshake_timeout_ms = 5000;
    if (s->cfg.max_outq_bytes == 0)
        s->cfg.max_outq_bytes = 64u << 20;
    if ((s->path = strdup(cfg->socket_path)) == NULL ||
        (s->rx = malloc(ST_WIRE_MAX_FRAME)) == NULL || (s->tx = malloc(ST_WIRE_MAX_FRAME)) == NULL)
        goto out;
    s->cfg.socket_path = s->path;
    if ((s->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        rc = -errno;
        goto out;
    }
    if ((rc = st_sock_listen(s->path, 1024, &s->listen.fd)) < 0)
        goto out;
    s->listen.kind = W_LISTEN;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->listen};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen.fd, &ev) < 0) {
        rc = -errno;
        goto out;
    }
    *out = s;
    return 0;
out:
    if (s->listen.fd >= 0) {
        close(s->listen.fd);
        unlink(s->path);
    }
    if (s->epfd >= 0)
        close(s->epfd);
    free(s->rx);
    free(s->tx);
    free(s->path);
    free(s);
    return rc;
}

static void free_conn(conn_t *c)
{
    outbuf_t *o = c->outq;
    while (o != NULL) {
        outbuf_t *n = o->next;
        free(o);
        o = n;
    }
    free(c);
}

static void reap(st_server_t *s)
{
    while (s->dead != NULL) {
        conn_t *c = s->dead;
        s->dead = c->next;
        free_conn(c);
    }
}

/* Closes c and reports it; its memory lives until reap(). */
static void close_conn(st_server_t *s, conn_t *c, int err, const char *why)
{
    if (c->closed)
        return;
    c->closed = true;
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->w.fd, NULL);
    close(c->w.fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    c->next = s->dead;
    c->prev = NULL;
    s->dead = c;
    if (s->ops.on_close)
        s->ops.on_close(s->ud, &c->pub, err, why);
}

void st_server_drop(st_server_t *s, st_conn_t *pub, unsigned code, int err, const char *why)
{
    conn_t *c = (conn_t *)pub;
    if (c->closed)
        return;
    logf_(s, "dropping peer pid %d (session %llu): %s", (int)c->pub.pid,
          (unsigned long long)c->pub.session, why);
    if (code != 0) {
        int n = st_frame_encode_error(s->tx, ST_WIRE_MAX_FRAME, code, why);
        if (n > 0)
            (void)st_sock_send(c->w.fd, s->tx, (size_t)n, 0);
    }
    close_conn(s, c, err, why);
}

void st_server_close(st_server_t *s)
{
    if (s == NULL)
        return;
    while (s->conns != NULL)
        close_conn(s, s->conns, -ESHUTDOWN, "coordinator shutting down");
    reap(s);
    while (s->user != NULL) {
        watch_t *w = s->user;
        s->user = w->next;
        free(w);
    }
    close(s->listen.fd);
    unlink(s->path);
    close(s->epfd);
    free(s->rx);
    free(s->tx);
    free(s->path);
    free(s);
}

size_t st_server_count(const st_server_t *s)
{
    return s->n_conns;
}

int st_server_watch(st_server_t *s, int fd, void (*cb)(void *ud, int fd), void *ud)
{
    watch_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    *w = (watch_t){W_USER, fd, cb, ud, s->user};
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int rc = -errno;
        free(w);
        return rc;
    }
    s->user = w;
    return 0;
}

static void set_out_interest(st_server_t *s, conn_t *c, bool want)
{
    if (c->want_out == want)
        return;
    c->want_out = want;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0u), .data.ptr = &c->w};
    epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->w.fd, &ev);
}

/* Sends what is queued; false when the peer is gone (c is then closed). */
static bool flush_out(st_server_t *s, conn_t *c)
{
    while (c->outq != NULL) {
        outbuf_t *o = c->outq;
        int rc = st_sock_send(c->w.fd, o->data, o->len, 0);
        if (rc == -EAGAIN) {
            set_out_interest(s, c, true);
            return true;
        }
        if (rc < 0) {
            close_conn(s, c, rc, "peer went away while we were sending");
            return false;
        }
        c->outq = o->next;
        if (c->outq == NULL)
            c->outq_tail = NULL;
        c->outq_bytes -= o->len;
        free(o);
    }
    set_out_interest(s, c, false);
    return true;
}

int st_server_send(st_server_t *s, st_conn_t *pub, unsigned type, unsigned flags, const void *body,
                   size_t len)
{
    conn_t *c = (conn_t *)pub;
    if (c->closed)
        return -ENOTCONN;
    int n = st_frame_encode(s->tx, ST_WIRE_MAX_FRAME, type, flags, body, len);
    if (n < 0)
        return n;
    if (c->outq == NULL) {
        int rc = st_sock_send(c->w.fd, s->tx, (size_t)n, 0);
        if (rc == 0)
            return 0;
        if (rc != -EAGAIN) {
            close_conn(s, c, rc, "peer went away while we were sending");
            return rc;
        }
    }
    if (c->outq_bytes + (size_t)n > s->cfg.max_outq_bytes) {
        st_server_drop(s, pub, 0, -ENOBUFS, "peer does not read what it is sent");
        return -ENOBUFS;
    }
    outbuf_t *o = malloc(sizeof(*o) + (size_t)n);
    if (o == NULL)
        return -ENOMEM;
    o->next = NULL;
    o->len = (size_t)n;
    memcpy(o->data, s->tx, (size_t)n);
    if (c->outq_tail)
        c->outq_tail->next = o;
    else
        c->outq = o;
    c->outq_tail = o;
    c->outq_bytes += (size_t)n;
    set_out_interest(s, c, true);
    return 0;
}

static void accept_all(st_server_t *s)
{
    for (;;) {
        int fd = -1;
        int rc = st_sock_accept(s->listen.fd, &fd);
        if (rc == -EAGAIN)
            return;
        if (rc < 0) {
            logf_(s, "accept failed: %s", strerror(-rc));
            return; /* EMFILE and friends: try again on the next round */
        }
        pid_t pid = 0;
        uid_t uid = 0;
        if ((rc = st_sock_peercred(fd, &pid, &uid)) < 0) {
            logf_(s, "SO_PEERCRED failed: %s", strerror(-rc));
            close(fd);
            continue;
        }
        if ((int)s->n_conns >= s->cfg.max_conns) {
            logf_(s, "refusing pid %d: %d connections already", (int)pid, s->cfg.max_conns);
            int n = st_frame_encode_error(s->tx, ST_WIRE_MAX_FRAME, ST_WERR_BUSY,
                                          "the coordinator has too many clients");
            (void)st_sock_send(fd, s->tx, (size_t)n, 0);
            close(fd);
            continue;
        }
        conn_t *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->pub.session = ++s->next_session;
        c->pub.pid = pid;
        c->pub.uid = uid;
        c->w.kind = W_CONN;
        c->w.fd = fd;
        c->w.ud = c;
        c->accepted_ms = st_clock_ms();
        c->refuse_uid = uid != geteuid() && !(s->cfg.allow_root && uid == 0);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->w};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
    }
}

/* The first frame of a connection. */
static void handshake(st_server_t *s, conn_t *c, const st_frame_t *f)
{
    char why[ST_WIRE_ERROR_TEXT];
    if (c->refuse_uid) {
        snprintf(why, sizeof(why), "peer uid %u is not the coordinator's uid %u",
                 (unsigned)c->pub.uid, (unsigned)geteuid());
        st_server_drop(s, &c->pub, ST_WERR_UID, -EACCES, why);
        return;
    }
    if (f->hdr.type != ST_MSG_HELLO) {
        snprintf(why, sizeof(why), "expected HELLO first, got %s", st_wire_type_name(f->hdr.type));
        st_server_drop(s, &c->pub, ST_WERR_PROTO, -EPROTO, why);
        return;
    }
    memcpy(&c->pub.hello, f->body, sizeof(c->pub.hello));
    if (c->pub.hello.pid != (uint32_t)c->pub.pid)
        logf_(s, "peer claims pid %u, the kernel says %d: using the kernel's", c->pub.hello.pid,
              (int)c->pub.pid);
    st_wire_hello_ack_t ack = {(uint32_t)getpid(), (uint32_t)c->pub.pid, c->pub.session};
    if (st_server_send(s, &c->pub, ST_MSG_HELLO_ACK, 0, &ack, sizeof(ack)) < 0)
        return;
    c->pub.ready = true;
    if (s->ops.on_ready)
        s->ops.on_ready(s->ud, &c->pub);
}

/* Decodes the packet of n bytes received into s->rx, or, when dest is not NULL, its first head
 * bytes there and the rest at dest: a PROCESS_DUMP chunk split where its objects start is
 * decoded in place; any other packet is joined back into s->rx first. */
static int decode_packet(st_server_t *s, size_t n, void *dest, size_t head, st_frame_t *f,
                         const char **why)
{
    if (dest == NULL || n <= head)
        return st_frame_decode(s->rx, n, f, why);
    int rc = st_frame_decode_split(s->rx, head, dest, n - head, f, why);
    if (rc != -EINVAL)
        return rc;
    memmove(s->rx + head, dest, n - head);
    return st_frame_decode(s->rx, n, f, why);
}

static void handle_packet(st_server_t *s, conn_t *c, size_t n, void *dest, size_t head)
{
    st_frame_t f;
    const char *why = NULL;
    char text[ST_WIRE_ERROR_TEXT];
    int rc = decode_packet(s, n, dest, head, &f, &why);
    if (rc == -EPROTONOSUPPORT) {
        snprintf(text, sizeof(text),
                 "incompatible protocol: the coordinator speaks version %u, the peer version %u",
                 ST_WIRE_VERSION, (unsigned)f.hdr.version);
        st_server_drop(s, &c->pub, ST_WERR_VERSION, rc, text);
        return;
    }
    if (rc < 0) {
        snprintf(text, sizeof(text), "malformed frame: %s", why);
        st_server_drop(s, &c->pub, ST_WERR_PROTO, rc, text);
        return;
    }
    if (!c->pub.ready) {
        handshake(s, c, &f);
        return;
    }
    switch (f.hdr.type) {
    case ST_MSG_PROCESS_DUMP: {
        const st_wire_dump_chunk_t *ch = f.body;
        if (st_chunk_accept(&c->dump_rx, ch->dump_id, ch->seq, f.hdr.flags, &why) < 0) {
            snprintf(text, sizeof(text), "PROCESS_DUMP: %s", why);
            st_server_drop(s, &c->pub, ST_WERR_PROTO, -EPROTO, text);
            return;
        }
        break;
    }
    case ST_MSG_OBJECT_EVENT:
    case ST_MSG_DUMP_NOW:
    case ST_MSG_BYE:
    case ST_MSG_ERROR:
        break;
    default:
        snprintf(text, sizeof(text), "a client may not send %s", st_wire_type_name(f.hdr.type));
        st_server_drop(s, &c->pub, ST_WERR_PROTO, -EPROTO, text);
        return;
    }
    if (s->ops.on_frame)
        s->ops.on_frame(s->ud, &c->pub, &f);
    if (f.hdr.type == ST_MSG_BYE && !c->closed)
        close_conn(s, c, 0, "peer said BYE");
}

static void read_conn(st_server_t *s, conn_t *c)
{
    for (int i = 0; i < 64 && !c->closed; i++) {
        /* a dump chunk's objects straight where the user keeps them (ops.dump_dest): the
         * header part of the chunk its stream expects next goes here, the rest there */
        void *dest = NULL;
        if (s->ops.dump_dest != NULL && c->pub.ready)
            dest = s->ops.dump_dest(s->ud, &c->pub);
        size_t head = st_frame_dump_head(c->dump_rx.active ? c->dump_rx.next_seq : 0);
        int n = dest != NULL
                    ? st_sock_recv2(c->w.fd, s->rx, head, dest, ST_WIRE_MAX_FRAME - head, 0)
                    : st_sock_recv(c->w.fd, s->rx, ST_WIRE_MAX_FRAME, 0);
        if (n == -EAGAIN)
            return;
        if (n == -EMSGSIZE) {
            st_server_drop(s, &c->pub, ST_WERR_PROTO, -EMSGSIZE,
                           "malformed frame: packet larger than the protocol maximum");
            return;
        }
        if (n < 0) {
            close_conn(s, c, n == -ECONNRESET ? 0 : n,
                       n == -ECONNRESET ? "peer closed the connection" : "receive failed");
            return;
        }
        handle_packet(s, c, (size_t)n, dest, head);
    }
}

static void sweep(st_server_t *s)
{
    uint64_t now = st_clock_ms();
    if (now - s->last_sweep_ms < 200)
        return;
    s->last_sweep_ms = now;
    for (conn_t *c = s->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (!c->pub.ready && now - c->accepted_ms > (uint64_t)s->cfg.handshake_timeout_ms)
            st_server_drop(s, &c->pub, ST_WERR_PROTO, -ETIMEDOUT, "no HELLO in time");
    }
}

int st_server_run(st_server_t *s, int timeout_ms)
{
    struct epoll_event evs[128];
    int n = epoll_wait(s->epfd, evs, 128, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        watch_t *w = evs[i].data.ptr;
        if (w->kind == W_LISTEN) {
            accept_all(s);
        } else if (w->kind == W_USER) {
            w->cb(w->ud, w->fd);
        } else {
            conn_t *c = w->ud;
            if (c->closed)
                continue;
            if ((evs[i].events & EPOLLOUT) && !flush_out(s, c))
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                read_conn(s, c);
        }
    }
    sweep(s);
    reap(s);
    return 0;
}
