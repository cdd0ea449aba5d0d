// The raw floors that cancelkit-bench and the callgrind driver compare against (no Google
// Benchmark dependency).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace bench {

// The same pause as the library's detail/sync.hpp, written again on purpose: the floors must not
// change with the library revision under measurement (scripts/bench-compare builds today's bench/
// against older libraries), and bench/ must stand alone as the comparison's yardstick.
inline void spin_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// The registration floor the issue names: an intrusive list under a one-word spin lock, lock by
// CAS and unlock by plain store (two uncontended read-modify-writes per register+unregister), no
// reference counting. This is what stdexec's inplace_stop_callback does; it has no dispose
// waiting, no lifetime management, no reentrancy rules.
struct raw_node {
  raw_node* next = nullptr;
  raw_node** prev_next = nullptr;
  void (*fn)(raw_node*) = nullptr;
};

class raw_list {
 public:
  static constexpr std::uint32_t locked = 1;
  static constexpr std::uint32_t requested = 2;

  bool add(raw_node* n) noexcept {
    std::uint32_t w = lock();
    if (w & requested) {
      unlock(w);
      return false;
    }
    n->next = head_;
    n->prev_next = &head_;
    if (head_) head_->prev_next = &n->next;
    head_ = n;
    unlock(w);
    return true;
  }

  void remove(raw_node* n) noexcept {
    std::uint32_t w = lock();
    if (n->prev_next) {
      *n->prev_next = n->next;
      if (n->next) n->next->prev_next = n->prev_next;
      n->prev_next = nullptr;
    }
    unlock(w);
  }

  // Sets the flag and runs every node, latest first.
  void request() noexcept {
    std::uint32_t w = lock();
    w |= requested;
    while (raw_node* n = head_) {
      head_ = n->next;
      if (head_) head_->prev_next = &head_;
      n->prev_next = nullptr;
      unlock(w);
      n->fn(n);
      w = lock();
    }
    unlock(w);
  }

 private:
  std::uint32_t lock() noexcept {
    std::uint32_t w = word_.load(std::memory_order_relaxed);
    for (;;) {
      if (!(w & locked) &&
          word_.compare_exchange_weak(w, w | locked, std::memory_order_acquire,
                                      std::memory_order_relaxed))
        return w | locked;
      spin_pause();
      w = word_.load(std::memory_order_relaxed);
    }
  }
  void unlock(std::uint32_t w) noexcept { word_.store(w & ~locked, std::memory_order_release); }

  std::atomic<std::uint32_t> word_{0};
  raw_node* head_ = nullptr;
};

// RAII registration on a raw_list, the floor counterpart of cancellation_callback /
// std::stop_callback.
template <class F>
class raw_callback : raw_node {
 public:
  raw_callback(raw_list& l, F f) : list_(&l), f_(f) {
    this->raw_node::fn = [](raw_node* n) { static_cast<raw_callback*>(n)->f_(); };
    if (!l.add(this)) f_();
  }
  ~raw_callback() { list_->remove(this); }
  raw_callback(const raw_callback&) = delete;
  raw_callback& operator=(const raw_callback&) = delete;

 private:
  raw_list* list_;
  F f_;
};

// ---- pop-once dispatch with per-node completion signalling ----------------------------------
//
// The dispatch floor "a better design" is measured against (issue 20): what a cancel costs when
// it pays ONE lock round trip, not one per callback. add/remove are raw_list's (CAS spin lock,
// plain-store unlock); request() takes the lock once, sets the flag, detaches the whole list and
// unlocks, then for each node, latest first, reads `next`, runs it and signals its completion
// with one release store to the node's own `done` word — the word a disposer (remove() after the
// request) waits on. Per callback: one call, one plain load, one release store (a plain mov on
// x86), no read-modify-write.
//
// What it does NOT do, and why it is still a fair floor:
//  - It is correct single-threaded, and for remove() before request(): that is what the
//    benchmarks exercise. A remove() after the request spins on `done` (it returns at once in
//    single-threaded use, where request() has returned); from inside the node's own callback it
//    would spin forever (no dispatcher-thread check, no reentrancy rule), and it cannot take a
//    detached node back before it runs: once the list is detached, "not yet run" and "running"
//    look the same to remove(). That last point is why cancelkit may not simply copy this design
//    (S8: unregister() must still remove a callback that has not started); the floor says how
//    fast a dispatch can be when it pays no per-callback lock, whatever design gets there.
//  - No reference counting, no reasons, no exception aggregation, no children, no futex wake.
// Its per-callback work is the least any dispatch that lets a disposer wait can do (run it, then
// publish "finished"), so ns/callback at or below it means "as fast as the best known design".
struct raw_detach_node {
  raw_detach_node* next = nullptr;
  raw_detach_node** prev_next = nullptr;
  void (*fn)(raw_detach_node*) = nullptr;
  // 0 until the node's callback has returned (or it was run inline by a refused add()).
  std::atomic<std::uint32_t> done{0};
};

