// stress/scenarios/common.hpp — small helpers shared by the scenario files.
#pragma once

#include "harness.hpp"

#include <cancelkit/cancelkit.hpp>

#include <atomic>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

namespace stress {

// A fixed-size array of atomic counters, zeroed by reset().
class counters {
 public:
  explicit counters(std::size_t n = 0) { resize(n); }
  void resize(std::size_t n) {
    if (n > size_) {
      c_ = std::make_unique<std::atomic<int>[]>(n);
      size_ = n;
    }
    used_ = n;
    for (std::size_t i = 0; i < n; ++i) c_[i].store(0, std::memory_order_relaxed);
  }
  std::atomic<int>& operator[](std::size_t i) noexcept { return c_[i]; }
  int get(std::size_t i) const noexcept { return c_[i].load(std::memory_order_relaxed); }
  std::size_t size() const noexcept { return used_; }

 private:
  std::unique_ptr<std::atomic<int>[]> c_;
  std::size_t size_ = 0, used_ = 0;
};

// The exception type scenarios use as a cancellation reason: it carries plain (non-atomic)
// fields written by the thread that creates it before cancel(). A thread that reads them after
// observing the request relies on S3/S16 alone for the ordering — TSan checks it.
struct stamped_reason : std::exception {
  stamped_reason(unsigned t, std::uint64_t s) noexcept : tid(t), stamp(s) {}
  const char* what() const noexcept override { return "stamped_reason"; }
  unsigned tid;
  std::uint64_t stamp;
};

// The stamped_reason inside `e`, or null if `e` holds something else.
inline const stamped_reason* as_stamped(const std::exception_ptr& e) {
  if (!e) return nullptr;
  try {
    std::rethrow_exception(e);
  } catch (const stamped_reason& r) {
    return &r;  // lives as long as `e`
  } catch (...) {
    return nullptr;
  }
}

inline bool is_deadline(const std::exception_ptr& e) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const cancelkit::deadline_exceeded&) {
    return true;
  } catch (...) {
    return false;
  }
}

// Identifies the thread a callback ran on.
using thread_tag = std::atomic<std::thread::id>;

}  // namespace stress
