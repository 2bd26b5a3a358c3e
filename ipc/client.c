/* SPDX-License-Identifier: MIT
 *
 * The client library (see client.h for the contract). Three parts:
 *
 *  - the event queue: Dmitry Vyukov's bounded MPMC ring (a sequence number per cell), used with
 * many producers and one consumer. Producers claim a cell with one CAS and publish it with one
 * store; nothing blocks, nothing allocates, a signal handler may enqueue while the thread it
 * interrupted is half-way through (the consumer then waits for that cell). No lock exists, so a
 * fork cannot leave one held; the child simply reinitialises the ring.
 *  - the registry behind the default dump callback: an open-addressing table touched only by the
 *    agent thread.
 *  - the agent thread: connect + HELLO, drain the queue into OBJECT_EVENT frames, answer
 *    DUMP_REQUEST, reconnect. It owns the socket; no other thread touches it.
 *
 * All memory is one anonymous mapping; there is no malloc and no stdio anywhere in this file.
 */
#include "client.h"

#include "frame.h"
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ERR_MAX 256

typedef struct cell {
    _Atomic size_t seq;
    st_wire_event_t ev;
} cell_t;

typedef struct reg_entry {
    uint32_t state; /* 0 empty, 1 used, 2 deleted */
    uint32_t pad;
    uint64_t created_ns; /* the CREATED event's time, for a re-announcement */
    st_wire_object_t obj;
} reg_entry_t;

enum { THREAD_NONE, THREAD_STARTING, THREAD_RUNNING };

struct st_client {
    size_t map_len;
    st_client_config_t cfg;
    char path[ST_CLIENT_PATH_MAX];

    /* queue */
    cell_t *cells;
    size_t mask;
    _Atomic size_t enq_pos;
    size_t deq_pos;          /* agent only */
    size_t applied_pos;      /* agent only: events before it are in the registry (>= deq_pos) */
    _Atomic size_t sent_pos; /* events before this position have been sent (or discarded) */

    /* the OBJECT_EVENT frame on its way (agent only): kept until the socket takes it */
    unsigned char *ev; /* ST_WIRE_MAX_FRAME */
    size_t ev_len;     /* its bytes; 0: none */
    size_t ev_n;       /* queued events it carries (0: a re-announcement) */
    size_t ev_end;     /* deq_pos after them */
    size_t reannounce; /* next registry slot to re-announce + 1; 0: none */
    bool lost;         /* events were discarded since the last connection */

    /* registry (agent only) */
    reg_entry_t *reg;
    size_t reg_mask, reg_used;

    /* agent */
    pthread_t thread;
    _Atomic int thread_state;
    _Atomic bool stop;
    int fd;
    dev_t fd_dev;
    ino_t fd_ino;
    unsigned char *tx; /* ST_WIRE_MAX_FRAME */
    unsigned char *rx; /* ST_WIRE_MAX_FRAME */

    /* stats */
    _Atomic bool connected, refused;
    _Atomic unsigned connects;
    _Atomic uint64_t queued, sent, dropped, dumps;
    char last_error[ERR_MAX];
};

struct st_client_writer {
    st_client_t *c;
    uint64_t dump_id;
    uint32_t seq;
    uint32_t n;
    size_t off; /* body bytes so far */
    bool totals;
    int err;
};

/* ---- small helpers (no libc allocation, no stdio) ---- */

static void set_error(st_client_t *c, const char *a, const char *b)
{
    size_t n = 0;
    for (const char *s = a; s && *s && n + 1 < ERR_MAX; s++)
        c->last_error[n++] = *s;
    for (const char *s = b; s && *s && n + 1 < ERR_MAX; s++)
        c->last_error[n++] = *s;
    c->last_error[n] = '\0';
}

static size_t round_pow2(size_t n)
{
    size_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Reads a small /proc file into buf (NUL-terminated); returns its length or -errno. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    return (ssize_t)n;
}

static uint64_t parse_u64(const char **p)
{
    uint64_t v = 0;
    while (**p == ' ')
        (*p)++;
    while (**p >= '0' && **p <= '9')
        v = v * 10 + (uint64_t)(*(*p)++ - '0');
    return v;
}

