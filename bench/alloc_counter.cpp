// Replaces every form of the global operator new/delete with malloc/free plus a per-thread
// allocation count, so each benchmark can report "allocs/op". Only cancelkit-bench links it; the
// count is thread-local (no shared atomic), so counting does not perturb threaded benchmarks.
// Not test_support/counting_new.cpp (the tests' version, with a global live count and failure
// injection): scripts/bench-compare builds bench/ alone as the yardstick for every revision it
// measures, so bench/ must not reach outside itself.
#include "common.hpp"

#include <cstdlib>
#include <new>

namespace {

constinit thread_local std::int64_t thread_allocations = 0;

void* allocate(std::size_t size, std::size_t align) noexcept {
  if (size == 0) size = 1;
  void* p = nullptr;
  if (align <= alignof(std::max_align_t)) {
    p = std::malloc(size);
  } else {
    const std::size_t rounded = (size + align - 1) / align * align;
    p = std::aligned_alloc(align, rounded);
  }
  if (p != nullptr) ++thread_allocations;
  return p;
}

void* allocate_or_throw(std::size_t size, std::size_t align) {
  void* p = allocate(size, align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

constexpr std::size_t plain = alignof(std::max_align_t);
std::size_t to_size(std::align_val_t a) noexcept { return static_cast<std::size_t>(a); }

}  // namespace

std::int64_t bench::allocations_by_this_thread() noexcept { return thread_allocations; }

void* operator new(std::size_t size) { return allocate_or_throw(size, plain); }
void* operator new[](std::size_t size) { return allocate_or_throw(size, plain); }
void* operator new(std::size_t size, std::align_val_t a) { return allocate_or_throw(size, to_size(a)); }
void* operator new[](std::size_t size, std::align_val_t a) {
  return allocate_or_throw(size, to_size(a));
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return allocate(size, plain); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return allocate(size, plain);
}
void* operator new(std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(size, to_size(a));
}
void* operator new[](std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(size, to_size(a));
}

void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
