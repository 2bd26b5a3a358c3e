/* SPDX-License-Identifier: MIT
 *
 * The interposed libc functions of libshmtrack.so (private to allocator/).
 *
 * Each hook keeps libc's contract exactly: it makes the real call (a raw syscall through prim.h,
 * or the next definition found once with dlsym(RTLD_NEXT) in the constructor), returns its result
 * and leaves errno as that call left it; tracking happens around it with errno saved and restored.
 * Private mappings go straight through: mmap(MAP_PRIVATE) costs one flag test, munmap and mremap
 * of untracked memory two relaxed loads (st__reg_may_overlap); close, dup*, fcntl(F_DUPFD*) and
 * ftruncate of an fd not created here one relaxed load (st__reg_fd_maybe). Identity: fstat for
 * fd-backed objects (kind from fstatfs and /proc/self/fd), the VMA's dev/ino for shared anonymous
 * memory (PROCMAP_QUERY), the IPC namespace and shmid for SysV; for shared anonymous mappings,
 * writable mappings of an fd created here and memfd_create's fd, late (registry.h: pending).
 * The short-lived memfd (memfd_create + ftruncate + mmap + munmap + close) is served by the
 * registry's fast table alone (registry.h) on one page of code (ST__FAST) and one of data (hot).
 *
 * Hooks never allocate, never use stdio and never block on the coordinator: the registry lives in
 * a private arena, events go to a bounded queue (agent.h), and an initial-exec TLS flag makes any
 * re-entry (our own code, or a hook called from inside another hook) pass straight through. The
 * registry lock is held across the real syscall of a tracked mmap/munmap/mremap/shmat/shmdt, so
 * that an address cannot be unmapped and handed out again between the syscall and the update.
 * Any internal failure (no arena, registry full) switches tracking off: calls then pass through.
 *
 * fork: a pthread_atfork prepare handler takes the registry lock right before the kernel fork
 * (after the program's own handlers), so the child inherits a consistent registry; the child
 * handler re-creates the lock, keeps every object as inherited (holder, not creator) and drops the
 * parent's connection; the fork hook then re-announces the inherited objects. A child of a raw
 * clone(2) never waits for a lock a vanished parent thread held: it passes calls through. _Fork (no
 * atfork handlers, may run in a signal handler) only try-locks and starts empty when it could not.
 * vfork (x86-64) is a few instructions of assembly: the child marks the thread as inside a hook, so
 * every hook it calls passes through without touching our locks or memory (it shares them with
 * the suspended parent), and the execve hook takes no lock and writes nothing but its own stack.
 * posix_spawn's child never runs our code
 * (glibc calls the execve syscall itself), so its hook fixes the environment in the parent.
 *
 * exec: children keep LD_PRELOAD (and SHMTRACK_SOCKET) even when the program passes a scrubbed
 * environment, unless SHMTRACK_FOLLOW_CHILDREN=0, which removes this library from LD_PRELOAD.
 */
#include "agent.h"
#include "model.h"
#include "prim.h"
#include "registry.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1u << 2)
#endif

#define ST_EXPORT __attribute__((visibility("default")))

extern char **environ;

enum { ST_OFF = 0, ST_ACTIVE = 1, ST_DISABLED = 2 };

/* Set while this thread is inside a hook; also set by the vfork hook in a vfork child (which
 * runs on this thread's TLS until it execs or exits) and restored by it in the parent. Not static:
 * the vfork hook is written in assembly. */
__attribute__((visibility("hidden"))) __thread int st__in_hook
    __attribute__((tls_model("initial-exec")));

/* Everything the hooks' fast paths read, on one page of .bss (the registry's first cache line
 * holds the lock, the fast table's fds and the bounds): on a kernel with page-table isolation and
 * no PCID every page touched after a system call is a TLB miss. */
static struct hot {
    st__reg_t reg;
    int state; /* ST_OFF until the constructor finishes */
    int my_pid;
    int32_t default_importance; /* ST__IMPORTANCE_NONE from the constructor on */
    size_t page_size;           /* set by the constructor, before any hook tracks anything */
    /* st__in_hook's offset from the thread pointer (static TLS: the same in every thread), so
     * that the fast paths reach it without the GOT entry initial-exec code loads it from */
    long in_hook_off;
    /* the vDSO's clock_gettime, called without libc's wrapper and our PLT */
    int (*clock_gettime)(clockid_t, struct timespec *);
} hot __attribute__((aligned(4096)));
#define reg (hot.reg)
#define state (hot.state)
#define my_pid (hot.my_pid)
#define default_importance (hot.default_importance)
static uint64_t ipc_ns;
static int follow_children = 1;
static char self_path[PATH_MAX];       /* this library, for LD_PRELOAD in children */
static char socket_env[PATH_MAX + 32]; /* "SHMTRACK_SOCKET=..." as we started with it */
static char registry_file[PATH_MAX];   /* SHMTRACK_TEST_REGISTRY */

typedef int (*shm_open_fn)(const char *, int, mode_t);
typedef int (*shm_unlink_fn)(const char *);
typedef pid_t (*fork_fn)(void);
typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                        const posix_spawnattr_t *, char *const[], char *const[]);
typedef int (*execvpe_fn)(const char *, char *const[], char *const[]);
typedef int (*close_fn)(int);
typedef void (*closefrom_fn)(int);
typedef int (*fcntl_fn)(int, int, ...);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);
typedef int (*sendmmsg_fn)(int, struct mmsghdr *, unsigned int, int);

static shm_open_fn real_shm_open;
static shm_unlink_fn real_shm_unlink;
static fork_fn real_fork;
static fork_fn real__Fork;
static spawn_fn real_posix_spawn;
static spawn_fn real_posix_spawnp;
static execvpe_fn real_execvpe;
static close_fn real_close;
static closefrom_fn real_closefrom;
static fcntl_fn real_fcntl;
static fcntl_fn real_fcntl64;
static sendmsg_fn real_sendmsg;
static sendmmsg_fn real_sendmmsg;

/* The next definition of name, looked up once. The constructor resolves every one of them; the
 * lazy path serves calls made before it ran (another library's constructor). Never used for the
 * mmap family, which needs no dlsym at all. */
static void *next_symbol(void **slot, const char *name)
{
    void *fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (fn == NULL) {
        fn = dlsym(RTLD_NEXT, name);
        __atomic_store_n(slot, fn, __ATOMIC_RELEASE);
    }
    return fn;
}
#define NEXT(var, name) ((__typeof__(var))next_symbol((void **)&(var), (name)))

static inline bool active(void)
{
    return __atomic_load_n(&state, __ATOMIC_RELAXED) == ST_ACTIVE;
}

#if defined(__x86_64__)
/* st__in_hook through its thread-pointer offset (hot.in_hook_off, set by the constructor before
 * tracking starts): no GOT access. */
static inline int in_hook_get(void)
{
    int v;
    __asm__ volatile("movl %%fs:(%1), %0" : "=r"(v) : "r"(hot.in_hook_off) : "memory");
    return v;
}

static inline void in_hook_set(int v)
{
    __asm__ volatile("movl %0, %%fs:(%1)" : : "r"(v), "r"(hot.in_hook_off) : "memory");
}
#else
static inline int in_hook_get(void)
{
    return st__in_hook;
}

static inline void in_hook_set(int v)
{
    st__in_hook = v;
}
#endif

/* Enters tracking on this thread; false when tracking is off or we are already inside a hook.
 * active() first: the TLS offset is only set once tracking is on. */
static inline bool enter(void)
{
    if (!active() || in_hook_get())
        return false;
    in_hook_set(1);
    return true;
}

static inline void leave(void)
{
    in_hook_set(0);
}

/* Takes the registry lock, unless this process is a child that did not come through our fork
 * hooks (a raw clone(2), as sandboxes and zygotes make, or a vfork child that calls a hook) and
 * the lock was held by a thread that does not exist here: then false, and the caller passes the
 * call through untracked, touching nothing (a vfork child shares our memory). The pid is only
 * checked when the lock is contended, so the common path costs no system call. */
static __attribute__((noinline)) bool hook_lock_contended(void)
{
    if (st__prim_getpid() != __atomic_load_n(&my_pid, __ATOMIC_RELAXED))
        return false;
    st__reg_lock_fast(&reg);
    return true;
}

static inline bool hook_lock_fast(void)
{
    return st__reg_trylock_fast(&reg) || hook_lock_contended();
}

static void disable(const char *why);

/* The fast table into the registry (registry.h): a fast path that falls back to the slow path,
 * and every other hook, through hook_lock(). pre: locked */
static __attribute__((noinline)) void flush_fast_now(void)
{
    if (reg.n_fast != 0)
        (void)st__reg_fast_flush(&reg);
    if (reg.fast_lost != 0) /* here or in a flush by st__reg_lock (the agent thread) */
        disable("tracking off: the registry is full");
}

static inline void flush_fast(void)
{
    if (reg.n_fast != 0 || reg.fast_lost != 0)
        flush_fast_now();
}

/* hook_lock_fast() and the flush: every caller that is not a fast path sees the whole registry. */
static bool hook_lock(void)
{
    if (!hook_lock_fast())
        return false;
    flush_fast();
    return true;
}

/* enter() and hook_lock() together. */
static inline bool enter_locked(void)
{
    if (!enter())
        return false;
    if (hook_lock())
        return true;
    leave();
    return false;
}