/* ---- queue ---- */

static void queue_reset(st_client_t *c)
{
    for (size_t i = 0; i <= c->mask; i++)
        atomic_store_explicit(&c->cells[i].seq, i, memory_order_relaxed);
    atomic_store(&c->enq_pos, 0);
    c->deq_pos = 0;
    c->applied_pos = 0;
    atomic_store(&c->sent_pos, 0);
    c->ev_len = 0;
    c->ev_n = 0;
    c->reannounce = 0;
    c->lost = false;
}

static int ensure_thread(st_client_t *c);

int st_client_event(st_client_t *c, const st_wire_event_t *ev)
{
    if (atomic_load_explicit(&c->refused, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&c->dropped, 1, memory_order_relaxed);
        return -ECONNREFUSED;
    }
    if (atomic_load_explicit(&c->thread_state, memory_order_acquire) == THREAD_NONE)
        ensure_thread(c);
    size_t pos = atomic_load_explicit(&c->enq_pos, memory_order_relaxed);
    cell_t *cell;
    for (;;) {
        cell = &c->cells[pos & c->mask];
        size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&c->enq_pos, &pos, pos + 1,
                                                      memory_order_relaxed, memory_order_relaxed))
                break;
        } else if (dif < 0) {
            atomic_fetch_add_explicit(&c->dropped, 1, memory_order_relaxed);
            return -EAGAIN;
        } else {
            pos = atomic_load_explicit(&c->enq_pos, memory_order_relaxed);
        }
    }
    cell->ev = *ev;
    atomic_store_explicit(&cell->seq, pos + 1, memory_order_release);
    atomic_fetch_add_explicit(&c->queued, 1, memory_order_relaxed);
    return 0;
}

/* The published event at pos (agent only, deq_pos <= pos): producers leave a published cell
 * alone until the agent pops it, so reading it in place is safe. */
static const st_wire_event_t *queue_peek(st_client_t *c, size_t pos)
{
    cell_t *cell = &c->cells[pos & c->mask];
    size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
    return seq == pos + 1 ? &cell->ev : NULL;
}

/* Takes the next published event (agent only). */
static bool queue_pop(st_client_t *c, st_wire_event_t *out)
{
    const st_wire_event_t *ev = queue_peek(c, c->deq_pos);
    if (ev == NULL)
        return false;
    *out = *ev;
    cell_t *cell = &c->cells[c->deq_pos & c->mask];
    atomic_store_explicit(&cell->seq, c->deq_pos + c->mask + 1, memory_order_release);
    c->deq_pos++;
    return true;
}

/* Events waiting in the queue (agent only). */
static size_t queue_backlog(st_client_t *c)
{
    return atomic_load_explicit(&c->enq_pos, memory_order_relaxed) - c->deq_pos;
}

/* ---- registry ---- */

static bool key_eq(const st_wire_key_t *a, const st_wire_key_t *b)
{
    return a->kind == b->kind && a->major == b->major && a->minor == b->minor &&
           a->shmid == b->shmid && a->ino == b->ino;
}

static size_t key_hash(const st_wire_key_t *k)
{
    uint64_t h = k->ino * 0x9e3779b97f4a7c15ull;
    h ^= ((uint64_t)k->kind << 56) ^ ((uint64_t)k->major << 40) ^ ((uint64_t)k->minor << 20) ^
         (uint64_t)(uint32_t)k->shmid;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return (size_t)(h ^ (h >> 32));
}

/* Finds key; with create, inserts it. NULL when absent (or the table is full). */
static reg_entry_t *reg_find(st_client_t *c, const st_wire_key_t *k, bool create)
{
    size_t i = key_hash(k) & c->reg_mask;
    reg_entry_t *tomb = NULL;
    for (size_t probes = 0; probes <= c->reg_mask; probes++, i = (i + 1) & c->reg_mask) {
        reg_entry_t *e = &c->reg[i];
        if (e->state == 0) {
            if (!create || c->reg_used >= c->reg_mask) /* keep one empty slot */
                return NULL;
            if (tomb != NULL)
                e = tomb;
            else
                c->reg_used++;
            memset(e, 0, sizeof(*e));
            e->state = 1;
            e->obj.key = *k;
            return e;
        }
        if (e->state == 2) {
            if (tomb == NULL)
                tomb = e;
        } else if (key_eq(&e->obj.key, k)) {
            return e;
        }
    }
    return NULL;
}

