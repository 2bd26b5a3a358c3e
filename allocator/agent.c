/* SPDX-License-Identifier: MIT
 *
 * The transport half of agent.h (private to allocator/): until ipc/client.h is merged, the preload
 * runs "without a coordinator", which DESIGN §6 allows: it keeps its registry, counts the events
 * the hooks hand it and drops them. The counters are what a bounded queue would report as
 * enqueued and dropped; tests read them from the registry file. Wiring ipc/client.h replaces this
 * file's bodies, not its interface.
 */
#include "agent.h"

#include <stddef.h>

static uint64_t queued, dropped;
static st__reg_t *registry;

int st__agent_start(st__reg_t *reg, const char *socket_path)
{
    registry = reg;
    (void)socket_path; /* no client yet: nothing to connect to */
    return 0;
}

void st__agent_event(const st__event_t *ev)
{
    (void)ev;
    __atomic_add_fetch(&queued, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&dropped, 1, __ATOMIC_RELAXED); /* no coordinator: every event drops */
}

void st__agent_fork_child(void)
{
    __atomic_store_n(&queued, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&dropped, 0, __ATOMIC_RELAXED);
}

void st__agent_stop(void)
{
    registry = NULL;
}

void st__agent_counts(uint64_t *q, uint64_t *d)
{
    *q = __atomic_load_n(&queued, __ATOMIC_RELAXED);
    *d = __atomic_load_n(&dropped, __ATOMIC_RELAXED);
}
