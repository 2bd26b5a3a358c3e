/* SPDX-License-Identifier: MIT
 *
 * A small program that test_preload runs with and without LD_PRELOAD=libshmtrack.so: each
 * scenario exercises some hooks and writes what it knows for certain (the pages it touched, the
 * errno each failing call gave, its own /proc/self/maps at the end) so that the test can hold the
 * preload's registry file against the kernel's view, never against the preload's own idea.
 *
 * Usage: probe SCENARIO OUT   (OUT: a path prefix; the probe writes OUT.maps and OUT.expect)
 * Exit status 0 when the scenario itself ran as intended; the test checks the rest.
 */
#include <shmtrack/shmtrack.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define PAGE 4096
static const char *out_prefix;
static FILE *expect;

static void die(const char *what)
{
    fprintf(stderr, "probe: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void touch(char *p, size_t pages)
{
    for (size_t i = 0; i < pages; i++)
        p[i * PAGE] = 1;
}

/* OUT.maps: a copy of /proc/self/maps taken now. */
static void save_maps(void)
{
    char path[4096], buf[65536];
    snprintf(path, sizeof(path), "%s.maps", out_prefix);
    int in = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (in < 0 || out < 0)
        die("save_maps");
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)n) != n)
            die("write maps");
    close(in);
    close(out);
}

/* In a fork child: its files are OUT.child.* from now on (the parent keeps OUT.*). */
static void child_prefix(void)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s.child", out_prefix);
    out_prefix = strdup(path);
}

/* Forks a child that saves its maps (OUT.child.maps) and exits, its destructors writing its
 * registry file; waits for it, its wait status in *STATUS. */
static pid_t fork_saving_maps(int *status)
{
    pid_t pid = fork();
    if (pid == 0) {
        child_prefix();
        save_maps();
        exit(0);
    }
    waitpid(pid, status, 0);
    return pid;
}

static void open_expect(void)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s.expect", out_prefix);
    expect = fopen(path, "w");
    if (expect == NULL)
        die("expect");
}

/* "expect <what> <ino> <resident bytes> <label>": what the probe knows about one object. */
static void expect_obj(const char *what, const void *addr, size_t resident, const char *label)
{
    char line[512], path[64];
    unsigned long start = (unsigned long)addr;
    FILE *m = fopen("/proc/self/maps", "r");
    unsigned long s, e, ino = 0;
    if (m == NULL)
        die("maps");
    while (fgets(line, sizeof(line), m) != NULL) {
        if (sscanf(line, "%lx-%lx %*s %*s %*s %lu", &s, &e, &ino) == 3 && s <= start && start < e)
            break;
        ino = 0;
    }
    fclose(m);
    (void)path;
    fprintf(expect, "expect %s %lu %zu %s\n", what, ino, resident, label ? label : "-");
}

/* Whether the preload is there and on: then the API calls must succeed. */
static int tracking(void)
{
    const char *d = getenv("SHMTRACK_DISABLE");
    return getenv("LD_PRELOAD") != NULL && !(d != NULL && strcmp(d, "1") == 0);
}

/* ---- scenarios ------------------------------------------------------------------------------- */

/* Every tracked hook once, mapped in the ways the registry must follow exactly. */
static int scenario_basic(void)
{
    open_expect();
    /* shared anonymous: 4 pages, 2 touched; grown in place or moved by mremap to 8 */
    char *anon = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (anon == MAP_FAILED)
        die("mmap anon");
    touch(anon, 2);
    anon = mremap(anon, 4 * PAGE, 8 * PAGE, MREMAP_MAYMOVE);
    if (anon == MAP_FAILED)
        die("mremap");
    if (shmtrack_set_importance(anon + PAGE, 7) != 0 && tracking())
        return 3;
    expect_obj("anon", anon, 2 * PAGE, NULL);

    /* memfd: 16 pages, 5 touched, mapped twice (one mapping with a hole in it) */
    int fd = memfd_create("probe-frames", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, 16 * PAGE) != 0)
        die("memfd");
    char *m1 = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *m2 = mmap(NULL, 8 * PAGE, PROT_READ, MAP_SHARED, fd, 8 * PAGE);
    if (m1 == MAP_FAILED || m2 == MAP_FAILED)
        die("mmap memfd");
    touch(m1, 5);
    if (munmap(m1 + 10 * PAGE, 2 * PAGE) != 0)
        die("munmap hole");
    close(fd);
    if (shmtrack_label(m2, "frames") != 0 && tracking())
        return 3;
    expect_obj("memfd", m1, 5 * PAGE, "frames");

    /* POSIX shm: 8 pages, 1 touched, unlinked while mapped */
    char name[64];
    snprintf(name, sizeof(name), "/shmtrack-probe-%d", (int)getpid());
    int pfd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (pfd < 0 || ftruncate(pfd, 8 * PAGE) != 0)
        die("shm_open");
    char *ps = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
    if (ps == MAP_FAILED)
        die("mmap posix");
    touch(ps, 1);
    close(pfd);
    expect_obj("posix", ps, PAGE, NULL);
    shm_unlink(name);

    /* SysV: 3 pages, 2 touched, attached twice, one attachment detached, then IPC_RMID */
    int id = shmget(IPC_PRIVATE, 3 * PAGE, IPC_CREAT | 0600);
    if (id < 0)
        die("shmget");
    char *s1 = shmat(id, NULL, 0);
    char *s2 = shmat(id, NULL, 0);
    if (s1 == (void *)-1 || s2 == (void *)-1)
        die("shmat");
    touch(s1, 2);
    if (shmdt(s2) != 0)
        die("shmdt");
    shmctl(id, IPC_RMID, NULL);
    fprintf(expect, "expect sysv %d %d -\n", id, 2 * PAGE);

    /* a shared anon mapping that is gone entirely, and private memory that is never tracked */
    char *gone = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    touch(gone, 1);
    munmap(gone, 2 * PAGE);
    char *priv = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    touch(priv, 4);
    /* MAP_FIXED private memory over the middle of a shared mapping replaces it */
    char *fx = mmap64(NULL, 6 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mmap(fx + 2 * PAGE, 2 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
        MAP_FAILED)
        die("MAP_FIXED");
    fclose(expect);
    save_maps();
    return 0;
}

