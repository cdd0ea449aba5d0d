# CTest "bench_callgrind_driver_smoke" (label bench): every operation of the callgrind driver
# runs natively (a few iterations) and exits 0. Valgrind itself is not needed in CI.
#
#   cmake -DDRIVER=<cancelkit-bench-callgrind> -P callgrind_smoke.cmake
cmake_minimum_required(VERSION 3.21)
execute_process(COMMAND "${DRIVER}" --list RESULT_VARIABLE rc OUTPUT_VARIABLE listing)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "callgrind driver: --list exited with ${rc}")
endif()
string(REGEX REPLACE "\t[^\n]*" "" names "${listing}")
string(REPLACE "\n" ";" names "${names}")
set(ran 0)
foreach(op IN LISTS names)
  if(op STREQUAL "")
    continue()
  endif()
  execute_process(COMMAND "${DRIVER}" "${op}" 100 RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "callgrind driver: ${op} exited with ${rc}: ${out}${err}")
  endif()
  math(EXPR ran "${ran} + 1")
endforeach()
if(ran LESS 10)
  message(FATAL_ERROR "callgrind driver: only ${ran} operations listed")
endif()
message(STATUS "callgrind driver: ${ran} operations ran")
