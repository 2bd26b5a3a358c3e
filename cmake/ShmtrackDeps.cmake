# SPDX-License-Identifier: MIT
#
# Finds the Debian-packaged dependencies and fails with the package name to install when one is
# missing. Each result is an imported target; nothing here touches global include paths.
find_package(PkgConfig)
set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)

function(shmtrack_missing what package)
    message(FATAL_ERROR "shmtrack needs ${what}: install it with `apt-get install ${package}` "
                        "(or run tools/demo.sh, which installs what is missing)")
endfunction()

if(NOT PKG_CONFIG_FOUND)
    shmtrack_missing("pkg-config" "pkg-config")
endif()

pkg_check_modules(JANSSON IMPORTED_TARGET jansson)
if(NOT JANSSON_FOUND)
    shmtrack_missing("jansson" "libjansson-dev")
endif()

find_path(UTHASH_INCLUDE_DIR uthash.h)
if(NOT UTHASH_INCLUDE_DIR)
    shmtrack_missing("uthash" "uthash-dev")
endif()
add_library(shmtrack_uthash INTERFACE)
target_include_directories(shmtrack_uthash SYSTEM INTERFACE ${UTHASH_INCLUDE_DIR})

if(BUILD_TESTING)
    pkg_check_modules(CMOCKA IMPORTED_TARGET cmocka)
    if(NOT CMOCKA_FOUND)
        shmtrack_missing("cmocka (for the tests; -DBUILD_TESTING=OFF skips them)" "libcmocka-dev")
    endif()
endif()

# `shmtrack serve`'s HTTP server.
pkg_check_modules(MHD IMPORTED_TARGET libmicrohttpd)
if(NOT MHD_FOUND)
    shmtrack_missing("libmicrohttpd (for `shmtrack serve`)" "libmicrohttpd-dev")
endif()
find_package(Threads REQUIRED)
