// Family "coroutine" (issue 18): the awaiters of <cancelkit/coroutine.hpp> against what a
// program without them would do.
//
//   cancel_resume/cancelkit   a fresh source; a coroutine suspends in cancelled(token); cancel()
//                             resumes it (suspend + resume through the awaiter)
//   cancel_resume/callback    the baseline: a fresh source; a cancellation_callback registered;
//                             cancel() runs it
//   delay_cancel/cancelkit    a fresh source on a manual timer service; a coroutine suspends in
//                             delay(1h, token, timers) (arms the timer entry, registers);
//                             cancel() resumes it with operation_canceled (throw + catch included)
//   delay_cancel/cancel_after the baseline: a fresh source on the same service; cancel_after(1h)
//                             arms its timer; cancel() disarms it
//   delay_rearm/cancel_after  cancel_after(1h) then cancel_after(max) on one long-lived source
//                             (timer arm + disarm, no source creation)
//   delay_timer/cancelkit     delay(1ns, timers) without a token, resumed by advance(1ns): the
//                             timer entry's arm + take + resume alone (no source, no exception)
//
// One long-lived coroutine serves every iteration: between awaits it parks at a hand-off point
// that the benchmark loop resumes, so no coroutine frame is allocated per iteration and allocs/op
// shows what the awaiter itself costs (the source's state; for cancelled(), the source's
// extension, installed by its first await). Ratios: scripts/bench-compare pairs rows by impl.
#include "common.hpp"

#if __has_include(<cancelkit/coroutine.hpp>)  // older commits measured by scripts/bench-compare
#include <cancelkit/cancelkit.hpp>
#include <cancelkit/coroutine.hpp>

#include <chrono>
#include <coroutine>
#include <exception>

namespace {

int sink = 0;

// Eager, never finishes; parks at `handoff` and is resumed by the loop.
struct driver {
  struct promise_type {
    driver get_return_object() noexcept {
      return driver{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
  std::coroutine_handle<promise_type> h;
};

// The token (and service) the next await uses, set by the loop before it resumes the driver.
struct exchange {
  const cancelkit::cancellation_token* token = nullptr;
  cancelkit::timer_service* timers = nullptr;
};

driver await_cancelled_forever(exchange& x) {
  for (;;) {
    co_await cancelkit::cancelled(*x.token);
    ++sink;
    co_await std::suspend_always{};  // hand-off: the loop resumes us with the next token
  }
}

driver await_delay_forever(exchange& x) {
  for (;;) {
    try {
      co_await cancelkit::delay(std::chrono::hours(1), *x.token, *x.timers);
    } catch (const cancelkit::operation_canceled&) {
      ++sink;
    }
    co_await std::suspend_always{};
  }
}

void cancel_resume_cancelkit(benchmark::State& state) {
  exchange x;
  driver d = await_cancelled_forever(x);
  bench::alloc_meter meter;
  for (auto _ : state) {
    cancelkit::cancellation_source source;
    const cancelkit::cancellation_token token = source.token();
    x.token = &token;
    d.h.resume();  // runs to the await: suspends in cancelled(token)
    static_cast<void>(source.cancel());  // resumes it, inside cancel(); it parks again
  }
  meter.report(state);
  d.h.destroy();
}

void cancel_resume_callback(benchmark::State& state) {
  bench::alloc_meter meter;
  for (auto _ : state) {
    cancelkit::cancellation_source source;
    cancelkit::cancellation_callback cb(source.token(), [] { ++sink; });
    static_cast<void>(source.cancel());
  }
  meter.report(state);
}

driver await_short_delay_forever(exchange& x) {
  for (;;) {
    co_await cancelkit::delay(std::chrono::nanoseconds(1), *x.timers);
    ++sink;
    co_await std::suspend_always{};
  }
}

void delay_timer_cancelkit(benchmark::State& state) {
  cancelkit::manual_timer_service timers;
  exchange x;
  x.timers = &timers;
  driver d = await_short_delay_forever(x);
  bench::alloc_meter meter;
  for (auto _ : state) {
    d.h.resume();                               // arms a 1 ns delay, suspends
    timers.advance(std::chrono::nanoseconds(1));  // due: resumes it; it parks again
  }
  meter.report(state);
  d.h.destroy();
}

void delay_cancel_cancelkit(benchmark::State& state) {
  cancelkit::manual_timer_service timers;
  exchange x;
  x.timers = &timers;
  driver d = await_delay_forever(x);
  bench::alloc_meter meter;
  for (auto _ : state) {
    cancelkit::cancellation_source source(timers);
    const cancelkit::cancellation_token token = source.token();
    x.token = &token;
    d.h.resume();                        // arms the delay's timer entry, registers, suspends
    static_cast<void>(source.cancel());  // takes the timer off, resumes with operation_canceled
  }
  meter.report(state);
  d.h.destroy();
}

void delay_cancel_cancel_after(benchmark::State& state) {
  cancelkit::manual_timer_service timers;
  bench::alloc_meter meter;
  for (auto _ : state) {
    cancelkit::cancellation_source source(timers);
    source.cancel_after(std::chrono::hours(1));
    static_cast<void>(source.cancel());  // disarms the timer
  }
  meter.report(state);
}

void delay_rearm_cancel_after(benchmark::State& state) {
  cancelkit::manual_timer_service timers;
  cancelkit::cancellation_source source(timers);
  bench::alloc_meter meter;
  for (auto _ : state) {
    source.cancel_after(std::chrono::hours(1));
    source.cancel_after(std::chrono::nanoseconds::max());  // "no timer": disarms
  }
  meter.report(state);
}

const bool registered = [] {
  bench::add("coroutine", "cancel_resume", "cancelkit", cancel_resume_cancelkit);
  bench::add("coroutine", "cancel_resume", "callback", cancel_resume_callback);
  bench::add("coroutine", "delay_cancel", "cancelkit", delay_cancel_cancelkit);
  bench::add("coroutine", "delay_cancel", "cancel_after", delay_cancel_cancel_after);
  bench::add("coroutine", "delay_rearm", "cancel_after", delay_rearm_cancel_after);
  bench::add("coroutine", "delay_timer", "cancelkit", delay_timer_cancelkit);
  return true;
}();

}  // namespace
#endif
