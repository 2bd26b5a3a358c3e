/* SPDX-License-Identifier: MIT
 *
 * The client side of the coordinator protocol (private; linked into the LD_PRELOAD module and used
 * by fake clients in the tests). A client is one connection from one process to the coordinator,
 * kept alive by an agent thread:
 *
 *   host threads ── st_client_event() ──▶ bounded lock-free queue ──▶ agent thread ──▶ socket
 *                                                                      ▲  │
 *   coordinator ── DUMP_REQUEST ───────────────────────────────────────┘  └─ dump callback
 *
 * The contract, for the interposer (issue 5) in particular:
 *  - st_client_event() never blocks, never allocates, takes no lock, makes no system call (except
 *    pthread_create once after a fork, see below) and is async-signal-safe: it may be called from
 *    inside mmap/munmap hooks and signal handlers. When the queue is full the event is dropped and
 *    counted (stats.events_dropped); events are delivered within ST_CLIENT_FLUSH_MS.
 *  - Everything else runs on the agent thread, created with every signal blocked: connecting,
 *    HELLO, sending events, answering DUMP_REQUEST through the dump callback, reconnecting.
 *  - The client's memory is one anonymous mapping made by st_client_start (no malloc), so the
 *    preload may start a client from its constructor.
 *  - The socket is moved to a high descriptor number, close-on-exec. Before each use the agent
 *    checks with fstat (device, inode) that the descriptor is still its socket; when the host
 *    program closed it or dup2'ed something over it, the agent forgets it (without closing what is
 *    now the host's) and reconnects. The check is made right before every send and receive; a host
 *    that closes the descriptor in the microseconds between the check and the call cannot be
 *    detected from a library.
 *  - No event is lost because the coordinator is slow: an OBJECT_EVENT frame the socket does not
 *    take (the coordinator is busy merging and not reading) stays with the agent and is retried
 *    until it is sent; meanwhile the queue fills and only then are new events refused (counted).
 *    A frame whose connection broke goes first on the next connection.
 *  - When the coordinator goes away (restart, crash) the agent reconnects with a backoff (50 ms
 *    doubling to 1 s) and sends HELLO again. While disconnected, events update the registry at
 *    once (the next dump reports the registry, which is the truth a coordinator needs) and stay
 *    queued; once the queue is half full the oldest are discarded and counted. After every
 *    reconnect (and after a first connect that followed discarded events) the agent re-announces
 *    the registry (CREATED/MAPPED with name, label and sizes, IMPORTANCE for explicit claims)
 *    before the queued events, so a restarted coordinator knows every live object again. A host
 *    with a connect callback re-announces what it holds itself; the agent then does not.
 *  - A coordinator that refuses the client (another protocol version, another uid) is final: the
 *    agent records the reason (st_client_last_error) and stops trying; events are then dropped.
 *  - fork: the child must call st_client_fork_child() before using the client (the interposer does
 *    it from its pthread_atfork child handler). It drops the inherited connection and queue, keeps
 *    the default registry with creator flags cleared (the child maps what the parent mapped), and
 *    starts a new agent thread lazily on the next st_client_event / st_client_flush.
 *
 * Not thread-safe: st_client_start, st_client_stop, st_client_fork_child (call them from one thread
 * while no other thread uses the client). st_client_event, st_client_flush and st_client_stats may
 * be called from any thread at any time between start and stop.
 */
#ifndef SHMTRACK_IPC_CLIENT_H
#define SHMTRACK_IPC_CLIENT_H

#include "wire.h"

#include <stdbool.h>
#include <stdint.h>

#define ST_CLIENT_FLUSH_MS 100 /* the longest an event waits in the queue while connected */
#define ST_CLIENT_QUEUE_DEFAULT 4096
#define ST_CLIENT_REGISTRY_DEFAULT 4096
#define ST_CLIENT_PATH_MAX 108 /* sun_path */

typedef struct st_client st_client_t;
typedef struct st_client_writer st_client_writer_t;

