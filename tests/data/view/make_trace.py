#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# Writes three_dumps.json, the trace the view/serve/export tests read: a memory-infra JSON trace
# (DESIGN §5) of three dumps in which a ring buffer grows, a worker exits, a POSIX shm object is
# leaked with no holder (and a name that tries to close a <script>), and one edge points at a
# guid nobody reported (a warning). Processes 812 and 813 also report a "malloc" allocator (with
# an "arena" child), which the page shows as an extra overview column. Guids follow src/model.c
# (FNV-1a). Run it to regenerate.
import json
import os

MiB, KiB = 1 << 20, 1 << 10


def fnv(s):
    h = 0xcbf29ce484222325
    for b in s.encode():
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h or 1


def local_guid(pid, name):
    return fnv("%d:%s" % (pid, name))


def scalar(v):
    return {"type": "scalar", "units": "bytes", "value": "%x" % v}


def string(v):
    return {"type": "string", "units": "", "value": v}


OBJECTS = {
    # key: kind, name, creator, virtual size, per-dump size (None: absent), holders per dump
    "memfd:0:1:1027": ("memfd", "ring", 812, 8 * MiB, [2 * MiB, 3 * MiB, 4 * MiB],
                       [{812: (2, None), 813: (0, 1 * MiB), 814: (0, 1 * MiB)},
                        {812: (2, None), 813: (0, 1 * MiB), 814: (0, 2 * MiB)},
                        {812: (2, None), 813: (0, 1 * MiB)}]),
    "anon:0:1:2048": ("anon", "/dev/zero (deleted)", 813, 128 * KiB, [64 * KiB, 64 * KiB, 128 * KiB],
                      [{813: (2, None), 814: (0, 64 * KiB)}, {813: (2, None), 814: (0, 64 * KiB)},
                       {813: (2, None)}]),
    "posix:0:26:11": ("posix", "/dev/shm/leak</script><!--", 814, 1 * MiB, [None, 256 * KiB, 512 * KiB],
                      [{}, {}, {}]),
    "sysv:4026531839:7": ("sysv", "SYSV00000000", 814, 32 * KiB, [32 * KiB, 32 * KiB, None],
                          [{814: (2, None)}, {814: (0, None), 813: (0, 32 * KiB)}, {}]),
}
PROCS = {812: "broker", 813: "worker-a", 814: "worker-b"}
ALIVE = [[812, 813, 814], [812, 813, 814], [812, 813]]

events = [{"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "ts": 0, "args": {"name": n}}
          for pid, n in PROCS.items()]
for d in range(3):
    per_pid = {pid: {"allocators": {}, "graph": []} for pid in ALIVE[d]}
    for key, (kind, name, creator, vsize, sizes, holders) in OBJECTS.items():
        size = sizes[d]
        if size is None:
            continue
        gguid = fnv(key)
        carrier = creator if creator in per_pid else ALIVE[d][0]
        per_pid[carrier]["allocators"]["global/%016x" % gguid] = {
            "guid": "%x" % gguid,
            "attrs": {"size": scalar(size), "virtual_size": scalar(vsize), "swapped_size": scalar(0),
                      "key": string(key), "kind": string(kind), "name": string(name),
                      "creator_pid": string(str(creator)), "label": string("")}}
        for pid, (imp, mapped) in holders[d].items():
            node = "shared_memory/" + key
            guid = local_guid(pid, node)
            per_pid[pid]["allocators"][node] = {
                "guid": "%x" % guid,
                "attrs": {"size": scalar(size), "virtual_size": scalar(vsize),
                          "swapped_size": scalar(0),
                          "mapped_size": scalar(mapped if mapped is not None else size),
                          "key": string(key), "kind": string(kind), "name": string(name)}}
            per_pid[pid]["graph"].append({"source": "%x" % guid, "target": "%x" % gguid,
                                          "type": "ownership", "importance": imp})
    if d == 2:  # an edge to a node nobody reported: the graph processor warns about it
        node = "shared_memory/anon:0:1:9999"
        guid = local_guid(813, node)
        per_pid[813]["allocators"][node] = {"guid": "%x" % guid,
                                            "attrs": {"size": scalar(4 * KiB)}}
        per_pid[813]["graph"].append({"source": "%x" % guid, "target": "%x" % fnv("anon:0:1:9999"),
                                      "type": "ownership", "importance": 0})
    for pid in (812, 813):
        per_pid[pid]["allocators"]["malloc"] = {
            "guid": "%x" % local_guid(pid, "malloc"), "attrs": {"size": scalar((d + 1) * (pid - 811) * MiB)}}
        per_pid[pid]["allocators"]["malloc/arena"] = {
            "guid": "%x" % local_guid(pid, "malloc/arena"), "attrs": {"size": scalar(512 * KiB)}}
    for pid in ALIVE[d]:
        base = {812: 40 * MiB, 813: 20 * MiB, 814: 10 * MiB}[pid] + d * 4 * MiB
        totals = {"resident_set_bytes": base, "private_footprint_bytes": base // 2,
                  "pss_bytes": base * 3 // 4, "uss_bytes": base // 2, "swap_bytes": 0,
                  "rss_shmem_bytes": base // 4}
        events.append({
            "ph": "v", "name": "periodic_interval", "cat": "disabled-by-default-memory-infra",
            "id": "0x%x" % (d + 1), "pid": pid, "tid": 0, "ts": 1000000 * (d + 1),
            "args": {"dumps": {"level_of_detail": "detailed",
                               "process_totals": {k: "%x" % v for k, v in totals.items()},
                               "allocators": per_pid[pid]["allocators"],
                               "allocators_graph": per_pid[pid]["graph"]}}})

trace = {"traceEvents": events,
         "metadata": {"shmtrack": {"version": 1, "policy": "creator", "host": "test",
                                   "kernel": "6.1.0"}}}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "three_dumps.json")
with open(out, "w") as f:
    json.dump(trace, f, indent=1, sort_keys=True)
    f.write("\n")
