/* SPDX-License-Identifier: MIT
 *
 * Unit tests for src/residency.c: the exact sources agree with the pages the test wrote, and the
 * mincore trap (a caller that can neither write nor own a file is told every page is resident)
 * is refused rather than reported.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "residency.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static long page;

static void test_memfd_written_pages(void **state)
{
    int fd = memfd_create("residency", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 10 * page), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pwrite(fd, "x", 1, (off_t)(i * 3) * page), 1);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    st_residency_method_t methods[] = {ST_RESIDENCY_AUTO, ST_RESIDENCY_CACHESTAT,
                                       ST_RESIDENCY_MINCORE};
    st_residency_source_t want[] = {ST_RES_CACHESTAT, ST_RES_CACHESTAT, ST_RES_MINCORE};
    for (int m = 0; m < 3; m++) {
        st_residency_t r;
        assert_int_equal(st_residency_measure_fd(fd, methods[m], &r), 0);
        assert_int_equal(r.resident, 3 * (uint64_t)page);
        assert_int_equal(r.swapped, 0);
        assert_int_equal(r.virtual_size, 10 * (uint64_t)page);
        assert_int_equal(r.ino, st.st_ino);
        assert_int_equal(r.dev, st.st_dev);
        assert_int_equal(r.source, want[m]);
    }
    assert_int_equal(ftruncate(fd, 0), 0);
    st_residency_t r;
    assert_int_equal(st_residency_measure_fd(fd, ST_RESIDENCY_MINCORE, &r), 0);
    assert_int_equal(r.resident, 0);
    close(fd);
    assert_int_equal(st_residency_measure_path("/nonexistent/shmtrack", ST_RESIDENCY_AUTO, &r),
                     -ENOENT);
    assert_string_equal(st_residency_source_name(ST_RES_SMAPS_LOWER_BOUND), "smaps-lower-bound");
}

/* As nobody, a root-owned 0644 file: readable, not writable, not owned. */
static void test_untrusted_caller_refused(void **state)
{
    if (geteuid() != 0) {
        print_message("skipped: needs root to create a file nobody may only read\n");
        skip();
    }
    char path[96];
    snprintf(path, sizeof(path), "/dev/shm/shmtrack-test-residency-%d", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, 0644), 0);
    assert_int_equal(ftruncate(fd, 8 * page), 0);
    assert_int_equal(pwrite(fd, "x", 1, 0), 1);
    close(fd);
    pid_t pid = fork();
    if (pid == 0) {
        if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
            _exit(10);
        int rfd = open(path, O_RDONLY);
        if (rfd < 0)
            _exit(11);
        /* the trap itself: the kernel claims all 8 pages resident (only 1 is) */
        unsigned char vec[8];
        char *m = mmap(NULL, 8 * (size_t)page, PROT_READ, MAP_SHARED, rfd, 0);
        if (m == MAP_FAILED || mincore(m, 8 * (size_t)page, vec) < 0)
            _exit(12);
        int lied = 0;
        for (int i = 0; i < 8; i++)
            lied += vec[i] & 1;
        st_residency_t r;
        int rc_m = st_residency_measure_fd(rfd, ST_RESIDENCY_MINCORE, &r);
        int rc_c = st_residency_measure_fd(rfd, ST_RESIDENCY_CACHESTAT, &r);
        int rc_a = st_residency_measure_fd(rfd, ST_RESIDENCY_AUTO, &r);
        printf("nobody: raw mincore says %d/8 resident; mincore %d cachestat %d auto %d\n", lied,
               rc_m, rc_c, rc_a);
        fflush(stdout);
        _exit(rc_m == -EPERM && rc_c == -EPERM && rc_a == -EPERM ? 0 : 13);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    unlink(path);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    page = sysconf(_SC_PAGESIZE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memfd_written_pages),
        cmocka_unit_test(test_untrusted_caller_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