/* enter() and hook_lock_fast() together. */
static inline bool enter_locked_fast(void)
{
    if (!enter())
        return false;
    if (hook_lock_fast())
        return true;
    leave();
    return false;
}

/* SHMTRACK_LOG: one line appended with raw write(2) when tracking switches itself off. */
static char log_path[PATH_MAX];

static void log_line(const char *what)
{
    if (log_path[0] == '\0')
        return;
    int fd = st__prim_open(log_path, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (fd < 0)
        return;
    char line[256];
    size_t n = 0;
    static const char head[] = "shmtrack: pid ";
    memcpy(line, head, sizeof(head) - 1);
    n = sizeof(head) - 1;
    char digits[16];
    int d = 0;
    for (unsigned v = (unsigned)st__prim_getpid(); v != 0 || d == 0; v /= 10)
        digits[d++] = (char)('0' + v % 10);
    while (d > 0)
        line[n++] = digits[--d];
    line[n++] = ':';
    line[n++] = ' ';
    size_t w = strlen(what);
    if (w > sizeof(line) - n - 1)
        w = sizeof(line) - n - 1;
    memcpy(line + n, what, w);
    n += w;
    line[n++] = '\n';
    st__prim_write_all(fd, line, n);
    st__prim_close(fd);
}

/* Any internal failure: calls pass through from now on; the coordinator's scan still sees us. */
static void disable(const char *why)
{
    if (__atomic_exchange_n(&state, ST_DISABLED, __ATOMIC_RELAXED) == ST_ACTIVE)
        log_line(why);
}

static inline size_t page_round(size_t len)
{
    size_t page = hot.page_size != 0 ? hot.page_size : st__prim_page_size();
    return (len + page - 1) & ~(page - 1);
}

/* ---- events ---------------------------------------------------------------------------------- */

static void send_event(const st__obj_t *obj, st__event_type_t type, uint64_t start, uint64_t len)
{
    st__event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = (uint8_t)type;
    ev.kind = obj->kind;
    ev.flags = obj->flags;
    ev.importance = obj->importance;
    ev.a = obj->a;
    ev.b = obj->b;
    ev.start = start;
    ev.len = len;
    ev.size = obj->size;
    const char *name = type == ST__EV_LABEL ? st__reg_label(&reg, obj) : st__reg_name(&reg, obj);
    size_t n = strlen(name);
    memcpy(ev.name, name, n + 1);
    st__agent_event(&ev);
}

static void on_change(const st__obj_t *obj, st__reg_change_t what, uint64_t start, uint64_t len,
                      void *ctx)
{
    (void)ctx;
    switch (what) {
    case ST__REG_MAPPED:
        send_event(obj, ST__EV_MAPPED, start, len);
        break;
    case ST__REG_UNMAPPED:
        send_event(obj, ST__EV_UNMAPPED, start, len);
        break;
    case ST__REG_REMOVED:
        send_event(obj, ST__EV_DESTROYED, 0, 0);
        break;
    case ST__REG_ADDED:
        break;
    }
}

/* A newly added object takes the process's default claim (SHMTRACK_IMPORTANCE). */
ST__HOT static void new_object(st__obj_t *obj, bool creator)
{
    if (creator)
        obj->flags |= ST__OBJ_CREATOR;
    if (default_importance != ST__IMPORTANCE_NONE) {
        obj->importance = default_importance;
        obj->flags |= ST__OBJ_CLAIMED;
    }
}

/* ---- mmap family ----------------------------------------------------------------------------- */

/* The object behind fd if fd still names the inode key describes (the fd a pending mapping was
 * made from, whose hint turned out wrong): kind and name from the fd, as the eager path does.
 * NULL when the fd is gone or is something else now. pre: locked */
static st__obj_t *identify_fd(int fd, const st__key_t *key, bool *added)
{
    st__fdinfo_t fi;
    char name[ST__REG_NAME_MAX] = "";
    int kind;
    st__obj_t *obj = NULL;
    if (fd < 0 || st__prim_fd_stat(fd, &fi) != 0 || fi.type != ST__FD_REG || fi.ino != key->b ||
        (((uint64_t)fi.dev_major << 32) | fi.dev_minor) != key->a ||
        st__prim_fd_kind(fd, &kind, name, sizeof(name)) != 0)
        return NULL;
    st__key_t k = *key;
    k.kind = (uint8_t)kind;
    if (st__reg_get(&reg, &k, &obj, added) != 0) {
        disable("tracking off: the registry is full");
        return NULL;
    }
    if (*added && name[0] != '\0')
        (void)st__reg_set_name(&reg, obj, name);
    if (fi.size > obj->size)
        obj->size = fi.size;
    return obj;
}

/* FNV-1a of a name as the registry keeps it (cut to ST__REG_NAME_MAX - 1 bytes): what an FDPEND
 * object records instead of its name, which is only stored at resolution (one page fewer touched
 * per memfd_create and close; on a kernel with page-table isolation and no PCID every page
 * touched after a system call is a TLB miss). */
static inline uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < ST__REG_NAME_MAX - 1 && s[i] != '\0'; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

/* Resolves an FDPEND object (registry.h): fstat on its fd, checked against what memfd_create
 * recorded, so that an fd number the program closed behind our back (a raw close(2)) and got
 * again for something else is not taken for our object: a regular shmem file whose
 * /proc/self/fd link names a memfd of the recorded kind and name, whose ctime is not older than
 * the coarse clock read before the creating call. Then it is keyed (and announced as CREATED), or
 * dropped: the coordinator's /proc scan still sees whatever the fd holds. Returns the keyed
 * object or NULL. pre: locked */
static st__obj_t *resolve_fd(st__obj_t *obj)
{
    st__fdinfo_t fi;
    char name[ST__REG_NAME_MAX] = "";
    int kind = -1, fd = obj->fd;
    if (fd < 0 || st__prim_fd_stat(fd, &fi) != 0 || fi.type != ST__FD_REG || fi.ctime_ns < obj->a ||
        st__prim_fd_kind(fd, &kind, name, sizeof(name)) != 0 || kind != obj->kind ||
        name_hash(name) != obj->b || st__reg_set_name(&reg, obj, name) != 0) {
        st__reg_drop_fd_pending(&reg, obj);
        return NULL;
    }
    st__key_t key = st__key_shmem(obj->kind, fi.dev_major, fi.dev_minor, fi.ino);
    st__obj_t *known = st__reg_find(&reg, &key), *t = NULL;
    bool announced = known != NULL && (known->flags & ST__OBJ_CREATOR);
    obj->size = fi.size;
    st__reg_key_fd_pending(&reg, obj, &key, &t);
    if ((t->flags & ST__OBJ_CREATOR) && !announced)
        send_event(t, ST__EV_CREATED, 0, 0);
    return t;
}

/* Resolves one pending object (registry.h): the kernel's dev/ino of the VMA that holds its first
 * range (PROCMAP_QUERY), then a merge into the object with that key. A range that no longer
 * looks like the mapping we recorded (unmapped or replaced behind our back) is dropped, and so is
 * a mapping of an fd that turned out not to be the object created through it (the program closed
 * that fd and reused the number with an open() we do not see) is identified from that fd when it
 * still names the mapped inode, else dropped: the coordinator's /proc scan still sees it. pre:
 * locked, inside a hook or the agent thread. */
static void resolve_one(st__obj_t *p)
{
    st__range_t *r = st__reg_range(&reg, p->first);
    st__vma_t v;
    if (r == NULL || st__prim_vma_query((uintptr_t)r->start, &v) != 0 || !v.shared ||
        v.offset + (r->start - v.start) != r->off) {
        st__reg_drop_pending(&reg, p);
        return;
    }
    st__key_t key = st__key_shmem(p->kind, v.dev_major, v.dev_minor, v.ino);
    st__obj_t *hint = st__reg_pending_hint(&reg, p), *t = NULL;
    if (hint != NULL && (hint->flags & ST__OBJ_FDPEND)) {
        (void)resolve_fd(hint); /* may move or drop the hint */
        hint = st__reg_pending_hint(&reg, p);
    }
    bool added = false, creator = (p->flags & ST__OBJ_CREATOR) != 0;
    if (hint != NULL && hint->a == key.a && hint->b == key.b) {
        t = hint;
    } else if (hint != NULL || p->fd >= 0) {
        /* the fd was not (or no longer) the object created through it */
        t = st__reg_find(&reg, &key);
        if (t == NULL)
            t = identify_fd(p->fd, &key, &added);
    } else if (st__reg_get(&reg, &key, &t, &added) != 0) {
        t = NULL;
        disable("tracking off: the registry is full");
    }
    if (t == NULL) {
        st__reg_drop_pending(&reg, p);
        return;
    }
    if (added) {
        new_object(t, creator);
        t->flags |= p->flags & ST__OBJ_INHERITED;
        if (creator)
            send_event(t, ST__EV_CREATED, 0, 0);
    } else if (creator && !(t->flags & ST__OBJ_CREATOR)) {
        t->flags |= ST__OBJ_CREATOR;
        send_event(t, ST__EV_CREATED, 0, 0);
    }
    st__reg_merge_pending(&reg, p, t);
}

/* The registry's resolver: every pending object. Runs at a dump (agent thread, before measuring),
 * before fork (so that the child knows its inherited holdings and the parent stays the creator),
 * before announcing, and when a hook needs an identity. pre: locked */
static void resolve_all(st__reg_t *r, void *ctx)
{
    (void)ctx;
    int saved = errno;
    for (uint32_t id = 0; id < st__reg_obj_limit(r) && r->n_fdpend != 0; id++) {
        st__obj_t *obj = st__reg_obj(r, id);
        if (obj->used && (obj->flags & ST__OBJ_FDPEND))
            (void)resolve_fd(obj);
    }
    for (uint32_t id = 0; id < st__reg_obj_limit(r) && r->n_pending != 0; id++) {
        st__obj_t *obj = st__reg_obj(r, id);
        if (obj->used && (obj->flags & ST__OBJ_PENDING))
            resolve_one(obj);
    }
    errno = saved;
}

#define PENDING_RESOLVE_AT 4096 /* pending objects after which a hook resolves them all */

/* Records [p, p+len) as a pending object of this kind (no system call). pre: locked */
ST__HOT static void track_pending(void *p, size_t len, uint64_t offset, uint8_t kind,
                                  st__obj_t *hint, int fd, bool creator)
{
    st__obj_t *obj = NULL;
    int rc = st__reg_add_pending(&reg, kind, hint, &obj);
    if (rc == -ENOSPC) {
        st__reg_resolve_all(&reg);
        rc = st__reg_add_pending(&reg, kind, hint, &obj);
    }
    if (rc != 0)
        goto fail;
    if (creator)
        obj->flags |= ST__OBJ_CREATOR;
    obj->fd = fd;
    /* anonymous: the inode is as large as the first mapping; an fd: the object's size is known
     * from its fstat at creation and ftruncate since (and measured again at a dump) */
    obj->size = hint == NULL && fd < 0 ? page_round(len) : 0;
    if (st__reg_map(&reg, obj, (uintptr_t)p, page_round(len), offset) != 0)
        goto fail;
    if (reg.n_pending >= PENDING_RESOLVE_AT)
        st__reg_resolve_all(&reg);
    return;
fail:
    disable("tracking off: the registry is full");
}

/* Records a successful shared mapping. Shared anonymous memory (and /dev/zero) is a new shmem
 * inode that only the VMA names, and a writable mapping of an fd this process created through
 * memfd_create/shm_open is most likely that object: both are recorded as pending (no system call
 * here; see registry.h) and resolved later. Any other fd is identified now with fstat.
 * pre: locked, inside enter(). */
static inline __attribute__((always_inline)) void track_shared(void *p, size_t len, int prot,
                                                               int flags, int fd, off_t off)
{
    st__key_t key;
    st__obj_t *obj = NULL;
    bool added = false, untrusted = false;
    uint64_t offset = (uint64_t)off, size = len;
    char name[ST__REG_NAME_MAX] = "";
    uint8_t anon_kind = (flags & MAP_HUGETLB) ? ST_KIND_HUGETLB : ST_KIND_ANON;
    st__fdinfo_t fi;

    if (flags & MAP_ANONYMOUS) {
        /* the kernel ignores the offset of a shared anonymous mapping: the inode starts at 0 */
        track_pending(p, len, 0, anon_kind, NULL, -1, true);
        return;
    }
    st__obj_t *hint = (prot & PROT_WRITE) ? st__reg_fd_object(&reg, fd) : NULL;
    if (hint != NULL && hint->pending_refs < UINT8_MAX) {
        track_pending(p, len, offset, hint->kind, hint, fd, false);
        return;
    }
    /* identified now: the object created through fd first, so that it stays the creator */
    st__obj_t *created = st__reg_fd_object(&reg, fd);
    if (created != NULL && (created->flags & ST__OBJ_FDPEND))
        (void)resolve_fd(created);
    if (st__prim_fd_stat(fd, &fi) != 0)
        return;
    if (fi.type == ST__FD_DEVZERO) {
        track_pending(p, len, offset, anon_kind, NULL, -1, true);
        return;
    }
    if (fi.type != ST__FD_REG)
        return;
    key = st__key_shmem(ST_KIND_POSIX, fi.dev_major, fi.dev_minor, fi.ino);
    size = fi.size;
    if (!(prot & PROT_WRITE)) {
        /* mincore reports all-resident to a reader that neither owns nor may write the
         * file; geteuid only here, so writable mappings cost no extra syscall */
        uint32_t euid = st__prim_geteuid();
        untrusted = fi.uid != euid && euid != 0;
    }
    if (st__reg_find(&reg, &key) == NULL) {
        int kind;
        if (st__prim_fd_kind(fd, &kind, name, sizeof(name)) != 0)
            return; /* a disk file mapped shared: not shared memory */
        key.kind = (uint8_t)kind;
    }
    if (st__reg_get(&reg, &key, &obj, &added) != 0)
        goto fail;
    if (added) {
        new_object(obj, false);
        if (name[0] != '\0' && st__reg_set_name(&reg, obj, name) != 0)
            goto fail;
    }
    if (size > obj->size)
        obj->size = size;
    if (untrusted)
        obj->flags |= ST__OBJ_UNTRUSTED;
    if (st__reg_map(&reg, obj, (uintptr_t)p, page_round(len), offset) != 0)
        goto fail;
    return;
fail:
    disable("tracking off: the registry is full");
}

/* The start of the page of fast paths (prim.h). */
ST__FAST_FIRST static void fast_paths_start(void) {}

/* The slow half of mmap: every tracked mapping that is not a fast slot's. */
ST__HOT static __attribute__((noinline)) void *mmap_slow(void *addr, size_t len, int prot,
                                                         int flags, int fd, off_t off)
{
    if (!enter_locked())
        return st__prim_mmap(addr, len, prot, flags, fd, off);
    int saved = errno;
    void *p = st__prim_mmap(addr, len, prot, flags, fd, off);
    int err = errno;
    if (p != MAP_FAILED) {
        if ((flags & MAP_TYPE) == MAP_PRIVATE)
            st__reg_unmap(&reg, (uintptr_t)p, page_round(len)); /* MAP_FIXED over tracked memory */
        else
            track_shared(p, len, prot, flags, fd, off);
    }
    st__reg_unlock(&reg);
    errno = p == MAP_FAILED ? err : saved;
    leave();
    return p;
}

/* A fast slot's mapping that st__reg_fast_map refused (a second mapping, an overlap): the table
 * goes into the registry and the mapping takes the slow path. pre: locked, inside enter() */
static __attribute__((noinline)) void mmap_unfast(void *p, size_t len, int prot, int flags, int fd,
                                                  off_t off)
{
    int saved = errno;
    flush_fast();
    track_shared(p, len, prot, flags, fd, off);
    errno = saved;
}

/* Private mappings go straight through. A writable shared mapping of a memfd in the fast table
 * may stay there (registry.h). The fast path leaves errno alone (the raw call sets it only on
 * failure) and so never reads it: glibc's errno is a call into another page of libc. */
ST__FAST static inline void *hook_mmap(void *addr, size_t len, int prot, int flags, int fd,
                                       off_t off)
{
    int type = flags & MAP_TYPE;
    if (type == MAP_PRIVATE &&
        (!(flags & MAP_FIXED) || !st__reg_may_overlap(&reg, (uintptr_t)addr, len)))
        return st__prim_mmap(addr, len, prot, flags, fd, off);
    if (type == MAP_PRIVATE || (flags & MAP_ANONYMOUS) || !(prot & PROT_WRITE) ||
        !st__reg_fast_has_fd(&reg, fd) || !enter_locked_fast())
        return mmap_slow(addr, len, prot, flags, fd, off);
    void *p = st__prim_mmap(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED &&
        st__reg_fast_map(&reg, fd, (uintptr_t)p, page_round(len), (uint64_t)off) != 0)
        mmap_unfast(p, len, prot, flags, fd, off);
    st__reg_unlock(&reg);
    leave();
    return p;
}

ST__FAST ST_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return hook_mmap(addr, len, prot, flags, fd, off);
}

