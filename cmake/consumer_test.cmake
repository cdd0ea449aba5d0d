# Builds and runs cmake/consumer against this build of cancelkit (cmake -P script).
#
#   MODE=package       cmake --install BUILD_DIR --prefix <tmp>, then the consumer
#                      finds it with find_package(cancelkit CONFIG) via
#                      CMAKE_PREFIX_PATH=<tmp>
#   MODE=subdirectory  the consumer pulls SOURCE_DIR in with add_subdirectory()
#
# Other inputs (set by the add_test() calls in the root CMakeLists.txt):
#   SOURCE_DIR BUILD_DIR CONFIG GENERATOR CXX_COMPILER CXX_FLAGS EXE_LINKER_FLAGS

foreach(var IN ITEMS MODE SOURCE_DIR BUILD_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "consumer_test.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT CONFIG)
  set(CONFIG Release)
endif()

set(work "${BUILD_DIR}/consumer-test/${MODE}")
set(prefix "${work}/prefix")
set(consumer_build "${work}/build")
file(REMOVE_RECURSE "${work}")
file(MAKE_DIRECTORY "${work}")

function(run step)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "[${MODE}] ${step}: ${shown}")
  execute_process(COMMAND ${ARGN}
    RESULT_VARIABLE rc
    OUTPUT_VARIABLE out
    ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message("${out}")
    message(FATAL_ERROR "[${MODE}] ${step} failed (${rc}): ${shown}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

set(configure_args
  -S "${SOURCE_DIR}/cmake/consumer"
  -B "${consumer_build}"
  -G "${GENERATOR}"
  "-DMODE=${MODE}"
  "-DCMAKE_BUILD_TYPE=${CONFIG}"
  "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")

if(MODE STREQUAL "package")
  # The installed library was built with this build's flags (sanitizers in the
  # sanitizer presets), so the consumer must be built and linked with them too.
  # The subdirectory mode builds its own copy of the library and needs neither.
  list(APPEND configure_args
    "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
    "-DCMAKE_EXE_LINKER_FLAGS=${EXE_LINKER_FLAGS}")
  run(install "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --config "${CONFIG}" --prefix "${prefix}")
  if(NOT EXISTS "${prefix}/include/cancelkit/cancelkit.hpp")
    message(FATAL_ERROR "[package] install did not produce include/cancelkit/cancelkit.hpp")
  endif()
  foreach(installed IN ITEMS cancelkitConfig.cmake cancelkitConfigVersion.cmake cancelkitTargets.cmake)
    file(GLOB_RECURSE hits "${prefix}/${installed}")
    if(NOT hits)
      message(FATAL_ERROR "[package] install did not produce ${installed}")
    endif()
  endforeach()
  list(APPEND configure_args
    "-DCMAKE_PREFIX_PATH=${prefix}"
    "-DEXPECTED_PREFIX=${prefix}"
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
elseif(MODE STREQUAL "subdirectory")
  list(APPEND configure_args "-DCANCELKIT_SOURCE_DIR=${SOURCE_DIR}")
else()
  message(FATAL_ERROR "MODE must be package or subdirectory, not '${MODE}'")
endif()

run(configure "${CMAKE_COMMAND}" ${configure_args})
run(build "${CMAKE_COMMAND}" --build "${consumer_build}" --config "${CONFIG}" --parallel 2)

# Single-config generators put the program in the build dir, multi-config ones
# in a per-config folder.
find_program(consumer_exe NAMES consumer
  PATHS "${consumer_build}" "${consumer_build}/${CONFIG}" NO_DEFAULT_PATH)
if(NOT consumer_exe)
  message(FATAL_ERROR "[${MODE}] consumer program not found under ${consumer_build}")
endif()
run(run "${consumer_exe}")
string(STRIP "${last_output}" last_output)
message(STATUS "[${MODE}] ${last_output}")
message(STATUS "[${MODE}] consumer check passed")
