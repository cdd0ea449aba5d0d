# Compiles one compile-fail case and checks the outcome (issue 21, part 2).
#   cmake -DCOMPILER=... -DSOURCE=... -DINCLUDE=... [-DCASE=name] -DEXPECT=fail|pass
#         [-DPATTERN=regex] -P check_compile_fail.cmake
# EXPECT=fail: the compile must fail AND its diagnostics must match PATTERN, so a case that fails
# for an unrelated reason (a typo, a missing header) does not count as a pass.
# EXPECT=pass: the compile must succeed (the control: the same file without a case).
set(args -std=c++20 -fsyntax-only -Wall -Wextra -Werror "-I${INCLUDE}")
if(DEFINED CASE AND NOT CASE STREQUAL "")
  list(APPEND args "-DCASE_${CASE}")
endif()
execute_process(COMMAND "${COMPILER}" ${args} "${SOURCE}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(EXPECT STREQUAL "pass")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "expected to compile, but it failed:\n${err}")
  endif()
  message(STATUS "compiles, as expected")
else()
  if(rc EQUAL 0)
    message(FATAL_ERROR "case '${CASE}' compiled: the discarded result was not diagnosed")
  endif()
  if(NOT err MATCHES "${PATTERN}")
    message(FATAL_ERROR "case '${CASE}' failed, but not with a diagnostic matching '${PATTERN}':\n${err}")
  endif()
  message(STATUS "case '${CASE}' refused, as expected")
endif()
