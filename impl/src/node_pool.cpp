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

// One thread's cache of blocks of `Size` bytes aligned to `Align`, at most `Max` of them. The
// cache is a constant-initialised thread_local without a destructor, so reaching it costs no
// initialisation check (issue 20: two such checks were a sixth of a source's create + destroy);
// a separate thread_local `cleanup`, constructed when the thread caches its first block, hands
// the blocks back to the heap at thread exit.
template <std::size_t Size, std::size_t Align, unsigned Max>
class block_cache {
 public:
  static_assert(Size >= sizeof(free_block) && Align >= alignof(free_block));

  static void* allocate() {
    cache& c = mine;
    if (free_block* b = c.head) {
      c.head = b->next;
      --c.count;
      return b;
    }
    return ::operator new(Size, std::align_val_t{Align});
  }

  static void deallocate(void* block) noexcept {
    cache& c = mine;
    if (c.count - 1 < Max) [[likely]] {  // the cleanup is registered and there is room
      push(c, block);
      return;
    }
    if (c.count == never_cached) {
      start_cleanup();
      push(c, block);
      return;
    }
    ::operator delete(block, std::align_val_t{Align});  // full, or the thread is exiting
  }

 private:
  // `count`: never_cached (0) until the thread's first cached block, then 1 + the number of
  // blocks cached, and done (no more caching: the cleanup ran) from thread exit on.
  struct cache {
    free_block* head;
    unsigned count;
  };
  static constexpr unsigned never_cached = 0;
  static constexpr unsigned done = ~0u;
  static_assert(Max < done - 1);

  static void push(cache& c, void* block) noexcept {
    c.head = ::new (block) free_block{c.head};
    ++c.count;
  }

  struct cleanup {
    cleanup() noexcept = default;
    cleanup(const cleanup&) = delete;
    cleanup& operator=(const cleanup&) = delete;
    ~cleanup() {
      cache& c = mine;
      c.count = done;  // blocks freed after this (thread or process exit) go to the heap
      while (c.head != nullptr) {
        free_block* b = c.head;
        c.head = b->next;
        ::operator delete(static_cast<void*>(b), std::align_val_t{Align});
      }
    }
  };

  // Registers the thread's cleanup (constructing the thread_local object registers its
  // destructor) and marks the cache in use. Out of line: once per thread.
  [[gnu::noinline]] static void start_cleanup() noexcept {
    thread_local cleanup registered;
    static_cast<void>(registered);
    mine.count = 1;
  }

  static constinit inline thread_local cache mine{nullptr, never_cached};
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