ST_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
    return hook_mmap(addr, len, prot, flags, fd, (off_t)off);
}

/* The slow half of munmap. pre: locked (fast), inside enter() */
ST__HOT static __attribute__((noinline)) int munmap_slow(void *addr, size_t len)
{
    int saved = errno;
    flush_fast();
    int rc = st__prim_munmap(addr, len);
    int err = errno;
    if (rc == 0)
        st__reg_unmap(&reg, (uintptr_t)addr, page_round(len));
    st__reg_unlock(&reg);
    errno = rc == 0 ? saved : err;
    leave();
    return rc;
}

ST__FAST ST_EXPORT int munmap(void *addr, size_t len)
{
    if (!active() || !st__reg_may_overlap(&reg, (uintptr_t)addr, len) || !enter_locked_fast())
        return st__prim_munmap(addr, len);
    /* exactly a fast slot's mapping: the slot forgets it (errno untouched, as in mmap) */
    int slot = st__reg_fast_mapping(&reg, (uintptr_t)addr, page_round(len));
    if (slot < 0)
        return munmap_slow(addr, len);
    int rc = st__prim_munmap(addr, len);
    if (rc == 0)
        st__reg_fast_unmapped(&reg, slot);
    st__reg_unlock(&reg);
    leave();
    return rc;
}

