# The public header budget (issue 21, part 5).
#   cmake -DCOMPILER=... -DINCLUDE=<impl/include> -DDIR=<this folder> -DBUDGET=1.3 -P check_header_budget.cmake
# 1. `#include <cancelkit/cancelkit.hpp>` preprocesses to at most BUDGET times the lines of a file
#    that includes only the std headers the API needs (std_baseline.cpp). Line counts are stable
#    for one compiler and library version, unlike times (scripts/header-cost reports those).
# 2. No installed header includes the system headers of the wait path or of the CPU intrinsics,
#    nor one of the library's internal headers (impl/src).
set(flags -std=c++20 -E -P "-I${INCLUDE}")
foreach(tu umbrella std_baseline)
  execute_process(COMMAND "${COMPILER}" ${flags} "${DIR}/${tu}.cpp"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "preprocessing ${tu}.cpp failed:\n${err}")
  endif()
  string(REGEX REPLACE "[^\n]" "" newlines "${out}")
  string(LENGTH "${newlines}" lines_${tu})
endforeach()
math(EXPR limit "${lines_std_baseline} * 13 / 10")
if(NOT BUDGET STREQUAL "1.3")
  message(FATAL_ERROR "BUDGET: only 1.3 is implemented (integer arithmetic), got ${BUDGET}")
endif()
math(EXPR permille "${lines_umbrella} * 1000 / ${lines_std_baseline}")
message(STATUS "cancelkit.hpp: ${lines_umbrella} lines; std baseline: ${lines_std_baseline} lines; "
               "ratio ${permille}/1000 (budget ${BUDGET}: at most ${limit} lines)")
if(lines_umbrella GREATER limit)
  message(FATAL_ERROR "cancelkit.hpp preprocesses to ${lines_umbrella} lines, over the budget of "
                      "${limit} (${BUDGET} x ${lines_std_baseline})")
endif()

file(GLOB_RECURSE headers "${INCLUDE}/cancelkit/*.hpp")
set(bad "")
foreach(h IN LISTS headers)
  file(STRINGS "${h}" includes REGEX "^[ \t]*#[ \t]*include")
  foreach(line IN LISTS includes)
    if(line MATCHES "immintrin\\.h|x86intrin\\.h|linux/futex\\.h|unistd\\.h|sys/syscall\\.h|\"core/|source_extension\\.hpp")
      list(APPEND bad "${h}: ${line}")
    endif()
  endforeach()
endforeach()
if(bad)
  list(JOIN bad "\n  " bad_text)
  message(FATAL_ERROR "installed headers include what they must not:\n  ${bad_text}")
endif()
list(LENGTH headers n)
message(STATUS "${n} installed headers: no wait-path system header, intrinsics or internal header")
