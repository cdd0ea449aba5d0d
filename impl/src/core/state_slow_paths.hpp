// impl/src/core/state_slow_paths.hpp — the concurrent core's cold paths, out of the public header.
//
// The core is ONE class, `detail::state` (impl/include/cancelkit/detail/state.hpp: its
// invariants [I1]..[I18], its data and its hot paths: the check, register, unregister, dispose,
// reference counting, and the idle request that the inline cancel() makes). Its cold paths are
// defined here: the request and the first dispatch batch, orphaning, linking below parents,
// extensions, resets, and the sole-owner free. Users' code never calls them directly (they are
// reached through the library's out-of-line functions), so they need not be in an installed
// header: keeping them here keeps the public headers small (issue 21, part 5) while the
// library's callers still inline them. Each function is documented once, at its declaration in
// state.hpp; the comments here say why each step is right, citing the invariants.
//
// Included by the library's sources (impl/src) and by the model checker, which compiles this
// same code through the seam (detail/sync.hpp) against Relacy; never a copy. The three slow
// paths that the public headers' inline code does call (destroy_chain from release(),
// wait_for_completion from dispose(), wait from the token's timed waits), and the dispatch of
// the later batches (run_later_batches, out of line so that a cancel() with one callback
// carries none of its frame), are defined in impl/src/state.cpp.
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
  // acquire: the other owners' last uses happen-before the free. Each let go with drop_ref's
  // lock-free release decrement, its last access: with this handle's unit still counted, no
  // other owner's drop is the last unit's, so none of them takes the lock path [I8].
  if (refs_.load(sync::acquire) != 1) return false;
  // acquire: pairs with the install_extension release; a non-null extension needs the full
  // path. Only after the refs load [I15]: an extension installed by an owner that has let go
  // is visible now, and with it a timer or std parent that may try_add_ref() at any time.
  if (ext_.load(sync::acquire) != nullptr) return false;
  // acquire: a dispatcher uses the state without a reference (S10: a callback is dropping the
  // last handle); DISPATCHING set means it has not finished, and the full path leaves the free
  // to it [I17]. Read after the refs load, which the owner dropped inside the callback ordered
  // after DISPATCHING was set. No other thread can hold the lock here: with refs == 1, no link
  // and no extension, every other way in (token, registration, cancellation_callback, child
  // link, timer, std parent) would be a reference or need the extension, and the dispatcher's
  // critical sections all have DISPATCHING set. (Before issue 20 an owner could leave refs at 1
  // under the lock and LOCKED had to be tested too; mutant 28 was retired with it.)
  if (word_.load(sync::acquire) & DISPATCHING) return false;
  delete[] links_;  // a linked source born cancelled owns its (unused) link array
  delete this;
  return true;
}

inline void state::release_source_handle(state* s) noexcept {
  if (s->try_destroy_sole_owner()) return;  // the common case: nothing else ever saw the state
  release_shared_source_handle(s);
}

// Out of line, so that the common case above saves no registers for it.
[[gnu::noinline]] inline void state::release_shared_source_handle(state* s) noexcept {
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
  if (root->is_requested()) return dispatch_outcome{};  // S2: later callers return at once
  const std::uint32_t w = root->lock();
  if (w & (REQUESTED | ORPHANED)) {  // [I2]
    root->unlock(w);
    return dispatch_outcome{};
  }
  return request_locked(root, w, reason, throw_on_first);
}