// raw_list's lock protocol, written again rather than shared: raw_list is the yardstick that
// scripts/bench-compare compares across commits, so its code must not move when this one does.
class raw_detach_list {
 public:
  static constexpr std::uint32_t locked = 1;
  static constexpr std::uint32_t requested = 2;

  // Links `n` (latest first). False, with `n->done` already set, when the request came first:
  // the caller runs the callback inline, as raw_callback does.
  bool add(raw_detach_node* n) noexcept {
    std::uint32_t w = lock();
    if (w & requested) {
      unlock(w);
      // relaxed: only the adding thread looks at `done` of a node it never published.
      n->done.store(1, std::memory_order_relaxed);
      return false;
    }
    // relaxed: the node is not yet published; the release unlock below publishes this store
    // together with the links (a reused node starts "not done" again).
    n->done.store(0, std::memory_order_relaxed);
    n->next = head_;
    n->prev_next = &head_;
    if (head_) head_->prev_next = &n->next;
    head_ = n;
    unlock(w);
    return true;
  }

  // Before request(): unlinks under the lock. After it: waits until the node's callback has
  // returned (see the class comment for what that does not cover).
  void remove(raw_detach_node* n) noexcept {
    std::uint32_t w = lock();
    if (!(w & requested)) {
      if (n->prev_next) {
        *n->prev_next = n->next;
        if (n->next) n->next->prev_next = n->prev_next;
        n->prev_next = nullptr;
      }
      unlock(w);
      return;
    }
    unlock(w);
    // acquire: pairs with the dispatcher's release store, so everything the callback did
    // happens-before the caller destroys the node.
    while (n->done.load(std::memory_order_acquire) == 0) spin_pause();
  }

  // Sets the flag and detaches the list under one lock round trip, then runs every node,
  // latest first, signalling each completion.
  void request() noexcept {
    std::uint32_t w = lock();
    raw_detach_node* n = head_;
    head_ = nullptr;
    unlock(w | requested);
    while (n != nullptr) {
      // Read before running: once `done` is stored the node may be destroyed by its owner.
      raw_detach_node* next = n->next;
      n->fn(n);
      // release: the callback's effects happen-before a disposer's acquire load sees 1; the
      // node is not touched after this store.
      n->done.store(1, std::memory_order_release);
      n = next;
    }
  }

 private:
  std::uint32_t lock() noexcept {
    std::uint32_t w = word_.load(std::memory_order_relaxed);
    for (;;) {
      // acquire on success: the critical section sees the previous holder's list writes.
      if (!(w & locked) &&
          word_.compare_exchange_weak(w, w | locked, std::memory_order_acquire,
                                      std::memory_order_relaxed))
        return w | locked;
      spin_pause();
      w = word_.load(std::memory_order_relaxed);
    }
  }
  // release: publishes the critical section's list writes (and the flag) to the next holder.
  void unlock(std::uint32_t w) noexcept { word_.store(w & ~locked, std::memory_order_release); }

  std::atomic<std::uint32_t> word_{0};
  raw_detach_node* head_ = nullptr;
};

