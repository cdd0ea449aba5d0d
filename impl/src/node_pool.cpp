// Per-thread cache of small callback blocks (see detail/callback_storage.hpp).
//
// A block freed on a thread goes to that thread's cache (up to `max_cached` blocks) and is reused
// by the next small registration on that thread; the cache is returned to the heap when the
// thread exits. No locking: each cache is touched by its own thread only.
#include <cancelkit/detail/callback_storage.hpp>

#include <new>

namespace cancelkit::detail {
namespace {

constexpr unsigned max_cached = 64;

struct free_block {
  free_block* next;
};

struct block_cache {
  free_block* head = nullptr;
  unsigned count = 0;
  bool alive = true;  // false once this thread's cache was destroyed (thread/process exit)

  ~block_cache() {
    alive = false;
    while (head) {
      free_block* b = head;
      head = b->next;
      ::operator delete(static_cast<void*>(b), std::align_val_t{small_block_align});
    }
    count = 0;
  }
};

block_cache& cache() noexcept {
  thread_local block_cache c;
  return c;
}

}  // namespace

void* allocate_small_block() {
  block_cache& c = cache();
  if (c.alive && c.head) {
    free_block* b = c.head;
    c.head = b->next;
    --c.count;
    return b;
  }
  return ::operator new(small_block_size, std::align_val_t{small_block_align});
}

void deallocate_small_block(void* block) noexcept {
  block_cache& c = cache();
  if (c.alive && c.count < max_cached) {
    c.head = ::new (block) free_block{c.head};
    ++c.count;
    return;
  }
  ::operator delete(block, std::align_val_t{small_block_align});
}

}  // namespace cancelkit::detail