inline dispatch_outcome state::request_locked(state* root, std::uint32_t w,
                                              const std::exception_ptr& reason,
                                              bool throw_on_first) noexcept {
  dispatch_outcome out;
  out.requested = true;
  root->record_request(w, reason);
  // The request with exactly one callback and nothing else: no waiter, child or extension. It
  // is the first batch [I6] with no later one, run here without the work list, the children
  // pass and the announcement, which cannot apply: a waiter, a child or an extension that
  // arrives later takes the lock after REQUESTED is published and sees it ([I4] [I11] [I14]).
  // Tested before has_work(), whose three tests it repeats: a request with work is the common
  // one. The order costs a cancel() with several callbacks the least (the first node's `next`
  // settles it). relaxed: ext_ is written only under this lock [I14].
  if (callback_node* n = root->head_; n != nullptr && n->next == nullptr && !(w & WAITERS) &&
      root->children_ == nullptr && root->ext_.load(sync::relaxed) == nullptr) {
    root->head_ = nullptr;
    // [I17]: DISPATCHING keeps the memory through the callback (S10), as below.
    w = root->run_first_batch(w | REQUESTED | DISPATCHING, n, out);
    root->end_dispatch(w);
    return out;
  }
  if (!root->has_work()) {
    // No callback, child or extension, and none can be added from now on ([I4], [I11] via
    // attach_to_parents, [I14]): no user code to run, nothing to propagate. Wake any waiter.
    root->unlock(w | REQUESTED);
    if (w & WAITERS) sync::wake_all(root->events_);
    return out;
  }
  // [I17]: DISPATCHING, published with REQUESTED by dispatch()'s first unlock, keeps the root's
  // memory alive through its callbacks (S10: one may drop the caller's last handle). The root
  // and then every child claimed on the way (S20: a work list, no recursion) go through the one
  // call of dispatch() below, which the compiler can therefore inline.
  state* s = root;
  w |= REQUESTED | DISPATCHING;
  state* work = nullptr;
  for (;;) {
    s->dispatch(w, work, out, throw_on_first);
    if (work == nullptr) return out;
    s = work;
    work = s->work_next_;  // [I13]
    s->work_next_ = nullptr;
    w = s->lock();  // claim_children set REQUESTED and DISPATCHING
  }
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
    p->unlock(w);  // a request of p now runs claim_children (has_work() sees the child)
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
    installed = e;  // a request now calls on_requested (has_work() sees it)
  }
  unlock(w);
  return installed;
}

inline void state::drop_all_callbacks() noexcept {
  while (head_) unlink(head_);
}

inline void state::record_request(std::uint32_t w, const std::exception_ptr& reason) noexcept {
  if (reason) reason_ = reason;  // else it is the null it was born with [I5]: skip the copy
  dispatcher_ = sync::current_thread();
  // relaxed: the futex word only says "look again"; waiters re-read the state under the lock.
  // Only a waiter that set WAITERS under this lock can be asleep on it (see wait()).
  if (w & WAITERS) events_.fetch_add(1, sync::relaxed);
}

inline void state::dispatch(std::uint32_t w, state*& work, dispatch_outcome& out,
                            bool throw_on_first) noexcept {
  // Waiters and the extension hear of the request before any callback runs (state_extension).
  // Neither is there in the common case; then REQUESTED is published by the unlock that starts
  // the first callback, with no lock round trip of its own. ext_ is stable here: it is
  // installed only before REQUESTED [I14]. relaxed: written only under this lock.
  if ((w & WAITERS) || ext_.load(sync::relaxed) != nullptr) {
    unlock(w);
    sync::perturb(sync::site::after_claim);
    announce();
    w = lock();
  }
  if (!(throw_on_first && out.first_error)) w = run_callbacks(w, out, throw_on_first);
  if (children_ != nullptr) {
    // A parent's REQUESTED is published before any child's, as it always was (with no callback
    // and no announcement above, nothing has published it yet). release: as unlock(); a store by
    // the holder, LOCKED kept [I1].
    word_.store(w | LOCKED, sync::release);
    claim_children(work);
  }
  end_dispatch(w);
}

inline void state::end_dispatch(std::uint32_t w) noexcept {
  // [I17]: done with this state. relaxed: `refs` reaches 0 only under this lock [I8], so the
  // thread that took it there unlocked afterwards, and our lock() acquired that unlock: every
  // owner's last use (each release decrement continues into its acq_rel one) happens-before the
  // free below.
  w &= ~DISPATCHING;
  const bool dead = refs_.load(sync::relaxed) == 0;
  unlock(w);
  if (dead) destroy_chain(this);
}

inline void state::announce() noexcept {
  // relaxed: WAITERS is only a hint to skip the syscall; it was set before REQUESTED (under the
  // lock) or never, and REQUESTED is set, so no waiter can start sleeping from now on.
  if (word_.load(sync::relaxed) & WAITERS) sync::wake_all(events_);
  if (state_extension* e = extension()) e->on_requested();
}

