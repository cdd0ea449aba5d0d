// cancelkit/timer_service.hpp — where cancel_after() timers live, and the clock they read.
//
// A timer_service keeps one timer per armed source, ordered by deadline and, for equal deadlines,
// by arming order. When a timer is due, the service cancels its source on the service's own
// thread with reason `deadline_exceeded` (S16, S17). Every callback runs even if some throw; the
// exceptions are then passed once, as an aggregate_exception, to the error handler, or
// std::terminate is called when none is installed (S15).
//
// - system_timer_service(): the process-wide service on std::chrono::steady_clock. Its one
//   background thread starts with the first armed timer and is stopped and joined at process
//   exit; timers due after that never fire.
// - manual_timer_service: time moves only when advance() is called, and due timers run on the
//   thread that calls it. For tests.
//
// A timer_service must outlive every source that uses it (precondition; not checked).
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>

namespace cancelkit {

namespace detail {
struct timer_access;
}

class timer_service {
 public:
  using clock = std::chrono::steady_clock;

  timer_service(const timer_service&) = delete;
  timer_service& operator=(const timer_service&) = delete;
  virtual ~timer_service();

  // Installs the handler for exceptions thrown by callbacks of timer-triggered cancellations
  // (S15); an empty function uninstalls it. Thread-safe.
  void set_error_handler(std::function<void(std::exception_ptr)> handler);

  // The service's current time.
  virtual clock::time_point now() const = 0;

 protected:
  timer_service();

  // Fires every timer due at `now` on the calling thread, in deadline order (ties: arming
  // order), including timers armed by the callbacks it runs. Returns the earliest deadline left,
  // or time_point::max() when none is armed.
  clock::time_point run_due(clock::time_point now);

  // Called, outside the service's lock, after a timer was armed. A service with a thread of its
  // own wakes it here.
  virtual void timers_changed() noexcept {}

 private:
  friend struct detail::timer_access;
  struct impl;
  std::unique_ptr<impl> impl_;
};

// The process-wide service (lazily started thread, clean shutdown at exit).
timer_service& system_timer_service();

class manual_timer_service : public timer_service {
 public:
  manual_timer_service();
  ~manual_timer_service() override;

  clock::time_point now() const override;

  // Moves now() forward by exactly `by`, saturating at time_point::max() (a later advance leaves
  // it there; every armed timer is then due), then runs every timer now due, on the calling
  // thread, in deadline order (ties: arming order). Throws std::invalid_argument for a negative
  // `by`, leaving now() unchanged.
  void advance(std::chrono::nanoseconds by);

 private:
  mutable std::mutex mutex_;
  clock::time_point now_;
};

}  // namespace cancelkit
