/* SPDX-License-Identifier: MIT
 *
 * The program under test for run_claims: ownership claims end to end, from the process that
 * makes them, through the preload and the coordinator, into the merged dump.
 *
 * The parent creates four memfds of 16 pages (it is their creator: claim 2 under the creator
 * policy) and writes PARENT_PAGES pages of each; then it starts two children by fork + exec of
 * itself, handing each its two memfds as inherited descriptors (the others are close-on-exec):
 *   - "env" child, exec'd with SHMTRACK_IMPORTANCE=5: maps env-claim and equal-claim;
 *   - "api" child, exec'd without it: maps api-claim and creator-kept, then calls
 *     shmtrack_set_importance(api-claim, 4) and shmtrack_label(api-claim, "api-label").
 * The parent itself claims equal-claim with shmtrack_set_importance(.., 5) (equal to the env
 * child's default). Each child writes CHILD_PAGES further pages of what it maps. The parent then
 * prints one line per object, "obj NAME INO BYTES", with BYTES = st_blocks * 512 of the memfd as
 * fstat(2) reports it (the kernel's count, checked against the pages written by construction),
 * then, once the three processes' preloads are connected to the coordinator (wait_connected),
 * "ready PARENT ENV API" and waits for SIGTERM, which `shmtrack run` forwards: it ends both
 * children and exits 0. Exit 2: the scenario itself failed (an API call returned an error is 3).
 * Usage: claims_prog   (children: claims_prog env|api FD FD)
 */
#include <shmtrack/shmtrack.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define PAGES 16
#define PARENT_PAGES 4
#define CHILD_PAGES 6

extern char **environ;

enum { ENV_CLAIM, EQUAL_CLAIM, API_CLAIM, CREATOR_KEPT, N_OBJ };
static const char *const names[N_OBJ] = {"env-claim", "equal-claim", "api-claim", "creator-kept"};

static void die(const char *what)
{
    fprintf(stderr, "claims_prog: %s: %s\n", what, strerror(errno));
    exit(2);
}

static char *map_fd(int fd)
{
    char *p = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        die("mmap");
    return p;
}

static void touch(char *p, int from, int n)
{
    for (int i = from; i < from + n; i++)
        p[(size_t)i * PAGE] = 1;
}

/* Waits up to 10 s until the preload is connected to the coordinator (a socket among our fds
 * whose peer is $SHMTRACK_SOCKET): the preload connects on its own thread, and a process whose
 * client has not said HELLO when a dump starts is not asked for it (the /proc scan still sees its
 * mappings, but not its claims or labels). Without it, "ready" could come first and the dump
 * miss a child's claim (seen once in ~100 runs on a loaded machine: the env child's 40 KiB went to
 * the parent). */
static void wait_connected(void)
{
    const char *want = getenv("SHMTRACK_SOCKET");
    if (want == NULL)
        return;
    for (int tries = 0; tries < 1000; tries++) {
        DIR *d = opendir("/proc/self/fd");
        if (d == NULL)
            die("opendir /proc/self/fd");
        struct dirent *e;
        bool found = false;
        while (!found && (e = readdir(d)) != NULL) {
            int fd = atoi(e->d_name);
            struct sockaddr_un sa;
            socklen_t len = sizeof(sa);
            struct stat st;
            if (e->d_name[0] == '.' || fd == dirfd(d) || fstat(fd, &st) != 0 ||
                !S_ISSOCK(st.st_mode) || getpeername(fd, (struct sockaddr *)&sa, &len) != 0 ||
                sa.sun_family != AF_UNIX || len <= offsetof(struct sockaddr_un, sun_path))
                continue;
            found = strncmp(sa.sun_path, want, sizeof(sa.sun_path)) == 0;
        }
        closedir(d);
        if (found)
            return;
        usleep(10000);
    }
    fprintf(stderr, "claims_prog: the preload did not connect to %s in 10 s\n", want);
    exit(2);
}

