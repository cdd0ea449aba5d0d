// impl/src/state.cpp — the slow paths of the core that public inline code calls.
//
// destroy_chain (from state::release, when the last reference goes), wait_for_completion (from
// state::dispose, when the callback runs on another thread) and wait (from the token's blocking
// and timed waits) are called from the installed headers' inline functions, so each needs exactly
// one out-of-line definition that every program links: here. So does run_later_batches, the
// dispatch of the second and later batches [I6], out of line so that a cancel() with one
// callback carries none of its frame. The rest of the cold paths are inline in
// core/state_slow_paths.hpp, so the library's own callers (cancel(), the timers) inline them.
// Invariants: [I1]..[I18] at the top of detail/state.hpp.
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

std::uint32_t state::run_later_batches(std::uint32_t w, dispatch_outcome& out,
                                       bool throw_on_first) noexcept {
  callback_node* batch[BATCH];  // the current batch's nodes, by slot [I6]
  while (head_ != nullptr) {
    // Under the lock: pop the next batch, latest first, and tag it [I6].
    const std::size_t base = batch_base_;
    callback_node* n = head_;
    std::size_t count = 0;
    do {
      callback_node* after = n->next;
      n->prev_next = nullptr;       // not linked [I4]: `next` becomes the tag
      n->batch_tag = base + count;  // [I6]
      batch[count] = n;
      n = after;
    } while (++count < BATCH && n != nullptr);
    head_ = n;
    if (n != nullptr) n->prev_next = &head_;
    // Slot 0 runs, the others are pending: `claims` is 0 [I6]. relaxed: disposers read it under
    // this lock; this thread's fetch_adds follow it.
    claims_.store(0, sync::relaxed);
    unlock(w);
    callback_node** slot = batch;  // the running slot, r of `claims`
    callback_node** const last = batch + (count - 1);
    std::uint64_t attention = claim_attention(0);  // shifted along with the slot
    bool stop = false;
    for (;;) {
      sync::perturb(sync::site::before_invoke);
      stop = invoke(*slot, out) && throw_on_first;  // S13: the rest never run
      sync::perturb(sync::site::after_invoke);
      if (stop) break;
      // End the slot and claim the next one not taken back (latest first, S5): one fetch_add
      // each [I6]; the last slot ends under the lock. release: the callback's effects
      // happen-before a disposer's acquire read that finds its slot ran (S9). Nothing to
      // acquire: the disposers' bits only say what to skip or to signal.
      bool claimed = false;
      while (slot != last) {
        const std::uint64_t c = claims_.fetch_add(1, sync::release);
        const std::uint64_t seen = c & attention;
        attention <<= 1;
        ++slot;
        if (seen == 0) [[likely]] {  // no waiter, no release, the next slot still pending
          claimed = true;
          break;
        }
        const auto j = static_cast<unsigned>(slot - batch);  // the slot just claimed
        if (seen & (claim_waiter(j - 1) | claim_release(j - 1)))
          end_of_callback(slot[-1], c, j - 1, base + j - 1);
        if (!(seen & claim_taken(j))) {
          claimed = true;
          break;
        }
        // Slot j was taken back before r reached it (S8): skipped, never touched [I6]. Nobody
        // waits for it or releases it (its tag is 0).
      }
      if (!claimed) break;
    }
    const auto k = static_cast<unsigned>(slot - batch);  // the last slot that ran or was skipped
    // Under the lock: the batch ends [I6]. relaxed: disposers set their bits under the lock.
    w = lock();
    const std::uint64_t c = claims_.load(sync::relaxed);
    batch_base_ = base + BATCH;  // every tag of this batch is stale from now on [I6]
    if (stop) {
      // S13: the pending nodes (after slot k, not taken back) stay registered, in order
      // (unregister() returns true).
      for (auto j = static_cast<unsigned>(count); j-- > k + 1;)
        if (!(c & claim_taken(j))) push_front(batch[j]);
    }
    // [I18]: the word never lags by more than two batches. release: as in end_of_callback.
    completions_.store(static_cast<std::uint32_t>(base + k), sync::release);
    if (c & (claim_waiter(k) | claim_release(k))) [[unlikely]] {
      unlock(w);
      end_of_callback(batch[k], c, k, base + k);
      w = lock();
    }
    if (stop) break;
  }
  return w;
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
