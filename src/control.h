/* SPDX-License-Identifier: MIT
 *
 * The control side of the coordinator protocol (private): what a tool does to get a global dump
 * from a running coordinator (`shmtrack daemon`, `shmtrack run`). One short connection per dump:
 * HELLO as a control peer, DUMP_NOW with the trace flag, then DUMP_DONE and the dump as a one-dump
 * JSON trace in TRACE_CHUNK frames. `shmtrack dump` writes or reports that trace; `shmtrack serve
 * --socket` appends it to the trace it serves. Here so that both speak the protocol the same way.
 */
#ifndef SHMTRACK_CONTROL_H
#define SHMTRACK_CONTROL_H

#include "wire.h"

#include <stddef.h>

/* Asks the coordinator listening on socket_path for a detailed dump now. On success returns 0,
 * fills *done (the coordinator's DUMP_DONE) and *trace (malloc'ed, NUL-terminated, *len bytes of
 * JSON: a trace with one dump). On failure returns a negative errno or ST_E* code and writes a
 * sentence into msg: cannot connect (the errno of connect), no answer in time (-EAGAIN), refused or
 * an unexpected message (-EPROTO), the coordinator's own failure (done->rc; *done is filled),
 * no trace sent (-ENODATA), a trace too large (ST_ETOOBIG) or -ENOMEM. The dump itself may take
 * up to the coordinator's deadline; timeout_ms bounds each wait for the coordinator's answer. */
int st_control_fetch_trace(const char *socket_path, int timeout_ms, st_wire_dump_done_t *done,
                           char **trace, size_t *len, char *msg, size_t msglen);

#endif
