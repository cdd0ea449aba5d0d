// impl/src/core/state_slow_paths.hpp — the concurrent core's cold paths, out of the public header.
//
// The core is ONE class, `detail::state` (impl/include/cancelkit/detail/state.hpp: its
// invariants [I1]..[I15], its data and its hot paths: the check, register, unregister, dispose,
// reference counting). Its cold paths are defined here: cancellation and dispatch, orphaning,
// linking below parents, extensions, resets, and the sole-owner free. Users' code never calls
// them directly (they are reached through the library's out-of-line functions), so they need
// not be in an installed header: keeping them here keeps the public headers small (issue 21,
// part 5) while `cancel()` still inlines them. Each function is documented once, at its
// declaration in state.hpp; the comments here say why each step is right, citing the invariants.
//
// Included by the library's sources (impl/src) and by the model checker, which compiles this
// same code through the seam (detail/sync.hpp) against Relacy; never a copy. The three slow
// paths that the public headers' inline code does call (destroy_chain from release(),
// wait_for_completion from dispose(), wait from the token's timed waits) are defined out of line
// in impl/src/state.cpp.
#pragma once

#include <cancelkit/detail/state.hpp>

#include "sync_wait.hpp"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <utility>

namespace cancelkit::detail {
inline namespace CANCELKIT_CORE_NS {

inline bool state::try_destroy_sole_owner() noexcept {
  if (link_count_ != 0) return false;
  // acquire: the other owners' last uses happen-before the free (their decrements were
  // release, and the one that left 1 was acq_rel under the lock [I8]).
  if (refs_.load(sync::acquire) != 1) return false;
  // acquire: pairs with the install_extension release; a non-null extension needs the full
  // path. Only after the refs load [I15]: an extension installed by an owner that has let go
  // is visible now, and with it a timer or std parent that may try_add_ref() at any time.
  if (ext_.load(sync::acquire) != nullptr) return false;
  // acquire: the owner that left refs at 1 did so under the lock [I8], and its unlock() is its
  // last access to the state. Reading the word after that decrement (ordered by the acquire
  // above) sees its lock or a later value; LOCKED clear means its unlock, so every access it made
  // happens-before the free. LOCKED set: it is still inside, take the full path.
  if (word_.load(sync::acquire) & LOCKED) return false;
  delete[] links_;  // a linked source born cancelled owns its (unused) link array
  delete this;
  return true;
}

inline void state::release_source_handle(state* s) noexcept {
  if (s->try_destroy_sole_owner()) return;  // the common case: nothing else ever saw the state
  s->release_canceller();  // may orphan the state (S23); we still hold our reference
  release(s);
}

inline void state::release_canceller() noexcept {
  // acq_rel: the thread that reaches zero orphans the state and must see what the other
  // cancellers did before they let go (release), and orders its own orphaning after (acquire).
  if (cancellers_.fetch_sub(1, sync::acq_rel) == 1) orphan_chain(this);
}

inline dispatch_outcome state::request(state* root, const std::exception_ptr& reason,
                                       bool throw_on_first) noexcept {
  dispatch_outcome out;
  if (root->is_requested()) return out;  // S2: later callers return at once
  bool has_work = false;
  if (!root->claim(reason, has_work)) return out;
  out.requested = true;
  // No callback, child or extension was there when REQUESTED was published, and none can be
  // added from now on ([I4], [I11] via attach_to_parents, [I14]): no user code to run, nothing
  // to propagate, and claim already woke any waiter.
  if (!has_work) return out;
  root->add_ref();  // the work list owns one reference per entry (S10: a callback may drop
                    // the caller's last handle; the root outlives this loop)
  state* work = root;
  while (work != nullptr) {
    state* s = work;
    work = s->work_next_;  // [I13]
    s->work_next_ = nullptr;
    sync::perturb(sync::site::after_claim);
    s->announce();
    if (!(throw_on_first && out.first_error)) s->run_callbacks(out, throw_on_first);
    s->claim_children(work);
    release(s);
  }
  return out;
}

inline bool state::reset_registrations() noexcept {
  std::uint32_t w = lock();
  if (w & (REQUESTED | ORPHANED)) {
    unlock(w);
    return false;
  }
  drop_all_callbacks();
  unlock(w);
  return true;
}

inline state* state::attach_to_parents(parent_link* links, state* const* parents,
                                       std::size_t count) noexcept {
  links_ = links;
  for (std::size_t i = 0; i < count; ++i) {
    state* p = parents[i];
    std::uint32_t w = p->lock();
    if (w & REQUESTED) {
      p->unlock(w);
      return p;  // born cancelled; later parents need not be linked
    }
    parent_link& l = links[i];
    l.parent = p;
    l.child = this;
    p->add_ref();  // the link keeps the parent's memory alive [I7]
    if (!(w & ORPHANED)) add_canceller();  // a parent that can be cancelled is a canceller [I10]
    l.next = p->children_;
    l.prev_next = &p->children_;
    if (l.next) l.next->prev_next = &l.next;
    p->children_ = &l;
    ++link_count_;
    p->unlock(w);
  }
  return nullptr;
}

inline state_extension* state::install_extension(state_extension* e) noexcept {
  std::uint32_t w = lock();
  // relaxed: ext_ is written only under this lock [I14].
  state_extension* installed = ext_.load(sync::relaxed);
  if (installed == nullptr) {
    // release: publishes `e`'s construction to lock-free readers (extension()).
    ext_.store(e, sync::release);
    installed = e;
  }
  unlock(w);
  return installed;
}

inline void state::drop_all_callbacks() noexcept {
  while (head_) unlink(head_);
}

inline bool state::claim(const std::exception_ptr& reason, bool& has_work) noexcept {
  std::uint32_t w = lock();
  if (w & (REQUESTED | ORPHANED)) {
    unlock(w);
    return false;
  }
  // relaxed: written only under this lock [I14].
  has_work = head_ != nullptr || children_ != nullptr || ext_.load(sync::relaxed) != nullptr;
  publish_request(w, reason);
  if (!has_work && (w & WAITERS)) sync::wake_all(events_);
  return true;
}

inline void state::publish_request(std::uint32_t w, const std::exception_ptr& reason) noexcept {
  reason_ = reason;
  dispatcher_ = sync::current_thread();
  // relaxed: the futex word only says "look again"; waiters re-read the state under the lock.
  // Only a waiter that set WAITERS under this lock can be asleep on it (see wait()).
  if (w & WAITERS) events_.fetch_add(1, sync::relaxed);
  unlock(w | REQUESTED);
}

inline void state::announce() noexcept {
  // relaxed: WAITERS is only a hint to skip the syscall; it was set before REQUESTED (under the
  // lock) or never, and REQUESTED is set, so no waiter can start sleeping from now on.
  if (word_.load(sync::relaxed) & WAITERS) sync::wake_all(events_);
  if (state_extension* e = extension()) e->on_requested();
}

inline void state::run_callbacks(dispatch_outcome& out, bool throw_on_first) noexcept {
  std::uint32_t w = lock();
  while (callback_node* n = head_) {
    unlink(n);
    running_ = n;  // [I6]
    unlock(w);
    sync::perturb(sync::site::before_invoke);
    bool threw = false;
    try {
      n->invoke(n);  // after this, `n` may be gone (a cancellation_callback destroyed in it)
    } catch (...) {
      threw = true;
      record_error(out, std::current_exception());
    }
    sync::perturb(sync::site::after_invoke);
    w = lock();
    running_ = nullptr;
    owned_callback_node* release_now = release_after_run_;
    release_after_run_ = nullptr;
    const bool notify = dispose_waiting_;
    if (notify) {
      dispose_waiting_ = false;
      // release: the callback's effects happen-before the disposer's return (S9); the
      // disposer reads this with acquire.
      completions_.fetch_add(1, sync::release);
    }
    if (notify || release_now) {
      unlock(w);
      if (notify) sync::wake_all(completions_);
      if (release_now) release_now->release(release_now);
      w = lock();
    }
    if (threw && throw_on_first) break;  // S13: the rest never run; unregister() gets true
  }
  unlock(w);
}

inline void state::record_error(dispatch_outcome& out, std::exception_ptr e) noexcept {
  if (!out.first_error) out.first_error = e;
  // Once a push failed, later exceptions are not collected: `errors` stays a prefix of the
  // run order that starts with the first exception (or is empty, and the public layer reports
  // first_error). Collecting on after a failure dropped the first exception and reported a
  // later one as if it came first (S12, S15).
  if (out.errors_truncated) return;
  try {
    out.errors.push_back(std::move(e));
  } catch (...) {
    out.errors_truncated = true;  // out of memory while collecting
  }
}

inline void state::claim_children(state*& work) noexcept {
  std::uint32_t w = lock();
  for (parent_link* l = children_; l != nullptr; l = l->next) {
    state* c = l->child;  // valid memory [I11]
    std::uint32_t cw = c->lock();  // parent -> child lock order [I12]
    // relaxed: under c's lock a non-zero count cannot reach zero [I8]; zero means dying.
    if ((cw & (REQUESTED | ORPHANED)) || c->refs_.load(sync::relaxed) == 0) {
      c->unlock(cw);
      continue;
    }
    c->refs_.fetch_add(1, sync::relaxed);  // relaxed: non-zero under its lock [I8]
    c->work_next_ = work;                  // [I13]: we are about to set REQUESTED
    work = c;
    c->publish_request(cw, reason_);  // S16: the parent's reason [I5]
  }
  unlock(w);
}

inline void state::orphan_chain(state* first) noexcept {
  first->add_ref();  // the work list owns one reference per entry
  state* work = first;
  while (work != nullptr) {
    state* s = work;
    work = s->work_next_;  // [I13]
    s->work_next_ = nullptr;
    s->orphan(work);
    release(s);
  }
}

inline void state::orphan(state*& work) noexcept {
  std::uint32_t w = lock();
  if (w & (REQUESTED | ORPHANED)) {  // [I2]: cancelled sources stay cancelled
    unlock(w);
    return;
  }
  drop_all_callbacks();  // S23: pending callbacks never run
  // relaxed: see publish_request; likewise only for a waiter that set WAITERS.
  if (w & WAITERS) events_.fetch_add(1, sync::relaxed);
  // A child counted this state as a canceller [I10]; losing it may orphan the child too.
  sync::perturb(sync::site::orphan_children);
  for (parent_link* l = children_; l != nullptr; l = l->next) {
    state* c = l->child;  // valid memory [I11]
    // acq_rel: see release_canceller.
    if (c->cancellers_.fetch_sub(1, sync::acq_rel) != 1) continue;
    std::uint32_t cw = c->lock();  // [I12]
    // relaxed: as in claim_children [I8].
    if (c->refs_.load(sync::relaxed) != 0) {
      c->refs_.fetch_add(1, sync::relaxed);
      c->work_next_ = work;  // [I13]: we took its cancellers to zero
      work = c;
    }
    c->unlock(cw);
  }
  unlock(w | ORPHANED);
  if (w & WAITERS) sync::wake_all(events_);  // S23: waiters throw / return false
  if (state_extension* e = extension()) e->on_orphaned();
}

}  // namespace CANCELKIT_CORE_NS
}  // namespace cancelkit::detail
