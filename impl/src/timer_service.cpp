// timer_service and manual_timer_service (system_timer_service() is in system_timer_service.cpp).
//
// Each service keeps its armed timers in one binary heap of intrusive entries
// (detail/timer_entry.hpp), ordered by (deadline, arming sequence), guarded by one mutex. Each
// entry records its heap index, so taking one off is O(log n); the heap is a vector whose
// capacity is reused, so arming allocates nothing in the steady state (issue 18: a coroutine's
// delay arms an entry that lives in its frame). Two kinds of entries: a source's timer (its
// source_extension) and a coroutine delay's (coroutine.hpp); `take` and `fire` are theirs.
// A firing source timer is removed from the heap and marked `firing` under that mutex, then
// cancels its source outside it; try_reset() fails while `firing` is set (S18), which closes the
// window where a reset could slip between "timer fired" and "source cancelled".
// The mutex is taken before any state lock, never after ([I12] in detail/state.hpp).
//
// ---------------------------------------------------------------------------------------------
// Timer protocol invariants (cited as [T1]..[T5]). The timer is a party that holds no reference
// on its source ([I15] in detail/state.hpp): these say why it never touches freed memory.
//
// [T1] An entry's `deadline`, `sequence` and `heap_index` (and a source_extension's `firing`) are
//      read and written only under its service's mutex; `armed` is written only under it. The
//      entry is in the heap iff `armed` is true, and then heap[heap_index] is the entry.
// [T2] While `armed` is true the entry (and a source entry's state) is valid memory: its owner
//      takes the mutex whenever it reads `armed == true` before it frees the entry (a state's
//      destructor runs forget(); a delay awaiter withdraws its entry), and so waits for a
//      run_due that is handling the entry. run_due calls the entry's `take` (a source entry:
//      try_add_ref) BEFORE it clears `armed`, with a release store that is its last access to
//      an entry it does not hand off; forget() reads `armed` with acquire, so a `false` from
//      run_due orders every access of the timer before the free. (Clearing `armed` first and
//      trusting a relaxed `false` was a use-after-free: issue 16, defect 1.)
// [T3] `firing` is true from the moment run_due took its reference until the cancellation it
//      started has returned (timer_access::fire). try_reset() fails while it is set (S18).
//      run_due passes the entry to hand_off(), which may queue it for another thread
//      (system_timer_service's workers): a handed-off entry keeps the reference run_due took
//      and `firing` stays set until timer_access::fire returns, however long it waits in the
//      queue, so [T2] needs nothing more (a referenced state is not destroyed) and the
//      entry cannot be reset in between. An entry re-armed while it waits or fires may be
//      handed off again and fired concurrently: each firing holds its own reference and
//      canceller; the first fire() to clear `firing` has seen its cancellation return, so the
//      source is cancelled and try_reset() fails on that instead.
// [T4] An armed source timer is one canceller of its source [I10]. Exactly one party releases
//      it: the disarm or reset that clears `armed`, or fire() after the cancellation. forget()
//      and a failed try_add_ref release nothing: the state is being destroyed.
// [T5] A delay entry's `take` decides, under the mutex, whether the timer resumes the coroutine
//      (the awaiter's claim, [C2] in coroutine.hpp); an entry it hands off is kept alive by the
//      suspended coroutine, which nothing else may resume or destroy until fire() resumes it.
//      A withdrawal (withdraw_timer_entry) that finds `armed` false under the mutex is therefore
//      final: run_due is done with the entry or has handed it off for the claimed resumption.
// ---------------------------------------------------------------------------------------------
#include <cancelkit/timer_service.hpp>

#include <cancelkit/exceptions.hpp>

#include "source_extension.hpp"

#include <cstddef>
#include <stdexcept>
#include <utility>
#include <vector>

namespace cancelkit {

using detail::source_extension;
using detail::state;

namespace sync = detail::sync;
using lock_guard = std::lock_guard<sync::mutex>;

struct timer_service::impl {
  sync::mutex mutex;
  sync::var<std::vector<detail::timer_entry*>> heap;  // guarded by mutex [T1]
  sync::var<std::uint64_t> next_sequence{0};           // guarded by mutex
  sync::var<std::function<void(std::exception_ptr)>> error_handler;  // guarded by mutex
};

namespace {

using detail::timer_entry;
using heap_type = std::vector<timer_entry*>;

// ---- the heap (all under the service's mutex [T1]) ----------------------------------------------

// Deadline order; ties keep arming order.
bool earlier(const timer_entry& a, const timer_entry& b) {
  const timer_entry::time_point da = a.deadline.get();
  const timer_entry::time_point db = b.deadline.get();
  return da < db || (da == db && a.sequence.get() < b.sequence.get());
}

void place(heap_type& heap, std::size_t i, timer_entry* e) {
  heap[i] = e;
  e->heap_index.set(i);
}

void sift_up(heap_type& heap, std::size_t i) {
  timer_entry* const e = heap[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!earlier(*e, *heap[parent])) break;
    place(heap, i, heap[parent]);
    i = parent;
  }
  place(heap, i, e);
}

void sift_down(heap_type& heap, std::size_t i) {
  timer_entry* const e = heap[i];
  const std::size_t n = heap.size();
  for (;;) {
    std::size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && earlier(*heap[child + 1], *heap[child])) ++child;
    if (!earlier(*heap[child], *e)) break;
    place(heap, i, heap[child]);
    i = child;
  }
  place(heap, i, e);
}

