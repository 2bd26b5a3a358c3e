/* SPDX-License-Identifier: MIT
 *
 * Writing a whole output file safely (private): the commands that produce files (view, export,
 * dump) share this one writer so that none of them can leave a truncated file behind.
 */
#ifndef SHMTRACK_FILEIO_H
#define SHMTRACK_FILEIO_H

#include <stddef.h>

/* Writes len bytes to path atomically: a temporary file in the same directory, fsync, rename
 * (a reader sees the old file or the new one, never a part). path "-" writes stdout.
 * Returns 0 or -errno (-EIO for a short write); on failure nothing is left at a temporary name. */
int st_file_write(const char *path, const void *data, size_t len);

#endif