/* Failing calls: the same result and errno with and without the preload. Prints one line per
 * call ("name result errno"); the test compares the two runs and checks errno against libc's
 * documented values. */
static int scenario_errno(void)
{
    errno = 1234;
    void *p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, 999, 0);
    printf("mmap_badfd %d %d\n", p == MAP_FAILED ? -1 : 0, errno);
    errno = 1234;
    p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    printf("mmap_ok %d %d\n", p == MAP_FAILED ? -1 : 0, errno);
    errno = 1234;
    int rc = munmap((char *)p + 1, PAGE);
    printf("munmap_unaligned %d %d\n", rc, errno);
    errno = 1234;
    rc = munmap(p, PAGE);
    printf("munmap_ok %d %d\n", rc, errno);
    errno = 1234;
    rc = shm_open("/shmtrack-probe-missing", O_RDWR, 0);
    printf("shm_open_missing %d %d\n", rc, errno);
    errno = 1234;
    rc = shm_unlink("/shmtrack-probe-missing");
    printf("shm_unlink_missing %d %d\n", rc, errno);
    errno = 1234;
    rc = memfd_create("x", 0x7fff0000u);
    printf("memfd_badflags %d %d\n", rc, errno);
    errno = 1234;
    rc = shmget(0x5eed1e55, PAGE, 0600);
    printf("shmget_missing %d %d\n", rc, errno);
    errno = 1234;
    p = shmat(-1, NULL, 0);
    printf("shmat_bad %d %d\n", p == (void *)-1 ? -1 : 0, errno);
    errno = 1234;
    rc = shmdt((void *)PAGE);
    printf("shmdt_bad %d %d\n", rc, errno);
    errno = 1234;
    rc = shmctl(-1, IPC_STAT, NULL);
    printf("shmctl_bad %d %d\n", rc, errno);
    errno = 1234;
    p = mremap((void *)PAGE, PAGE, 2 * PAGE, 0);
    printf("mremap_bad %d %d\n", p == MAP_FAILED ? -1 : 0, errno);
    errno = 1234;
    char *argv[] = {"/nonexistent/shmtrack", NULL};
    rc = execve(argv[0], argv, environ);
    printf("execve_missing %d %d\n", rc, errno);
    errno = 1234;
    rc = execvp("shmtrack-no-such-program", argv);
    printf("execvp_missing %d %d\n", rc, errno);
    pid_t pid;
    errno = 1234;
    rc = posix_spawn(&pid, "/nonexistent/shmtrack", NULL, NULL, argv, environ);
    printf("posix_spawn_missing %d %d\n", rc, errno);
    printf("api_set_importance_null %d\n", shmtrack_set_importance(NULL, 1));
    printf("api_label_untracked %d\n", shmtrack_label(&rc, "x"));
    return 0;
}

/* Threads hammer the hooks while the main thread forks 1000 times; each child uses the hooks
 * once and exits. A deadlock shows as a timeout. */
static volatile int stop;
/* The program's own lock, held around its mmaps and taken by its atfork handler: a preload that
 * held its lock across the whole fork() would deadlock against it. */
static pthread_mutex_t app_lock = PTHREAD_MUTEX_INITIALIZER;