static void reg_apply(st_client_t *c, const st_wire_event_t *ev)
{
    bool adds = ev->type == ST_EVENT_CREATED || ev->type == ST_EVENT_MAPPED;
    reg_entry_t *e = reg_find(c, &ev->key, adds);
    if (e == NULL)
        return;
    st_wire_object_t *o = &e->obj;
    switch (ev->type) {
    case ST_EVENT_CREATED:
    case ST_EVENT_MAPPED:
        if (ev->type == ST_EVENT_CREATED) {
            o->flags |= ST_OBJ_F_CREATOR;
            e->created_ns = ev->ts_ns;
        } else {
            o->mapped_bytes += ev->mapped_bytes;
        }
        if (ev->virtual_size)
            o->virtual_size = ev->virtual_size;
        if (ev->resident)
            o->resident = ev->resident;
        if (ev->name[0])
            memcpy(o->name, ev->name, sizeof(o->name));
        if (ev->label[0])
            memcpy(o->label, ev->label, sizeof(o->label));
        break;
    case ST_EVENT_UNMAPPED:
        o->mapped_bytes =
            o->mapped_bytes > ev->mapped_bytes ? o->mapped_bytes - ev->mapped_bytes : 0;
        if (o->mapped_bytes == 0 && !(o->flags & ST_OBJ_F_CREATOR))
            e->state = 2;
        break;
    case ST_EVENT_DESTROYED:
        e->state = 2;
        break;
    case ST_EVENT_IMPORTANCE:
        o->importance = ev->importance;
        o->flags |= ST_OBJ_F_EXPLICIT;
        break;
    case ST_EVENT_LABEL:
        memcpy(o->label, ev->label, sizeof(o->label));
        break;
    }
}

/* Applies every published event not applied yet to the registry, leaving them queued (agent
 * only): a dump answer then reports them even while their frame still waits for the socket. */
static void reg_catch_up(st_client_t *c)
{
    const st_wire_event_t *ev;
    while ((ev = queue_peek(c, c->applied_pos)) != NULL) {
        reg_apply(c, ev);
        c->applied_pos++;
    }
}

/* ---- the connection (agent only) ---- */

/* True when c->fd is still the socket we opened. */
static bool fd_is_ours(st_client_t *c)
{
    struct stat st;
    return c->fd >= 0 && fstat(c->fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == c->fd_dev &&
           st.st_ino == c->fd_ino;
}

/* Drops the connection. close_it: the fd is still ours (otherwise the host owns that number). */
static void disconnect(st_client_t *c, bool close_it)
{
    if (c->fd >= 0 && close_it)
        close(c->fd);
    c->fd = -1;
    atomic_store(&c->connected, false);
}

/* Sends one frame. keep: a socket that stays full for timeout_ms returns -EAGAIN and keeps the
 * connection (the coordinator is busy, not gone); any other failure drops the connection. */
static int send_buf(st_client_t *c, const unsigned char *buf, size_t len, int timeout_ms, bool keep)
{
    if (!fd_is_ours(c)) {
        disconnect(c, false);
        return -EBADF;
    }
    int rc = st_sock_send(c->fd, buf, len, timeout_ms);
    if (rc < 0 && !(keep && rc == -EAGAIN))
        disconnect(c, true);
    return rc;
}

/* Sends one frame built in c->tx; on failure drops the connection. */
static int send_tx(st_client_t *c, size_t len, int timeout_ms)
{
    return send_buf(c, c->tx, len, timeout_ms, false);
}

/* Moves fd above the range a program usually uses, so that a careless close/dup2 is less likely
 * to hit it. Keeps fd when there is no room. */
static int move_high(int fd)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < 256)
        return fd;
    long want = (long)(rl.rlim_cur > 1024 ? 1024 : rl.rlim_cur) - 128;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, (int)want);
    if (nfd < 0)
        return fd;
    close(fd);
    return nfd;
}

