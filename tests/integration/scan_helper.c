/* SPDX-License-Identifier: MIT
 *
 * A process for test_scan to exec (so a scenario involves a real exec, not only fork):
 *
 *   scan_helper recvmap SOCK_FD READY_FD GO_FD FIRST_PAGE N_PAGES
 *
 * receives one fd over SCM_RIGHTS on SOCK_FD, maps the whole file shared, writes N_PAGES pages
 * from FIRST_PAGE, writes its pid (an int) to READY_FD and waits until GO_FD reaches end of file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int recv_fd(int sock)
{
    char data;
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {&data, 1};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof(cbuf);
    if (recvmsg(sock, &msg, 0) != 1)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (c == NULL || c->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 7 || strcmp(argv[1], "recvmap") != 0) {
        fprintf(stderr, "usage: scan_helper recvmap SOCK READY GO FIRST N\n");
        return 2;
    }
    int sock = atoi(argv[2]), ready = atoi(argv[3]), go = atoi(argv[4]);
    long first = atol(argv[5]), n = atol(argv[6]);
    long page = sysconf(_SC_PAGESIZE);
    int fd = recv_fd(sock);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return 1;
    char *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return 1;
    for (long i = first; i < first + n; i++)
        p[i * page] = 1;
    int me = (int)getpid();
    char b;
    if (write(ready, &me, sizeof(me)) != (ssize_t)sizeof(me))
        return 1;
    while (read(go, &b, 1) < 0 && errno == EINTR)
        ;
    return 0;
}
