// The global operator new/delete replacement behind counting_new.hpp.
#include "counting_new.hpp"

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace cktest::alloc {
namespace {

// relaxed: a statistic read by the test thread after the work it measures was joined or
// synchronised by the test itself; the counter orders nothing.
std::atomic<std::int64_t> live_count{0};
// Trivially initialised, so that using them never allocates.
constinit thread_local std::int64_t t_allocations = 0;
constinit thread_local std::int64_t t_frees = 0;
constinit thread_local std::int64_t t_countdown = 0;  // 0: off; k: the kth allocation fails
constinit thread_local bool t_triggered = false;

// True if this allocation is the one to fail.
bool should_fail() noexcept {
  if (t_countdown == 0) return false;
  if (--t_countdown != 0) return false;
  t_triggered = true;
  return true;
}

void* allocate(std::size_t size, std::size_t align) noexcept {
  if (should_fail()) return nullptr;
  if (size == 0) size = 1;
  void* p = nullptr;
  if (align <= alignof(std::max_align_t)) {
    p = std::malloc(size);
  } else {
    p = std::aligned_alloc(align, (size + align - 1) / align * align);
  }
  if (p != nullptr) {
    live_count.fetch_add(1, std::memory_order_relaxed);
    ++t_allocations;
  }
  return p;
}

void* allocate_or_throw(std::size_t size, std::size_t align) {
  void* p = allocate(size, align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void deallocate(void* p) noexcept {
  if (p == nullptr) return;
  live_count.fetch_sub(1, std::memory_order_relaxed);
  ++t_frees;
  std::free(p);
}

}  // namespace

std::int64_t live() noexcept { return live_count.load(std::memory_order_relaxed); }
std::int64_t thread_allocations() noexcept { return t_allocations; }
std::int64_t thread_net() noexcept { return t_allocations - t_frees; }
void arm_failure(std::int64_t n) noexcept {
  t_countdown = n;
  t_triggered = false;
}
void disarm() noexcept { t_countdown = 0; }
bool failure_triggered() noexcept { return t_triggered; }

}  // namespace cktest::alloc

namespace {
constexpr std::size_t plain = alignof(std::max_align_t);
std::size_t to_size(std::align_val_t a) noexcept { return static_cast<std::size_t>(a); }
}  // namespace

using cktest::alloc::allocate;
using cktest::alloc::allocate_or_throw;
using cktest::alloc::deallocate;

void* operator new(std::size_t n) { return allocate_or_throw(n, plain); }
void* operator new[](std::size_t n) { return allocate_or_throw(n, plain); }
void* operator new(std::size_t n, std::align_val_t a) { return allocate_or_throw(n, to_size(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocate_or_throw(n, to_size(a)); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return allocate(n, plain); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return allocate(n, plain); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(n, to_size(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(n, to_size(a));
}

void operator delete(void* p) noexcept { deallocate(p); }
void operator delete[](void* p) noexcept { deallocate(p); }
void operator delete(void* p, std::size_t) noexcept { deallocate(p); }
void operator delete[](void* p, std::size_t) noexcept { deallocate(p); }
void operator delete(void* p, std::align_val_t) noexcept { deallocate(p); }
void operator delete[](void* p, std::align_val_t) noexcept { deallocate(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { deallocate(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { deallocate(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { deallocate(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { deallocate(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { deallocate(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  deallocate(p);
}