static void fill_hello(st_client_t *c, st_wire_hello_t *h)
{
    memset(h, 0, sizeof(*h));
    h->pid = (uint32_t)getpid();
    h->ppid = (uint32_t)getppid();
    h->role = c->cfg.role;
    char buf[1024];
    if (read_small("/proc/self/stat", buf, sizeof(buf)) > 0) {
        const char *p = strrchr(buf, ')');
        /* after "pid (comm)": state is field 3, starttime field 22 */
        for (int field = 2; p != NULL && *p && field < 22; p++)
            if (*p == ' ')
                field++;
        if (p != NULL)
            h->start_time = parse_u64(&p);
    }
    ssize_t n = readlink("/proc/self/exe", h->exe, sizeof(h->exe) - 1);
    if (n < 0)
        h->exe[0] = '\0';
    n = read_small("/proc/self/cmdline", buf, sizeof(buf));
    if (n > 0) {
        size_t len = (size_t)n < sizeof(h->argv) - 2 ? (size_t)n : sizeof(h->argv) - 2;
        memcpy(h->argv, buf, len);
    }
}

/* Connects and shakes hands. 0, -ECONNREFUSED when refused for good, other -errno to retry. */
static int connect_once(st_client_t *c)
{
    int fd = -1;
    int rc = st_sock_connect(c->path, 100, &fd);
    if (rc < 0)
        /* ECONNREFUSED here only means nobody listens right now (a coordinator between bind and
         * listen, or between close and unlink): retry, unlike a refusal by ERROR frame */
        return rc == -ECONNREFUSED ? -ENOTCONN : rc;
    c->fd = move_high(fd);
    struct stat st;
    if (fstat(c->fd, &st) < 0) {
        disconnect(c, true);
        return -EBADF;
    }
    c->fd_dev = st.st_dev;
    c->fd_ino = st.st_ino;
    st_wire_hello_t h;
    fill_hello(c, &h);
    int len = st_frame_encode(c->tx, ST_WIRE_MAX_FRAME, ST_MSG_HELLO, 0, &h, sizeof(h));
    if ((rc = send_tx(c, (size_t)len, 1000)) < 0)
        return rc;
    rc = st_sock_recv(c->fd, c->rx, ST_WIRE_MAX_FRAME, 5000); /* a busy coordinator is slow */
    if (rc < 0) {
        disconnect(c, true);
        return rc;
    }
    st_frame_t f;
    const char *why = NULL;
    int drc = st_frame_decode(c->rx, (size_t)rc, &f, &why);
    if (drc == 0 && f.hdr.type == ST_MSG_ERROR) {
        const st_wire_error_t *e = f.body;
        set_error(c, "coordinator refused the connection: ", e->text);
        disconnect(c, true);
        if (e->code == ST_WERR_VERSION || e->code == ST_WERR_UID)
            return -ECONNREFUSED;
        return -EAGAIN;
    }
    if (drc < 0 || f.hdr.type != ST_MSG_HELLO_ACK) {
        set_error(c, "bad handshake answer: ", drc < 0 ? why : "not HELLO_ACK");
        disconnect(c, true);
        return drc == -EPROTONOSUPPORT ? -ECONNREFUSED : -EPROTO;
    }
    /* A new coordinator (or this one, after events were discarded) learns the registry again,
     * unless the host re-announces through its connect callback. */
    if (c->cfg.connect_cb == NULL && (atomic_load(&c->connects) > 0 || c->lost))
        c->reannounce = 1;
    c->lost = false;
    unsigned prev = atomic_fetch_add(&c->connects, 1);
    atomic_store(&c->connected, true);
    if (c->cfg.connect_cb != NULL)
        c->cfg.connect_cb(c->cfg.connect_ud, prev);
    return 0;
}

/* The events that tell a new coordinator about registry entry e: CREATED or MAPPED with its
 * metadata, then IMPORTANCE when it carries an explicit claim. Returns how many (1 or 2). */
