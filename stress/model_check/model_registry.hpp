// stress/model_check/model_registry.hpp — how the model checker's test files hand their tests to
// the driver (model_check.cpp), and the model's stand-in for the process-wide timer service.
#pragma once

#ifndef CANCELKIT_SYNC_RELACY
#error "build the model checker with CANCELKIT_SYNC_RELACY defined (see stress/CMakeLists.txt)"
#endif
#include <cancelkit/detail/sync.hpp>  // relacy.hpp first, with its macros undone

#include <cancelkit/timer_service.hpp>

#include <cstddef>

namespace cancelkit_model {

struct test_entry {
  const char* name;
  bool (*run)(rl::test_params&);
};

template <class T>
bool run_test(rl::test_params& p) {
  return rl::simulate<T>(p);
}

// The protocol tests of the layers around the core (library_tests.cpp).
extern const test_entry library_tests[];
extern const std::size_t library_test_count;

// The coroutine awaiters' handshake (coroutine_tests.cpp; issue 18).
extern const test_entry coroutine_tests[];
extern const std::size_t coroutine_test_count;

// What cancelkit::system_timer_service() returns in the model (model_platform.cpp): the library
// falls back to it for a source without a timer service that gets an extension (to_stop_token,
// linked(std::stop_token)). The model has no real threads, so a test that needs it points it at
// a manual_timer_service of its own for the duration of an iteration.
extern cancelkit::timer_service* system_timers;

// The global allocation functions, referenced so that every compiler emits Relacy's inline
// replacements of them (model_platform.cpp).
struct kept_allocation_functions {
  void* (*new_object)(std::size_t);
  void* (*new_array)(std::size_t);
  void (*delete_object)(void*) noexcept;
  void (*delete_array)(void*) noexcept;
};
extern const kept_allocation_functions kept_allocation;

}  // namespace cancelkit_model
