# Runs a program and checks its exit code and output (cmake -P script).
#
#   PROGRAM          the program to run (required)
#   ARGS             its arguments, separated by '|'
#   STDIN_DELAY      if set: after this many seconds a newline is written to the
#                    program's stdin, then stdin is closed; if unset: stdin is empty
#   EXPECT_RC        expected exit code (default 0)
#   EXPECT_IN_ORDER  '|'-separated literal strings that must all appear, in this order
#   EXPECT_ANYWHERE  '|'-separated literal strings that must all appear, anywhere
#   RUN_TIMEOUT      seconds before the program is killed (default 60)
#
# Every missing string is reported, so a failure shows the whole picture.

if(NOT PROGRAM)
  message(FATAL_ERROR "check_output.cmake: -DPROGRAM=... is required")
endif()
if(NOT DEFINED EXPECT_RC)
  set(EXPECT_RC 0)
endif()
if(NOT RUN_TIMEOUT)
  set(RUN_TIMEOUT 60)
endif()
string(REPLACE "|" ";" args "${ARGS}")
string(REPLACE "|" ";" in_order "${EXPECT_IN_ORDER}")
string(REPLACE "|" ";" anywhere "${EXPECT_ANYWHERE}")

if(DEFINED STDIN_DELAY)
  execute_process(
    COMMAND sh -c "sleep ${STDIN_DELAY}; echo"
    COMMAND "${PROGRAM}" ${args}
    RESULTS_VARIABLE results
    OUTPUT_VARIABLE output
    ERROR_VARIABLE errors
    TIMEOUT ${RUN_TIMEOUT})
  list(GET results -1 rc)
else()
  execute_process(
    COMMAND "${PROGRAM}" ${args}
    INPUT_FILE /dev/null
    RESULT_VARIABLE rc
    OUTPUT_VARIABLE output
    ERROR_VARIABLE errors
    TIMEOUT ${RUN_TIMEOUT})
endif()

string(REPLACE ";" " " shown_args "${args}")
message("---- stdout of ${PROGRAM} ${shown_args}\n${output}---- stderr\n${errors}----")

set(problems "")
if(NOT "${rc}" STREQUAL "${EXPECT_RC}")
  string(APPEND problems "  exit code: expected ${EXPECT_RC}, got ${rc}\n")
endif()

set(rest "${output}")
foreach(expected IN LISTS in_order)
  string(FIND "${rest}" "${expected}" at)
  if(at EQUAL -1)
    string(FIND "${output}" "${expected}" anywhere_at)
    if(anywhere_at EQUAL -1)
      string(APPEND problems "  missing: \"${expected}\"\n")
    else()
      string(APPEND problems "  out of order: \"${expected}\"\n")
    endif()
  else()
    string(LENGTH "${expected}" length)
    math(EXPR after "${at} + ${length}")
    string(SUBSTRING "${rest}" ${after} -1 rest)
  endif()
endforeach()
foreach(expected IN LISTS anywhere)
  string(FIND "${output}" "${expected}" at)
  if(at EQUAL -1)
    string(APPEND problems "  missing: \"${expected}\"\n")
  endif()
endforeach()

if(problems)
  message(FATAL_ERROR "output check failed:\n${problems}")
endif()
message(STATUS "output check passed")