// The caller reserved room: never throws.
void heap_push(heap_type& heap, timer_entry* e) {
  heap.push_back(e);
  sift_up(heap, heap.size() - 1);
}

void heap_remove(heap_type& heap, timer_entry& e) {
  const std::size_t i = e.heap_index.get();
  timer_entry* const last = heap.back();
  heap.pop_back();
  if (i == heap.size()) return;  // it was the last one
  place(heap, i, last);
  if (i > 0 && earlier(*last, *heap[(i - 1) / 2])) {
    sift_up(heap, i);
  } else {
    sift_down(heap, i);
  }
}

// Arms `e` (not armed) for `deadline` under the mutex; room for it was reserved.
void heap_insert(heap_type& heap, sync::var<std::uint64_t>& next_sequence, timer_entry& e,
                 timer_entry::time_point deadline) {
  e.deadline.set(deadline);
  e.sequence.set(next_sequence.get());
  next_sequence.set(e.sequence.get() + 1);
  heap_push(heap, &e);
  e.armed.store(true, sync::relaxed);  // relaxed: readers take this mutex or need no order [T1]
}

}  // namespace

timer_service::timer_service() : impl_(std::make_unique<impl>()) {}
timer_service::~timer_service() = default;

void timer_service::set_error_handler(std::function<void(std::exception_ptr)> handler) {
  lock_guard lock(impl_->mutex);
  impl_->error_handler.set(std::move(handler));
}

timer_service::clock::time_point timer_service::run_due(clock::time_point now) {
  for (;;) {
    std::unique_lock<sync::mutex> lock(impl_->mutex);
    heap_type& heap = impl_->heap.write();
    if (heap.empty()) return clock::time_point::max();
    timer_entry* e = heap.front();
    const clock::time_point deadline = e->deadline.get();
    if (deadline > now) return deadline;
    heap_remove(heap, *e);
    // [T2]: `e` stays valid while `armed` is set, since its owner takes this mutex then; so the
    // entry's own step (a source: its reference and `firing` [T3]; a delay: the claim [T5]) comes
    // before `armed` is cleared.
    const bool fires = e->take(*e);
    // release: [T2] for an entry that does not fire (a dying source, a delay that lost its
    // claim): this store is the timer's last access to it; forget() reads it with acquire, so
    // everything above happens-before the free. A firing entry is kept alive by its owner.
    e->armed.store(false, sync::release);
    if (!fires) continue;  // being destroyed, or resumed by another party (S17, [C2])
    lock.unlock();
    hand_off(*e);  // [T3]: fires it here or on another thread
  }
}

void timer_service::hand_off(detail::timer_entry& due) noexcept { fire(due); }

void timer_service::fire(detail::timer_entry& due) noexcept { due.fire(due); }

