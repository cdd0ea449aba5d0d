// cancelkit/cancellation_source.hpp — the handle that owns the right to cancel.
//
// A source is one pointer to a shared cancellation state (rules: docs/spec/SEMANTICS.md). Copies
// share that state; a moved-from source is empty and every operation on it is a harmless no-op
// (token() is none, cancel() and try_reset() return false). Constructing a source allocates once
// at most (the state, whose block may come from this thread's cache of freed ones; std::bad_alloc,
// nothing created); copying, moving, comparing, swapping and hashing never allocate or throw. The source can be cancelled while a source handle, its armed timer,
// or a linked parent that can itself be cancelled remains (S23); dropping the last handle is not
// a dispose: an armed timer still fires while a token lives (docs/migrating.md).
//
// Thread safety, the shared_ptr rule: distinct source objects, copies of one another included,
// may be used from any threads at the same time. One source object may be used by several
// threads at once through its const members and cancel(), cancel_after(), try_reset() and
// request_stop() (S2: concurrent cancels race safely; exactly one makes the request);
// assigning to it, moving from it, swapping or destroying it while another thread uses that
// same object is a data race.
#pragma once

#include <cancelkit/cancellation_token.hpp>
#include <cancelkit/timer_service.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <span>
#include <stop_token>
#include <utility>

namespace cancelkit {

struct cancel_options {
  std::exception_ptr reason = nullptr;     // reported by cancellation_reason() (S16)
  bool throw_on_first_exception = false;   // S13
};

class cancellation_source {
 public:
  // A live source whose cancel_after() uses system_timer_service(). Throws std::bad_alloc.
  cancellation_source();
  // A live source whose cancel_after() uses `timers`, which must outlive it.
  explicit cancellation_source(timer_service& timers);
  // A live source with cancel_after(delay) already called (S17).
  explicit cancellation_source(std::chrono::nanoseconds delay,
                               timer_service& timers = system_timer_service());

  cancellation_source(const cancellation_source& other) noexcept;
  cancellation_source(cancellation_source&& other) noexcept : s_(std::exchange(other.s_, nullptr)) {}
  cancellation_source& operator=(const cancellation_source& other) noexcept;
  cancellation_source& operator=(cancellation_source&& other) noexcept;
  ~cancellation_source();

  // A token of this source; none for an empty source.
  [[nodiscard]] cancellation_token token() const noexcept { return cancellation_token(s_); }

  // True once cancellation was requested (S1); false for an empty source. One acquire load (S3).
  [[nodiscard]] bool is_cancellation_requested() const noexcept {
    return s_ != nullptr && s_->is_requested();
  }

  // Requests cancellation and runs every registered callback, latest first, on this thread,
  // then those of every source linked below (S5, S20). Returns true iff this call made the
  // request (S2); a concurrent or later call returns false at once, without waiting for the
  // callbacks. If callbacks threw: throws aggregate_exception with all of them in the order
  // they ran (S12), or — with throw_on_first_exception — the first one unchanged, skipping the
  // callbacks not yet run (S13). The source is cancelled regardless.
  // Allocation: none to request and dispatch; collecting exceptions allocates (if that fails,
  // the aggregate holds the first ones, always the first: README). Stack use does not grow with
  // the depth of linked sources (S20).
  // Ordering: the request is a release. Everything this thread did before a cancel() that
  // returns true happens-before every callback of the cancellation and every step a thread takes
  // after seeing it (is_cancellation_requested() true, a return from wait(), S3). When it
  // returns, every callback of this source and of the sources linked below has returned, and
  // their effects happen-before the return.
  // Inline: without a reason, a source with no callback, child, extension or waiter is cancelled
  // by one compare-exchange and one store, with no call ([I16]); otherwise the request goes on
  // out of line, from the lock this took.
  bool cancel() {
    if (s_ == nullptr) return false;
    const std::uint32_t w = s_->try_request_if_idle();
    if (!(w & detail::state::LOCKED)) return cancel_with_work(s_, w);
    if (w != detail::state::IDLE_BUSY) [[likely]]
      return w == detail::state::IDLE_REQUESTED;  // done (S1), or refused (S2, S23)
    return cancel_contended(s_);
  }
  bool cancel(const cancel_options& options);