// RAII registration on a raw_detach_list (the counterpart of raw_callback).
template <class F>
class raw_detach_callback : raw_detach_node {
 public:
  raw_detach_callback(raw_detach_list& l, F f) : list_(&l), f_(f) {
    this->raw_detach_node::fn = [](raw_detach_node* n) {
      static_cast<raw_detach_callback*>(n)->f_();
    };
    if (!l.add(this)) f_();
  }
  ~raw_detach_callback() { list_->remove(this); }
  raw_detach_callback(const raw_detach_callback&) = delete;
  raw_detach_callback& operator=(const raw_detach_callback&) = delete;

 private:
  raw_detach_list* list_;
  F f_;
};

// ---- pop-once dispatch with one claim per callback (the least that keeps S8) ---------------
//
// raw_detach cannot take a detached node back before it runs; S8 asks for exactly that (and S10
// for a callback that disposes another one still pending). This floor adds what buys it, and
// nothing else: each popped node gets a slot, and the dispatcher moves from slot k to slot k + 1
// with ONE fetch_add on a word that the list owns, so a node taken back may be freed at once
// (the dispatcher never touches it again). The word holds the running slot r (bits 0..7) and,
// for slot j, TAKEN(j) (bit 8 + j) and WAITER(j) (bit 32 + j). Slot 0 starts under the lock
// that pops the batch (the word is 0). remove() of a popped node: j > r, pending, it sets
// TAKEN(j) with a compare-exchange, which fails once r has moved; j == r, running, it sets
// WAITER(j) the same way and waits for the dispatcher's release store of the node's tag; j < r,
// it ran. The fetch_add that ends slot k returns the bits: WAITER(k) asks for that store,
// TAKEN(k + 1) says skip. A batch is at most 24 nodes, popped and tagged under the lock; the
// last slot ends under the next lock hold. Per callback: one pointer copy and one tag store (the
// pop), one fetch_add and one mask test (the claim), one call; no store per callback.
//
// What it does NOT do: no dispatcher-thread check (a remove() from inside the node's own
// callback spins forever), no futex (a remover spins), no reference counting, reasons,
// exception aggregation, children or reentrancy rules. Its per-callback work is the least a
// dispatch can do that lets remove() take back a node of a popped batch: ns/callback at or
// below it means "as fast as a dispatch that keeps S8 can be" on the machine at hand. Where one
// read-modify-write costs about what a lock round trip does, it is close to raw_list's.
struct raw_claim_node {
  raw_claim_node* next = nullptr;
  raw_claim_node** prev_next = nullptr;  // null: not in the list (never added, or popped)
  void (*fn)(raw_claim_node*) = nullptr;
  std::uint64_t tag = 0;  // while popped: `base + slot` of its batch; 0: never popped
};

// raw_list's lock protocol, written again (see raw_detach_list).
class raw_claim_list {
 public:
  static constexpr std::uint32_t locked = 1;
  static constexpr std::uint32_t requested = 2;
  static constexpr unsigned batch = 24;  // TAKEN bits 8..31, WAITER bits 32..55
  static constexpr std::uint64_t running_mask = 0xff;
  static constexpr std::uint64_t taken(unsigned j) noexcept { return std::uint64_t{1} << (8 + j); }
  static constexpr std::uint64_t waiter(unsigned j) noexcept {
    return std::uint64_t{1} << (32 + j);
  }

  // Links `n` (latest first). False when the request came first: the caller runs it inline.
  bool add(raw_claim_node* n) noexcept {
    std::uint32_t w = lock();
    if (w & requested) {
      unlock(w);
      return false;
    }
    n->tag = 0;
    n->next = head_;
    n->prev_next = &head_;
    if (head_) head_->prev_next = &n->next;
    head_ = n;
    unlock(w);
    return true;
  }