inline std::uint32_t state::run_callbacks(std::uint32_t w, dispatch_outcome& out,
                                          bool throw_on_first) noexcept {
  // The first batch is the first node alone, so that the first callback starts after one pop
  // (cancel() entry to first callback stays as short as with no batches); the claim it saves
  // is paid by the lock hold that ends it and pops the next batch, so this costs no RMW.
  callback_node* n = head_;
  if (n == nullptr) return w;  // work, but no callback: children or an extension only
  head_ = n->next;
  if (head_ != nullptr) head_->prev_next = &head_;
  w = run_first_batch(w, n, out);
  // S13: the rest never run. first_error is this callback's: with throw_on_first, dispatch()
  // runs no callback once an earlier one threw.
  const bool stop = throw_on_first && out.first_error;
  if (stop || head_ == nullptr) return w;  // S13: nothing of this batch is left to relink
  return run_later_batches(w, out, throw_on_first);
}

inline std::uint32_t state::run_first_batch(std::uint32_t w, callback_node* n,
                                            dispatch_outcome& out) noexcept {
  n->prev_next = nullptr;  // not linked [I4]: `next` becomes the tag
  n->batch_tag = 1;        // slot 0 of the first batch: batch_base_ is still 1 [I6]
  // Slot 0 starts now, claimed under the lock (running slot 0, nothing pending): `claims` is
  // still the 0 it was born with (nothing writes it before a batch exists [I6]), no store.
  unlock(w);  // the first time round, this publishes REQUESTED
  sync::perturb(sync::site::before_invoke);
  invoke(n, out);
  sync::perturb(sync::site::after_invoke);
  // Under the lock: the batch ends [I6].
  w = lock();
  batch_base_ = 1 + BATCH;  // tag 1 is stale from now on [I6]
  // relaxed: under the lock only we change `claims`; it holds at most slot 0's flags [I18]. No
  // store to `completions`: a waiter for this callback set WAITER(0), handled here.
  const std::uint64_t c = claims_.load(sync::relaxed);
  if (c & (claim_waiter(0) | claim_release(0))) [[unlikely]] {
    unlock(w);
    end_of_callback(n, c, 0, 1);
    w = lock();
  }
  return w;
}

inline bool state::invoke(callback_node* n, dispatch_outcome& out) noexcept {
  try {
    n->invoke(n);  // after this, `n` may be gone (a cancellation_callback destroyed in it)
    return false;
  } catch (...) {
    record_error(out, std::current_exception());
    return true;
  }
}

inline void state::end_of_callback(callback_node* n, std::uint64_t c, unsigned slot,
                                   std::size_t tag) noexcept {
  if (c & claim_waiter(slot)) {
    // release: the callback's effects happen-before the disposer's acquire load, which then
    // returns (S9). A plain store: the dispatcher is the only writer [I18].
    completions_.store(static_cast<std::uint32_t>(tag), sync::release);
    sync::wake_all(completions_);
  }
  if (c & claim_release(slot)) {  // disposed from inside its own callback: the block is ours
    auto* o = static_cast<owned_callback_node*>(n);
    o->release(o);
  }
}

inline void state::record_error(dispatch_outcome& out, std::exception_ptr e) noexcept {
  if (!out.first_error) out.first_error = e;
  // Once a push failed, later exceptions are not collected: `errors` stays a prefix of the
  // run order that starts with the first exception (or is empty, and the public layer reports
  // first_error). Collecting on after a failure dropped the first exception and reported a
  // later one as if it came first (S12, S15).
  if (out.errors_truncated) return;
  try {
    if (out.errors == nullptr) out.errors = new std::vector<std::exception_ptr>();
    out.errors->push_back(std::move(e));
  } catch (...) {
    out.errors_truncated = true;  // out of memory while collecting
  }
}

inline void state::claim_children(state*& work) noexcept {
  for (parent_link* l = children_; l != nullptr; l = l->next) {
    state* c = l->child;  // valid memory [I11]
    std::uint32_t cw = c->lock();  // parent -> child lock order [I12]
    // relaxed: under c's lock a non-zero count cannot reach zero [I8]; zero means dying (its
    // destroyer is on its way to unlink it from our list, and must find it there).
    if ((cw & (REQUESTED | ORPHANED)) || c->refs_.load(sync::relaxed) == 0) {
      c->unlock(cw);
      continue;
    }
    c->work_next_ = work;  // [I13]: we are about to set REQUESTED
    work = c;
    c->record_request(cw, reason_);  // S16: the parent's reason [I5]
    // [I17]: DISPATCHING keeps c alive on the work list, in place of a reference.
    c->unlock(cw | REQUESTED | DISPATCHING);
  }
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
  // relaxed: see record_request; likewise only for a waiter that set WAITERS.
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