  // (Re)arms this source's one timer to cancel it after `delay` with reason deadline_exceeded
  // (S17). `delay <= 0` cancels now, on this thread, throwing like cancel(); nanoseconds::max()
  // disarms. No effect once cancelled or on an empty source. Allocation: the first arming
  // allocates the source's timer bookkeeping once (std::bad_alloc: nothing armed); rearming
  // allocates nothing in the steady state. Throws std::system_error when the system service cannot start its
  // thread, leaving the earlier timer as it was (S25). A timer's cancellation runs on the timer
  // service's thread, with cancel()'s ordering; its callbacks' exceptions go to the service's
  // error handler (S15).
  void cancel_after(std::chrono::nanoseconds delay);

  // If not cancelled and the timer has not started firing: disarms the timer, drops every
  // registration (their callbacks never run) and returns true (S18). Never blocks on callbacks,
  // allocates nothing, never throws. False changes nothing.
  [[nodiscard]] bool try_reset();

  // A new source cancelled when any parent is, with that parent's reason, and born cancelled if
  // one already is (S19). None tokens are ignored, duplicates cost nothing. Its timers come from
  // the first parent's timer service (system_timer_service() when there is none).
  static cancellation_source linked(std::span<const cancellation_token> parents);
  static cancellation_source linked(std::initializer_list<cancellation_token> parents);
  // Cancelled (reason null) when `parent` is requested (S22). Exceptions thrown by callbacks of
  // that cancellation go to the timer service's error handler, as for timers (S15).
  static cancellation_source linked(std::stop_token parent);

  // ---- the std::stop_source shape (C++26 stoppable-source; see stoppable_token.hpp) --------

  // token().
  [[nodiscard]] cancellation_token get_token() const noexcept { return token(); }
  // is_cancellation_requested().
  [[nodiscard]] bool stop_requested() const noexcept { return is_cancellation_requested(); }
  // True iff this handle has a state (false only for a moved-from source), as for
  // std::stop_source: a live source can always request cancellation.
  [[nodiscard]] bool stop_possible() const noexcept { return s_ != nullptr; }
  // cancel(): true iff this call made the request. Unlike std::stop_source::request_stop() it is
  // not noexcept: exceptions thrown by callbacks propagate as from cancel() (S12), where a
  // std::stop_callback's exception would call std::terminate.
  bool request_stop() { return cancel(); }

  // Sources are equal iff they share one state; all empty sources are equal.
  friend bool operator==(const cancellation_source& a, const cancellation_source& b) noexcept {
    return a.s_ == b.s_;
  }

  void swap(cancellation_source& other) noexcept { std::swap(s_, other.s_); }
  friend void swap(cancellation_source& a, cancellation_source& b) noexcept { a.swap(b); }

 private:
  friend struct std::hash<cancellation_source>;
  explicit cancellation_source(detail::state* adopted) noexcept : s_(adopted) {}

  // cancel() once the idle request found work: `w` is the holder's copy of `s`'s word.
  static bool cancel_with_work(detail::state* s, std::uint32_t w);
  // cancel() when its one attempt at the lock found it held.
  static bool cancel_contended(detail::state* s);

  detail::state* s_ = nullptr;
};

}  // namespace cancelkit

// Hashes the shared state, consistently with operator== (copies hash equal; every empty source
// hashes alike). Never throws, never allocates.
template <>
struct std::hash<cancelkit::cancellation_source> {
  std::size_t operator()(const cancelkit::cancellation_source& s) const noexcept {
    return std::hash<const void*>{}(s.s_);
  }
};
