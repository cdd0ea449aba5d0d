// S18: try_reset() succeeds only before the request and before the timer starts firing; it
// disarms the timer and drops every registration; tokens stay valid and equal.
#include <cancelkit/cancelkit.hpp>

#include <atomic>
#include <chrono>
#include <latch>
#include <optional>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace cancelkit;
using namespace std::chrono_literals;
using cktest::bounded_thread;

TEST(TryReset, LiveSource_ReturnsTrue) {  // S18
  cancellation_source s;
  EXPECT_TRUE(s.try_reset());
  EXPECT_TRUE(s.try_reset());
  EXPECT_FALSE(s.is_cancellation_requested());
}

TEST(TryReset, AfterCancel_ReturnsFalse) {  // S18, S1
  cancellation_source s;
  s.cancel();
  EXPECT_FALSE(s.try_reset());
  EXPECT_TRUE(s.is_cancellation_requested());
}

TEST(TryReset, AfterTimerFired_ReturnsFalse) {  // S18
  manual_timer_service timers;
  cancellation_source s(timers);
  s.cancel_after(1ms);
  timers.advance(1ms);
  EXPECT_FALSE(s.try_reset());
  EXPECT_TRUE(s.is_cancellation_requested());
}

TEST(TryReset, FromACallbackOfTheTimerTriggeredCancel_ReturnsFalse) {  // S18
  manual_timer_service timers;
  cancellation_source s(timers);
  std::optional<bool> result;
  auto reg = s.token().register_callback([&] { result = s.try_reset(); });
  s.cancel_after(1ms);
  timers.advance(1ms);
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(*result);
  EXPECT_TRUE(s.is_cancellation_requested());
}

TEST(TryReset, FromACallbackOfCancel_ReturnsFalse) {  // S18
  cancellation_source s;
  std::optional<bool> result;
  auto reg = s.token().register_callback([&] { result = s.try_reset(); });
  s.cancel();
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(*result);
}

TEST(TryReset, DisarmsTheTimer) {  // S18
  manual_timer_service timers;
  cancellation_source s(timers);
  s.cancel_after(10ms);
  EXPECT_TRUE(s.try_reset());
  timers.advance(1h);
  EXPECT_FALSE(s.is_cancellation_requested());
}

TEST(TryReset, DisarmsTheTimerOfTheDelayConstructor) {  // S18
  manual_timer_service timers;
  cancellation_source s(10ms, timers);
  EXPECT_TRUE(s.try_reset());
  timers.advance(1h);
  EXPECT_FALSE(s.is_cancellation_requested());
}

TEST(TryReset, TimerCanBeArmedAgainAfterwards) {  // S18, S17
  manual_timer_service timers;
  cancellation_source s(timers);
  s.cancel_after(10ms);
  EXPECT_TRUE(s.try_reset());
  s.cancel_after(20ms);
  timers.advance(10ms);
  EXPECT_FALSE(s.is_cancellation_requested());
  timers.advance(10ms);
  EXPECT_TRUE(s.is_cancellation_requested());
}

TEST(TryReset, RemovedCallbacks_NeverRun) {  // S18
  cancellation_source s;
  int runs = 0;
  auto r1 = s.token().register_callback([&] { ++runs; });
  cancellation_callback r2(s.token(), [&] { ++runs; });
  EXPECT_TRUE(s.try_reset());
  EXPECT_TRUE(s.cancel());
  EXPECT_EQ(runs, 0);
}

TEST(TryReset, RemovedRegistrations_UnregisterReturnsFalse) {  // S18, S8
  cancellation_source s;
  auto r1 = s.token().register_callback([] {});
  cancellation_callback r2(s.token(), [] {});
  EXPECT_TRUE(s.try_reset());
  EXPECT_FALSE(r1.unregister());
  EXPECT_FALSE(r2.unregister());
}

TEST(TryReset, RemovedRegistrations_CanBeDisposedAndKeepTheirToken) {  // S18, API
  cancellation_source s;
  auto r = s.token().register_callback([] {});
  EXPECT_TRUE(s.try_reset());
  EXPECT_TRUE(r.token() == s.token());
  r.dispose();
  EXPECT_TRUE(s.cancel());
}

TEST(TryReset, TokensStayValidAndEqual) {  // S18
  cancellation_source s;
  const auto before = s.token();
  EXPECT_TRUE(s.try_reset());
  EXPECT_TRUE(before == s.token());
  EXPECT_TRUE(before.can_be_canceled());
  EXPECT_FALSE(before.is_cancellation_requested());
}

TEST(TryReset, SourceCanBeCancelledAgainLater) {  // S18
  cancellation_source s;
  const auto t = s.token();
  EXPECT_TRUE(s.try_reset());
  EXPECT_TRUE(s.cancel());
  EXPECT_TRUE(t.is_cancellation_requested());
}

TEST(TryReset, CallbacksRegisteredAfterwards_Run) {  // S18, S5
  cancellation_source s;
  std::vector<int> order;
  auto old = s.token().register_callback([&] { order.push_back(0); });
  EXPECT_TRUE(s.try_reset());
  auto r1 = s.token().register_callback([&] { order.push_back(1); });
  auto r2 = s.token().register_callback([&] { order.push_back(2); });
  s.cancel();
  EXPECT_EQ(order, (std::vector<int>{2, 1}));
}

TEST(TryReset, RacingCancel_CallbackRanXorResetSucceeded) {  // S18, S11
  constexpr int iterations = 300;
  for (int i = 0; i < iterations; ++i) {
    cancellation_source s;
    std::atomic<int> runs{0};
    auto reg = s.token().register_callback([&] { runs.fetch_add(1); });
    std::latch start(2);
    std::atomic<bool> cancelled{false};
    bounded_thread canceller([&] {
      start.arrive_and_wait();
      cancelled = s.cancel();
    });
    start.arrive_and_wait();
    const bool reset = s.try_reset();
    canceller.join();
    EXPECT_TRUE(cancelled.load()) << "iteration " << i;
    ASSERT_EQ(runs.load() + (reset ? 1 : 0), 1) << "iteration " << i;
    EXPECT_FALSE(reg.unregister()) << "iteration " << i;
  }
}

TEST(TryReset, RacingTheSystemTimer_EitherResetForGoodOrCancelled) {  // S18, S17
  for (int i = 0; i < 40; ++i) {
    cancellation_source s;
    const auto t = s.token();
    s.cancel_after(2ms);
    std::this_thread::sleep_for(std::chrono::microseconds(500 * (i % 8)));
    if (s.try_reset()) {
      // Reset before the timer started firing: it is disarmed for good.
      EXPECT_FALSE(t.wait_for(10ms)) << "fired after a successful try_reset, iteration " << i;
    } else {
      // The timer started firing: the source is (about to be) cancelled.
      EXPECT_TRUE(t.wait_for(5s)) << "iteration " << i;
      EXPECT_TRUE(cktest::holds<deadline_exceeded>(t.cancellation_reason()));
    }
  }
}
