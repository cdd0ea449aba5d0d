// A replacement of the global operator new/delete (counting_allocator.cpp) for the allocation
// tests: it counts live allocations process-wide and allocations per thread, and can be told to
// fail the Nth allocation made by the current thread inside a bounded scope.
#pragma once

#include <cstdint>

namespace cktest::alloc {

// Allocations not yet freed, all threads together.
std::int64_t live() noexcept;

// Allocations made so far by the calling thread.
std::int64_t made_by_this_thread() noexcept;

// While alive, the `n`th allocation (1-based) made by the constructing thread fails: operator new
// throws std::bad_alloc, the nothrow forms return null. Other threads are never affected.
class fail_nth {
 public:
  explicit fail_nth(std::int64_t n) noexcept;
  ~fail_nth();
  fail_nth(const fail_nth&) = delete;
  fail_nth& operator=(const fail_nth&) = delete;

  // Whether the failure has happened.
  bool triggered() const noexcept;
};

// Counts the allocations the calling thread makes while it is alive.
class count_scope {
 public:
  count_scope() noexcept : start_(made_by_this_thread()) {}
  std::int64_t count() const noexcept { return made_by_this_thread() - start_; }

 private:
  std::int64_t start_;
};

}  // namespace cktest::alloc
