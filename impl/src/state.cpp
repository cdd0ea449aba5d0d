// impl/src/state.cpp — the slow paths of the core that public inline code calls.
//
// destroy_chain (from state::release, when the last reference goes), wait_for_completion (from
// state::dispose, when the callback runs on another thread) and wait (from the token's blocking
// and timed waits) are called from the installed headers' inline functions, so each needs exactly
// one out-of-line definition that every program links: here. The rest of the cold paths are
// inline in core/state_slow_paths.hpp, so the library's own callers (cancel(), the timers)
// inline them. Invariants: [I1]..[I17] at the top of detail/state.hpp.
#include "core/state_slow_paths.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace cancelkit::detail {
inline namespace CANCELKIT_CORE_NS {

void state::destroy_chain(state* s) noexcept {
  while (s != nullptr) {
    state* next_dead = s->work_next_;  // [I13]: we took refs to 0, the field is ours
    for (std::size_t i = 0; i < s->link_count_; ++i) {
      parent_link& l = s->links_[i];
      state* p = l.parent;
      std::uint32_t w = p->lock();  // [I11]: unlink before the memory goes
      *l.prev_next = l.next;
      if (l.next) l.next->prev_next = l.prev_next;
      p->unlock(w);
      if (p->drop_ref()) {
        p->work_next_ = next_dead;
        next_dead = p;
      }
    }
    delete[] s->links_;
    delete s;
    s = next_dead;
  }
}

void state::wait_for_completion(std::size_t tag) noexcept {
  const auto want = static_cast<std::uint32_t>(tag);
  for (unsigned spins = 0;; ++spins) {
    // acquire: pairs with the dispatcher's release store of the tag after the callback returned.
    const std::uint32_t v = completions_.load(sync::acquire);
    // Serial-number order [I18]: reached once the word holds our tag or a later one's.
    if (static_cast<std::int32_t>(v - want) >= 0) return;
    if (spins < sync::completion_spins) {
      sync::spin_pause();
    } else {
      sync::wait_on(completions_, v);
    }
  }
}

wait_result state::wait(std::chrono::nanoseconds timeout) noexcept {
  using clock = sync::wait_clock;
  const bool timed = timeout >= std::chrono::nanoseconds::zero();
  bool timed_out = timed && timeout == std::chrono::nanoseconds::zero();
  clock::time_point deadline = clock::time_point::max();
  if (timed && !timed_out) {
    const clock::time_point now = clock::now();
    if (timeout < clock::time_point::max() - now)
      deadline = now + std::chrono::ceil<clock::duration>(timeout);
  }
  for (;;) {
    std::uint32_t w = word_.load(sync::acquire);  // acquire: S3 for a waiter that returns now
    if (w & REQUESTED) return wait_result::requested;
    if (w & ORPHANED) return wait_result::cannot_cancel;
    if (timed_out) return wait_result::timed_out;
    w = lock();
    if (w & (REQUESTED | ORPHANED)) {
      unlock(w);
      continue;
    }
    // relaxed: read under the lock; whoever sets REQUESTED or ORPHANED bumps it afterwards
    // under the lock, so `seen` is stale by then and the futex wait cannot sleep through it.
    const std::uint32_t seen = events_.load(sync::relaxed);
    unlock(w | WAITERS);
    if (!timed) {
      sync::wait_on(events_, seen);
    } else if (!sync::wait_on_until(events_, seen, deadline)) {
      timed_out = true;  // one last look, then time out
    }
  }
}

}  // namespace CANCELKIT_CORE_NS
}  // namespace cancelkit::detail