static void app_prepare(void)
{
    pthread_mutex_lock(&app_lock);
}

static void app_release(void)
{
    pthread_mutex_unlock(&app_lock);
}

static void *hammer(void *arg)
{
    (void)arg;
    while (!stop) {
        pthread_mutex_lock(&app_lock);
        char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        pthread_mutex_unlock(&app_lock);
        if (p != MAP_FAILED) {
            p[0] = 1;
            munmap(p, PAGE);
        }
        int fd = memfd_create("hammer", MFD_CLOEXEC);
        if (fd >= 0 && ftruncate(fd, PAGE) == 0) {
            /* the short-lived pattern, on the preload's fast path while the main thread forks */
            char *m = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (m != MAP_FAILED)
                munmap(m, PAGE);
        }
        if (fd >= 0)
            close(fd);
    }
    return NULL;
}

static int scenario_forkstorm(void)
{
    pthread_atfork(app_prepare, app_release, app_release);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        if (pthread_create(&t[i], NULL, hammer, NULL) != 0)
            die("pthread_create");
    const char *env = getenv("PROBE_FORKS"); /* default 1000 */
    int forks = env != NULL ? atoi(env) : 1000, failures = 0;
    /* PROBE_MIN_MS: go on forking until that long has passed too (a storm that must span some
     * periodic dumps: on a quiet machine 150 forks took less than 300 ms) */
    const char *min_env = getenv("PROBE_MIN_MS");
    long min_ms = min_env != NULL ? atol(min_env) : 0;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0;; i++) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (i >= forks && ms >= min_ms) {
            forks = i;
            break;
        }
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0) {
            char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            _exit(p == MAP_FAILED || munmap(p, PAGE) != 0);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failures++;
    }
    stop = 1;
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    printf("forks %d failures %d\n", forks, failures);
    return failures != 0;
}

/* Children made with a raw clone(2) (as sandboxes and zygotes do: no fork hook, no atfork
 * handler) while other threads are inside hooks holding the preload's lock: the child's own
 * hooks must not wait for a thread that does not exist in it. */
static int scenario_rawclone(void)
{
    pthread_t t[3];
    stop = 0;
    for (int i = 0; i < 3; i++)
        if (pthread_create(&t[i], NULL, hammer, NULL) != 0)
            die("pthread_create");
    int failures = 0;
    for (int i = 0; i < 300; i++) {
        long pid = syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
        if (pid < 0)
            die("clone");
        if (pid == 0) {
            char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            syscall(SYS_exit_group, p == MAP_FAILED || munmap(p, PAGE) != 0);
        }
        int status;
        if (waitpid((pid_t)pid, &status, 0) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0)
            failures++;
    }
    stop = 1;
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    printf("clones 300 failures %d\n", failures);
    return failures != 0;
}

/* Whether one of this process's descriptors is a socket. */
static int has_socket(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 0;
    int found = 0;
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL) {
        char path[300], link[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
        ssize_t n = readlink(path, link, sizeof(link) - 1);
        found = n > 7 && strncmp(link, "socket:", 7) == 0;
    }
    closedir(d);
    return found;
}

/* With PROBE_HOLD=1 (the probe runs under `shmtrack run`): once the preload has reconnected,
 * prints "ready PID" and keeps every object mapped until SIGTERM, so the test can take a dump
 * from outside and see what the coordinator received from this process. */
static int hold_for_dump(void)
{
    const char *hold = getenv("PROBE_HOLD");
    if (hold == NULL || strcmp(hold, "1") != 0)
        return 0;
    /* The preload notices that its socket is gone at its next flush (ST_CLIENT_FLUSH_MS) and
     * reconnects: the probe opens no socket itself, so a socket among its fds is the new
     * connection. Wait for it (5 s at most), then for the handshake. */
    for (int tries = 0; tries < 50 && !has_socket(); tries++)
        usleep(100 * 1000);
    usleep(200 * 1000);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    return 0;
}

/* A program that closes every descriptor it did not open (and one that dup2()s over them), then
 * keeps using shared memory. */
static int scenario_closefds(int use_dup2)
{
    char *a = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    touch(a, 1);
    int devnull = open("/dev/null", O_RDWR);
    for (int fd = 3; fd < 1024; fd++)
        if (fd != devnull) {
            if (use_dup2)
                dup2(devnull, fd);
            else
                close(fd);
        }
    char *b = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
        die("mmap after close");
    touch(b, 3);
    int fd = memfd_create("after-close", 0);
    if (fd < 0 || ftruncate(fd, 4 * PAGE) != 0)
        die("memfd after close");
    char *c = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    touch(c, 2);
    if (shmtrack_label(c, "after-close") != 0 && tracking())
        return 3;
    open_expect();
    expect_obj("anon", a, PAGE, NULL);
    expect_obj("anon", b, 3 * PAGE, NULL);
    expect_obj("memfd", c, 2 * PAGE, "after-close");
    fclose(expect);
    save_maps();
    return hold_for_dump();
}