static size_t announce_entry(const reg_entry_t *e, st_wire_event_t *out)
{
    const st_wire_object_t *o = &e->obj;
    memset(out, 0, sizeof(*out));
    out->type = (o->flags & ST_OBJ_F_CREATOR) ? ST_EVENT_CREATED : ST_EVENT_MAPPED;
    out->key = o->key;
    out->ts_ns = (o->flags & ST_OBJ_F_CREATOR) ? e->created_ns : 0;
    out->virtual_size = o->virtual_size;
    out->mapped_bytes = o->mapped_bytes;
    out->resident = o->resident;
    memcpy(out->name, o->name, sizeof(out->name));
    memcpy(out->label, o->label, sizeof(out->label));
    if (!(o->flags & ST_OBJ_F_EXPLICIT))
        return 1;
    memset(&out[1], 0, sizeof(out[1]));
    out[1].type = ST_EVENT_IMPORTANCE;
    out[1].key = o->key;
    out[1].importance = o->importance;
    return 2;
}

/* Builds the next OBJECT_EVENT frame in c->ev: the rest of a re-announcement of the registry
 * first, then queued events (applied to the registry as they are taken, unless reg_catch_up did
 * already). False when there is nothing to send. */
static bool next_frame(st_client_t *c)
{
    st_wire_event_t *evs = (st_wire_event_t *)(c->ev + sizeof(st_wire_header_t));
    size_t n = 0;
    c->ev_n = 0;
    while (c->reannounce != 0 && n + 2 <= ST_WIRE_EVENTS_PER_FRAME) {
        size_t i = c->reannounce - 1;
        if (i > c->reg_mask) {
            c->reannounce = 0;
            break;
        }
        c->reannounce++;
        if (c->reg[i].state == 1)
            n += announce_entry(&c->reg[i], &evs[n]);
    }
    if (n == 0) {
        while (n < ST_WIRE_EVENTS_PER_FRAME && queue_pop(c, &evs[n])) {
            if (c->deq_pos > c->applied_pos) {
                reg_apply(c, &evs[n]);
                c->applied_pos = c->deq_pos;
            }
            n++;
        }
        c->ev_n = n;
        c->ev_end = c->deq_pos;
    }
    if (n == 0)
        return false;
    int len =
        st_frame_encode(c->ev, ST_WIRE_MAX_FRAME, ST_MSG_OBJECT_EVENT, 0, evs, n * sizeof(*evs));
    c->ev_len = (size_t)len;
    return true;
}

/* Sends the frame on its way, a pending re-announcement and every queued event, in frames of up
 * to ST_WIRE_EVENTS_PER_FRAME. A frame the socket does not take within timeout_ms stays in c->ev
 * for the next call (-EAGAIN): a coordinator busy merging loses nothing, the queue just fills.
 * A lost connection keeps the frame too: it goes first on the next connection. */
static int drain(st_client_t *c, int timeout_ms)
{
    for (;;) {
        if (c->ev_len == 0 && !next_frame(c))
            return 0;
        if (c->fd < 0)
            return -ENOTCONN;
        int rc = send_buf(c, c->ev, c->ev_len, timeout_ms, true);
        if (rc < 0)
            return rc;
        if (c->ev_n > 0) {
            atomic_fetch_add_explicit(&c->sent, c->ev_n, memory_order_relaxed);
            atomic_store_explicit(&c->sent_pos, c->ev_end, memory_order_release);
        }
        c->ev_len = 0;
    }
}

/* While nobody listens: the registry follows the queue (the next dump reports the truth), and
 * once the queue is half full its oldest events are discarded and counted, so that producers
 * keep room. The next connection re-announces the registry. */
static void hold(st_client_t *c)
{
    reg_catch_up(c);
    st_wire_event_t ev;
    while (queue_backlog(c) > (c->mask + 1) / 2 && queue_pop(c, &ev)) {
        if (c->deq_pos > c->applied_pos) { /* published after the catch-up */
            reg_apply(c, &ev);
            c->applied_pos = c->deq_pos;
        }
        atomic_fetch_add_explicit(&c->dropped, 1, memory_order_relaxed);
        atomic_store_explicit(&c->sent_pos, c->deq_pos, memory_order_release);
        c->lost = true;
    }
}

/* ---- dump writer ---- */

static size_t chunk_prefix(const st_client_writer_t *w)
{
    return sizeof(st_wire_dump_chunk_t) + (w->seq == 0 ? sizeof(st_wire_totals_t) : 0);
}