ST_EXPORT void *mremap(void *old_addr, size_t old_len, size_t new_len, int flags, ...)
{
    void *new_addr = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        new_addr = va_arg(ap, void *);
        va_end(ap);
    }
    if (!active() ||
        (!st__reg_may_overlap(&reg, (uintptr_t)old_addr, old_len ? old_len : 1) &&
         !((flags & MREMAP_FIXED) && st__reg_may_overlap(&reg, (uintptr_t)new_addr, new_len))) ||
        !enter_locked())
        return st__prim_mremap(old_addr, old_len, new_len, flags, new_addr);
    int saved = errno;
    void *p = st__prim_mremap(old_addr, old_len, new_len, flags, new_addr);
    int err = errno;
    if (p != MAP_FAILED && st__reg_mremap(&reg, (uintptr_t)old_addr, page_round(old_len),
                                          (uintptr_t)p, page_round(new_len), flags) != 0)
        disable("tracking off: the registry is full");
    st__reg_unlock(&reg);
    errno = p == MAP_FAILED ? err : saved;
    leave();
    return p;
}

/* ---- object creation ------------------------------------------------------------------------- */

/* Records an object this process created (or opened) through fd. pre: inside enter(). */
static void track_fd_object(int fd, const st__fdinfo_t *fip, int kind, const char *name,
                            bool creator)
{
    st__fdinfo_t fi;
    st__obj_t *obj = NULL;
    bool added = false;
    if (fip != NULL)
        fi = *fip;
    else if (st__prim_fd_stat(fd, &fi) != 0)
        return;
    if (fi.type != ST__FD_REG)
        return;
    st__key_t key = st__key_shmem((uint8_t)kind, fi.dev_major, fi.dev_minor, fi.ino);
    if (!hook_lock())
        return;
    if (st__reg_get(&reg, &key, &obj, &added) != 0) {
        st__reg_unlock(&reg);
        disable("tracking off: the registry is full");
        return;
    }
    if (added) {
        new_object(obj, creator);
        if (name != NULL && st__reg_set_name(&reg, obj, name) != 0)
            disable("tracking off: the registry is full");
    } else if (creator) {
        obj->flags |= ST__OBJ_CREATOR;
    }
    st__reg_set_fd(&reg, obj, fd);
    obj->size = fi.size;
    if (creator)
        send_event(obj, ST__EV_CREATED, 0, 0);
    st__reg_unlock(&reg);
}

/* memfd_create's fd as an FDPEND object in the registry, when the fast table did not take it
 * (its number was already there). pre: locked, inside enter() */
static __attribute__((noinline)) void memfd_slow(int fd, uint8_t kind, uint64_t ts_ns,
                                                 uint64_t hash)
{
    st__obj_t *obj = NULL;
    int saved = errno;
    flush_fast();
    if (st__reg_add_fd_pending(&reg, kind, fd, ts_ns, &obj) != 0) {
        disable("tracking off: the registry is full");
    } else {
        obj->b = hash;
        new_object(obj, true);
    }
    errno = saved;
}

/* memfd_create costs no system call of ours: the fd is recorded in the fast table, or as an FDPEND
 * object (registry.h), with its kind, name and the coarse wall clock read before the call, and
 * resolved only when its identity can matter (a dump, fork, spawn, dup, SCM_RIGHTS, a close while a
 * pending mapping names it). A memfd closed before any of these dies with its fd and is forgotten
 * silently. */
ST__FAST ST_EXPORT int memfd_create(const char *name, unsigned int flags)
{
    struct timespec ts = {0, 0};
    if (active())
        hot.clock_gettime(CLOCK_REALTIME_COARSE, &ts); /* the vDSO's */
    int fd = st__prim_memfd_create(name, flags);
    if (fd < 0 || !enter())
        return fd;
    if (hook_lock_fast()) {
        uint8_t kind = (flags & MFD_HUGETLB) ? ST_KIND_HUGETLB : ST_KIND_MEMFD;
        uint64_t ts_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        uint64_t hash = name_hash(name);
        int32_t imp = default_importance;
        uint8_t oflags = ST__OBJ_CREATOR | (imp != ST__IMPORTANCE_NONE ? ST__OBJ_CLAIMED : 0);
        /* the fast table (registry.h); the slow path when the number is already there */
        if (st__reg_fast_add(&reg, fd, kind, ts_ns, hash, oflags, imp) != 0)
            memfd_slow(fd, kind, ts_ns, hash);
        st__reg_unlock(&reg);
    }
    leave();
    return fd;
}

ST_EXPORT int shm_open(const char *name, int oflag, mode_t mode)
{
    shm_open_fn real = NEXT(real_shm_open, "shm_open");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    int fd = real(name, oflag, mode);
    if (fd < 0 || !enter())
        return fd;
    int saved = errno;
    st__fdinfo_t fi;
    if (st__prim_fd_stat(fd, &fi) != 0) {
        errno = saved;
        leave();
        return fd;
    }
    /* Created here when O_EXCL succeeded, or when O_CREAT found it empty (heuristic: a peer
     * opening with O_CREAT before the creator's ftruncate is taken for a creator too). */
    bool creator = (oflag & O_CREAT) && ((oflag & O_EXCL) || fi.size == 0);
    const char *shown = name;
    while (*shown == '/')
        shown++;
    track_fd_object(fd, &fi, ST_KIND_POSIX, shown, creator);
    errno = saved;
    leave();
    return fd;
}

/* ftruncate is where a memfd or POSIX object gets its size; the mmap hook no longer calls fstat on
 * an fd created here, so the size is taken from here. Any other fd costs one relaxed load. */
static __attribute__((noinline)) int ftruncate_slow(int fd, off_t len, int rc)
{
    if (!enter_locked())
        return rc;
    int saved = errno;
    st__obj_t *obj = st__reg_fd_object(&reg, fd);
    if (obj != NULL)
        obj->size = (uint64_t)len;
    st__reg_unlock(&reg);
    errno = saved;
    leave();
    return rc;
}

ST__FAST static inline int hook_ftruncate(int fd, off_t len)
{
    int rc = st__prim_ftruncate(fd, len);
    /* an FDPEND object (or a fast slot) needs no size: its resolution reads it with fstat */
    if (rc != 0 || !active() || st__reg_fast_has_fd(&reg, fd) || !st__reg_fd_keyed_maybe(&reg, fd))
        return rc;
    return ftruncate_slow(fd, len, rc);
}

ST__FAST ST_EXPORT int ftruncate(int fd, off_t len)
{
    return hook_ftruncate(fd, len);
}

ST_EXPORT int ftruncate64(int fd, off64_t len)
{
    return hook_ftruncate(fd, (off_t)len);
}

/* ---- fds: close, duplication, passing ------------------------------------------------------- */

/* Each of these costs one relaxed load (st__reg_fd_maybe) for an fd this process did not create
 * shared memory through. */

/* fd leaves this process's control (dup, SCM_RIGHTS): an FDPEND object gets its identity now,
 * while fd still names it; a duplicate or a sent fd marks it ESCAPED (another fd of ours may
 * hold it after this one closes: the next dump's sweep looks). pre: locked */
static void escape_fd(int fd, bool duplicate)
{
    st__obj_t *obj = st__reg_fd_object(&reg, fd);
    if (obj != NULL && (obj->flags & ST__OBJ_FDPEND))
        obj = resolve_fd(obj);
    if (obj != NULL && duplicate)
        obj->flags |= ST__OBJ_ESCAPED;
}

/* fd is about to be closed: an FDPEND object that a pending mapping names outlives the fd, so it
 * gets its identity now (fstat); one that nothing maps dies with its fd. pre: locked */
ST__HOT static void before_close(int fd)
{
    st__obj_t *obj = st__reg_fd_object(&reg, fd);
    if (obj != NULL && (obj->flags & ST__OBJ_FDPEND) && obj->pending_refs != 0)
        (void)resolve_fd(obj);
}

/* The slow half of close: a tracked fd that is not a fast slot's, or one that is mapped. The
 * close of a tracked fd is a raw close(2), so that a cancellation cannot unwind the thread while
 * it holds the registry lock. pre: locked (fast), inside enter() */
static __attribute__((noinline)) int close_slow(int fd)
{
    int saved = errno;
    flush_fast();
    before_close(fd);
    errno = saved;
    int rc = st__prim_close_call(fd);
    int err = errno;
    st__reg_close_fd(&reg, fd); /* Linux releases the number whatever close returns */
    st__reg_unlock(&reg);
    errno = rc == 0 ? saved : err;
    leave();
    return rc;
}

static __attribute__((noinline)) int close_untracked(int fd)
{
    close_fn real = NEXT(real_close, "close");
    return real != NULL ? real(fd) : st__prim_close_call(fd);
}

/* Any fd not created here goes to libc's close. */
ST__FAST ST_EXPORT int close(int fd)
{
    int slot = st__reg_fast_fd_slot(&reg, fd); /* read again under the lock */
    if ((slot < 0 && !st__reg_fd_indexed(&reg, fd)) || !enter_locked_fast())
        return close_untracked(fd);
    if (slot < 0 || reg.fast_fd1[slot] != fd + 1 || st__reg_fast_mapped(&reg, slot))
        return close_slow(fd);
    /* a fast slot nothing maps: the memfd dies with its fd, unseen (as an FDPEND object); errno
     * untouched, as in mmap */
    int rc = st__prim_close_call(fd);
    st__reg_fast_drop(&reg, slot); /* Linux releases the number whatever close returns */
    st__reg_unlock(&reg);
    leave();
    return rc;
}

