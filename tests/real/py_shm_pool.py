# SPDX-License-Identifier: MIT
#
# The program under test for real_python_shm: Python's multiprocessing.shared_memory across a Pool.
# The parent creates a POSIX shm block of BLOCK_PAGES pages and writes the first PARENT_PAGES; each of
# WORKERS pool workers attaches by name, writes its own disjoint WORKER_PAGES-page range and keeps the
# block mapped. While every worker still maps it, the parent asks the coordinator for a dump
# (`shmtrack dump --socket $SHMTRACK_SOCKET`) and prints what it measured itself (pages written,
# st_blocks * 512 of /dev/shm/NAME, the pids) as one JSON line for the checker. Exits with EXIT_CODE
# so the checker can see that `shmtrack run` passes the status through.
import json
import os
import subprocess
import sys
from multiprocessing import Pool, shared_memory

PAGE = 4096
BLOCK_PAGES, PARENT_PAGES, WORKERS, WORKER_PAGES = 96, 16, 4, 12
EXIT_CODE = 3
held = None  # the worker's attachment, kept until the pool ends


def work(args):
    global held
    name, index = args
    held = shared_memory.SharedMemory(name=name)
    start = (PARENT_PAGES + index * WORKER_PAGES) * PAGE
    for off in range(start, start + WORKER_PAGES * PAGE, PAGE):
        held.buf[off] = 0x5A
    return os.getpid()


def main():
    shmtrack, trace = sys.argv[1], sys.argv[2]
    shm = shared_memory.SharedMemory(create=True, size=BLOCK_PAGES * PAGE)
    try:
        for off in range(0, PARENT_PAGES * PAGE, PAGE):
            shm.buf[off] = 0xA5
        with Pool(WORKERS) as pool:
            # One task per worker: a barrier-less Pool may give two tasks to one worker, so each
            # worker's pid is collected and the checker accepts any subset of live workers.
            pids = pool.map(work, [(shm.name, i) for i in range(WORKERS)], chunksize=1)
            written = PARENT_PAGES + WORKERS * WORKER_PAGES
            st_bytes = os.stat("/dev/shm/" + shm.name).st_blocks * 512
            subprocess.run([shmtrack, "dump", "--socket", os.environ["SHMTRACK_SOCKET"], "-o", trace],
                           check=True, stdout=subprocess.DEVNULL)
            print(json.dumps({"parent": os.getpid(), "workers": sorted(set(pids)), "name": shm.name,
                              "pages_written": written, "st_bytes": st_bytes,
                              "block": BLOCK_PAGES * PAGE}), flush=True)
    finally:
        shm.close()
        shm.unlink()
    return EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
