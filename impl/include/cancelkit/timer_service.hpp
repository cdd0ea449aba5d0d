// cancelkit/timer_service.hpp — where cancel_after() timers live, and the clock they read.
//
// A timer_service keeps one timer per armed source (and one per suspended coroutine delay,
// coroutine.hpp), ordered by deadline and, for equal deadlines, by arming order. When a source's
// timer is due, the service cancels the source on one of the service's threads with reason
// `deadline_exceeded` (S16, S17). Every callback runs even if some throw; the exceptions are
// then passed once, as an aggregate_exception, to the error handler, or
// std::terminate is called when none is installed (S15).
//
// - system_timer_service(): the process-wide service on std::chrono::steady_clock. One timer
//   thread, started by the first armed timer, waits for deadlines and runs no user code: it hands
//   each due timer to a small pool of worker threads (started on demand, at most 8; an idle
//   worker exits after 2 s), which run the cancellation, its callbacks and the error handler. So
//   a callback that blocks delays no other timer, and may wait for another timer-driven token,
//   as long as fewer than 8 callbacks block at once (a due timer then waits for a free worker).
//   Only when no worker thread can be started at all is a due timer fired on the timer thread
//   itself, rather than never. If the timer thread cannot be started, cancel_after() throws
//   std::system_error and leaves the source's earlier timer as it was (S25).
//
//   Process exit. The service stops at its *shutdown point*: the destruction of a function-local
//   static object that it creates when the first timer is armed. By the C++ rules for static
//   destruction, exit() (or returning from main) reaches that point after destroying every
//   static object whose construction completed after the first timer was armed, and before
//   destroying those constructed earlier. Until then timers fire as usual, so a callback may run
//   while later-constructed statics are being destroyed. From the shutdown point on no timer
//   fires (its source is simply never cancelled; try_reset() on it may return false); the timer
//   thread is joined and the idle workers leave. A callback still running at that point is
//   neither waited for nor interrupted (it may be waiting for the exiting thread): it runs on
//   beside the remaining static destructors until the process ends, so it must touch only what
//   exit() does not destroy (heap objects, leaked singletons; no object of static storage
//   duration, none of the exiting thread's thread_locals) and must not count on finishing.
//
//   fork(). The child has only the forking thread, so the service forgets the parent's threads
//   (pthread_atfork handlers, registered when the first timer is armed) and starts fresh ones
//   when the child next arms a timer; a fork while another thread arms or fires a timer cannot
//   leave the service's locks held in the child. Timers armed before the fork stay armed in the
//   child and fire there once its service runs (after its first cancel_after). A timer that the
//   parent's timer thread or a worker was firing at the moment of the fork is never finished in
//   the child: its source stays uncancelled there, its try_reset() returns false, and the state
//   is never freed. As with any fork of a multi-threaded process, everything else that other
//   threads were doing at that moment (a cancel() in progress, say) stays as it was in the child.
// - manual_timer_service: time moves only when advance() is called, and due timers run on the
//   thread that calls it. For tests.
//
// A timer_service must outlive every source and every delay() awaiter that uses it
// (precondition; not checked).
//
// Thread safety: a service is shared by design. Every public member (set_error_handler, now,
// manual_timer_service::advance) may be called from any thread at the same time as any other,
// and as cancel_after()/try_reset() on its sources; the service's one mutex orders them (it is
// taken before any source's lock, never after: [I12] in detail/state.hpp). Two advance() calls
// at once each move the clock by their own amount and each fire what is due by then.
// Memory ordering: a timer's cancellation is a cancel() made on the firing thread (S3 holds
// from there), and everything a thread did before arming happens-before the firing (the arming
// and the firing take the service's mutex).
#pragma once

#include <cancelkit/detail/sync.hpp>
#include <cancelkit/detail/timer_entry.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>

namespace cancelkit {

namespace detail {
struct timer_access;
class source_extension;
}

class timer_service {
 public:
  using clock = std::chrono::steady_clock;

  timer_service(const timer_service&) = delete;
  timer_service& operator=(const timer_service&) = delete;
  virtual ~timer_service();

  // Installs the handler for exceptions thrown by callbacks of timer-triggered cancellations
  // (S15); an empty function uninstalls it. Thread-safe. The handler is called on one of the
  // service's threads (for system_timer_service(), a worker; for manual_timer_service, the
  // thread that calls advance()), once per cancellation whose callbacks threw.
  void set_error_handler(std::function<void(std::exception_ptr)> handler);

  // The service's current time.
  virtual clock::time_point now() const = 0;

 protected:
  timer_service();

  // Takes every timer due at `now` off the service, in deadline order (ties: arming order),
  // including timers armed meanwhile, and passes each to hand_off() on the calling thread.
  // Returns the earliest deadline left, or time_point::max() when none is armed.
  clock::time_point run_due(clock::time_point now);

  // Called by run_due(), outside the service's lock, for each due timer. The override must
  // call fire(due) exactly once, on this or any other thread, or never (then the source is
  // never cancelled, try_reset() on it returns false and its state is never freed, or the
  // delayed coroutine is never resumed: for a service that is shutting down). The default
  // fires it at once, on the calling thread.
  virtual void hand_off(detail::timer_entry& due) noexcept;

  // Runs a timer passed to hand_off(): cancels its source (callbacks, error handler) and
  // releases what the timer held, or resumes the delayed coroutine.
  static void fire(detail::timer_entry& due) noexcept;

  // Called, outside the service's lock, before a timer is armed; a throw arms nothing (S25).
  // A service with a thread of its own starts it here, throwing std::system_error when it
  // cannot.
  virtual void ensure_running() {}

  // Called, outside the service's lock, after a timer was armed. A service with a thread of its
  // own wakes it here.
  virtual void timers_changed() noexcept {}

 private:
  friend struct detail::timer_access;
  struct impl;
  std::unique_ptr<impl> impl_;
};

// The process-wide service: threads started lazily, callbacks on workers, shutdown point at
// exit, fresh threads after fork() (see the top of this file).
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
  mutable detail::sync::mutex mutex_;  // std::mutex (the model checker's in a model build)
  clock::time_point now_;
};

}  // namespace cancelkit