/* Whether a tracked fd lies in [first, last]. Lock-free. */
static bool tracked_in(unsigned first, unsigned last)
{
    for (int i = 0; i < ST__REG_FAST; i++) {
        int32_t fd1 = __atomic_load_n(&reg.fast_fd1[i], __ATOMIC_ACQUIRE);
        if (fd1 != 0 && (unsigned)(fd1 - 1) >= first && (unsigned)(fd1 - 1) <= last)
            return true;
    }
    if (last >= reg.max_fds)
        last = reg.max_fds - 1;
    for (unsigned fd = first; fd <= last && fd < reg.max_fds; fd++)
        if (st__reg_fd_indexed(&reg, (int)fd))
            return true;
    return false;
}

static void close_span(unsigned first, unsigned last, bool after)
{
    if (last >= reg.max_fds)
        last = reg.max_fds - 1;
    for (unsigned fd = first; fd <= last && fd < reg.max_fds; fd++) {
        if (!st__reg_fd_indexed(&reg, (int)fd))
            continue;
        if (after)
            st__reg_close_fd(&reg, (int)fd);
        else
            before_close((int)fd);
    }
}

ST_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
    if ((flags & (int)CLOSE_RANGE_CLOEXEC) || !active() || !tracked_in(first, last) ||
        !enter_locked())
        return (int)syscall(SYS_close_range, first, last, flags);
    int saved = errno;
    close_span(first, last, false);
    errno = saved;
    int rc = (int)syscall(SYS_close_range, first, last, flags);
    int err = errno;
    if (rc == 0)
        close_span(first, last, true);
    st__reg_unlock(&reg);
    errno = rc == 0 ? saved : err;
    leave();
    return rc;
}

ST_EXPORT void closefrom(int lowfd)
{
    closefrom_fn real = NEXT(real_closefrom, "closefrom");
    unsigned first = lowfd < 0 ? 0 : (unsigned)lowfd;
    if (!active() || !tracked_in(first, ~0u) || !enter_locked()) {
        if (real != NULL)
            real(lowfd);
        else
            (void)syscall(SYS_close_range, first, ~0u, 0);
        return;
    }
    int saved = errno;
    close_span(first, ~0u, false);
    errno = saved;
    if (real != NULL)
        real(lowfd); /* closes every fd from lowfd or aborts */
    else
        (void)syscall(SYS_close_range, first, ~0u, 0);
    close_span(first, ~0u, true);
    st__reg_unlock(&reg);
    leave();
}

/* The source of a duplication escapes; a target that was a tracked fd is closed by the call. */
static int dup_common(int oldfd, int newfd, int flags, int how)
{
    bool t_old = st__reg_fd_maybe(&reg, oldfd);
    bool t_new = how != 0 && newfd != oldfd && st__reg_fd_maybe(&reg, newfd);
    bool locked = (t_old || t_new) && enter_locked();
    int saved = errno;
    if (locked) {
        if (t_old)
            escape_fd(oldfd, true);
        if (t_new)
            before_close(newfd);
        errno = saved;
    }
    int rc;
    if (how == 0)
        rc = (int)syscall(SYS_dup, oldfd);
    else if (how == 3)
        rc = (int)syscall(SYS_dup3, oldfd, newfd, flags);
#ifdef SYS_dup2
    else
        rc = (int)syscall(SYS_dup2, oldfd, newfd);
#else
    else if (oldfd == newfd)
        rc = (int)syscall(SYS_fcntl, oldfd, F_GETFD) < 0 ? -1 : oldfd;
    else
        rc = (int)syscall(SYS_dup3, oldfd, newfd, 0);
#endif
    if (!locked)
        return rc;
    int err = errno;
    if (rc >= 0 && t_new)
        st__reg_close_fd(&reg, newfd);
    st__reg_unlock(&reg);
    errno = rc >= 0 ? saved : err;
    leave();
    return rc;
}

ST_EXPORT int dup(int fd)
{
    return dup_common(fd, -1, 0, 0);
}

ST_EXPORT int dup2(int oldfd, int newfd)
{
    return dup_common(oldfd, newfd, 0, 2);
}

ST_EXPORT int dup3(int oldfd, int newfd, int flags)
{
    return dup_common(oldfd, newfd, flags, 3);
}

/* fcntl's third argument is passed on as libc reads it (one pointer-sized slot) for every cmd. */
static int hook_fcntl(fcntl_fn real, int fd, int cmd, void *arg)
{
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && st__reg_fd_maybe(&reg, fd) &&
        enter_locked()) {
        int saved = errno;
        escape_fd(fd, true);
        st__reg_unlock(&reg);
        errno = saved;
        leave();
    }
    return real(fd, cmd, arg);
}

ST_EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return hook_fcntl(NEXT(real_fcntl, "fcntl"), fd, cmd, arg);
}

ST_EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    fcntl_fn real = NEXT(real_fcntl64, "fcntl64");
    return hook_fcntl(real != NULL ? real : NEXT(real_fcntl, "fcntl"), fd, cmd, arg);
}

/* Every fd an SCM_RIGHTS message carried escapes (the receiver may map it or outlive us: the
 * object must be announced with its creator). Called after the call succeeded, before it returns
 * to the program (which cannot have closed the fd yet): the kernel has read msg_control then, so a
 * bad pointer fails the call with EFAULT as it would without us, and is never read here. */
static void escape_rights(const struct msghdr *msg)
{
    if (msg == NULL || msg->msg_control == NULL || msg->msg_controllen < sizeof(struct cmsghdr))
        return;
    bool locked = false;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c != NULL;
         c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (!st__reg_fd_maybe(&reg, fd))
                continue;
            if (!locked && !(locked = enter_locked()))
                return;
            escape_fd(fd, true); /* it may come back to us (a socketpair of our own) */
        }
    }
    if (locked) {
        st__reg_unlock(&reg);
        leave();
    }
}

ST_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    sendmsg_fn real = NEXT(real_sendmsg, "sendmsg");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    ssize_t n = real(fd, msg, flags);
    if (n >= 0 && active() && msg != NULL && msg->msg_controllen != 0) {
        int saved = errno;
        escape_rights(msg);
        errno = saved;
    }
    return n;
}

ST_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
    sendmmsg_fn real = NEXT(real_sendmmsg, "sendmmsg");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    int n = real(fd, vec, vlen, flags);
    if (n > 0 && active()) {
        int saved = errno;
        for (unsigned i = 0; i < (unsigned)n; i++)
            if (vec[i].msg_hdr.msg_controllen != 0)
                escape_rights(&vec[i].msg_hdr);
        errno = saved;
    }
    return n;
}

ST_EXPORT int shm_unlink(const char *name)
{
    /* The object lives on while mapped; the registry follows mappings, so nothing to update. */
    shm_unlink_fn real = NEXT(real_shm_unlink, "shm_unlink");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return real(name);
}

/* ---- SysV ------------------------------------------------------------------------------------ */

ST_EXPORT int shmget(key_t key, size_t size, int shmflg)
{
    int id = st__prim_shmget(key, size, shmflg);
    if (id < 0 || !(shmflg & IPC_CREAT) || !enter())
        return id;
    int saved = errno;
    uint64_t segsz;
    int cpid;
    if (st__prim_shm_stat(id, &segsz, &cpid) == 0 && cpid == my_pid) {
        /* Created, but not held until shmat: an event only. */
        st__event_t ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = ST__EV_CREATED;
        ev.kind = ST_KIND_SYSV;
        ev.flags = ST__OBJ_CREATOR;
        ev.importance = default_importance;
        ev.a = ipc_ns;
        ev.b = (uint64_t)id;
        ev.size = segsz;
        st__agent_event(&ev);
    }
    errno = saved;
    leave();
    return id;
}

ST_EXPORT void *shmat(int shmid, const void *addr, int shmflg)
{
    if (!enter_locked())
        return st__prim_shmat(shmid, addr, shmflg);
    int saved = errno;
    void *p = st__prim_shmat(shmid, addr, shmflg);
    int err = errno;
    uint64_t segsz;
    int cpid;
    if (p != (void *)-1 && st__prim_shm_stat(shmid, &segsz, &cpid) == 0) {
        st__key_t key = {ipc_ns, (uint64_t)shmid, ST_KIND_SYSV};
        st__obj_t *obj = NULL;
        bool added = false;
        if (st__reg_get(&reg, &key, &obj, &added) != 0) {
            disable("tracking off: the registry is full");
        } else {
            if (added)
                new_object(obj, cpid == my_pid);
            obj->size = segsz;
            if ((shmflg & SHM_RDONLY) && st__prim_geteuid() != 0)
                obj->flags |= ST__OBJ_UNTRUSTED;
            if (st__reg_map(&reg, obj, (uintptr_t)p, page_round(segsz), 0) != 0)
                disable("tracking off: the registry is full");
        }
    }
    st__reg_unlock(&reg);
    errno = p == (void *)-1 ? err : saved;
    leave();
    return p;
}