/* Objects inherited over fork: the child holds them (inherited, not creator). */
static int scenario_fork_inherit(void)
{
    int fd = memfd_create("inherited", 0);
    if (fd < 0 || ftruncate(fd, 4 * PAGE) != 0)
        die("memfd");
    char *p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    touch(p, 3);
    shmtrack_set_importance(p, 6);
    pid_t pid = fork();
    if (pid == 0) {
        child_prefix();
        char *q = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        touch(q, 1);
        save_maps();
        exit(0); /* destructors run: the child writes its registry file */
    }
    int status, status2;
    waitpid(pid, &status, 0);
    /* _Fork: no atfork handlers; the child uses the hooks and exits without destructors */
    pid_t pid2 = _Fork();
    if (pid2 == 0) {
        char *q = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        _exit(q == MAP_FAILED || munmap(q, PAGE) != 0);
    }
    waitpid(pid2, &status2, 0);
    save_maps();
    printf("child %d\n", (int)pid);
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 0 && WIFEXITED(status2) &&
             WEXITSTATUS(status2) == 0);
}

/* Prints the LD_PRELOAD and SHMTRACK_SOCKET a child sees after exec/spawn with a scrubbed
 * environment. */
static int scenario_exec(const char *self)
{
    char *argv[] = {(char *)self, "print-env", (char *)out_prefix, NULL};
    /* PROBE_PASS_PRELOAD=1: the child's environment names LD_PRELOAD explicitly (to check that
     * SHMTRACK_FOLLOW_CHILDREN=0 removes it); otherwise it lacks it (to check it is re-added). */
    char preload[4096];
    const char *cur = getenv("LD_PRELOAD");
    snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", cur ? cur : "");
    char *scrubbed[] = {"PATH=/usr/bin:/bin", NULL, NULL};
    if (getenv("PROBE_PASS_PRELOAD") != NULL)
        scrubbed[1] = preload;
    char child_preload[4096];
    if (getenv("PROBE_CHILD_PRELOAD") != NULL) {
        snprintf(child_preload, sizeof(child_preload), "LD_PRELOAD=%s",
                 getenv("PROBE_CHILD_PRELOAD"));
        scrubbed[1] = child_preload;
    }
    pid_t pid;
    fflush(stdout);
    if (posix_spawn(&pid, self, NULL, NULL, argv, scrubbed) != 0)
        die("posix_spawn");
    int status;
    waitpid(pid, &status, 0);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        execve(self, argv, scrubbed);
        _exit(127);
    }
    waitpid(pid, &status, 0);
    if (posix_spawnp(&pid, self, NULL, NULL, argv, scrubbed) != 0)
        die("posix_spawnp");
    waitpid(pid, &status, 0);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        execvpe(self, argv, scrubbed);
        _exit(127);
    }
    waitpid(pid, &status, 0);
    /* execv passes environ, which has whatever the probe was started with */
    pid = fork();
    if (pid == 0) {
        execv(self, argv);
        _exit(127);
    }
    waitpid(pid, &status, 0);
    return 0;
}

static int print_env(void)
{
    const char *p = getenv("LD_PRELOAD"), *s = getenv("SHMTRACK_SOCKET");
    printf("child LD_PRELOAD=%s SHMTRACK_SOCKET=%s\n", p ? p : "(none)", s ? s : "(none)");
    return 0;
}

/* 70000 memfds created, mapped and closed (more than the registry has object slots): closed fds
 * must not pile up in the registry and switch tracking off. */
static int scenario_churn(void)
{
    for (int i = 0; i < 70000; i++) {
        int fd = memfd_create("churn", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, PAGE) != 0)
            die("memfd churn");
        char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            die("mmap churn");
        munmap(p, PAGE);
        close(fd);
    }
    char *a = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    touch(a, 2);
    open_expect();
    expect_obj("anon", a, 2 * PAGE, NULL);
    fclose(expect);
    save_maps();
    return 0;
}

/* Threads map, cut, move and unmap shared memory concurrently, keeping a few mappings each; the
 * registry must still equal the kernel's view at the end. */