/* Answers one DUMP_REQUEST, on the agent thread: call st_client_write_totals (at most once, before
 * any object) and st_client_write_object for each object the process holds. The client chunks the
 * records and sends the last chunk when the callback returns. A negative return still sends what
 * was written (the coordinator sees a complete, possibly shorter, report). */
typedef int (*st_client_dump_cb)(void *ud, uint64_t dump_id, unsigned level, st_client_writer_t *w);
/* Called on the agent thread after each successful HELLO (reconnects counts the previous ones). */
typedef void (*st_client_connect_cb)(void *ud, unsigned reconnects);

typedef struct st_client_config {
    const char *socket_path;         /* copied; at most ST_CLIENT_PATH_MAX - 1 bytes */
    st_client_dump_cb dump_cb;       /* NULL: st_client_default_dump over the registry */
    void *dump_ud;                   /* passed to dump_cb (default: the client itself) */
    st_client_connect_cb connect_cb; /* optional */
    void *connect_ud;
    uint32_t queue_capacity;    /* events; rounded up to a power of two; 0: default */
    uint32_t registry_capacity; /* objects tracked for the default dump; 0: default */
    uint32_t role;              /* ST_ROLE_CLIENT (0) */
} st_client_config_t;

typedef struct st_client_stats {
    bool connected;
    bool refused;      /* the coordinator refused us for good */
    unsigned connects; /* successful handshakes */
    uint64_t events_queued;
    uint64_t events_sent;
    uint64_t events_dropped; /* refused enqueues (queue full, refused) and events discarded
                              * while disconnected with a half-full queue; never a send timeout */
    uint64_t dumps_answered;
} st_client_stats_t;

/* Maps the client's memory and starts the agent thread (which connects in the background: a
 * missing coordinator is not an error). pre: cfg->socket_path != NULL. Returns 0, -EINVAL,
 * -ENAMETOOLONG, -ENOMEM or pthread_create's error. */
int st_client_start(const st_client_config_t *cfg, st_client_t **out);

/* Sends BYE (when connected), stops and joins the agent thread, closes the socket, unmaps. */
void st_client_stop(st_client_t *c);

/* Queues one event (copied). 0, or -EAGAIN when the queue is full (the event is dropped), or
 * -ECONNREFUSED when the coordinator refused this client. Async-signal-safe. pre: c, ev valid. */
int st_client_event(st_client_t *c, const st_wire_event_t *ev);

/* Waits until every event queued before the call has been sent, up to timeout_ms. 0 or
 * -ETIMEDOUT (e.g. while disconnected). */
int st_client_flush(st_client_t *c, int timeout_ms);

/* Waits until the client is connected (HELLO acknowledged), up to timeout_ms: 0 or -ETIMEDOUT,
 * -ECONNREFUSED when refused. */
int st_client_wait_connected(st_client_t *c, int timeout_ms);

void st_client_get_stats(st_client_t *c, st_client_stats_t *out);

/* The coordinator's last ERROR text (or the local reason of the last failure); "" if none. The
 * buffer is the client's; read it while the client lives. */
const char *st_client_last_error(st_client_t *c);

/* In a forked child, before any other use: see the contract above. */
void st_client_fork_child(st_client_t *c);

/* Dump writer: 0 or -EPIPE/-EAGAIN when the coordinator went away (stop writing). */
int st_client_write_totals(st_client_writer_t *w, const st_wire_totals_t *totals);
int st_client_write_object(st_client_writer_t *w, const st_wire_object_t *obj);

/* The client a writer sends for (so a callback can chain st_client_default_dump). */
st_client_t *st_client_writer_client(st_client_writer_t *w);

/* The default dump callback (ud: the client): reports the objects its events announced: CREATED
 * or MAPPED adds (CREATED sets ST_OBJ_F_CREATOR), UNMAPPED subtracts mapped bytes and forgets an
 * object it neither created nor still maps, DESTROYED forgets, IMPORTANCE sets an explicit claim,
 * LABEL sets the label. Sizes come from the events (resident, virtual_size); totals from
 * /proc/self/statm. For fake clients and as the interposer's fallback. */
int st_client_default_dump(void *ud, uint64_t dump_id, unsigned level, st_client_writer_t *w);

#endif