  // True iff this call removed the node before its callback started (S8); false after waiting
  // for a callback that was running (S9, another thread only), or for one that ran.
  bool remove(raw_claim_node* n) noexcept {
    std::uint32_t w = lock();
    if (n->prev_next) {  // still in the list
      *n->prev_next = n->next;
      if (n->next) n->next->prev_next = n->prev_next;
      n->prev_next = nullptr;
      unlock(w);
      return true;
    }
    const std::uint64_t k = n->tag - base_;  // wraps to a huge value for a stale tag
    if (k >= batch) {  // never popped, or its batch has ended: it ran, or was taken back
      unlock(w);
      return false;
    }
    const auto j = static_cast<unsigned>(k);
    // acquire: once r has passed j, the dispatcher's release fetch_add that moved it carries
    // the callback's effects.
    std::uint64_t c = claims_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint64_t r = c & running_mask;
      if (j < r) break;  // ran
      // Pending: take it back; running: ask for the completion store. The comparison with the
      // whole word fails if r moved meanwhile. Success publishes nothing the dispatcher needs
      // (acquire only because g++ 12 rejects a failure order stronger than the success order);
      // acquire on failure, as the load above.
      const std::uint64_t bit = j > r ? taken(j) : waiter(j);
      if (claims_.compare_exchange_weak(c, c | bit, std::memory_order_acquire,
                                        std::memory_order_acquire)) {
        const std::uint64_t tag = n->tag;
        n->tag = 0;
        unlock(w);
        if (j > r) return true;
        // acquire: pairs with the dispatcher's release store after the callback returned.
        while (done_.load(std::memory_order_acquire) < tag) spin_pause();
        return false;
      }
    }
    unlock(w);
    return false;
  }

  // Sets the flag, then runs every node, latest first, a batch at a time: pop and tag under
  // the lock (slot 0 starts there), then one fetch_add per later slot.
  void request() noexcept {
    std::uint32_t w = lock() | requested;
    raw_claim_node* slots[batch];
    while (raw_claim_node* n = head_) {
      const std::uint64_t base = base_;
      unsigned count = 0;
      do {
        raw_claim_node* after = n->next;
        n->prev_next = nullptr;
        n->tag = base + count;
        slots[count] = n;
        n = after;
      } while (++count < batch && n != nullptr);
      head_ = n;
      if (n) n->prev_next = &head_;
      // relaxed: removers read it under this lock; this thread's fetch_adds follow it.
      claims_.store(0, std::memory_order_relaxed);
      unlock(w);
      raw_claim_node** slot = slots;  // the running slot, r
      raw_claim_node** const last = slots + (count - 1);
      std::uint64_t attention = waiter(0) | taken(1);  // for the fetch_add that ends slot r
      for (bool run = true; run;) {
        (*slot)->fn(*slot);
        run = false;
        while (slot != last) {  // the last slot ends under the lock below
          // release: the callback's effects happen-before a remover's acquire load that finds
          // r past its slot. The returned word: WAITER(r) asks for the completion store,
          // TAKEN(r + 1) says skip.
          const std::uint64_t c = claims_.fetch_add(1, std::memory_order_release) & attention;
          attention <<= 1;
          ++slot;
          if (c == 0) [[likely]] {
            run = true;
            break;
          }
          const auto j = static_cast<unsigned>(slot - slots);
          // release: as above, for a remover that waits on done_.
          if (c & waiter(j - 1)) done_.store(base + j - 1, std::memory_order_release);
          if (!(c & taken(j))) {
            run = true;
            break;
          }
        }
      }
      const auto k = static_cast<unsigned>(slot - slots);
      w = lock();
      // relaxed: removers set their bits under this lock.
      if (claims_.load(std::memory_order_relaxed) & waiter(k))
        done_.store(base + k, std::memory_order_release);  // release: as above
      base_ = base + batch;  // every tag of this batch is stale from now on
    }
    unlock(w);
  }

 private:
  std::uint32_t lock() noexcept {
    std::uint32_t w = word_.load(std::memory_order_relaxed);
    for (;;) {
      // acquire on success: the critical section sees the previous holder's list writes.
      if (!(w & locked) &&
          word_.compare_exchange_weak(w, w | locked, std::memory_order_acquire,
                                      std::memory_order_relaxed))
        return w | locked;
      spin_pause();
      w = word_.load(std::memory_order_relaxed);
    }
  }
  // release: publishes the critical section's writes (and the flag) to the next holder.
  void unlock(std::uint32_t w) noexcept { word_.store(w & ~locked, std::memory_order_release); }

  std::atomic<std::uint32_t> word_{0};
  raw_claim_node* head_ = nullptr;
  std::uint64_t base_ = 1;  // guarded: the current batch's first tag
  std::atomic<std::uint64_t> claims_{0};
  std::atomic<std::uint64_t> done_{0};  // the tag of the last callback a remover waited for
};