static void *shuffle(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char *keep[8] = {0};
    size_t keep_len[8] = {0};
    for (int i = 0; i < 3000; i++) {
        int slot = (int)(rand_r(&seed) % 8);
        if (keep[slot] != NULL) {
            int op = (int)(rand_r(&seed) % 3);
            if (op == 0 && keep_len[slot] >= 2 * PAGE) {
                /* cut the first page off */
                munmap(keep[slot], PAGE);
                keep[slot] += PAGE;
                keep_len[slot] -= PAGE;
                continue;
            }
            if (op == 1) {
                char *q = mremap(keep[slot], keep_len[slot], keep_len[slot] + PAGE, MREMAP_MAYMOVE);
                if (q != MAP_FAILED) {
                    keep[slot] = q;
                    keep_len[slot] += PAGE;
                }
                continue;
            }
            munmap(keep[slot], keep_len[slot]);
            keep[slot] = NULL;
            continue;
        }
        size_t len = (1 + rand_r(&seed) % 4) * PAGE;
        char *p;
        if (rand_r(&seed) % 2) {
            p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        } else {
            int fd = memfd_create("shuffle", MFD_CLOEXEC);
            if (fd < 0 || ftruncate(fd, (off_t)len) != 0)
                die("memfd shuffle");
            p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            close(fd);
        }
        if (p == MAP_FAILED)
            die("mmap shuffle");
        p[0] = 1;
        keep[slot] = p;
        keep_len[slot] = len;
    }
    return NULL;
}

static int scenario_threads(void)
{
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, shuffle, (void *)(i + 1)) != 0)
            die("pthread_create");
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    save_maps();
    return 0;
}

/* For the coordinator test: a memfd (16 pages, 5 touched here, labelled, claimed 4) and a shared
 * anonymous mapping (2 pages, 1 touched), then a fork child that touches one more memfd page.
 * Prints "ready <child pid>" once both are set up, and exits when stdin reaches EOF. */
static int scenario_ipc(void)
{
    int fd = memfd_create("ipc-frames", 0);
    if (fd < 0 || ftruncate(fd, 16 * PAGE) != 0)
        die("memfd");
    char *m = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *a = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || a == MAP_FAILED)
        die("mmap");
    touch(m, 5);
    touch(a, 1);
    if (shmtrack_label(m, "frames") != 0 || shmtrack_set_importance(m, 4) != 0)
        return 3;
    int sync[2];
    if (pipe(sync) != 0)
        die("pipe");
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        m[10 * PAGE] = 1;
        if (write(sync[1], "x", 1) != 1)
            _exit(1);
        while (getppid() == parent)
            usleep(10000);
        _exit(0);
    }
    char x;
    if (read(sync[0], &x, 1) != 1)
        die("sync");
    /* mapped right before the dump: still pending in the preload when the request comes */
    char *late = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (late == MAP_FAILED)
        die("mmap late");
    touch(late, 2);
    /* a memfd created and mapped right before the dump: still in the preload's fast table when
     * the request comes (4 pages, 3 touched) */
    int lfd = memfd_create("late-memfd", 0);
    if (lfd < 0 || ftruncate(lfd, 4 * PAGE) != 0)
        die("memfd late");
    char *lm = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, lfd, 0);
    if (lm == MAP_FAILED)
        die("mmap late memfd");
    touch(lm, 3);
    printf("ready %d %lx %lx\n", (int)pid, (unsigned long)late, (unsigned long)lm);
    char buf[64];
    while (read(0, buf, sizeof(buf)) > 0)
        ;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return 0;
}

/* Mappings whose identity the preload records later (pending): changed in every way before
 * anything resolves them, then a fork, which must leave the parent the creator and the child an
 * inheriting holder. Writes OUT.expect (the parent's objects) and OUT.maps, the child
 * OUT.child.maps; prints "child PID". */
