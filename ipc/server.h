/* SPDX-License-Identifier: MIT
 *
 * The server side of the coordinator protocol (private; used by src/coordinator.c). It owns the
 * listening socket, the epoll loop and every connection: accept, SO_PEERCRED, the uid check, the
 * HELLO handshake (refusing another version with an ERROR frame), strict frame decoding, chunk
 * order, output queues for peers that read slowly, handshake timeouts. It knows nothing about
 * memory: decoded frames are handed to the ops callbacks, and a peer that breaks the protocol is
 * dropped here with a reason the log callback receives.
 *
 * Single-threaded: every function and callback runs on the thread that calls st_server_run. A
 * callback may send to or drop any connection, including the one it was called for; the
 * connection's memory stays valid until its on_close callback returns.
 */
#ifndef SHMTRACK_IPC_SERVER_H
#define SHMTRACK_IPC_SERVER_H

#include "frame.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct st_server st_server_t;

/* One accepted connection. Fields are read-only for users, except data. */
typedef struct st_conn {
    uint64_t session;      /* unique per connection, from 1 */
    pid_t pid;             /* SO_PEERCRED */
    uid_t uid;             /* SO_PEERCRED */
    bool ready;            /* HELLO received and acknowledged */
    st_wire_hello_t hello; /* valid when ready */
    void *data;            /* the user's */
} st_conn_t;

typedef struct st_server_ops {
    /* A peer finished its handshake (conn->ready). */
    void (*on_ready)(void *ud, st_conn_t *conn);
    /* A validated frame from a ready peer: OBJECT_EVENT, PROCESS_DUMP (chunks arrive in order;
     * a broken sequence drops the peer instead), DUMP_NOW, BYE, ERROR. */
    void (*on_frame)(void *ud, st_conn_t *conn, const st_frame_t *f);
    /* The connection is going away: err is 0 after BYE or an orderly close, else -errno, and why
     * says what happened. Called once per accepted connection. */
    void (*on_close)(void *ud, st_conn_t *conn, int err, const char *why);
    /* A sentence worth logging (refusals, protocol violations). Optional. */
    void (*log)(void *ud, const char *msg);
    /* Where the objects of a ready peer's next PROCESS_DUMP chunk should land, or NULL. Asked
     * before each packet is received; the address must have ST_WIRE_MAX_BODY bytes of room, all
     * of which a packet may overwrite, and stay valid until that packet is handled. When the
     * packet is the chunk its stream expects, its objects are received there and checked in
     * place (on_frame's frame says so: f->objects), so a dump's records are not copied again;
     * any other packet is joined back into the server's buffer and handled as usual. Optional. */
    void *(*dump_dest)(void *ud, st_conn_t *conn);
} st_server_ops_t;

typedef struct st_server_config {
    const char *socket_path;
    bool allow_root;          /* accept uid 0 peers besides our own uid */
    int max_conns;            /* 0: 4096 */
    int handshake_timeout_ms; /* 0: 5000 */
    size_t max_outq_bytes;    /* per connection; 0: 64 MiB. Beyond it the peer is dropped */
} st_server_config_t;

/* Creates the socket (see st_sock_listen for the directory rules) and the epoll set. */
int st_server_open(const st_server_config_t *cfg, const st_server_ops_t *ops, void *ud,
                   st_server_t **out);
/* Closes every connection (on_close is called with -ESHUTDOWN), removes the socket file. */
void st_server_close(st_server_t *s);

/* Waits up to timeout_ms for activity and handles all of it. 0 or -errno of epoll. */
int st_server_run(st_server_t *s, int timeout_ms);

/* Adds fd to the loop: cb runs when it is readable. */
int st_server_watch(st_server_t *s, int fd, void (*cb)(void *ud, int fd), void *ud);

/* Sends one frame to conn, queueing what the socket cannot take now. 0, -EMSGSIZE, or -ENOBUFS
 * when the output queue is over its limit (the connection is then dropped). */
int st_server_send(st_server_t *s, st_conn_t *conn, unsigned type, unsigned flags, const void *body,
                   size_t len);

/* Sends ERROR (code, why) best-effort, closes the connection and calls on_close(err, why). */
void st_server_drop(st_server_t *s, st_conn_t *conn, unsigned code, int err, const char *why);

/* Number of open connections. */
size_t st_server_count(const st_server_t *s);

#endif
