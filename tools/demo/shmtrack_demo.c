/* SPDX-License-Identifier: MIT
 *
 * shmtrack-demo: a small browser-shaped multi-process program, the README's main job.
 *
 * A broker process creates the shared memory a browser would: a shared heap (memfd, labelled
 * "shared-heap") that every child maps, a shared anonymous IPC ring that a forked (not exec'd)
 * network process inherits and writes to, and one frame buffer memfd per renderer. It starts one
 * GPU process and N renderers by fork + exec of this same binary (so the preload follows exec),
 * hands each its memfds over SCM_RIGHTS, and waits.
 * Renderers draw into their frame; the GPU process maps every frame and claims it with importance
 * 3 through the public API, outranking the broker's creator claim (2). Expected ownership under
 * `shmtrack run` with the creator policy: the broker owns the heap and the ring (which the
 * network process also maps), the GPU process
 * owns every frame, renderers are charged nothing for shared memory.
 *
 * Usage: shmtrack-demo [--renderers N] [--seconds S]. Runs without the preload too (the API then
 * returns -ENOSYS, which the demo reports and ignores).
 */
#include <shmtrack/shmtrack.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024u * 1024u)
#define HEAP_SIZE (8 * MIB)
#define HEAP_TOUCH (6 * MIB)
#define RING_SIZE (1 * MIB)
#define FRAME_SIZE (2 * MIB)
#define MAX_RENDERERS 8

static void die(const char *what)
{
    fprintf(stderr, "shmtrack-demo[%d]: %s: %s\n", (int)getpid(), what, strerror(errno));
    exit(1);
}

/* Sends fds over a Unix socket with SCM_RIGHTS (one byte of payload). */
static void send_fds(int sock, const int *fds, int n)
{
    char byte = 'f';
    struct iovec iov = {&byte, 1};
    char ctrl[CMSG_SPACE(sizeof(int) * (MAX_RENDERERS + 1))];
    memset(ctrl, 0, sizeof(ctrl));
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctrl,
                         .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
    if (sendmsg(sock, &msg, 0) != 1)
        die("sendmsg");
}

/* Receives up to max fds; returns how many. */
static int recv_fds(int sock, int *fds, int max)
{
    char byte;
    struct iovec iov = {&byte, 1};
    char ctrl[CMSG_SPACE(sizeof(int) * (MAX_RENDERERS + 1))];
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = sizeof(ctrl)};
    if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
        die("recvmsg");
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (c == NULL || c->cmsg_type != SCM_RIGHTS)
        die("no fds received");
    int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    if (n > max)
        n = max;
    memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)n);
    return n;
}

static void *map_fd(int fd, size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        die("mmap");
    return p;
}

/* Waits for the broker to close the control socket (end of the run). */
static void wait_for_end(int sock)
{
    char byte;
    while (read(sock, &byte, 1) > 0) {
    }
}

static int run_renderer(int sock, int index)
{
    char comm[16];
    snprintf(comm, sizeof(comm), "renderer-%d", index);
    prctl(PR_SET_NAME, comm);
    int fds[2];
    if (recv_fds(sock, fds, 2) != 2)
        die("renderer expects heap and frame");
    unsigned char *heap = map_fd(fds[0], HEAP_SIZE);
    unsigned char *frame = map_fd(fds[1], FRAME_SIZE);
    /* Read the heap (no new pages), draw the frame: half of it per renderer index parity. */
    volatile unsigned char sum = 0;
    for (size_t i = 0; i < HEAP_TOUCH; i += 4096)
        sum += heap[i];
    size_t draw = FRAME_SIZE / 2 + (size_t)index * 4096 * 16;
    memset(frame, 0x40 + index, draw < FRAME_SIZE ? draw : FRAME_SIZE);
    (void)sum;
    wait_for_end(sock);
    return 0;
}

static int run_gpu(int sock)
{
    prctl(PR_SET_NAME, "gpu");
    int fds[MAX_RENDERERS + 1];
    int n = recv_fds(sock, fds, MAX_RENDERERS + 1);
    (void)map_fd(fds[0], HEAP_SIZE);
    for (int i = 1; i < n; i++) {
        void *frame = map_fd(fds[i], FRAME_SIZE);
        int rc = shmtrack_set_importance(frame, 3);
        if (rc == -ENOSYS && i == 1)
            fprintf(stderr, "shmtrack-demo: gpu: no tracker preloaded, claims are ignored\n");
        else if (rc < 0 && rc != -ENOSYS)
            fprintf(stderr, "shmtrack-demo: gpu: claim failed: %s\n", strerror(-rc));
    }
    wait_for_end(sock);
    return 0;
}

