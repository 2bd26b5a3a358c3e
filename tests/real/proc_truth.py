# SPDX-License-Identifier: MIT
#
# The real-program tests' own view of shared memory, read from /proc by the test and never by
# shmtrack's code: the process tree under a pid (parent links in /proc/PID/stat), and every shared
# memory object its processes map or hold an fd to, once per kernel identity, with the kernel's
# own count of its pages.
#
# Identity: (st_dev, st_ino) of the backing inode from fstat on /proc/PID/map_files/START-END (a
# mapping) or /proc/PID/fd/N (a descriptor); SysV by (ipc namespace inode, shmid). Both are opened
# by the test, so the key "<kind>:<major>:<minor>:<ino>" / "sysv:<ns>:<shmid>" is DESIGN §1's
# spelled from the kernel's numbers.
#
# Resident bytes: st_blocks * 512 of that open file. Shared anonymous memory, memfd, SysV and
# /dev/shm files all live on shmem (tmpfs), whose inode's i_blocks counts the pages allocated to
# the object, resident or swapped: one number per object, however many processes map it and
# whichever of them touched which page (a VMA's Rss in smaps only counts the pages that process's
# own page tables map, so no per-process figure is exact for a shared object). With no swap in
# use (checked: the objects' Swap in smaps and SwapTotal-SwapFree), allocated == resident, so
# this is the exact resident size the dump must report. map_files needs CAP_SYS_ADMIN (the tests
# run as root, like tools/deps.sh).
import os
import re

PAGE = 4096


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(root, include_root=True):
    """root and all its descendants (by parent links), sorted."""
    kids = children_map()
    out, queue = [], [root]
    while queue:
        p = queue.pop()
        out.append(p)
        queue.extend(kids.get(p, []))
    return sorted(p for p in out if include_root or p != root)


def swap_in_use():
    info = dict(re.findall(r"^(\w+):\s+(\d+)", open("/proc/meminfo").read(), re.M))
    return int(info["SwapTotal"]) - int(info["SwapFree"])


def kind_of(name):
    if name.startswith("/SYSV"):
        return "sysv"
    if name.startswith("/dev/zero"):
        return "anon"
    if name.startswith("/memfd:"):
        return "memfd"
    if name.startswith("/anon_hugepage"):
        return "hugetlb"
    if name.startswith("/dev/shm/"):
        return "posix"
    return None


def _add(objs, key, kind, name, blocks, pid, mapped):
    o = objs.setdefault(key, {"key": key, "kind": kind, "name": name, "resident": blocks * 512,
                              "holders": {}, "virtual": 0})
    o["resident"] = max(o["resident"], blocks * 512)
    o["holders"][pid] = o["holders"].get(pid, 0) + mapped


def objects(pids):
    """key -> {kind, name, resident, holders {pid: bytes mapped}} over these pids' shared memory
    mappings (shmem-backed, MAP_SHARED) and memfd / /dev/shm descriptors. Processes that vanish
    while read are left out."""
    objs = {}
    for pid in pids:
        try:
            ipcns = os.stat(f"/proc/{pid}/ns/ipc").st_ino
            maps = open(f"/proc/{pid}/maps").read().splitlines()
            for line in maps:
                f = line.split(None, 5)
                if len(f) < 6 or f[1][3] != "s":
                    continue
                name = f[5]
                kind = kind_of(name)
                if kind is None:
                    continue
                lo, hi = (int(x, 16) for x in f[0].split("-"))
                fd = os.open(f"/proc/{pid}/map_files/{f[0]}", os.O_RDONLY)
                try:
                    st = os.fstat(fd)
                finally:
                    os.close(fd)
                if kind == "sysv":
                    key = f"sysv:{ipcns}:{int(f[4])}"
                else:
                    key = f"{kind}:{os.major(st.st_dev)}:{os.minor(st.st_dev)}:{st.st_ino}"
                _add(objs, key, kind, name, st.st_blocks, pid, hi - lo)
            for n in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{n}")
                except OSError:
                    continue
                kind = "memfd" if target.startswith("/memfd:") else (
                    "posix" if target.startswith("/dev/shm/") else None)
                if kind is None:
                    continue
                try:
                    st = os.stat(f"/proc/{pid}/fd/{n}")
                except OSError:
                    continue
                key = f"{kind}:{os.major(st.st_dev)}:{os.minor(st.st_dev)}:{st.st_ino}"
                _add(objs, key, kind, target, st.st_blocks, pid, 0)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return objs


def dump_objects(report_json, which=-1):
    """The objects of one dump of a `shmtrack report --format json` file, by key."""
    import json
    d = json.load(open(report_json))["dumps"][which]
    return d, {o["key"]: o for o in d["objects"]}


def snapshot(root, include_root=True):
    pids = tree(root, include_root)
    return {"pids": pids, "swap_in_use_kb": swap_in_use(), "objects": objects(pids)}


def bracket(before, dump_objs, after, tolerate_new=()):
    """Checks a dump taken between two snapshots of the same tree: every object both snapshots
    saw is in the dump once, with resident bytes between the two kernel counts (shmem pages only
    grow without swap), and every object of the dump was seen by one of them. Returns the list of
    failures (empty: good)."""
    bad = []
    b, a = before["objects"], after["objects"]
    for key in sorted(set(b) & set(a)):
        o = dump_objs.get(key)
        if o is None:
            bad.append(f"{key} ({b[key]['name']}) missing from the dump")
            continue
        lo, hi = min(b[key]["resident"], a[key]["resident"]), max(b[key]["resident"], a[key]["resident"])
        if not lo <= o["size"] <= hi:
            bad.append(f"{key} ({b[key]['name']}): dump {o['size']} not within /proc [{lo}, {hi}]")
    for key, o in dump_objs.items():
        if key not in b and key not in a and o["kind"] not in tolerate_new:
            bad.append(f"{key} ({o['name']}) in the dump but in neither /proc snapshot")
    return bad


if __name__ == "__main__":
    import json
    import sys
    # proc_truth.py ROOT OUT.json [--no-root]: a snapshot of ROOT's tree
    snap = snapshot(int(sys.argv[1]), "--no-root" not in sys.argv[3:])
    json.dump(snap, open(sys.argv[2], "w"), indent=1)