namespace detail {

void arm_timer_entry(timer_service& service, timer_entry& e, timer_entry::time_point deadline) {
  timer_access::arm_entry(service, e, deadline, nullptr);
}

bool withdraw_timer_entry(timer_service& service, timer_entry& e) noexcept {
  return timer_access::withdraw_entry(service, e);
}

void timer_access::arm_entry(timer_service& service, timer_entry& e,
                             timer_service::clock::time_point deadline, state* canceller_of) {
  timer_service::impl& t = *service.impl_;
  // S25: a service that cannot run its timers throws here, before anything changed, so the
  // earlier timer stays as it was (a timer that could never fire must not be armed silently).
  service.ensure_running();
  {
    lock_guard lock(t.mutex);
    heap_type& heap = t.heap.write();
    // relaxed: written under this mutex [T1].
    const bool was_armed = e.armed.load(sync::relaxed);
    if (!was_armed) heap.reserve(heap.size() + 1);  // may throw: nothing changed yet
    if (was_armed) {
      heap_remove(heap, e);  // S17: replaces the earlier timer (its room stays reserved)
      e.armed.store(false, sync::relaxed);  // relaxed: under this mutex [T1]
    } else if (canceller_of != nullptr) {
      canceller_of->add_canceller();  // [T4] relaxed inside: the caller's source handle is one
    }
    heap_insert(heap, t.next_sequence, e, deadline);
  }
  service.timers_changed();
}

bool timer_access::withdraw_entry(timer_service& service, timer_entry& e) noexcept {
  timer_service::impl& t = *service.impl_;
  // No lock-free pre-check: a delay's entry may be armed by the awaiting thread just before and
  // taken by run_due at any time; the mutex orders both [T5].
  lock_guard lock(t.mutex);
  // relaxed: written under this mutex [T1]; false is final [T5].
  if (!e.armed.load(sync::relaxed)) return false;
  heap_remove(t.heap.write(), e);
  e.armed.store(false, sync::relaxed);
  return true;
}

bool timer_access::take(timer_entry& entry) noexcept {
  source_extension& e = static_cast<source_extension&>(entry);
  // [T2]: the reference is taken before run_due clears `armed`.
  const bool alive = e.owner()->try_add_ref();
  if (alive) e.firing.set(true);  // [T3]
  return alive;  // a dying source is not cancelled: nobody can observe it (S17)
}

void timer_access::fire_entry(timer_entry& entry) noexcept {
  fire(static_cast<source_extension&>(entry));
}

void timer_access::arm(source_extension& e, timer_service::clock::time_point deadline) {
  arm_entry(e.service(), e, deadline, e.owner());
}

void timer_access::disarm(source_extension& e) noexcept {
  // relaxed pre-check: a timer armed concurrently with this call is ordered by the caller
  // (cancel_after vs cancel race: the later timer then finds the source cancelled).
  if (!e.armed.load(sync::relaxed)) return;
  bool was_armed = false;
  {
    lock_guard lock(e.service().impl_->mutex);
    if (e.armed.load(sync::relaxed)) {
      heap_remove(e.service().impl_->heap.write(), e);
      e.armed.store(false, sync::relaxed);
      was_armed = true;
    }
  }
  if (was_armed) e.owner()->release_canceller();
}

bool timer_access::reset(source_extension& e) noexcept {
  bool was_armed = false;
  {
    lock_guard lock(e.service().impl_->mutex);
    if (e.firing.get()) return false;  // S18: the timer has started firing
    if (!e.owner()->reset_registrations()) return false;  // cancelled (or cannot be)
    if (e.armed.load(sync::relaxed)) {
      heap_remove(e.service().impl_->heap.write(), e);
      e.armed.store(false, sync::relaxed);
      was_armed = true;
    }
  }
  if (was_armed) e.owner()->release_canceller();
  return true;
}

void timer_access::forget(source_extension& e) noexcept {
  // acquire: [T2]. False is final here (the owner is being destroyed, so no arm() can run) and
  // was written by a disarm under the mutex, ordered before this destruction by the reference
  // drops, or by run_due as its last access to the entry, ordered by this acquire. True: the
  // entry is still in the heap, or run_due holds the mutex and is not done with it.
  if (!e.armed.load(sync::acquire)) return;
  lock_guard lock(e.service().impl_->mutex);
  if (e.armed.load(sync::relaxed)) {  // relaxed: written under this mutex
    heap_remove(e.service().impl_->heap.write(), e);
    e.armed.store(false, sync::relaxed);
  }
}

void timer_access::fire(source_extension& e) noexcept {
  state* s = e.owner();  // run_due took a reference for us [T2]
  std::exception_ptr reason;
  try {
    reason = std::make_exception_ptr(deadline_exceeded());
  } catch (...) {
    reason = std::current_exception();  // out of memory: the bad_alloc is the reason
  }
  cancel_in_background(s, reason, e.service());
  {
    lock_guard lock(e.service().impl_->mutex);
    e.firing.set(false);  // [T3]
  }
  s->release_canceller();  // the timer was one of its cancellers [I10] [T4]
  state::release(s);
}

sync::mutex& timer_access::mutex_of(timer_service& service) noexcept {
  return service.impl_->mutex;
}

void timer_access::report(timer_service& service, dispatch_outcome&& outcome) noexcept {
  std::function<void(std::exception_ptr)> handler;
  {
    lock_guard lock(service.impl_->mutex);
    handler = service.impl_->error_handler.get();
  }
  if (!handler) std::terminate();  // S15: no handler installed
  // A handler that throws, or no memory for the aggregate, ends here: we are noexcept.
  handler(std::make_exception_ptr(aggregate_exception(outcome.take_errors())));
}

}  // namespace detail

// ---- manual_timer_service ---------------------------------------------------------------------

manual_timer_service::manual_timer_service() = default;
manual_timer_service::~manual_timer_service() = default;

manual_timer_service::clock::time_point manual_timer_service::now() const {
  lock_guard lock(mutex_);
  return now_;
}

void manual_timer_service::advance(std::chrono::nanoseconds by) {
  if (by < std::chrono::nanoseconds::zero())
    throw std::invalid_argument("manual_timer_service::advance: negative duration");
  clock::time_point now;
  {
    lock_guard lock(mutex_);
    // Saturates at time_point::max(): `now_ += by` could overflow (signed, undefined), wrap to
    // the far past and leave every armed timer unfired (issue 16, defect 8).
    now_ = by > clock::time_point::max() - now_ ? clock::time_point::max() : now_ + by;
    now = now_;
  }
  run_due(now);
}

}  // namespace cancelkit
