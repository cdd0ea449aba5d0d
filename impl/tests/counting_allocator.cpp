// Replaces every form of the global operator new/delete with malloc/free plus counting and
// failure injection (see counting_allocator.hpp). Only this test executable links it.
#include "counting_allocator.hpp"

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace cktest::alloc {
namespace {

std::atomic<std::int64_t> live_count{0};
// Trivially initialised, so that using them never allocates.
constinit thread_local std::int64_t thread_count = 0;
constinit thread_local std::int64_t fail_countdown = 0;  // 0: off; k: the kth allocation fails
constinit thread_local bool failure_happened = false;

// True if this allocation is the one to fail.
bool should_fail() noexcept {
  if (fail_countdown == 0) return false;
  if (--fail_countdown != 0) return false;
  failure_happened = true;
  return true;
}

void* allocate(std::size_t size, std::size_t align) noexcept {
  if (should_fail()) return nullptr;
  if (size == 0) size = 1;
  void* p = nullptr;
  if (align <= alignof(std::max_align_t)) {
    p = std::malloc(size);
  } else {
    const std::size_t rounded = (size + align - 1) / align * align;
    p = std::aligned_alloc(align, rounded);
  }
  if (p != nullptr) {
    live_count.fetch_add(1, std::memory_order_relaxed);
    ++thread_count;
  }
  return p;
}

void deallocate(void* p) noexcept {
  if (p == nullptr) return;
  live_count.fetch_sub(1, std::memory_order_relaxed);
  std::free(p);
}

void* allocate_or_throw(std::size_t size, std::size_t align) {
  void* p = allocate(size, align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

std::int64_t live() noexcept { return live_count.load(std::memory_order_relaxed); }
std::int64_t made_by_this_thread() noexcept { return thread_count; }

fail_nth::fail_nth(std::int64_t n) noexcept {
  fail_countdown = n;
  failure_happened = false;
}
fail_nth::~fail_nth() { fail_countdown = 0; }
bool fail_nth::triggered() const noexcept { return failure_happened; }

}  // namespace cktest::alloc

namespace {
constexpr std::size_t plain = alignof(std::max_align_t);
std::size_t to_size(std::align_val_t a) { return static_cast<std::size_t>(a); }
}  // namespace

void* operator new(std::size_t size) { return cktest::alloc::allocate_or_throw(size, plain); }
void* operator new[](std::size_t size) { return cktest::alloc::allocate_or_throw(size, plain); }
void* operator new(std::size_t size, std::align_val_t a) {
  return cktest::alloc::allocate_or_throw(size, to_size(a));
}
void* operator new[](std::size_t size, std::align_val_t a) {
  return cktest::alloc::allocate_or_throw(size, to_size(a));
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return cktest::alloc::allocate(size, plain);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return cktest::alloc::allocate(size, plain);
}
void* operator new(std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return cktest::alloc::allocate(size, to_size(a));
}
void* operator new[](std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return cktest::alloc::allocate(size, to_size(a));
}

void operator delete(void* p) noexcept { cktest::alloc::deallocate(p); }
void operator delete[](void* p) noexcept { cktest::alloc::deallocate(p); }
void operator delete(void* p, std::size_t) noexcept { cktest::alloc::deallocate(p); }
void operator delete[](void* p, std::size_t) noexcept { cktest::alloc::deallocate(p); }
void operator delete(void* p, std::align_val_t) noexcept { cktest::alloc::deallocate(p); }
void operator delete[](void* p, std::align_val_t) noexcept { cktest::alloc::deallocate(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  cktest::alloc::deallocate(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  cktest::alloc::deallocate(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { cktest::alloc::deallocate(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { cktest::alloc::deallocate(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  cktest::alloc::deallocate(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  cktest::alloc::deallocate(p);
}
