// timer_service and manual_timer_service (system_timer_service() is in system_timer_service.cpp).
//
// Each service keeps its armed timers in one ordered map keyed by (deadline, arming sequence),
// guarded by one mutex. A firing timer is removed from the map and marked `firing` under that
// mutex, then cancels its source outside it; try_reset() fails while `firing` is set (S18), which
// closes the window where a reset could slip between "timer fired" and "source cancelled".
// The mutex is taken before any state lock, never after ([I12] in detail/state.hpp).
//
// ---------------------------------------------------------------------------------------------
// Timer protocol invariants (cited as [T1]..[T4]). The timer is a party that holds no reference
// on its source ([I15] in detail/state.hpp): these say why it never touches freed memory.
//
// [T1] A source_extension's `deadline`, `sequence` and `firing` are read and written only under
//      its service's mutex; `armed` is written only under it. The entry is in the map iff
//      `armed` is true.
// [T2] While `armed` is true the entry and its state are valid memory: the state's destructor
//      runs forget(), which takes the mutex whenever it reads `armed == true`, and so waits for
//      a run_due that is handling the entry. run_due takes its reference (try_add_ref) BEFORE
//      it clears `armed`, with a release store that is its last access to a dying entry;
//      forget() reads `armed` with acquire, so a `false` from run_due orders every access of
//      the timer before the free. (Clearing `armed` first and trusting a relaxed `false` was a
//      use-after-free: issue 16, defect 1.)
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
// [T4] An armed timer is one canceller of its source [I10]. Exactly one party releases it: the
//      disarm or reset that clears `armed`, or fire() after the cancellation. forget() and a
//      failed try_add_ref release nothing: the state is being destroyed.
// ---------------------------------------------------------------------------------------------
#include <cancelkit/timer_service.hpp>

#include <cancelkit/exceptions.hpp>

#include "source_extension.hpp"

#include <map>
#include <stdexcept>
#include <utility>

namespace cancelkit {

using detail::source_extension;
using detail::state;

namespace sync = detail::sync;
using lock_guard = std::lock_guard<sync::mutex>;

struct timer_service::impl {
  using key = std::pair<clock::time_point, std::uint64_t>;

  sync::mutex mutex;
  sync::var<std::map<key, source_extension*>> timers;  // guarded by mutex
  sync::var<std::uint64_t> next_sequence{0};            // guarded by mutex
  sync::var<std::function<void(std::exception_ptr)>> error_handler;  // guarded by mutex
};

timer_service::timer_service() : impl_(std::make_unique<impl>()) {}
timer_service::~timer_service() = default;

void timer_service::set_error_handler(std::function<void(std::exception_ptr)> handler) {
  lock_guard lock(impl_->mutex);
  impl_->error_handler.set(std::move(handler));
}

timer_service::clock::time_point timer_service::run_due(clock::time_point now) {
  for (;;) {
    std::unique_lock<sync::mutex> lock(impl_->mutex);
    auto& timers = impl_->timers.write();
    auto first = timers.begin();
    if (first == timers.end()) return clock::time_point::max();
    if (first->first.first > now) return first->first.first;
    source_extension* e = first->second;
    timers.erase(first);
    // [T2]: `e` and its state stay valid while `armed` is set, since forget() waits for this
    // mutex then; so the reference is taken before `armed` is cleared.
    const bool alive = e->owner()->try_add_ref();
    if (alive) e->firing.set(true);  // [T3]
    // release: [T2] for a dying source (try_add_ref failed): this store is the timer's last
    // access to the entry and its state; forget() reads it with acquire, so everything above
    // happens-before the free. For a live one the reference keeps both alive.
    e->armed.store(false, sync::release);
    if (!alive) continue;  // being destroyed: nobody can observe it (S17)
    lock.unlock();
    hand_off(*e);  // [T3]: fires it here or on another thread, holding our reference
  }
}

void timer_service::hand_off(source_extension& due) noexcept { fire(due); }

void timer_service::fire(source_extension& due) noexcept { detail::timer_access::fire(due); }

namespace detail {

void timer_access::arm(source_extension& e, timer_service::clock::time_point deadline) {
  timer_service& service = e.service();
  timer_service::impl& t = *service.impl_;
  // S25: a service that cannot run its timers throws here, before anything changed, so the
  // earlier timer stays as it was (a timer that could never fire must not be armed silently).
  service.ensure_running();
  {
    lock_guard lock(t.mutex);
    const timer_service::impl::key k{deadline, t.next_sequence.get()};
    auto& timers = t.timers.write();
    timers.emplace(k, &e);  // may throw: nothing changed yet
    t.next_sequence.set(k.second + 1);
    if (e.armed.load(sync::relaxed)) {  // relaxed: written under this mutex [T1]
      timers.erase({e.deadline.get(), e.sequence.get()});  // S17: replaces the earlier timer
    } else {
      e.armed.store(true, sync::relaxed);  // relaxed: readers take this mutex or need no order [T1]
      e.owner()->add_canceller();  // relaxed inside: the caller's source handle is a canceller
    }
    e.deadline.set(deadline);
    e.sequence.set(k.second);
  }
  service.timers_changed();
}

void timer_access::disarm(source_extension& e) noexcept {
  // relaxed pre-check: a timer armed concurrently with this call is ordered by the caller
  // (cancel_after vs cancel race: the later timer then finds the source cancelled).
  if (!e.armed.load(sync::relaxed)) return;
  bool was_armed = false;
  {
    lock_guard lock(e.service().impl_->mutex);
    if (e.armed.load(sync::relaxed)) {
      e.service().impl_->timers.write().erase({e.deadline.get(), e.sequence.get()});
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
      e.service().impl_->timers.write().erase({e.deadline.get(), e.sequence.get()});
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
  // entry is still in the map, or run_due holds the mutex and is not done with it.
  if (!e.armed.load(sync::acquire)) return;
  lock_guard lock(e.service().impl_->mutex);
  if (e.armed.load(sync::relaxed)) {  // relaxed: written under this mutex
    e.service().impl_->timers.write().erase({e.deadline.get(), e.sequence.get()});
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
  std::vector<std::exception_ptr> errors = std::move(outcome.errors);
  if (errors.empty()) errors.push_back(outcome.first_error);  // collection ran out of memory
  // A handler that throws, or no memory for the aggregate, ends here: we are noexcept.
  handler(std::make_exception_ptr(aggregate_exception(std::move(errors))));
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
