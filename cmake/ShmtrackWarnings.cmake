# SPDX-License-Identifier: MIT
#
# shmtrack_target_defaults(target): the warning set, sanitizers and _GNU_SOURCE that every
# first-party target uses. Called per target so nothing leaks into third-party code.
function(shmtrack_target_defaults target)
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wstrict-prototypes
                                             -Wmissing-prototypes -Wformat=2 -Wno-unused-parameter)
    if(SHMTRACK_WERROR)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
    target_compile_definitions(${target} PRIVATE _GNU_SOURCE)
endfunction()

if(SHMTRACK_SANITIZE)
    add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
    add_link_options(-fsanitize=address,undefined)
endif()
if(SHMTRACK_TSAN)
    add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
    add_link_options(-fsanitize=thread)
endif()
if(SHMTRACK_FUZZ)
    # Coverage for libFuzzer in every first-party target, so the fuzzers see into st_core;
    # the fuzzer binaries add -fsanitize=fuzzer themselves (tests/fuzz/CMakeLists.txt).
    if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
        message(FATAL_ERROR "SHMTRACK_FUZZ needs clang: configure with CC=clang")
    endif()
    add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                        -fno-sanitize-recover=all)
    add_link_options(-fsanitize=address,undefined)
endif()