static void writer_begin(st_client_writer_t *w)
{
    w->n = 0;
    w->off = chunk_prefix(w);
    if (w->seq == 0)
        memset(w->c->tx + sizeof(st_wire_header_t) + sizeof(st_wire_dump_chunk_t), 0,
               sizeof(st_wire_totals_t));
}

static int writer_flush(st_client_writer_t *w, bool last)
{
    if (w->err < 0)
        return w->err;
    st_wire_dump_chunk_t ch = {w->dump_id, w->seq, w->n};
    memcpy(w->c->tx + sizeof(st_wire_header_t), &ch, sizeof(ch));
    st_wire_header_t h = {ST_WIRE_MAGIC, ST_WIRE_VERSION, ST_MSG_PROCESS_DUMP,
                          last ? ST_WIRE_F_LAST : 0u, (uint32_t)w->off};
    memcpy(w->c->tx, &h, sizeof(h));
    int rc = w->c->fd >= 0 ? send_tx(w->c, sizeof(h) + w->off, 5000) : -ENOTCONN;
    if (rc < 0)
        return w->err = rc;
    w->seq++;
    writer_begin(w);
    return 0;
}

int st_client_write_totals(st_client_writer_t *w, const st_wire_totals_t *totals)
{
    if (w->err < 0)
        return w->err;
    if (w->seq != 0)
        return -EINVAL;
    memcpy(w->c->tx + sizeof(st_wire_header_t) + sizeof(st_wire_dump_chunk_t), totals,
           sizeof(*totals));
    w->totals = true;
    return 0;
}

int st_client_write_object(st_client_writer_t *w, const st_wire_object_t *obj)
{
    if (w->err < 0)
        return w->err;
    if (w->n == ST_WIRE_OBJECTS_PER_CHUNK && writer_flush(w, false) < 0)
        return w->err;
    /* copied once, straight into the frame (an answer is 1000s of records), then made what the
     * decoder accepts in place: never send what it would refuse */
    st_wire_object_t *o = (st_wire_object_t *)(w->c->tx + sizeof(st_wire_header_t) + w->off);
    memcpy(o, obj, sizeof(*o));
    o->name[sizeof(o->name) - 1] = '\0';
    o->label[sizeof(o->label) - 1] = '\0';
    o->flags &= ST_OBJ_F_KNOWN;
    w->off += sizeof(*o);
    w->n++;
    return 0;
}

st_client_t *st_client_writer_client(st_client_writer_t *w)
{
    return w->c;
}

int st_client_default_dump(void *ud, uint64_t dump_id, unsigned level, st_client_writer_t *w)
{
    st_client_t *c = ud;
    (void)dump_id;
    (void)level;
    st_wire_totals_t t;
    memset(&t, 0, sizeof(t));
    char buf[256];
    if (read_small("/proc/self/statm", buf, sizeof(buf)) > 0) {
        const char *p = buf;
        (void)parse_u64(&p); /* size */
        uint64_t resident = parse_u64(&p);
        t.resident_set_bytes = resident * (uint64_t)sysconf(_SC_PAGESIZE);
        t.present = 1u; /* resident_set_bytes: bit 0 of model.h's ST_TOTALS_MAP */
    }
    int rc = st_client_write_totals(w, &t);
    for (size_t i = 0; rc == 0 && i <= c->reg_mask; i++)
        if (c->reg[i].state == 1)
            rc = st_client_write_object(w, &c->reg[i].obj);
    return rc;
}

static void answer_dump(st_client_t *c, const st_wire_dump_request_t *req)
{
    /* Events queued before the request go first (the coordinator reads while it waits for
     * answers), and are in the registry in any case, even if their frame still waits. */
    drain(c, 1000);
    if (c->fd < 0)
        return;
    reg_catch_up(c);
    st_client_writer_t w = {.c = c, .dump_id = req->dump_id};
    writer_begin(&w);
    st_client_dump_cb cb = c->cfg.dump_cb ? c->cfg.dump_cb : st_client_default_dump;
    void *ud = c->cfg.dump_cb ? c->cfg.dump_ud : c;
    (void)cb(ud, req->dump_id, req->level, &w);
    if (w.err == 0 && writer_flush(&w, true) == 0)
        atomic_fetch_add(&c->dumps, 1);
}

