/* SPDX-License-Identifier: MIT
 *
 * A program built against the installed package (find_package(shmtrack) / pkg-config): it labels
 * and claims a shared mapping and prints the results, which are -ENOSYS without the preload and 0
 * with it (tests/integration/install_package.sh checks both).
 */
#include <shmtrack/shmtrack.h>

#include <stdio.h>
#include <sys/mman.h>

int main(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 1;
    printf("label=%d importance=%d\n", shmtrack_label(p, "consumer"),
           shmtrack_set_importance(p, 3));
    return 0;
}