static int scenario_deferred(void)
{
    open_expect();
    /* A: 8 pages, pages 0, 1 and 7 touched, pages 2-3 unmapped (a hole in a pending range) */
    char *a = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED)
        die("mmap a");
    touch(a, 2);
    a[7 * PAGE] = 1;
    if (munmap(a + 2 * PAGE, 2 * PAGE) != 0)
        die("munmap a");
    /* B: 4 pages, grown to 8 by mremap (moved or not; the inode stays 4 pages), pages 0 and 3
     * touched */
    char *b = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
        die("mmap b");
    touch(b, 1);
    b = mremap(b, 4 * PAGE, 8 * PAGE, MREMAP_MAYMOVE);
    if (b == MAP_FAILED)
        die("mremap b");
    b[3 * PAGE] = 1;
    /* G: gone before anything resolved it */
    char *g = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (g == MAP_FAILED)
        die("mmap g");
    touch(g, 1);
    munmap(g, 2 * PAGE);
    /* M: a memfd mapped (pending, its fd the hint), 4 pages touched, its fd closed and the number
     * reused at once by another memfd (N, never mapped): M must stay, held by its mapping */
    int mfd = memfd_create("deferred-m", MFD_CLOEXEC);
    if (mfd < 0 || ftruncate(mfd, 8 * PAGE) != 0)
        die("memfd m");
    char *m = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (m == MAP_FAILED)
        die("mmap m");
    touch(m, 4);
    close(mfd);
    int nfd = memfd_create("deferred-n", MFD_CLOEXEC);
    if (nfd != mfd || ftruncate(nfd, 2 * PAGE) != 0)
        die("memfd n (the fd number was not reused)");
    /* P: a memfd's fd number closed and reused by an open() the preload does not see, then
     * mapped: the hint is wrong, the fd itself names the object */
    int hfd = memfd_create("deferred-h", MFD_CLOEXEC);
    if (hfd < 0)
        die("memfd h");
    close(hfd);
    char path[128];
    snprintf(path, sizeof(path), "/dev/shm/shmtrack-probe-deferred-%d", (int)getpid());
    int pfd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (pfd != hfd || ftruncate(pfd, 4 * PAGE) != 0)
        die("open posix (the fd number was not reused)");
    char *ps = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
    if (ps == MAP_FAILED)
        die("mmap posix");
    touch(ps, 2);
    /* fork before anything resolved the pending mappings */
    int status;
    pid_t pid = fork_saving_maps(&status);
    expect_obj("anon", a, 3 * PAGE, NULL);
    expect_obj("anon", b, 2 * PAGE, NULL);
    expect_obj("memfd", m, 4 * PAGE, NULL);
    expect_obj("posix", ps, 2 * PAGE, NULL);
    fclose(expect);
    save_maps();
    unlink(path);
    printf("child %d\n", (int)pid);
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Pages that posix_fallocate allocated and nobody wrote: resident, though mincore does not see
 * them. P is made as PostgreSQL makes its DSM segments (shm_open, ftruncate, posix_fallocate,
 * mmap, close); M is a memfd whose fd stays open. The expected resident bytes are the objects'
 * st_blocks, read here with fstat. P is only expected as root: without CAP_SYS_ADMIN no fd to it
 * is left to measure with (the preload then reports a lower bound). */
static int scenario_fallocate(void)
{
    open_expect();
    char name[64];
    snprintf(name, sizeof(name), "/shmtrack-probe-falloc-%d", (int)getpid());
    int pfd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (pfd < 0 || ftruncate(pfd, 16 * PAGE) != 0 || posix_fallocate(pfd, 0, 16 * PAGE) != 0)
        die("shm_open + posix_fallocate");
    char *p = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
    if (p == MAP_FAILED)
        die("mmap p");
    touch(p, 2);
    struct stat st;
    if (fstat(pfd, &st) != 0)
        die("fstat p");
    close(pfd);
    shm_unlink(name);
    if (geteuid() == 0)
        expect_obj("posix", p, (size_t)st.st_blocks * 512, NULL);
    int mfd = memfd_create("falloc", MFD_CLOEXEC);
    if (mfd < 0 || ftruncate(mfd, 8 * PAGE) != 0 || posix_fallocate(mfd, 0, 8 * PAGE) != 0)
        die("memfd + posix_fallocate");
    char *m = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (m == MAP_FAILED)
        die("mmap m");
    touch(m, 1);
    if (fstat(mfd, &st) != 0)
        die("fstat m");
    expect_obj("memfd", m, (size_t)st.st_blocks * 512, NULL);
    printf("blocks %lld\n", (long long)st.st_blocks);
    fclose(expect);
    save_maps();
    return 0;
}

/* More shared objects than a small registry holds: every call must still succeed. */
static int scenario_many(void)
{
    for (int i = 0; i < 8; i++) {
        int fd = memfd_create("many", 0);
        if (fd < 0 || ftruncate(fd, PAGE) != 0)
            die("memfd many");
        char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            die("mmap many");
        p[0] = 1;
        char *a = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (a == MAP_FAILED)
            die("mmap anon many");
        a[0] = 1;
    }
    printf("many ok\n");
    return 0;
}

/* The public API with and without the preload. */
static int scenario_api(void)
{
    char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *q = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("set_importance_tracked %d\n", shmtrack_set_importance(p + PAGE, 3));
    printf("label_tracked %d\n", shmtrack_label(p, "api-label"));
    printf("set_importance_private %d\n", shmtrack_set_importance(q, 3));
    printf("label_null %d\n", shmtrack_label(p, NULL));
    return 0;
}

/* memfds whose identity the preload reads late (pending created fds): prints "ino NAME INO" for
 * each, as fstat says, and "child PID" / "receiver PID". A: never mapped, 3 pages. B: dup2'd to
 * 200, the original closed. C: sent with SCM_RIGHTS to a receiver (forked before C existed),
 * which maps it, then closed here. D: closed unmapped (gone). E: forked before anything resolved
 * it. F: closed with a raw close(2) and its number reused by a tmpfs file of ours (not ours to
 * attribute as F). */