/* Reads and handles what the coordinator sent; false when the connection is gone. */
static bool handle_input(st_client_t *c)
{
    for (;;) {
        if (!fd_is_ours(c)) {
            disconnect(c, false);
            return false;
        }
        int n = st_sock_recv(c->fd, c->rx, ST_WIRE_MAX_FRAME, 0);
        if (n == -EAGAIN)
            return true;
        if (n < 0) {
            disconnect(c, true);
            return false;
        }
        st_frame_t f;
        const char *why = NULL;
        if (st_frame_decode(c->rx, (size_t)n, &f, &why) < 0) {
            set_error(c, "bad frame from the coordinator: ", why);
            disconnect(c, true);
            return false;
        }
        switch (f.hdr.type) {
        case ST_MSG_DUMP_REQUEST:
            answer_dump(c, f.body);
            if (c->fd < 0)
                return false;
            break;
        case ST_MSG_ERROR:
            set_error(c, "coordinator: ", ((const st_wire_error_t *)f.body)->text);
            break;
        default:
            break; /* nothing else is meant for a client; ignore */
        }
    }
}

static void *agent_main(void *arg)
{
    st_client_t *c = arg;
    unsigned backoff = 50;
    /* A helper of the host program in the background: SCHED_BATCH, so that its wakeups (a dump
     * request, a flush) preempt neither the host's threads nor the coordinator that reads the
     * answers; it runs when a core is free or at the next tick. It also leaves a realtime host's
     * policy, which a new thread inherits. Advice only: a failure changes nothing. */
    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &(struct sched_param){0});
    while (!atomic_load(&c->stop)) {
        if (c->fd < 0) {
            int rc = connect_once(c);
            if (rc == -ECONNREFUSED) {
                atomic_store(&c->refused, true);
                break;
            }
            if (rc < 0) {
                hold(c);
                for (unsigned t = 0; t < backoff && !atomic_load(&c->stop); t += 10)
                    sleep_ms(10);
                backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
                continue;
            }
            backoff = 50;
        }
        int drc = drain(c, 0);
        if (drc < 0 && drc != -EAGAIN)
            continue;
        if (!fd_is_ours(c)) {
            disconnect(c, false);
            continue;
        }
        /* a frame waiting for room: wake when the coordinator has read */
        short want = (short)(POLLIN | (c->ev_len != 0 ? POLLOUT : 0));
        int ev = st_sock_wait(c->fd, want, ST_CLIENT_FLUSH_MS);
        if (ev & POLLNVAL) {
            disconnect(c, false);
            continue;
        }
        if (ev & (POLLIN | POLLHUP | POLLERR))
            handle_input(c);
    }
    if (c->fd >= 0 && fd_is_ours(c)) {
        drain(c, 100);
        st_wire_bye_t bye = {0, 0};
        int len = st_frame_encode(c->tx, ST_WIRE_MAX_FRAME, ST_MSG_BYE, 0, &bye, sizeof(bye));
        if (c->fd >= 0)
            send_tx(c, (size_t)len, 100);
    }
    if (c->fd >= 0)
        disconnect(c, fd_is_ours(c));
    return NULL;
}

/* Starts the agent thread with every signal blocked, once. */
static int ensure_thread(st_client_t *c)
{
    int expected = THREAD_NONE;
    if (!atomic_compare_exchange_strong(&c->thread_state, &expected, THREAD_STARTING))
        return 0;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&c->thread, NULL, agent_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    atomic_store_explicit(&c->thread_state, rc == 0 ? THREAD_RUNNING : THREAD_NONE,
                          memory_order_release);
    return -rc;
}

/* ---- lifecycle ---- */

