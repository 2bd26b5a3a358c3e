/* SPDX-License-Identifier: MIT
 *
 * The program under test for real_static: linked with -static, so LD_PRELOAD cannot load
 * libshmtrack.so into it and everything shmtrack knows about it comes from the /proc catch-all
 * that `shmtrack run` applies to CMD's process tree.
 *
 * The parent creates a shared anonymous mapping, a memfd and a SysV segment of 32 pages each and
 * writes a known number of pages of each; it forks a child that maps all three (the anonymous one
 * and the memfd by inheritance, the SysV one with a fresh shmat) and writes further disjoint
 * pages. The parent then prints one line "ready PARENT CHILD SHMID ANON MEMFD SYSV" (the page
 * counts written in total, by construction) and waits for SIGTERM, which `shmtrack run` forwards;
 * then it removes the segment, ends the child, and exits 5 so the test sees the status passed
 * through. Usage: static_prog
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define PAGES 32
enum {
    ANON_PARENT = 5,
    ANON_CHILD = 3,
    MEMFD_PARENT = 7,
    MEMFD_CHILD = 2,
    SYSV_PARENT = 9,
    SYSV_CHILD = 4
};

static void die(const char *what)
{
    fprintf(stderr, "static_prog: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* Writes pages [from, from + n) of p. */
static void touch(char *p, int from, int n)
{
    for (int i = from; i < from + n; i++)
        p[(size_t)i * PAGE] = (char)(i + 1);
}

int main(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);

    char *anon =
        mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (anon == MAP_FAILED)
        die("mmap shared anonymous");
    int mfd = memfd_create("static-memfd", 0);
    if (mfd < 0 || ftruncate(mfd, PAGES * PAGE) != 0)
        die("memfd_create");
    char *mem = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (mem == MAP_FAILED)
        die("mmap memfd");
    int shmid = shmget(IPC_PRIVATE, PAGES * PAGE, IPC_CREAT | 0600);
    if (shmid < 0)
        die("shmget");
    char *sysv = shmat(shmid, NULL, 0);
    if (sysv == (void *)-1)
        die("shmat");
    touch(anon, 0, ANON_PARENT);
    touch(mem, 0, MEMFD_PARENT);
    touch(sysv, 0, SYSV_PARENT);

    int ready[2];
    if (pipe(ready) != 0)
        die("pipe");
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        char *again = shmat(shmid, NULL, 0);
        if (again == (void *)-1)
            _exit(3);
        touch(anon, ANON_PARENT, ANON_CHILD);
        touch(mem, MEMFD_PARENT, MEMFD_CHILD);
        touch(again, SYSV_PARENT, SYSV_CHILD);
        if (write(ready[1], "r", 1) != 1)
            _exit(3);
        for (;;)
            pause(); /* until the parent's SIGKILL */
    }
    char c;
    if (read(ready[0], &c, 1) != 1)
        die("child did not get ready");
    printf("ready %d %d %d %d %d %d\n", (int)getpid(), (int)child, shmid, ANON_PARENT + ANON_CHILD,
           MEMFD_PARENT + MEMFD_CHILD, SYSV_PARENT + SYSV_CHILD);
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    shmctl(shmid, IPC_RMID, NULL);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    return 5;
}