ST_EXPORT int shmdt(const void *addr)
{
    if (!enter_locked())
        return st__prim_shmdt(addr);
    int saved = errno;
    int rc = st__prim_shmdt(addr);
    int err = errno;
    st__range_t *r = NULL;
    st__obj_t *obj = rc == 0 ? st__reg_find_addr(&reg, (uintptr_t)addr, &r) : NULL;
    if (obj != NULL && obj->kind == ST_KIND_SYSV) {
        /* shmdt removes every piece of the attachment made at addr: the ranges whose object
         * offset 0 sits at addr. */
        uint64_t base = r->start - r->off;
        uint32_t id = obj->first;
        while (id != 0 && obj->used) {
            st__range_t *x = st__reg_range(&reg, id);
            uint32_t next = x->next;
            if (x->start - x->off == base) {
                st__reg_unmap(&reg, x->start, x->len);
                id = obj->used ? obj->first : 0; /* the list changed: restart */
                continue;
            }
            id = next;
        }
    }
    st__reg_unlock(&reg);
    errno = rc == 0 ? saved : err;
    leave();
    return rc;
}

ST_EXPORT int shmctl(int shmid, int cmd, struct shmid_ds *buf)
{
    /* IPC_RMID only marks the segment; attached processes keep it. Nothing to track. */
    return st__prim_shmctl(shmid, cmd, buf);
}

/* ---- fork ------------------------------------------------------------------------------------ */

/* Announces every object and mapping this process holds (after a fork, after a reconnect), so
 * that the coordinator knows the holder without waiting for the next dump. pre: locked */
static void announce_all(void)
{
    st__reg_resolve_all(&reg);
    for (uint32_t id = 0; id < st__reg_obj_limit(&reg); id++) {
        st__obj_t *obj = st__reg_obj(&reg, id);
        if (!obj->used || (obj->flags & (ST__OBJ_PENDING | ST__OBJ_FDPEND)))
            continue;
        if (obj->flags & ST__OBJ_CREATOR)
            send_event(obj, ST__EV_CREATED, 0, 0);
        for (uint32_t rid = obj->first; rid != 0;) {
            st__range_t *r = st__reg_range(&reg, rid);
            send_event(obj, ST__EV_MAPPED, r->start, r->len);
            rid = r->next;
        }
    }
}

/* The client's connect callback (agent thread): re-announce after a reconnect; the first
 * connection delivers the events queued since start. */
void st__hooks_on_connect(unsigned reconnects)
{
    if (reconnects == 0 || !active())
        return;
    st__in_hook = 1;
    st__reg_lock(&reg);
    announce_all();
    st__reg_unlock(&reg);
    st__in_hook = 0;
}

static void after_fork_child(bool consistent)
{
    my_pid = st__prim_getpid();
    st__prim_after_fork();
    st__reg_fork_child(&reg, consistent);
    if (reg.arena == NULL)
        disable("tracking off: no memory for the registry in a fork child");
    /* A claim belongs to the process that made it: the child holds its inherited objects with
     * the default claim (SHMTRACK_IMPORTANCE, inherited through the environment) or none. */
    for (uint32_t id = 0; id < st__reg_obj_limit(&reg); id++) {
        st__obj_t *obj = st__reg_obj(&reg, id);
        if (!obj->used)
            continue;
        obj->importance = default_importance;
        if (default_importance == ST__IMPORTANCE_NONE)
            obj->flags &= (uint8_t)~ST__OBJ_CLAIMED;
    }
    st__agent_fork_child();
}

/* The registry lock is taken by a pthread_atfork prepare handler registered in the constructor,
 * i.e. before the program's own handlers were registered, so it runs after theirs, right before
 * the kernel fork: a program handler that waits for a thread which waits for our lock cannot
 * deadlock. The child handler runs first in the child. These also cover forks that do not go
 * through the fork symbol. */
static __thread int fork_locked __attribute__((tls_model("initial-exec")));

static void atfork_prepare(void)
{
    fork_locked = active() && hook_lock();
    if (fork_locked) {
        /* the parent made these mappings: it is their creator, the child their holder */
        int saved = st__in_hook;
        st__in_hook = 1;
        st__reg_resolve_all(&reg);
        st__in_hook = saved;
    }
}

static void atfork_parent(void)
{
    if (fork_locked)
        st__reg_unlock(&reg);
    fork_locked = 0;
}

static void atfork_child(void)
{
    if (active() || fork_locked)
        after_fork_child(fork_locked);
    fork_locked = 0;
}

ST_EXPORT pid_t fork(void)
{
    fork_fn real = NEXT(real_fork, "fork");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (!enter())
        return real();
    pid_t pid = real();
    int err = errno;
    if (pid == 0 && active() && hook_lock()) {
        /* fork() (unlike _Fork) leaves a child that may start threads: announcing the inherited
         * objects makes the client connect now, so the child is a known holder. */
        announce_all();
        st__reg_unlock(&reg);
    }
    errno = err;
    leave();
    return pid;
}

ST_EXPORT pid_t _Fork(void)
{
    fork_fn real = NEXT(real__Fork, "_Fork");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (!enter())
        return real();
    bool locked = st__reg_trylock(&reg);
    if (locked)
        st__reg_resolve_all(&reg); /* raw syscalls only: fine in a signal handler */
    pid_t pid = real();
    int err = errno;
    if (pid == 0)
        after_fork_child(locked);
    else if (locked)
        st__reg_unlock(&reg);
    errno = err;
    leave();
    return pid;
}

/* ---- vfork ------------------------------------------------------------------------------------
 */

/* vfork cannot be wrapped in C (the child returns through the caller's frame first, and the
 * parent must find it intact), so on x86-64 it is a few instructions of assembly in the manner of
 * libc's own: the return address is kept in a register (the child and the parent share the
 * stack), the syscall is made, and the child marks the thread's TLS as inside a hook, so that
 * every hook it calls before exec or _exit (close, dup2, mmap ...) passes straight through and
 * touches nothing of the parent's; the parent, resumed, puts the flag back as it was. Elsewhere
 * vfork is not interposed (see docs/preload.md). */
#if defined(__x86_64__) && defined(SYS_vfork)
__asm__(".text\n"
        ".globl vfork\n"
        ".type vfork,@function\n"
        "vfork:\n"
        "    popq %rdi\n"                             /* return address */
        "    movq st__in_hook@gottpoff(%rip), %rdx\n" /* kept by syscall, like rsi and rdi */
        "    movl %fs:(%rdx), %esi\n"
        "    movl $58, %eax\n" /* SYS_vfork */
        "    syscall\n"
        "    pushq %rdi\n"
        "    testq %rax, %rax\n"
        "    jnz 1f\n"
        "    movl $1, %fs:(%rdx)\n" /* child */
        "    ret\n"
        "1:  movl %esi, %fs:(%rdx)\n" /* parent */
        "    cmpq $-4095, %rax\n"
        "    jae 2f\n"
        "    ret\n"
        "2:  negl %eax\n"
        "    pushq %rax\n" /* aligns the stack for the call */
        "    call __errno_location@PLT\n"
        "    popq %rcx\n"
        "    movl %ecx, (%rax)\n"
        "    movq $-1, %rax\n"
        "    ret\n"
        ".size vfork, .-vfork\n");
_Static_assert(SYS_vfork == 58, "x86-64 vfork number");
#endif

/* ---- exec and spawn: the child's environment ------------------------------------------------- */

#define ENV_MAX 2048
#define ENV_BUF 8192

static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; *p != '\0';) {
        while (*p == ':' || *p == ' ')
            p++;
        size_t l = strcspn(p, ": ");
        if (l == n && strncmp(p, word, n) == 0)
            return true;
        p += l;
    }
    return false;
}

/* LD_PRELOAD's value without our library; into buf. */
static void drop_word(const char *list, const char *word, char *buf, size_t len)
{
    size_t n = strlen(word), at = 0;
    for (const char *p = list; *p != '\0';) {
        while (*p == ':' || *p == ' ')
            p++;
        size_t l = strcspn(p, ": ");
        if (l > 0 && !(l == n && strncmp(p, word, n) == 0) && at + l + 2 < len) {
            if (at > 0)
                buf[at++] = ':';
            memcpy(buf + at, p, l);
            at += l;
        }
        p += l;
    }
    buf[at] = '\0';
}

/* Whether envp already follows the policy (or cannot be rewritten within our fixed buffers, in
 * which case it passes unchanged). Uses no large buffers: most launches stop here. */
static bool env_follows(char *const envp[])
{
    if (envp == NULL || self_path[0] == '\0')
        return true;
    size_t n = 0;
    const char *cur = NULL;
    bool has_socket = socket_env[0] == '\0';
    for (; envp[n] != NULL; n++) {
        if (strncmp(envp[n], "LD_PRELOAD=", 11) == 0)
            cur = envp[n] + 11;
        else if (!has_socket && strncmp(envp[n], "SHMTRACK_SOCKET=", 16) == 0)
            has_socket = true;
    }
    if (n + 3 > ENV_MAX)
        return true;
    bool present = cur != NULL && has_word(cur, self_path);
    return follow_children ? (present && has_socket) : !present;
}

/* The environment a child should get: envp itself when it already follows the policy (or when
 * it does not fit our fixed buffers: then it passes unchanged), else a copy in out/buf, which
 * live on the caller's stack (no allocation: this runs in vfork children too). */