static unsigned long ino_of(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        die("fstat");
    return (unsigned long)st.st_ino;
}

static int scenario_fdpend(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        die("socketpair");
    pid_t rpid = fork();
    if (rpid == 0) {
        char cpath[4096];
        snprintf(cpath, sizeof(cpath), "%s.receiver", out_prefix);
        out_prefix = strdup(cpath);
        char byte;
        char cbuf[CMSG_SPACE(sizeof(int))];
        struct iovec iov = {&byte, 1};
        struct msghdr msg = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
        if (recvmsg(sv[1], &msg, 0) != 1)
            _exit(1);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        int fd;
        if (c == NULL || c->cmsg_type != SCM_RIGHTS)
            _exit(1);
        memcpy(&fd, CMSG_DATA(c), sizeof(int));
        char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            _exit(1);
        touch(p, 1);
        if (read(sv[1], &byte, 1) != 1) /* the parent is done */
            _exit(1);
        exit(0); /* destructors: the registry file */
    }
    printf("receiver %d\n", (int)rpid);
    int a = memfd_create("pend-a", MFD_CLOEXEC);
    if (a < 0 || ftruncate(a, 3 * PAGE) != 0)
        die("memfd a");
    printf("ino pend-a %lu\n", ino_of(a));
    int b = memfd_create("pend-b", MFD_CLOEXEC);
    if (b < 0 || ftruncate(b, 5 * PAGE) != 0 || dup2(b, 200) != 200)
        die("memfd b");
    printf("ino pend-b %lu\n", ino_of(b));
    close(b);
    int c = memfd_create("pend-c", MFD_CLOEXEC);
    if (c < 0 || ftruncate(c, 2 * PAGE) != 0)
        die("memfd c");
    printf("ino pend-c %lu\n", ino_of(c));
    char byte = 'x';
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof(cbuf));
    struct iovec iov = {&byte, 1};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &c, sizeof(int));
    if (sendmsg(sv[0], &msg, 0) != 1)
        die("sendmsg");
    close(c);
    int d = memfd_create("pend-d", MFD_CLOEXEC);
    if (d < 0 || ftruncate(d, PAGE) != 0)
        die("memfd d");
    printf("ino pend-d %lu\n", ino_of(d));
    close(d);
    int e = memfd_create("pend-e", MFD_CLOEXEC);
    if (e < 0 || ftruncate(e, 4 * PAGE) != 0)
        die("memfd e");
    printf("ino pend-e %lu\n", ino_of(e));
    pid_t pid = fork();
    if (pid == 0) {
        child_prefix();
        exit(0);
    }
    int status, rstatus;
    waitpid(pid, &status, 0);
    int f = memfd_create("pend-f", MFD_CLOEXEC);
    if (f < 0)
        die("memfd f");
    syscall(SYS_close, f); /* the preload does not see this */
    char path[128];
    snprintf(path, sizeof(path), "/dev/shm/shmtrack-probe-fdpend-%d", (int)getpid());
    int g = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (g != f || ftruncate(g, 6 * PAGE) != 0)
        die("open g (the fd number was not reused)");
    printf("ino reused %lu\n", ino_of(g));
    unlink(path);
    /* V: a vfork child closes it (and dup2s over its number): the parent's record must not
     * change; then a vfork child that execs */
    int v = memfd_create("pend-v", MFD_CLOEXEC);
    if (v < 0 || ftruncate(v, 7 * PAGE) != 0)
        die("memfd v");
    printf("ino pend-v %lu\n", ino_of(v));
    int vstatus = -1, xstatus = -1;
    pid_t vpid = vfork();
    if (vpid == 0) {
        close(v);
        dup2(0, v);
        close(v);
        _exit(0);
    }
    if (vpid < 0 || waitpid(vpid, &vstatus, 0) != vpid)
        die("vfork");
    char *targv[] = {"/bin/true", NULL};
    vpid = vfork();
    if (vpid == 0) {
        execve(targv[0], targv, environ);
        _exit(127);
    }
    if (vpid < 0 || waitpid(vpid, &xstatus, 0) != vpid)
        die("vfork exec");
    if (!WIFEXITED(vstatus) || WEXITSTATUS(vstatus) != 0 || !WIFEXITED(xstatus) ||
        WEXITSTATUS(xstatus) != 0)
        die("vfork children");
    if (write(sv[0], "y", 1) != 1)
        die("write");
    waitpid(rpid, &rstatus, 0);
    printf("child %d\n", (int)pid);
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 0 && WIFEXITED(rstatus) &&
             WEXITSTATUS(rstatus) == 0);
}

