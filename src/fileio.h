/* SPDX-License-Identifier: MIT
 *
 * Writing a whole output file safely (private): the commands that produce files (view, export,
 * dump) share this one writer so that none of them can leave a truncated file behind.
 */
#ifndef SHMTRACK_FILEIO_H
#define SHMTRACK_FILEIO_H

#include <stdbool.h>
#include <stddef.h>

/* Writes len bytes to path atomically: a temporary file in the same directory, fsync, rename
 * (a reader sees the old file or the new one, never a part). path "-" writes stdout; a special
 * file (st_file_is_special) is opened and written in place.
 * Returns 0 or -errno (-EIO for a short write); on failure nothing is left at a temporary name. */
int st_file_write(const char *path, const void *data, size_t len);

/* Whether path names something that is not a regular file or a directory (a character device
 * such as /dev/null, a FIFO, a socket): such a target is written in place, never replaced by a
 * rename (which would turn /dev/null into a regular file). Follows symlinks. */
bool st_file_is_special(const char *path);

#endif
