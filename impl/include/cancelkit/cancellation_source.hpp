// cancelkit/cancellation_source.hpp — the handle that owns the right to cancel.
//
// A source is one pointer. Copies share one cancellation state; a moved-from source is empty and
// every operation on it is a harmless no-op (token() is none, cancel() and try_reset() return
// false). Constructing a source allocates once. The source can be cancelled while a source
// handle, its armed timer, or a linked parent that can itself be cancelled remains (S23).
#pragma once

#include <cancelkit/cancellation_token.hpp>
#include <cancelkit/timer_service.hpp>

#include <chrono>
#include <exception>
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
  cancellation_token token() const noexcept { return cancellation_token(s_); }

  bool is_cancellation_requested() const noexcept { return s_ != nullptr && s_->is_requested(); }

  // Requests cancellation and runs every registered callback, latest first, on this thread,
  // then those of every source linked below (S5, S20). Returns true iff this call made the
  // request (S2). If callbacks threw: throws aggregate_exception with all of them in the order
  // they ran (S12), or — with throw_on_first_exception — the first one unchanged, skipping the
  // callbacks not yet run (S13). The source is cancelled regardless.
  bool cancel();
  bool cancel(const cancel_options& options);

  // (Re)arms this source's one timer to cancel it after `delay` with reason deadline_exceeded
  // (S17). `delay <= 0` cancels now, on this thread, throwing like cancel(); nanoseconds::max()
  // disarms. No effect once cancelled or on an empty source.
  void cancel_after(std::chrono::nanoseconds delay);

  // If not cancelled and the timer has not started firing: disarms the timer, drops every
  // registration (their callbacks never run) and returns true (S18).
  bool try_reset();

  // A new source cancelled when any parent is, with that parent's reason, and born cancelled if
  // one already is (S19). None tokens are ignored, duplicates cost nothing. Its timers come from
  // the first parent's timer service (system_timer_service() when there is none).
  static cancellation_source linked(std::span<const cancellation_token> parents);
  static cancellation_source linked(std::initializer_list<cancellation_token> parents);
  // Cancelled (reason null) when `parent` is requested (S22). Exceptions thrown by callbacks of
  // that cancellation go to the timer service's error handler, as for timers (S15).
  static cancellation_source linked(std::stop_token parent);

  friend bool operator==(const cancellation_source& a, const cancellation_source& b) noexcept {
    return a.s_ == b.s_;
  }

  void swap(cancellation_source& other) noexcept { std::swap(s_, other.s_); }

 private:
  explicit cancellation_source(detail::state* adopted) noexcept : s_(adopted) {}

  detail::state* s_ = nullptr;
};

}  // namespace cancelkit