// RAII registration on a raw_claim_list (the counterpart of raw_callback).
template <class F>
class raw_claim_callback : raw_claim_node {
 public:
  raw_claim_callback(raw_claim_list& l, F f) : list_(&l), f_(f) {
    this->raw_claim_node::fn = [](raw_claim_node* n) {
      static_cast<raw_claim_callback*>(n)->f_();
    };
    if (!l.add(this)) f_();
  }
  ~raw_claim_callback() { static_cast<void>(list_->remove(this)); }
  raw_claim_callback(const raw_claim_callback&) = delete;
  raw_claim_callback& operator=(const raw_claim_callback&) = delete;

 private:
  raw_claim_list* list_;
  F f_;
};

// ---- fresh state with non-atomic initialisation (the heap floor) ----------------------------
//
// The floor of "create a source + take a token + destroy both" (issue 20): one heap allocation
// of a block the size of cancelkit's shared state, its fields initialised with plain stores, a
// token that is a plain pointer copy, one delete. No read-modify-write at all: a fresh state is
// visible to no other thread, so nothing needs one until the pointer is published — and here it
// never is.
//
// What it does NOT do: no reference counting (the token does not keep the state alive: it must
// not outlive its source), no orphaning, no sharing between threads, no destructor work beyond
// the free. cancelkit must do more (its token shares ownership of the state and may outlive the
// source), so the target allows it a multiple of this floor (3.0x); the floor says what the
// allocation and initialisation alone cost on this machine.
//
// kStateBytes: 128, cancelkit::detail::state's size with g++ 12 / libstdc++ on x86-64 when this
// floor was written (issue 20). The number is fixed on purpose rather than taken from the
// library (bench/ must not depend on the revision it measures, see spin_pause): an allocation
// of the same size class, whose cache lines the initialisation touches, is what matters.
inline constexpr std::size_t kStateBytes = 128;

// The fields a fresh cancelkit state starts with, in kind: a flag word, two futex words, two
// counts, list heads, a reason, a timer pointer.
struct raw_heap_fields {
  std::atomic<std::uint32_t> word{0};
  std::atomic<std::uint32_t> events{0};
  std::atomic<std::uint32_t> completions{0};
  std::atomic<std::size_t> refs{1};
  std::atomic<std::size_t> cancellers{1};
  void* ext = nullptr;
  void* head = nullptr;
  void* running = nullptr;
  void* children = nullptr;
  void* links = nullptr;
  void* reason = nullptr;
  void* timers = nullptr;
  std::size_t link_count = 0;
};

// raw_heap_fields padded (zero-initialised, like the rest of a real state) to kStateBytes.
struct raw_heap_state : raw_heap_fields {
  unsigned char pad[kStateBytes - sizeof(raw_heap_fields)] = {};

  // acquire: what a real token's check is (one load); nothing else is needed single-threaded.
  bool requested() const noexcept { return (word.load(std::memory_order_acquire) & 2U) != 0; }
};
static_assert(sizeof(raw_heap_state) == kStateBytes,
              "raw_heap_state must stay the size of cancelkit's state (kStateBytes)");

// The token of the heap floor: a plain copy of the state pointer (no RMW, no ownership).
class raw_heap_token {
 public:
  explicit raw_heap_token(const raw_heap_state* s) noexcept : s_(s) {}
  bool requested() const noexcept { return s_->requested(); }

 private:
  const raw_heap_state* s_;
};

// The source of the heap floor: owns the state; one new, one delete.
class raw_heap_source {
 public:
  // std::atomic's constructors and the default member initialisers are plain stores (an
  // atomic object's initialisation is not an atomic operation).
  raw_heap_source() : s_(new raw_heap_state) {}
  ~raw_heap_source() { delete s_; }
  raw_heap_source(const raw_heap_source&) = delete;
  raw_heap_source& operator=(const raw_heap_source&) = delete;

  raw_heap_token token() const noexcept { return raw_heap_token(s_); }

 private:
  raw_heap_state* s_;
};

}  // namespace bench
