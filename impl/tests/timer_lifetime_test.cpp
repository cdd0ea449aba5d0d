// manual_timer_service's clock at its limits (issue 16, defect 8) and the timer's part in a
// source's lifetime (S17; the timer protocol [T1]..[T4] of impl/src/timer_service.cpp).
//
// The race of defect 1 (a timer firing while the last handle drops) is a stress scenario,
// stress/scenarios/timeout_dropped_near_deadline.cpp, run under TSan and ASan; defect 2 (the
// sole-owner free reading the extension too early) is the Relacy test sole_owner_vs_extension.
#include <cancelkit/cancelkit.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "test_support.hpp"

using namespace cancelkit;
using namespace std::chrono_literals;

namespace {
using time_point = timer_service::clock::time_point;
}

// ---- advance() saturates (defect 8) -------------------------------------------------------------

TEST(ManualTimerAdvance, ByMaxFromZeroReachesTimePointMax) {  // API: saturates, never overflows
  manual_timer_service timers;
  timers.advance(std::chrono::nanoseconds::max());
  EXPECT_EQ(timers.now(), time_point::max());
}

TEST(ManualTimerAdvance, ByMaxAfterAStepSaturatesInsteadOfWrapping) {  // API; defect 8
  // Old code: now_ += max after 1 ns is signed overflow; now() went to INT64_MIN.
  manual_timer_service timers;
  timers.advance(1ns);
  timers.advance(std::chrono::nanoseconds::max());
  EXPECT_EQ(timers.now(), time_point::max());
}

TEST(ManualTimerAdvance, StaysAtTimePointMaxOnLaterAdvances) {  // API
  manual_timer_service timers;
  timers.advance(std::chrono::nanoseconds::max());
  timers.advance(1h);
  timers.advance(std::chrono::nanoseconds::max());
  EXPECT_EQ(timers.now(), time_point::max());
}

TEST(ManualTimerAdvance, SaturatingAdvanceFiresEveryArmedTimer) {  // S17; defect 8
  // Old code: the wrapped clock lay in the far past and the 1 h timer never fired.
  manual_timer_service timers;
  cancellation_source hour(timers), year(timers);
  hour.cancel_after(1h);
  year.cancel_after(24h * 365);
  timers.advance(1ns);
  timers.advance(std::chrono::nanoseconds::max());
  EXPECT_TRUE(hour.is_cancellation_requested());
  EXPECT_TRUE(year.is_cancellation_requested());
}

TEST(ManualTimerAdvance, NegativeStillThrowsAtTheLimit) {  // API: invalid_argument, now() kept
  manual_timer_service timers;
  timers.advance(std::chrono::nanoseconds::max());
  EXPECT_THROW(timers.advance(-1ns), std::invalid_argument);
  EXPECT_EQ(timers.now(), time_point::max());
}

TEST(ManualTimerAdvance, CancelAfterOnASaturatedClockArmsNoTimer) {  // S17: never overflows
  // No deadline after time_point::max() can be represented: like nanoseconds::max(), no timer.
  manual_timer_service timers;
  timers.advance(std::chrono::nanoseconds::max());
  cancellation_source s(timers);
  s.cancel_after(1ms);
  timers.advance(1ms);
  EXPECT_FALSE(s.is_cancellation_requested());
  EXPECT_TRUE(s.token().can_be_canceled());
}

// ---- the timer and the last handle (S17, [T2]) ---------------------------------------------------

TEST(TimerLifetime, AdvanceOnAnotherThreadWhileHandlesDropNearTheDeadline) {  // S17, [T2]
  // The manual-timer shape of defect 1: one thread advances while another creates sources with
  // timeouts and drops them around their deadline. The assertions below hold either way; the
  // use-after-free itself shows under the asan and tsan presets (and in the stress scenario).
  manual_timer_service timers;
  timers.set_error_handler([](std::exception_ptr) {});
  std::atomic<bool> done{false};
  std::thread clock([&] {
    // acquire: pairs with the release below; nothing else is shared.
    while (!done.load(std::memory_order_acquire)) timers.advance(1us);
  });
  bool every_waited_one_fired = true;
  for (int i = 0; i < 2000; ++i) {
    cancellation_source op(std::chrono::microseconds(1 + i % 3), timers);
    cancellation_token t = op.token();
    if (i % 2 == 0) static_cast<void>(cancellation_source(std::move(op)));  // the source first
    // Every 8th waits for its timer, so that firings and drops meet all along the loop.
    if (i % 8 == 0) every_waited_one_fired = every_waited_one_fired && t.wait_for(10s);
  }
  done.store(true, std::memory_order_release);
  clock.join();
  EXPECT_TRUE(every_waited_one_fired);  // S17: an armed timer keeps the token cancellable
}
