// A replacement of every form of the global operator new/delete (counting_new.cpp): malloc/free
// plus allocation counting and failure injection, for the test executables that must see what
// the library allocates. Linking the object library `cancelkit_counting_new` into an executable
// installs it there; nothing else changes.
//
// Guarantees: counting never allocates (constinit thread_locals and one global atomic), so it
// works during thread start-up and exit; failure injection affects only the thread that armed
// it. Not used by cancelkit-bench, whose sources must stay self-contained (bench/alloc_counter.cpp).
#pragma once

#include <cstdint>

namespace cktest::alloc {

// Allocations not yet freed, all threads together.
std::int64_t live() noexcept;

// Allocations made so far by the calling thread.
std::int64_t thread_allocations() noexcept;

// Allocations minus frees made so far by the calling thread.
std::int64_t thread_net() noexcept;

// Arms failure injection on the calling thread: its `n`th allocation from now (1-based) fails;
// operator new throws std::bad_alloc, the nothrow forms return null. n == 0 disarms.
void arm_failure(std::int64_t n) noexcept;
void disarm() noexcept;

// Whether the armed failure has happened since the last arm_failure() on this thread.
bool failure_triggered() noexcept;

// While alive, the `n`th allocation made by the constructing thread fails (see arm_failure).
class fail_nth {
 public:
  explicit fail_nth(std::int64_t n) noexcept { arm_failure(n); }
  ~fail_nth() { disarm(); }
  fail_nth(const fail_nth&) = delete;
  fail_nth& operator=(const fail_nth&) = delete;

  bool triggered() const noexcept { return failure_triggered(); }
};

// Counts the allocations the calling thread makes while it is alive.
class count_scope {
 public:
  count_scope() noexcept : start_(thread_allocations()) {}
  std::int64_t count() const noexcept { return thread_allocations() - start_; }

 private:
  std::int64_t start_;
};

}  // namespace cktest::alloc
