/* SPDX-License-Identifier: MIT
 *
 * SOCK_SEQPACKET Unix-socket helpers (private to ipc/ and its users). The only place that deals
 * with EINTR, EAGAIN, short I/O and timeouts: callers see whole packets or a negative errno.
 * Every descriptor is created close-on-exec and non-blocking; waits use poll with a timeout in
 * milliseconds (-1: forever, 0: do not wait). No allocation, no stdio: the client library calls
 * these from its agent thread inside a preloaded program.
 */
#ifndef SHMTRACK_IPC_SOCK_H
#define SHMTRACK_IPC_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Monotonic clock in milliseconds / nanoseconds. */
uint64_t st_clock_ms(void);
uint64_t st_clock_ns(void);

/* Creates the directory of path with mode 0700 when it does not exist (one level), refuses a
 * directory that is not ours or that group or others may enter (-EPERM), removes a stale socket
 * nobody listens on, binds, sets the socket file to 0600 and listens. -EADDRINUSE when a live
 * coordinator already listens there; -ENAMETOOLONG when path does not fit sun_path. */
int st_sock_listen(const char *path, int backlog, int *out_fd);

/* Connects to path, waiting up to timeout_ms when the listen queue is full. */
int st_sock_connect(const char *path, int timeout_ms, int *out_fd);

/* Accepts one pending connection; -EAGAIN when none. */
int st_sock_accept(int listen_fd, int *out_fd);

/* The peer's pid and uid as the kernel recorded them at connect time. */
int st_sock_peercred(int fd, pid_t *pid, uid_t *uid);

/* Sends one packet, waiting up to timeout_ms for room. -EAGAIN when the time ran out, -EPIPE or
 * -ECONNRESET when the peer is gone. Never raises SIGPIPE. */
int st_sock_send(int fd, const void *buf, size_t len, int timeout_ms);

/* Receives one packet into buf, waiting up to timeout_ms. Returns its length; -EAGAIN when the
 * time ran out, -ECONNRESET when the peer closed, -EMSGSIZE when the packet was larger than cap
 * (it is consumed). */
int st_sock_recv(int fd, void *buf, size_t cap, int timeout_ms);

/* st_sock_recv into two buffers: the packet's first na bytes at a, the rest at b (up to nb).
 * -EMSGSIZE when the packet was larger than na + nb. */
int st_sock_recv2(int fd, void *a, size_t na, void *b, size_t nb, int timeout_ms);

/* Waits up to timeout_ms for events (POLLIN/POLLOUT) on fd. Returns the revents (0: timeout). */
int st_sock_wait(int fd, short events, int timeout_ms);

#endif
