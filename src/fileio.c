/* SPDX-License-Identifier: MIT
 *
 * st_file_write(): see fileio.h.
 */
#include "fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_fd(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

bool st_file_is_special(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
}

int st_file_write(const char *path, const void *data, size_t len)
{
    if (strcmp(path, "-") == 0) {
        int rc = write_fd(STDOUT_FILENO, data, len);
        fflush(stdout);
        return rc;
    }
    if (st_file_is_special(path)) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        int rc = write_fd(fd, data, len);
        if (close(fd) != 0 && rc == 0)
            rc = -errno;
        return rc;
    }
    size_t n = strlen(path) + sizeof(".tmp.XXXXXX");
    char *tmp = malloc(n);
    if (tmp == NULL)
        return -ENOMEM;
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0)
        rc = write_fd(fd, data, len);
    /* mkostemp creates 0600; an output file gets the usual mode, as fopen would give it */
    mode_t mask = umask(0);
    umask(mask);
    if (rc == 0 && fchmod(fd, 0666 & ~mask) != 0)
        rc = -errno;
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0 && fd >= 0)
        unlink(tmp);
    free(tmp);
    return rc;
}