int st_client_start(const st_client_config_t *cfg, st_client_t **out)
{
    if (cfg == NULL || cfg->socket_path == NULL || cfg->role > ST_ROLE_CONTROL)
        return -EINVAL;
    size_t plen = strlen(cfg->socket_path);
    if (plen == 0)
        return -EINVAL;
    if (plen >= ST_CLIENT_PATH_MAX)
        return -ENAMETOOLONG;
    size_t qcap = round_pow2(cfg->queue_capacity ? cfg->queue_capacity : ST_CLIENT_QUEUE_DEFAULT);
    size_t rcap = round_pow2(
        2 * (cfg->registry_capacity ? cfg->registry_capacity : ST_CLIENT_REGISTRY_DEFAULT));
    size_t off_cells = (sizeof(st_client_t) + 63) & ~(size_t)63;
    size_t off_reg = off_cells + qcap * sizeof(cell_t);
    size_t off_tx = off_reg + rcap * sizeof(reg_entry_t);
    size_t off_rx = off_tx + ST_WIRE_MAX_FRAME;
    size_t off_ev = off_rx + ST_WIRE_MAX_FRAME;
    size_t len = off_ev + ST_WIRE_MAX_FRAME;
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return -ENOMEM;
    st_client_t *c = m;
    c->map_len = len;
    c->cfg = *cfg;
    memcpy(c->path, cfg->socket_path, plen + 1);
    c->cfg.socket_path = c->path;
    c->cells = (cell_t *)((char *)m + off_cells);
    c->mask = qcap - 1;
    c->reg = (reg_entry_t *)((char *)m + off_reg);
    c->reg_mask = rcap - 1;
    c->tx = (unsigned char *)m + off_tx;
    c->rx = (unsigned char *)m + off_rx;
    c->ev = (unsigned char *)m + off_ev;
    c->fd = -1;
    queue_reset(c);
    int rc = ensure_thread(c);
    if (rc < 0) {
        munmap(m, len);
        return rc;
    }
    *out = c;
    return 0;
}

void st_client_stop(st_client_t *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->stop, true);
    if (atomic_load(&c->thread_state) == THREAD_RUNNING)
        pthread_join(c->thread, NULL);
    munmap(c, c->map_len);
}

void st_client_fork_child(st_client_t *c)
{
    /* Only this thread exists in the child. The socket is shared with the parent: close our
     * copy (the parent's connection stays up) unless the number no longer is our socket. */
    if (c->fd >= 0)
        disconnect(c, fd_is_ours(c));
    queue_reset(c);
    for (size_t i = 0; i <= c->reg_mask; i++)
        c->reg[i].obj.flags &= ~ST_OBJ_F_CREATOR;
    atomic_store(&c->connected, false);
    atomic_store(&c->connects, 0);
    atomic_store(&c->queued, 0);
    atomic_store(&c->sent, 0);
    atomic_store(&c->dropped, 0);
    atomic_store(&c->dumps, 0);
    atomic_store(&c->stop, false);
    atomic_store(&c->thread_state, THREAD_NONE);
}

int st_client_flush(st_client_t *c, int timeout_ms)
{
    ensure_thread(c);
    size_t target = atomic_load(&c->enq_pos);
    uint64_t deadline = st_clock_ms() + (uint64_t)timeout_ms;
    while (atomic_load_explicit(&c->sent_pos, memory_order_acquire) < target) {
        if (st_clock_ms() >= deadline)
            return -ETIMEDOUT;
        sleep_ms(1);
    }
    return 0;
}

int st_client_wait_connected(st_client_t *c, int timeout_ms)
{
    ensure_thread(c);
    uint64_t deadline = st_clock_ms() + (uint64_t)timeout_ms;
    while (!atomic_load(&c->connected)) {
        if (atomic_load(&c->refused))
            return -ECONNREFUSED;
        if (st_clock_ms() >= deadline)
            return -ETIMEDOUT;
        sleep_ms(1);
    }
    return 0;
}

void st_client_get_stats(st_client_t *c, st_client_stats_t *out)
{
    out->connected = atomic_load(&c->connected);
    out->refused = atomic_load(&c->refused);
    out->connects = atomic_load(&c->connects);
    out->events_queued = atomic_load(&c->queued);
    out->events_sent = atomic_load(&c->sent);
    out->events_dropped = atomic_load(&c->dropped);
    out->dumps_answered = atomic_load(&c->dumps);
}

const char *st_client_last_error(st_client_t *c)
{
    return c->last_error;
}
