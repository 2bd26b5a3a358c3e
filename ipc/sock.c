/* SPDX-License-Identifier: MIT
 *
 * SOCK_SEQPACKET Unix-socket helpers (see sock.h). A SEQPACKET socket delivers whole packets, so
 * "short I/O" here means EINTR and EAGAIN, an oversized packet (detected with MSG_TRUNC) and an
 * orderly close (a zero-length read). Deadlines are absolute so that EINTR never extends a wait.
 */
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

uint64_t st_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t st_clock_ms(void)
{
    return st_clock_ns() / 1000000ull;
}

static int fill_addr(const char *path, struct sockaddr_un *sa)
{
    size_t n = strlen(path);
    if (n == 0)
        return -EINVAL;
    if (n >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, path, n + 1);
    return 0;
}

/* Milliseconds left until deadline (a st_clock_ms value); -1 stays -1. */
static int remaining(uint64_t deadline, int timeout_ms)
{
    if (timeout_ms < 0)
        return -1;
    uint64_t now = st_clock_ms();
    return now >= deadline ? 0 : (int)(deadline - now);
}

int st_sock_wait(int fd, short events, int timeout_ms)
{
    uint64_t deadline = st_clock_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, remaining(deadline, timeout_ms));
        if (rc > 0)
            return p.revents;
        if (rc == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

/* The directory part of path into buf. */
static int dir_of(const char *path, char *buf, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        if (len < 2)
            return -ENAMETOOLONG;
        strcpy(buf, ".");
        return 0;
    }
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= len)
        return -ENAMETOOLONG;
    memcpy(buf, path, n);
    buf[n] = '\0';
    return 0;
}

int st_sock_listen(const char *path, int backlog, int *out_fd)
{
    struct sockaddr_un sa;
    char dir[sizeof(sa.sun_path)];
    int fd = -1, rc = fill_addr(path, &sa);
    if (rc < 0)
        return rc;
    if ((rc = dir_of(path, dir, sizeof(dir))) < 0)
        return rc;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return -errno;
    struct stat st;
    if (stat(dir, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0)
        return -EPERM;
    /* A socket file left by a coordinator that died: remove it unless someone answers. */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return -EEXIST;
        int probe = -1;
        rc = st_sock_connect(path, 0, &probe);
        if (rc == 0) {
            close(probe);
            return -EADDRINUSE;
        }
        if (unlink(path) < 0 && errno != ENOENT)
            return -errno;
    }
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 ||
        listen(fd, backlog) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    *out_fd = fd;
    return 0;
}

int st_sock_connect(const char *path, int timeout_ms, int *out_fd)
{
    struct sockaddr_un sa;
    int rc = fill_addr(path, &sa);
    if (rc < 0)
        return rc;
    uint64_t deadline = st_clock_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            *out_fd = fd;
            return 0;
        }
        rc = -errno;
        close(fd);
        if (rc != -EAGAIN && rc != -EINTR)
            return rc;
        /* The listen queue is full: back off and retry until the deadline. */
        int left = remaining(deadline, timeout_ms);
        if (left == 0)
            return -EAGAIN;
        struct timespec ts = {0, 2 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int st_sock_accept(int listen_fd, int *out_fd)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            *out_fd = fd;
            return 0;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

int st_sock_peercred(int fd, pid_t *pid, uid_t *uid)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
        return -errno;
    *pid = cr.pid;
    *uid = cr.uid;
    return 0;
}

int st_sock_send(int fd, const void *buf, size_t len, int timeout_ms)
{
    uint64_t deadline = st_clock_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0)
            return (size_t)n == len ? 0 : -EIO; /* a packet is never sent in part */
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int left = remaining(deadline, timeout_ms);
        if (left == 0)
            return -EAGAIN;
        int ev = st_sock_wait(fd, POLLOUT, left);
        if (ev < 0)
            return ev;
        if (ev & (POLLERR | POLLHUP | POLLNVAL))
            return ev & POLLNVAL ? -EBADF : -EPIPE;
    }
}

int st_sock_recv(int fd, void *buf, size_t cap, int timeout_ms)
{
    return st_sock_recv2(fd, buf, cap, NULL, 0, timeout_ms);
}

int st_sock_recv2(int fd, void *a, size_t na, void *b, size_t nb, int timeout_ms)
{
    uint64_t deadline = st_clock_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    struct iovec iov[2] = {{a, na}, {b, nb}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = nb > 0 ? 2 : 1};
    size_t cap = na + nb;
    for (;;) {
        ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_TRUNC);
        if (n > 0)
            return (size_t)n > cap ? -EMSGSIZE : (int)n;
        if (n == 0)
            return -ECONNRESET;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int left = remaining(deadline, timeout_ms);
        if (left == 0)
            return -EAGAIN;
        int ev = st_sock_wait(fd, POLLIN, left);
        if (ev < 0)
            return ev;
        if (ev & POLLNVAL)
            return -EBADF;
        if (ev == 0)
            return -EAGAIN;
    }
}
