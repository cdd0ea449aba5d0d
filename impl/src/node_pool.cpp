// Per-thread caches of fixed-size blocks: the small callback blocks of detail/callback_storage.hpp
// and the blocks of the shared state (detail/state.hpp, `state::operator new`).
//
// A block freed on a thread goes to that thread's cache (up to a fixed count) and is reused by
// the next allocation of its kind on that thread; the cache is returned to the heap when the
// thread exits. No locking: each cache is touched by its own thread only. A block may be freed
// on another thread than the one that allocated it; it then joins the freeing thread's cache.
#include <cancelkit/detail/callback_storage.hpp>
#include <cancelkit/detail/state.hpp>

#include <cstddef>
#include <new>

namespace cancelkit::detail {
namespace {

struct free_block {
  free_block* next;
};

// One thread's cache of blocks of `Size` bytes aligned to `Align`, at most `Max` of them.
template <std::size_t Size, std::size_t Align, unsigned Max>
class block_cache {
 public:
  static_assert(Size >= sizeof(free_block) && Align >= alignof(free_block));

  static void* allocate() {
    block_cache& c = mine();
    if (c.alive_ && c.head_ != nullptr) {
      free_block* b = c.head_;
      c.head_ = b->next;
      --c.count_;
      return b;
    }
    return ::operator new(Size, std::align_val_t{Align});
  }

  static void deallocate(void* block) noexcept {
    block_cache& c = mine();
    if (c.alive_ && c.count_ < Max) {
      c.head_ = ::new (block) free_block{c.head_};
      ++c.count_;
      return;
    }
    ::operator delete(block, std::align_val_t{Align});
  }

  ~block_cache() {
    alive_ = false;  // blocks freed after this (thread or process exit) go to the heap
    while (head_ != nullptr) {
      free_block* b = head_;
      head_ = b->next;
      ::operator delete(static_cast<void*>(b), std::align_val_t{Align});
    }
    count_ = 0;
  }

 private:
  static block_cache& mine() noexcept {
    thread_local block_cache c;
    return c;
  }

  free_block* head_ = nullptr;
  unsigned count_ = 0;
  bool alive_ = true;
};

using small_blocks = block_cache<small_block_size, small_block_align, 64>;

}  // namespace

void* allocate_small_block() { return small_blocks::allocate(); }

void deallocate_small_block(void* block) noexcept { small_blocks::deallocate(block); }

#if CANCELKIT_STATE_CACHE
inline namespace CANCELKIT_CORE_NS {
namespace {

constexpr std::size_t state_block_align =
    alignof(state) > alignof(std::max_align_t) ? alignof(state) : alignof(std::max_align_t);
using state_blocks = block_cache<sizeof(state), state_block_align, state_cache_capacity>;

}  // namespace

// `size` is always sizeof(state): the class is final.
void* state::operator new(std::size_t) { return state_blocks::allocate(); }

void state::operator delete(void* block, std::size_t) noexcept { state_blocks::deallocate(block); }

}  // namespace CANCELKIT_CORE_NS
#endif
}  // namespace cancelkit::detail