static int child(const char *role, int fd_a, int fd_b)
{
    char *a = map_fd(fd_a), *b = map_fd(fd_b);
    touch(a, PARENT_PAGES, CHILD_PAGES);
    touch(b, PARENT_PAGES, CHILD_PAGES);
    if (strcmp(role, "api") == 0) {
        int rc1 = shmtrack_set_importance(a, 4), rc2 = shmtrack_label(a, "api-label");
        if (rc1 != 0 || rc2 != 0) {
            fprintf(stderr, "claims_prog: api calls returned %d, %d\n", rc1, rc2);
            return 3;
        }
    }
    close(fd_a);
    close(fd_b);
    wait_connected();
    kill(getppid(), SIGRTMIN); /* ready: a real-time signal, so two are never merged into one */
    for (;;)
        pause();
}

/* fork + exec of this program as a child ROLE holding fds a and b, with env as its environment. */
static pid_t start(const char *role, int a, int b, char **env)
{
    char fa[16], fb[16];
    snprintf(fa, sizeof(fa), "%d", a);
    snprintf(fb, sizeof(fb), "%d", b);
    char *argv[] = {"claims_prog", (char *)role, fa, fb, NULL};
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) { /* only these two pass the exec */
        if (fcntl(a, F_SETFD, 0) != 0 || fcntl(b, F_SETFD, 0) != 0)
            _exit(127);
        execve("/proc/self/exe", argv, env);
        _exit(127);
    }
    return pid;
}

int main(int argc, char **argv)
{
    if (argc == 4)
        return child(argv[1], atoi(argv[2]), atoi(argv[3]));
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGRTMIN);
    sigaddset(&set, SIGCHLD); /* a child that ended before it was ready */
    sigprocmask(SIG_BLOCK, &set, NULL);

    int fd[N_OBJ];
    char *p[N_OBJ];
    for (int i = 0; i < N_OBJ; i++) {
        if ((fd[i] = memfd_create(names[i], MFD_CLOEXEC)) < 0 ||
            ftruncate(fd[i], PAGES * PAGE) != 0)
            die("memfd_create");
        p[i] = map_fd(fd[i]);
        touch(p[i], 0, PARENT_PAGES);
    }
    int rc = shmtrack_set_importance(p[EQUAL_CLAIM], 5);
    if (rc != 0) {
        fprintf(stderr, "claims_prog: shmtrack_set_importance returned %d\n", rc);
        return 3;
    }

    /* The env child's environment: ours with SHMTRACK_IMPORTANCE=5 (built before fork). */
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **env5 = calloc(n + 2, sizeof(*env5));
    if (env5 == NULL)
        die("calloc");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "SHMTRACK_IMPORTANCE=", 20) != 0)
            env5[k++] = environ[i];
    env5[k++] = "SHMTRACK_IMPORTANCE=5";
    pid_t env_child = start("env", fd[ENV_CLAIM], fd[EQUAL_CLAIM], env5);
    pid_t api_child = start("api", fd[API_CLAIM], fd[CREATOR_KEPT], environ);
    for (int ready = 0; ready < 2;) {
        int sig;
        sigwait(&set, &sig);
        if (sig != SIGRTMIN) {
            fprintf(stderr, "claims_prog: %s before the children were ready\n", strsignal(sig));
            kill(env_child, SIGKILL); /* shmtrack run waits for the whole tree */
            kill(api_child, SIGKILL);
            return 2;
        }
        ready++;
    }
    wait_connected();
    for (int i = 0; i < N_OBJ; i++) {
        struct stat st;
        if (fstat(fd[i], &st) != 0)
            die("fstat");
        printf("obj %s %lu %lld\n", names[i], (unsigned long)st.st_ino,
               (long long)st.st_blocks * 512);
    }
    printf("ready %d %d %d\n", (int)getpid(), (int)env_child, (int)api_child);
    fflush(stdout);
    int sig;
    do
        sigwait(&set, &sig);
    while (sig == SIGRTMIN);
    if (sig == SIGCHLD)
        fprintf(stderr, "claims_prog: a child ended by itself\n");
    kill(env_child, SIGKILL);
    kill(api_child, SIGKILL);
    int status, failed = 0;
    while (wait(&status) > 0)
        failed |= WIFEXITED(status); /* a child that exited by itself failed its part */
    free(env5);
    return failed ? 2 : 0;
}
