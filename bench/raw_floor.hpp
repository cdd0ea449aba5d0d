// The raw floors that cancelkit-bench and the callgrind driver compare against (no Google
// Benchmark dependency).
#pragma once

#include <atomic>
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

}  // namespace bench