static char *const *child_env(char *const envp[], char **out, char *buf)
{
    if (envp == NULL || self_path[0] == '\0')
        return envp;
    static const char key[] = "LD_PRELOAD=";
    const size_t klen = sizeof(key) - 1;
    size_t n = 0, preload_at = (size_t)-1;
    bool has_socket = socket_env[0] == '\0';
    for (; envp[n] != NULL; n++) {
        if (strncmp(envp[n], key, klen) == 0)
            preload_at = n;
        else if (!has_socket && strncmp(envp[n], "SHMTRACK_SOCKET=", 16) == 0)
            has_socket = true;
    }
    if (n + 3 > ENV_MAX)
        return envp;
    const char *cur = preload_at != (size_t)-1 ? envp[preload_at] + klen : NULL;
    bool present = cur != NULL && has_word(cur, self_path);
    if (follow_children ? (present && has_socket) : !present)
        return envp;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (i != preload_at)
            out[m++] = envp[i];
    if (follow_children) {
        size_t need = klen + strlen(self_path) + (cur ? strlen(cur) + 1 : 0) + 1;
        if (need > ENV_BUF)
            return envp;
        memcpy(buf, key, klen);
        strcpy(buf + klen, self_path);
        if (cur != NULL && !present) {
            strcat(buf, ":");
            strcat(buf, cur);
        } else if (cur != NULL) {
            strcpy(buf + klen, cur);
        }
        out[m++] = buf;
        if (!has_socket)
            out[m++] = socket_env;
    } else {
        memcpy(buf, key, klen);
        drop_word(cur, self_path, buf + klen, ENV_BUF - klen);
        if (buf[klen] != '\0')
            out[m++] = buf;
    }
    out[m] = NULL;
    return out;
}

/* One exec or spawn call, made by do_launch with the environment chosen by launch. */
enum { L_EXECVE, L_EXECVPE, L_SPAWN };
typedef struct launch {
    int what;
    const char *path;
    char *const *argv;
    execvpe_fn execvpe_real;
    spawn_fn spawn_real;
    pid_t *pid;
    const posix_spawn_file_actions_t *fa;
    const posix_spawnattr_t *attr;
} launch_t;

static int do_launch(const launch_t *l, char *const *env)
{
    switch (l->what) {
    case L_EXECVE:
        return (int)syscall(SYS_execve, l->path, l->argv, env);
    case L_EXECVPE:
        return l->execvpe_real(l->path, l->argv, env);
    default:
        return l->spawn_real(l->pid, l->path, l->fa, l->attr, l->argv, env);
    }
}

/* The rewrite, in its own frame: the 24 KiB of buffers are only on the stack when needed (a
 * thread with a small stack that launches with a normal environment never pays for them). */
static __attribute__((noinline)) int launch_rewritten(const launch_t *l, char *const envp[])
{
    char *out[ENV_MAX];
    char buf[ENV_BUF];
    int saved = errno;
    char *const *env = child_env(envp, out, buf);
    errno = saved;
    return do_launch(l, env);
}

static int launch(const launch_t *l, char *const envp[])
{
    int saved = errno;
    bool keep = !active() || env_follows(envp);
    errno = saved;
    return keep ? do_launch(l, envp) : launch_rewritten(l, envp);
}

ST_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    launch_t l = {.what = L_EXECVE, .path = path, .argv = argv};
    return launch(&l, envp);
}

ST_EXPORT int execv(const char *path, char *const argv[])
{
    return execve(path, argv, environ);
}

ST_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    execvpe_fn real = NEXT(real_execvpe, "execvpe");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    launch_t l = {.what = L_EXECVPE, .path = file, .argv = argv, .execvpe_real = real};
    return launch(&l, envp);
}

ST_EXPORT int execvp(const char *file, char *const argv[])
{
    return execvpe(file, argv, environ);
}

static int spawn(spawn_fn real, pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                 const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    if (real == NULL)
        return ENOSYS;
    if ((__atomic_load_n(&reg.n_fdpend, __ATOMIC_RELAXED) != 0 ||
         __atomic_load_n(&reg.n_fast, __ATOMIC_RELAXED) != 0) &&
        enter_locked()) {
        /* the child inherits fds: the objects created through them are announced first */
        st__reg_resolve_all(&reg);
        st__reg_unlock(&reg);
        leave();
    }
    launch_t l = {.what = L_SPAWN,
                  .path = path,
                  .argv = argv,
                  .spawn_real = real,
                  .pid = pid,
                  .fa = fa,
                  .attr = attr};
    return launch(&l, envp);
}

ST_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                          const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    return spawn(NEXT(real_posix_spawn, "posix_spawn"), pid, path, fa, attr, argv, envp);
}

ST_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                           const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    return spawn(NEXT(real_posix_spawnp, "posix_spawnp"), pid, file, fa, attr, argv, envp);
}

/* ---- public API (include/shmtrack/shmtrack.h) ------------------------------------------------ */

ST_EXPORT int shmtrack_v1_set_importance(const void *addr, int importance);
ST_EXPORT int shmtrack_v1_label(const void *addr, const char *name);

/* The object mapped at addr, resolved first if pending. pre: locked */
static st__obj_t *find_resolved(const void *addr)
{
    st__obj_t *obj = st__reg_find_addr(&reg, (uintptr_t)addr, NULL);
    if (obj != NULL && (obj->flags & ST__OBJ_PENDING)) {
        resolve_one(obj);
        obj = st__reg_find_addr(&reg, (uintptr_t)addr, NULL);
    }
    return obj;
}

int shmtrack_v1_set_importance(const void *addr, int importance)
{
    if (!active())
        return -ENOSYS;
    if (addr == NULL)
        return -EINVAL;
    if (!enter_locked())
        return -ENOSYS;
    int rc = -ENOENT, saved = errno;
    st__obj_t *obj = find_resolved(addr);
    if (obj != NULL) {
        obj->importance = importance;
        obj->flags |= ST__OBJ_CLAIMED;
        send_event(obj, ST__EV_IMPORTANCE, 0, 0);
        rc = 0;
    }
    st__reg_unlock(&reg);
    errno = saved;
    leave();
    return rc;
}

int shmtrack_v1_label(const void *addr, const char *name)
{
    if (!active())
        return -ENOSYS;
    if (addr == NULL || name == NULL)
        return -EINVAL;
    if (!enter_locked())
        return -ENOSYS;
    int rc = -ENOENT, saved = errno;
    st__obj_t *obj = find_resolved(addr);
    if (obj != NULL) {
        rc = st__reg_set_label(&reg, obj, name);
        if (rc == 0)
            send_event(obj, ST__EV_LABEL, 0, 0);
    }
    st__reg_unlock(&reg);
    errno = saved;
    leave();
    return rc;
}

/* ---- the registry file (SHMTRACK_TEST_REGISTRY) ---------------------------------------------- */

/* A tiny append-only formatter: no stdio in the preload. */
typedef struct out {
    char buf[4096];
    size_t len;
    int fd;
} out_t;

static void out_flush(out_t *o)
{
    st__prim_write_all(o->fd, o->buf, o->len);
    o->len = 0;
}

static void out_str(out_t *o, const char *s)
{
    for (; *s != '\0'; s++) {
        if (o->len == sizeof(o->buf))
            out_flush(o);
        o->buf[o->len++] = *s;
    }
}

