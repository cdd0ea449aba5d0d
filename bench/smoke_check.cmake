# CTest "bench_smoke" (label bench): runs every benchmark of cancelkit-bench once with a tiny
# minimum time and checks that it ran and reported what the tables need. Not a timing check.
#
#   cmake -DBENCH=<cancelkit-bench> -DOUT=<json file> -P smoke_check.cmake
cmake_minimum_required(VERSION 3.21)
foreach(var BENCH OUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "smoke_check.cmake: -D${var}=... is required")
  endif()
endforeach()

file(REMOVE "${OUT}")
execute_process(
  COMMAND "${BENCH}" --benchmark_min_time=0.001 "--benchmark_out=${OUT}"
          --benchmark_out_format=json --benchmark_format=console
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "bench smoke: cancelkit-bench exited with ${rc}")
endif()
if(NOT EXISTS "${OUT}")
  message(FATAL_ERROR "bench smoke: no JSON output at ${OUT}")
endif()
file(READ "${OUT}" json)
string(JSON count LENGTH "${json}" benchmarks)
if(count LESS 60)
  message(FATAL_ERROR "bench smoke: only ${count} benchmarks reported (expected every family)")
endif()

# Counters every row of a family must report (name prefix -> counter).
set(required_counters
  "check/=allocs/op"
  "register/=allocs/op"
  "contended/=allocs/op"
  "source/=allocs/op"
  "dispatch/cancel/=ns/cancel"
  "dispatch/first_callback/=ns/first"
  "crossthread/roundtrip/=ns/roundtrip"
  "crossthread/wakeup/=us/wakeup")
set(seen_families "")
set(seen_impls "")
math(EXPR last "${count} - 1")
foreach(i RANGE ${last})
  string(JSON entry GET "${json}" benchmarks ${i})
  string(JSON name GET "${entry}" name)
  string(JSON failed ERROR_VARIABLE no_error GET "${entry}" error_occurred)
  if(no_error STREQUAL "NOTFOUND" AND failed)
    string(JSON why ERROR_VARIABLE ignored GET "${entry}" error_message)
    message(FATAL_ERROR "bench smoke: ${name} failed: ${why}")
  endif()
  string(JSON iterations GET "${entry}" iterations)
  if(iterations LESS 1)
    message(FATAL_ERROR "bench smoke: ${name} ran ${iterations} iterations")
  endif()
  string(REPLACE "/" ";" parts "${name}")
  list(GET parts 0 family)
  list(GET parts 2 impl)
  list(APPEND seen_families "${family}")
  list(APPEND seen_impls "${family}:${impl}")
  foreach(rule IN LISTS required_counters)
    string(REPLACE "=" ";" rule "${rule}")
    list(GET rule 0 prefix)
    list(GET rule 1 counter)
    string(FIND "${name}" "${prefix}" at)
    if(at EQUAL 0)
      string(JSON value ERROR_VARIABLE missing GET "${entry}" "${counter}")
      if(NOT missing STREQUAL "NOTFOUND")
        message(FATAL_ERROR "bench smoke: ${name} did not report counter ${counter}")
      endif()
    endif()
  endforeach()
endforeach()

foreach(family check register dispatch crossthread contended source)
  if(NOT family IN_LIST seen_families)
    message(FATAL_ERROR "bench smoke: family ${family} is missing")
  endif()
  if(NOT "${family}:cancelkit" IN_LIST seen_impls)
    message(FATAL_ERROR "bench smoke: family ${family} has no cancelkit row")
  endif()
  if(NOT "${family}:std" IN_LIST seen_impls)
    message(FATAL_ERROR "bench smoke: family ${family} has no std row")
  endif()
endforeach()
# The named floors that bench/tools/targets.py's issue 20 targets compare against.
foreach(floor "dispatch:raw_detach" "dispatch:raw_claim" "source:raw_heap" "register:raw" "dispatch:raw"
              "crossthread:raw" "contended:raw")
  if(NOT floor IN_LIST seen_impls)
    message(FATAL_ERROR "bench smoke: floor ${floor} is missing (bench/tools/targets.py needs it)")
  endif()
endforeach()
message(STATUS "bench smoke: ${count} benchmarks ran and reported their counters")
