# SPDX-License-Identifier: MIT
#
# cmake -DLIB=libshmtrack.so -DLIST=allocator/exports.txt -P check_exports.cmake
# Fails unless the module's dynamic symbol table defines exactly the names in LIST (STYLE 17):
# the interposed libc names and the public API, nothing that could interpose the host by accident.
execute_process(COMMAND nm -D --defined-only ${LIB} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "nm -D failed on ${LIB}")
endif()
string(REGEX MATCHALL "[^\n]+" lines "${out}")
set(have "")
foreach(line IN LISTS lines)
    string(REGEX REPLACE "^.* " "" name "${line}")
    list(APPEND have "${name}")
endforeach()
list(SORT have)
file(STRINGS ${LIST} want)
list(SORT want)
if(NOT have STREQUAL want)
    message(FATAL_ERROR "exported symbols differ from ${LIST}\n have: ${have}\n want: ${want}")
endif()
list(LENGTH have n)
message(STATUS "${n} exported symbols match ${LIST}")