static void out_u64(out_t *o, uint64_t v, unsigned base)
{
    char d[24];
    int n = 0;
    do {
        d[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v != 0);
    char s[24];
    for (int i = 0; i < n; i++)
        s[i] = d[n - 1 - i];
    s[n] = '\0';
    out_str(o, s);
}

static void out_i64(out_t *o, int64_t v)
{
    if (v < 0) {
        out_str(o, "-");
        out_u64(o, (uint64_t)(-(v + 1)) + 1, 10);
    } else {
        out_u64(o, (uint64_t)v, 10);
    }
}

static const char *kind_name(unsigned kind)
{
    static const char *const names[] = {
#define XX(e, s) s,
        ST_KIND_MAP(XX)
#undef XX
    };
    return kind < ST_KIND_COUNT ? names[kind] : "?";
}

static st__obj_record_t recs[4096];

/* One line per object and per range:
 *   obj <kind> <a> <b> creator=<0|1> claimed=<0|1> inherited=<0|1> importance=<n|none>
 *       size=<n> mapped=<n> resident=<n|unknown> swapped=<n> source=<s> name=<s> label=<s>
 *   range <kind> <a> <b> <start hex> <end hex> <offset>
 * a is (major << 32 | minor) for shmem kinds (printed as major:minor), the IPC ns for SysV. */
static void write_registry(void)
{
    char path[PATH_MAX + 16];
    size_t l = strlen(registry_file);
    memcpy(path, registry_file, l);
    path[l++] = '.';
    char pid[16];
    int n = 0;
    for (unsigned v = (unsigned)my_pid; v != 0 || n == 0; v /= 10)
        pid[n++] = (char)('0' + v % 10);
    while (n > 0)
        path[l++] = pid[--n];
    path[l] = '\0';
    static out_t o;
    o.len = 0;
    o.fd = st__prim_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (o.fd < 0)
        return;
    st__totals_record_t totals;
    size_t count = 0;
    st__agent_fill_dump(&reg, &totals, recs, sizeof(recs) / sizeof(recs[0]), &count);
    for (size_t i = 0; i < count; i++) {
        const st__obj_record_t *r = &recs[i];
        out_str(&o, "obj ");
        out_str(&o, kind_name(r->kind));
        out_str(&o, " ");
        if (r->kind == ST_KIND_SYSV) {
            out_u64(&o, r->a, 10);
        } else {
            out_u64(&o, r->a >> 32, 10);
            out_str(&o, ":");
            out_u64(&o, r->a & 0xffffffffu, 10);
        }
        out_str(&o, " ");
        out_u64(&o, r->b, 10);
        out_str(&o, " creator=");
        out_u64(&o, (r->flags & ST__REC_CREATOR) != 0, 10);
        out_str(&o, " claimed=");
        out_u64(&o, (r->flags & ST__REC_CLAIMED) != 0, 10);
        out_str(&o, " inherited=");
        out_u64(&o, (r->flags & ST__REC_INHERITED) != 0, 10);
        out_str(&o, " importance=");
        if (r->importance == ST__IMPORTANCE_NONE)
            out_str(&o, "none");
        else
            out_i64(&o, r->importance);
        out_str(&o, " size=");
        out_u64(&o, r->virtual_size, 10);
        out_str(&o, " mapped=");
        out_u64(&o, r->mapped, 10);
        out_str(&o, " resident=");
        if (r->flags & ST__REC_RESIDENT_UNKNOWN)
            out_str(&o, "unknown");
        else
            out_u64(&o, r->resident, 10);
        out_str(&o, " swapped=");
        out_u64(&o, r->swapped, 10);
        out_str(&o, " source=");
        out_str(&o, st__res_source_name((st__res_source_t)r->res_source));
        out_str(&o, " name=");
        out_str(&o, r->name);
        out_str(&o, " label=");
        out_str(&o, r->label);
        out_str(&o, "\n");
    }
    st__reg_lock(&reg);
    for (uint32_t id = 0; id < st__reg_obj_limit(&reg); id++) {
        st__obj_t *obj = st__reg_obj(&reg, id);
        if (!obj->used || (obj->flags & (ST__OBJ_PENDING | ST__OBJ_FDPEND)))
            continue;
        for (uint32_t rid = obj->first; rid != 0;) {
            st__range_t *r = st__reg_range(&reg, rid);
            out_str(&o, "range ");
            out_str(&o, kind_name(obj->kind));
            out_str(&o, " ");
            if (obj->kind == ST_KIND_SYSV) {
                out_u64(&o, obj->a, 10);
            } else {
                out_u64(&o, obj->a >> 32, 10);
                out_str(&o, ":");
                out_u64(&o, obj->a & 0xffffffffu, 10);
            }
            out_str(&o, " ");
            out_u64(&o, obj->b, 10);
            out_str(&o, " ");
            out_u64(&o, r->start, 16);
            out_str(&o, " ");
            out_u64(&o, r->start + r->len, 16);
            out_str(&o, " ");
            out_u64(&o, r->off, 10);
            out_str(&o, "\n");
            rid = r->next;
        }
    }
    st__reg_unlock(&reg);
    uint64_t queued, dropped;
    st__agent_counts(&queued, &dropped);
    out_str(&o, "events ");
    out_u64(&o, queued, 10);
    out_str(&o, " ");
    out_u64(&o, dropped, 10);
    out_str(&o, "\nbytes_per_object ");
    out_u64(&o, st__reg_bytes_per_object(&reg), 10);
    out_str(&o, "\n");
    out_flush(&o);
    st__prim_close(o.fd);
}

/* ---- constructor ----------------------------------------------------------------------------- */

static int parse_int(const char *s, int32_t *out)
{
    int64_t v = 0;
    bool neg = *s == '-';
    if (neg || *s == '+')
        s++;
    if (*s == '\0')
        return -EINVAL;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > INT32_MAX)
            return -EINVAL;
        v = v * 10 + (*s - '0');
    }
    v = neg ? -v : v;
    if (v < INT32_MIN + 1 || v > INT32_MAX)
        return -EINVAL;
    *out = (int32_t)v;
    return 0;
}

static void copy_env(char *dst, size_t len, const char *prefix, const char *value)
{
    size_t p = strlen(prefix), v = strlen(value);
    if (p + v + 1 > len) {
        dst[0] = '\0';
        return;
    }
    memcpy(dst, prefix, p);
    memcpy(dst + p, value, v + 1);
}

/* Is an argument of this process exactly arg? cmdline is NUL-separated (read_lines hands it over
 * as one line unless an argument holds a newline). */
static int has_arg_cb(const char *line, size_t len, void *ctx)
{
    const char *want = ctx;
    size_t n = strlen(want);
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && line[j] != '\0')
            j++;
        if (j - i == n && memcmp(line + i, want, n) == 0)
            return 1;
        i = j + 1;
    }
    return 0;
}

/* A process that refuses to run with a second thread: Chromium's zygote checks that it is
 * single-threaded before it forks and aborts otherwise (SIGTRAP), so the preload must not start
 * its agent thread there. Its hooks still keep the registry (it answers no dump); under `shmtrack
 * run` the coordinator's scan of the command's process tree counts its objects and those of the
 * children it clones. */
static bool must_stay_single_threaded(void)
{
    static char buf[4096];
    return st__prim_read_lines("/proc/self/cmdline", buf, sizeof(buf), has_arg_cb,
                               (void *)"--type=zygote") == 1;
}

__attribute__((constructor)) static void shmtrack_init(void)
{
    st__in_hook = 1;
    default_importance = ST__IMPORTANCE_NONE;
    hot.page_size = st__prim_page_size();
    hot.clock_gettime = clock_gettime;
    void *vdso = dlopen("linux-vdso.so.1", RTLD_LAZY | RTLD_NOLOAD);
    if (vdso != NULL) {
        void *fn = dlsym(vdso, "__vdso_clock_gettime");
        if (fn != NULL)
            hot.clock_gettime = (int (*)(clockid_t, struct timespec *))fn;
    }
#if defined(__x86_64__)
    {
        char *tp;
        __asm__("movq %%fs:0, %0" : "=r"(tp));
        hot.in_hook_off = (char *)&st__in_hook - tp;
    }
#endif
    /* Everything that needs the dynamic linker happens here, once, disabled or not: the
     * pass-through hooks need the next definitions too. */
    NEXT(real_shm_open, "shm_open");
    NEXT(real_shm_unlink, "shm_unlink");
    NEXT(real_fork, "fork");
    NEXT(real__Fork, "_Fork");
    NEXT(real_posix_spawn, "posix_spawn");
    NEXT(real_posix_spawnp, "posix_spawnp");
    NEXT(real_execvpe, "execvpe");
    NEXT(real_close, "close");
    NEXT(real_closefrom, "closefrom");
    NEXT(real_fcntl, "fcntl");
    NEXT(real_fcntl64, "fcntl64");
    NEXT(real_sendmsg, "sendmsg");
    NEXT(real_sendmmsg, "sendmmsg");
    const char *v = st__prim_getenv("SHMTRACK_DISABLE");
    if (v != NULL && strcmp(v, "1") == 0) {
        state = ST_DISABLED;
        st__in_hook = 0;
        return;
    }
    Dl_info info;
    if (dladdr((void *)shmtrack_init, &info) != 0 && info.dli_fname != NULL &&
        strlen(info.dli_fname) < sizeof(self_path))
        strcpy(self_path, info.dli_fname);

    v = st__prim_getenv("SHMTRACK_FOLLOW_CHILDREN");
    follow_children = !(v != NULL && strcmp(v, "0") == 0);
    v = st__prim_getenv("SHMTRACK_IMPORTANCE");
    if (v != NULL && parse_int(v, &default_importance) != 0)
        default_importance = ST__IMPORTANCE_NONE;
    const char *sock = st__prim_getenv("SHMTRACK_SOCKET");
    if (sock != NULL)
        copy_env(socket_env, sizeof(socket_env), "SHMTRACK_SOCKET=", sock);
    v = st__prim_getenv("SHMTRACK_LOG");
    if (v != NULL && strlen(v) < sizeof(log_path))
        strcpy(log_path, v);
    v = st__prim_getenv("SHMTRACK_TEST_REGISTRY");
    if (v != NULL && strlen(v) < sizeof(registry_file))
        strcpy(registry_file, v);
    my_pid = st__prim_getpid();
    if (st__prim_ipc_ns(&ipc_ns) != 0)
        ipc_ns = 0;
    /* SHMTRACK_TEST_MAX_OBJECTS: a small registry, so tests can reach "full" (0: default). */
    int32_t max_objs = 0;
    v = st__prim_getenv("SHMTRACK_TEST_MAX_OBJECTS");
    if (v != NULL && (parse_int(v, &max_objs) != 0 || max_objs < 0))
        max_objs = 0;
    if (st__reg_init(&reg, (uint32_t)max_objs, 0) != 0) {
        state = ST_DISABLED;
        log_line("tracking off: no memory for the registry");
        st__in_hook = 0;
        return;
    }
    st__reg_set_change_cb(&reg, on_change, NULL);
    st__reg_set_resolver(&reg, resolve_all, NULL);
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    if (sock != NULL && must_stay_single_threaded())
        log_line("no agent thread: a Chromium zygote must stay single-threaded; its objects "
                 "are counted by the coordinator's /proc scan of the tree");
    else
        st__agent_start(&reg, sock);
    __atomic_store_n(&state, ST_ACTIVE, __ATOMIC_RELEASE);
    st__in_hook = 0;
}

__attribute__((destructor)) static void shmtrack_fini(void)
{
    if (state != ST_ACTIVE || registry_file[0] == '\0')
        return;
    st__in_hook = 1;
    /* Not in a raw clone child whose lock died with the parent's threads. */
    if (hook_lock()) {
        st__reg_unlock(&reg);
        my_pid = st__prim_getpid();
        write_registry();
    }
    st__in_hook = 0;
}