/* memfds on the preload's fast path (allocator/registry.h, "fast table") and every way off it:
 * K mapped and kept; S partly unmapped; D mapped twice; X cut by a MAP_FIXED private mapping; R
 * grown by mremap; T closed behind the preload's back and its number reused at once by T2; Z
 * closed unmapped; U mapped, unmapped, still open at the fork, closed after it. Then a fork (the
 * child writes OUT.child.maps) and the parent's OUT.maps and OUT.expect. Every fd but U's and Z's
 * stays open, so resident bytes are exact. Prints "child PID". */
static char *fast_map(const char *name, size_t size_pages, size_t map_pages, int *fdp)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)(size_pages * PAGE)) != 0)
        die(name);
    char *p = mmap(NULL, map_pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        die(name);
    *fdp = fd;
    return p;
}

static int scenario_fastpath(void)
{
    int kfd, sfd, dfd, xfd, rfd, t2fd, ufd;
    char *k = fast_map("fast-k", 4, 4, &kfd);
    touch(k, 3);
    char *sp = fast_map("fast-s", 4, 4, &sfd);
    touch(sp, 4);
    if (munmap(sp + PAGE, PAGE) != 0)
        die("munmap s");
    char *d = fast_map("fast-d", 2, 2, &dfd);
    char *d2 = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, dfd, 0);
    if (d2 == MAP_FAILED)
        die("mmap d2");
    d2[0] = 1;
    char *x = fast_map("fast-x", 4, 4, &xfd);
    touch(x, 4);
    if (mmap(x + PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
             0) != x + PAGE)
        die("mmap fixed over x");
    char *r = fast_map("fast-r", 2, 2, &rfd);
    touch(r, 1);
    if (ftruncate(rfd, 4 * PAGE) != 0)
        die("ftruncate r");
    r = mremap(r, 2 * PAGE, 4 * PAGE, MREMAP_MAYMOVE);
    if (r == MAP_FAILED)
        die("mremap r");
    int tfd = memfd_create("fast-t", MFD_CLOEXEC);
    if (tfd < 0)
        die("memfd t");
    syscall(SYS_close, tfd); /* the preload does not see this */
    char *t2 = fast_map("fast-t2", 1, 1, &t2fd);
    if (t2fd != tfd)
        die("memfd t2 (the fd number was not reused)");
    touch(t2, 1);
    int zfd = memfd_create("fast-z", MFD_CLOEXEC);
    if (zfd < 0)
        die("memfd z");
    close(zfd);
    char *u = fast_map("fast-u", 1, 1, &ufd);
    touch(u, 1);
    munmap(u, PAGE);
    int status;
    pid_t pid = fork_saving_maps(&status);
    close(ufd);
    open_expect();
    expect_obj("memfd", k, 3 * PAGE, NULL);
    expect_obj("memfd", sp, 4 * PAGE, NULL);
    expect_obj("memfd", d, PAGE, NULL);
    expect_obj("memfd", x, 4 * PAGE, NULL);
    expect_obj("memfd", r, PAGE, NULL);
    expect_obj("memfd", t2, PAGE, NULL);
    fclose(expect);
    save_maps();
    printf("child %d\n", (int)pid);
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: probe SCENARIO OUT\n");
        return 2;
    }
    out_prefix = argv[2];
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *s = argv[1];
    if (strcmp(s, "basic") == 0)
        return scenario_basic();
    if (strcmp(s, "errno") == 0)
        return scenario_errno();
    if (strcmp(s, "forkstorm") == 0)
        return scenario_forkstorm();
    if (strcmp(s, "rawclone") == 0)
        return scenario_rawclone();
    if (strcmp(s, "closefds") == 0)
        return scenario_closefds(0);
    if (strcmp(s, "dup2fds") == 0)
        return scenario_closefds(1);
    if (strcmp(s, "fork-inherit") == 0)
        return scenario_fork_inherit();
    if (strcmp(s, "exec") == 0)
        return scenario_exec(argv[0]);
    if (strcmp(s, "print-env") == 0)
        return print_env();
    if (strcmp(s, "fallocate") == 0)
        return scenario_fallocate();
    if (strcmp(s, "fdpend") == 0)
        return scenario_fdpend();
    if (strcmp(s, "deferred") == 0)
        return scenario_deferred();
    if (strcmp(s, "fastpath") == 0)
        return scenario_fastpath();
    if (strcmp(s, "many") == 0)
        return scenario_many();
    if (strcmp(s, "ipc") == 0)
        return scenario_ipc();
    if (strcmp(s, "threads") == 0)
        return scenario_threads();
    if (strcmp(s, "churn") == 0)
        return scenario_churn();
    if (strcmp(s, "api") == 0)
        return scenario_api();
    fprintf(stderr, "probe: unknown scenario %s\n", s);
    return 2;
}