static int memfd_or_die(const char *name, size_t len)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        die("memfd_create");
    if (ftruncate(fd, (off_t)len) < 0)
        die("ftruncate");
    return fd;
}

/* fork + exec of this binary in a role, with one end of a socketpair as fd 3. */
static pid_t spawn(const char *self, const char *role, int index, int *sock_out)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        die("socketpair");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        if (dup2(sv[1], 3) < 0)
            die("dup2");
        char idx[16];
        snprintf(idx, sizeof(idx), "%d", index);
        execl(self, self, "--role", role, idx, (char *)NULL);
        die("exec");
    }
    close(sv[1]);
    *sock_out = sv[0];
    return pid;
}

int main(int argc, char **argv)
{
    int renderers = 2;
    double seconds = 3.0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--role") == 0 && i + 2 < argc) {
            int index = atoi(argv[i + 2]);
            return strcmp(argv[i + 1], "gpu") == 0 ? run_gpu(3) : run_renderer(3, index);
        } else if (strcmp(argv[i], "--renderers") == 0 && i + 1 < argc) {
            renderers = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else {
            fprintf(stderr,
                    "usage: shmtrack-demo [--renderers N (1-%d)] [--seconds S]\n"
                    "A browser-shaped broker sharing memfds with a GPU process and N "
                    "renderers;\nrun it under `shmtrack run -- shmtrack-demo`.\n",
                    MAX_RENDERERS);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (renderers < 1 || renderers > MAX_RENDERERS || seconds < 0) {
        fprintf(stderr, "shmtrack-demo: --renderers must be 1-%d, --seconds >= 0\n", MAX_RENDERERS);
        return 2;
    }
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len < 0)
        die("readlink /proc/self/exe");
    self[len] = '\0';

    prctl(PR_SET_NAME, "broker");

    /* The broker's shared memory. */
    int heap_fd = memfd_or_die("shared-heap", HEAP_SIZE);
    unsigned char *heap = map_fd(heap_fd, HEAP_SIZE);
    memset(heap, 0x11, HEAP_TOUCH);
    (void)shmtrack_label(heap, "shared-heap");
    unsigned char *ring =
        mmap(NULL, RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ring == MAP_FAILED)
        die("mmap ring");
    memset(ring, 0x22, RING_SIZE / 2);
    (void)shmtrack_label(ring, "ipc-ring");
    /* The network process: forked without exec, so it inherits the ring mapping. */
    int net_pipe[2];
    if (pipe2(net_pipe, O_CLOEXEC) < 0)
        die("pipe2");
    pid_t net = fork();
    if (net < 0)
        die("fork");
    if (net == 0) {
        close(net_pipe[1]);
        prctl(PR_SET_NAME, "network");
        memset(ring + RING_SIZE / 2, 0x33, RING_SIZE / 4);
        wait_for_end(net_pipe[0]);
        _exit(0);
    }
    close(net_pipe[0]);

    /* Frames are created after the fork: the network process must not hold them. */
    int frame_fd[MAX_RENDERERS];
    for (int i = 0; i < renderers; i++) {
        char name[32];
        snprintf(name, sizeof(name), "frame-%d", i);
        frame_fd[i] = memfd_or_die(name, FRAME_SIZE);
    }

    int gpu_sock, rsock[MAX_RENDERERS];
    pid_t gpu = spawn(self, "gpu", 0, &gpu_sock);
    pid_t rpid[MAX_RENDERERS];
    for (int i = 0; i < renderers; i++) {
        rpid[i] = spawn(self, "renderer", i, &rsock[i]);
        int fds[2] = {heap_fd, frame_fd[i]};
        send_fds(rsock[i], fds, 2);
    }
    int gfds[MAX_RENDERERS + 1];
    gfds[0] = heap_fd;
    for (int i = 0; i < renderers; i++)
        gfds[i + 1] = frame_fd[i];
    send_fds(gpu_sock, gfds, renderers + 1);
    /* The broker keeps only the heap: frames belong to renderers and the GPU process. */
    for (int i = 0; i < renderers; i++)
        close(frame_fd[i]);

    printf("shmtrack-demo: broker %d, network %d, gpu %d, %d renderers; running %.1f s\n",
           (int)getpid(), (int)net, (int)gpu, renderers, seconds);
    fflush(stdout);
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }

    close(net_pipe[1]);
    close(gpu_sock);
    for (int i = 0; i < renderers; i++)
        close(rsock[i]);
    int failed = 0, status;
    if (waitpid(net, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        failed = 1;
    if (waitpid(gpu, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        failed = 1;
    for (int i = 0; i < renderers; i++)
        if (waitpid(rpid[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed = 1;
    return failed;
}
