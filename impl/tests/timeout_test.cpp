// S17: cancel_after arms one timer per source; manual_timer_service fires due timers in deadline
// order (ties: arming order); an armed timer keeps a source cancellable after its handles are
// gone. One short real-time test uses system_timer_service.
#include <cancelkit/cancelkit.hpp>

#include <atomic>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace cancelkit;
using namespace std::chrono_literals;
using cktest::holds;
using cktest::test_error;

// ---- firing ------------------------------------------------------------------------------------

TEST(CancelAfter, FiresWhenTheDelayHasPassed) {  // S17
  manual_timer_service timers;
  cancellation_source s(timers);
  s.cancel_after(10ms);
  timers.advance(9ms);
  EXPECT_FALSE(s.is_cancellation_requested());
  timers.advance(1ms);
  EXPECT_TRUE(s.is_cancellation_requested());
}

TEST(CancelAfter, FiringRecordsDeadlineExceeded) {  // S17, S16
  manual_timer_service timers;
  cancellation_source s(timers);
  s.cancel_after(10ms);
  timers.advance(10ms);
  EXPECT_TRUE(holds<deadline_exceeded>(s.token().cancellation_reason()));
}

TEST(CancelAfter, FiringRunsCallbacksOnTheAdvancingThreadInLifoOrder) {  // S17, S5
  manual_timer_service timers;
  cancellation_source s(timers);
  std::vector<int> order;
  std::vector<std::thread::id> threads;
  auto first = s.token().register_callback([&] {
    order.push_back(1);
    threads.push_back(std::this_thread::get_id());
  });
  auto second = s.token().register_callback([&] {
    order.push_back(2);
    threads.push_back(std::this_thread::get_id());
  });
  s.cancel_after(1ms);
  timers.advance(1ms);
  EXPECT_EQ(order, (std::vector<int>{2, 1}));
  EXPECT_EQ(threads, (std::vector<std::thread::id>(2, std::this_thread::get_id())));
}

TEST(CancelAfter, DelayConstructor_ArmsTheTimer) {  // S17, API
  manual_timer_service timers;
  cancellation_source s(10ms, timers);
  timers.advance(9ms);
  EXPECT_FALSE(s.is_cancellation_requested());
  timers.advance(1ms);
  EXPECT_TRUE(s.is_cancellation_requested());
  EXPECT_TRUE(holds<deadline_exceeded>(s.token().cancellation_reason()));
}

TEST(CancelAfter, DelayIsMeasuredFromTheCall) {  // S17
  manual_timer_service timers;
  cancellation_source s(timers);
  timers.advance(100ms);
  s.cancel_after(10ms);
  timers.advance(9ms);
  EXPECT_FALSE(s.is_cancellation_requested());
  timers.advance(1ms);
  EXPECT_TRUE(s.is_cancellation_requested());
}

TEST(CancelAfter, FiresOnce) {  // S17, S4
  manual_timer_service timers;
  cancellation_source s(timers);
  int runs = 0;
  auto reg = s.token().register_callback([&] { ++runs; });
  s.cancel_after(1ms);
  timers.advance(1ms);
  timers.advance(1h);
  EXPECT_EQ(runs, 1);
}

// ---- re-arming ---------------------------------------------------------------------------------

TEST(CancelAfter, Rearming_ReplacesALaterTimer) {  // S17
  manual_timer_service timers;
  cancellation_source s(timers);
  s.cancel_after(20ms);
  s.cancel_after(5ms);
  timers.advance(5ms);
  EXPECT_TRUE(s.is_cancellation_requested());
}

TEST(CancelAfter, Rearming_ReplacesAnEarlierTimer) {  // S17
  manual_timer_service timers;
  cancellation_source s(timers);
  s.cancel_after(10ms);
  s.cancel_after(20ms);
  timers.advance(10ms);
  EXPECT_FALSE(s.is_cancellation_requested());
  timers.advance(10ms);
  EXPECT_TRUE(s.is_cancellation_requested());
}

TEST(CancelAfter, Rearming_CountsFromTheNewCall) {  // S17
  manual_timer_service timers;
  cancellation_source s(timers);
  s.cancel_after(10ms);
  timers.advance(5ms);
  s.cancel_after(10ms);  // now due at 15 ms
  timers.advance(9ms);
  EXPECT_FALSE(s.is_cancellation_requested());
  timers.advance(1ms);
  EXPECT_TRUE(s.is_cancellation_requested());
}

TEST(CancelAfter, Rearming_KeepsOneTimerPerSource) {  // S17: the replaced timer never fires
  manual_timer_service timers;
  cancellation_source s(timers);
  int runs = 0;
  auto reg = s.token().register_callback([&] { ++runs; });
  for (int i = 0; i < 100; ++i) s.cancel_after(std::chrono::milliseconds(1 + i));
  timers.advance(1h);
  EXPECT_EQ(runs, 1);
}

TEST(CancelAfter, RearmingThroughACopy_ReplacesTheSameTimer) {  // S17: one timer per source
  manual_timer_service timers;
  cancellation_source s(timers);
  cancellation_source copy = s;
  s.cancel_after(5ms);
  copy.cancel_after(50ms);
  timers.advance(10ms);
  EXPECT_FALSE(s.is_cancellation_requested());
  timers.advance(40ms);
  EXPECT_TRUE(s.is_cancellation_requested());
}

// ---- d <= 0 ------------------------------------------------------------------------------------

TEST(CancelAfter, ZeroDelay_CancelsSynchronously) {  // S17
  manual_timer_service timers;
  cancellation_source s(timers);
  int runs = 0;
  auto reg = s.token().register_callback([&] { ++runs; });
  s.cancel_after(0ns);
  EXPECT_TRUE(s.is_cancellation_requested());
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(holds<deadline_exceeded>(s.token().cancellation_reason()));
}

TEST(CancelAfter, NegativeDelay_CancelsSynchronously) {  // S17
  manual_timer_service timers;
  cancellation_source s(timers);
  s.cancel_after(-5s);
  EXPECT_TRUE(s.is_cancellation_requested());
  EXPECT_TRUE(holds<deadline_exceeded>(s.token().cancellation_reason()));
}

TEST(CancelAfter, MinimumDelay_CancelsSynchronously) {  // S17: d <= 0, no overflow
  manual_timer_service timers;
  cancellation_source s(timers);
  s.cancel_after(std::chrono::nanoseconds::min());
  EXPECT_TRUE(s.is_cancellation_requested());
}

TEST(CancelAfter, ZeroDelay_RunsCallbacksOnTheCallingThread) {  // S17
  cancellation_source s;  // system timer service: nothing must go to its thread
  std::thread::id ran_on;
  auto reg = s.token().register_callback([&] { ran_on = std::this_thread::get_id(); });
  s.cancel_after(0ns);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(CancelAfter, ZeroDelay_CallbackExceptionsPropagateAsAggregate) {  // S17, S12
  manual_timer_service timers;
  int reports = 0;
  timers.set_error_handler([&](std::exception_ptr) { ++reports; });
  cancellation_source s(timers);
  auto r1 = s.token().register_callback([] { throw test_error{1}; });
  auto r2 = s.token().register_callback([] {});
  auto r3 = s.token().register_callback([] { throw test_error{3}; });
  try {
    s.cancel_after(0ns);
    FAIL() << "cancel_after(0) did not throw";
  } catch (const aggregate_exception& e) {
    EXPECT_EQ(cktest::error_ids(e.exceptions()), (std::vector<int>{3, 1}));
  }
  EXPECT_EQ(reports, 0);
  EXPECT_TRUE(s.is_cancellation_requested());
}

TEST(CancelAfter, ZeroDelay_DisarmsAnArmedTimer) {  // S17
  manual_timer_service timers;
  cancellation_source s(timers);
  s.cancel_after(10ms);
  s.cancel_after(0ns);
  int late_runs = 0;
  auto reg = s.token().register_callback([&] { ++late_runs; });  // runs inline
  timers.advance(1h);
  EXPECT_EQ(late_runs, 1);
}

// ---- nanoseconds::max() ------------------------------------------------------------------------

TEST(CancelAfter, MaxDelay_DisarmsTheArmedTimer) {  // S17
  manual_timer_service timers;
  cancellation_source s(timers);
  s.cancel_after(10ms);
  s.cancel_after(std::chrono::nanoseconds::max());
  timers.advance(24h);
  EXPECT_FALSE(s.is_cancellation_requested());
  EXPECT_TRUE(s.cancel());
}

TEST(CancelAfter, MaxDelay_NeverFires) {  // S17: no overflow into the past
  manual_timer_service timers;
  timers.advance(1h);  // a "now" far from zero makes a naive now + max overflow
  cancellation_source s(timers);
  s.cancel_after(std::chrono::nanoseconds::max());
  EXPECT_FALSE(s.is_cancellation_requested());
  timers.advance(24h * 365);
  EXPECT_FALSE(s.is_cancellation_requested());
}

TEST(CancelAfter, MaxDelayConstructor_NeverFires) {  // S17
  manual_timer_service timers;
  timers.advance(1h);
  cancellation_source s(std::chrono::nanoseconds::max(), timers);
  EXPECT_FALSE(s.is_cancellation_requested());
  timers.advance(24h);
  EXPECT_FALSE(s.is_cancellation_requested());
}

TEST(CancelAfter, MaxDelayOnSystemTimers_NeverFires) {  // S17
  cancellation_source s(std::chrono::nanoseconds::max());
  cancellation_source s2;
  s2.cancel_after(std::chrono::nanoseconds::max());
  EXPECT_FALSE(s.token().wait_for(20ms));
  EXPECT_FALSE(s2.is_cancellation_requested());
}

TEST(CancelAfter, MaxDelay_DoesNotKeepTheSourceCancellable) {  // S17, S23: "no timer"
  manual_timer_service timers;
  std::optional<cancellation_source> s(std::in_place, timers);
  const auto t = s->token();
  s->cancel_after(std::chrono::nanoseconds::max());
  s.reset();
  EXPECT_FALSE(t.can_be_canceled());
}

// ---- once cancelled ----------------------------------------------------------------------------

TEST(CancelAfter, OnceCancelled_HasNoEffect) {  // S17
  manual_timer_service timers;
  cancellation_source s(timers);
  const auto reason = std::make_exception_ptr(test_error{1});
  s.cancel(cancel_options{.reason = reason});
  s.cancel_after(1ms);
  s.cancel_after(0ns);
  timers.advance(1h);
  EXPECT_EQ(s.token().cancellation_reason(), reason);
}

TEST(CancelAfter, ArmedTimerAfterManualCancel_DoesNothingWhenDue) {  // S17, S4
  manual_timer_service timers;
  cancellation_source s(timers);
  int runs = 0;
  auto reg = s.token().register_callback([&] { ++runs; });
  s.cancel_after(5ms);
  s.cancel();
  timers.advance(5ms);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(s.token().cancellation_reason(), nullptr);
}

// ---- deadline order ----------------------------------------------------------------------------

TEST(ManualTimers, FireInDeadlineOrder) {  // S17, API: advance runs due timers in deadline order
  manual_timer_service timers;
  std::vector<char> order;
  cancellation_source a(timers);
  cancellation_source b(timers);
  cancellation_source c(timers);
  auto ra = a.token().register_callback([&] { order.push_back('a'); });
  auto rb = b.token().register_callback([&] { order.push_back('b'); });
  auto rc = c.token().register_callback([&] { order.push_back('c'); });
  a.cancel_after(30ms);
  b.cancel_after(10ms);
  c.cancel_after(20ms);
  timers.advance(1h);
  EXPECT_EQ(order, (std::vector<char>{'b', 'c', 'a'}));
}

TEST(ManualTimers, EqualDeadlines_FireInArmingOrder) {  // S17, API: ties in arming order
  manual_timer_service timers;
  std::vector<char> order;
  cancellation_source a(timers);
  cancellation_source b(timers);
  cancellation_source c(timers);
  auto ra = a.token().register_callback([&] { order.push_back('a'); });
  auto rb = b.token().register_callback([&] { order.push_back('b'); });
  auto rc = c.token().register_callback([&] { order.push_back('c'); });
  b.cancel_after(10ms);
  c.cancel_after(10ms);
  a.cancel_after(10ms);
  timers.advance(10ms);
  EXPECT_EQ(order, (std::vector<char>{'b', 'c', 'a'}));
}

TEST(ManualTimers, EqualDeadlinesArmedAtDifferentTimes_FireInArmingOrder) {  // S17, API
  manual_timer_service timers;
  std::vector<char> order;
  cancellation_source early(timers);
  cancellation_source late(timers);
  auto re = early.token().register_callback([&] { order.push_back('e'); });
  auto rl = late.token().register_callback([&] { order.push_back('l'); });
  early.cancel_after(30ms);  // due at 30 ms
  timers.advance(10ms);
  late.cancel_after(20ms);  // due at 30 ms too, armed later
  timers.advance(20ms);
  EXPECT_EQ(order, (std::vector<char>{'e', 'l'}));
}

TEST(ManualTimers, OnlyDueTimersFire) {  // S17, API
  manual_timer_service timers;
  cancellation_source due(timers);
  cancellation_source not_due(timers);
  due.cancel_after(10ms);
  not_due.cancel_after(10ms + 1ns);
  timers.advance(10ms);
  EXPECT_TRUE(due.is_cancellation_requested());
  EXPECT_FALSE(not_due.is_cancellation_requested());
}

TEST(ManualTimers, DelayConstructorsFireInDeadlineOrder) {  // S17, API
  manual_timer_service timers;
  std::vector<int> order;
  cancellation_source late(20ms, timers);
  cancellation_source early(10ms, timers);
  auto rl = late.token().register_callback([&] { order.push_back(20); });
  auto re = early.token().register_callback([&] { order.push_back(10); });
  timers.advance(30ms);
  EXPECT_EQ(order, (std::vector<int>{10, 20}));
}

// ---- lifetime ----------------------------------------------------------------------------------

TEST(CancelAfter, ArmedTimerKeepsTheTokenCancellableWithoutAnyHandle) {  // S17, S23
  manual_timer_service timers;
  const auto t = cancellation_source(5s, timers).token();
  EXPECT_TRUE(t.can_be_canceled());
  EXPECT_FALSE(t.is_cancellation_requested());
  timers.advance(5s);
  EXPECT_TRUE(t.is_cancellation_requested());
  EXPECT_TRUE(holds<deadline_exceeded>(t.cancellation_reason()));
}

TEST(CancelAfter, ArmedTimerRunsCallbacksWithoutAnyHandle) {  // S17, S23
  manual_timer_service timers;
  int runs = 0;
  auto reg = cancellation_source(5ms, timers).token().register_callback([&] { ++runs; });
  timers.advance(5ms);
  EXPECT_EQ(runs, 1);
}

TEST(CancelAfter, TimedParentHeldOnlyByItsTimer_StillCancelsTheChild) {  // S17, S19, S23
  manual_timer_service timers;
  const auto child = cancellation_source::linked({cancellation_source(10ms, timers).token()});
  const auto t = child.token();
  timers.advance(10ms);
  EXPECT_TRUE(t.is_cancellation_requested());
  EXPECT_TRUE(holds<deadline_exceeded>(t.cancellation_reason()));
}

TEST(CancelAfter, ChildTokenOfTimedParent_IsCancellableWithoutAnyHandle) {  // S17, S21, S23
  manual_timer_service timers;
  const auto t =
      cancellation_source::linked({cancellation_source(10ms, timers).token()}).token();
  EXPECT_TRUE(t.can_be_canceled());
  timers.advance(10ms);
  EXPECT_TRUE(t.is_cancellation_requested());
}

// ---- real time ---------------------------------------------------------------------------------

TEST(SystemTimers, CancelAfterFiresOnAServiceThread) {  // S17: a worker of the service, not the caller
  cancellation_source s;
  std::atomic<bool> ran{false};
  std::atomic<std::thread::id> ran_on{};
  auto reg = s.token().register_callback([&] {
    ran_on = std::this_thread::get_id();
    ran = true;
  });
  const auto start = cktest::steady::now();
  s.cancel_after(20ms);
  const bool requested_early = s.is_cancellation_requested();
  if (cktest::steady::now() - start < 20ms) {
    EXPECT_FALSE(requested_early) << "fired before its delay";
  }
  ASSERT_TRUE(s.token().wait_for(5s));
  EXPECT_GE(cktest::steady::now() - start, 20ms);
  EXPECT_TRUE(holds<deadline_exceeded>(s.token().cancellation_reason()));
  ASSERT_TRUE(cktest::eventually([&] { return ran.load(); }));
  EXPECT_NE(ran_on.load(), std::this_thread::get_id());
}

TEST(SystemTimers, TokenOfTemporaryTimedSource_IsCancelledLater) {  // S17
  const auto t = cancellation_source(10ms).token();
  EXPECT_TRUE(t.can_be_canceled());
  EXPECT_TRUE(t.wait_for(5s));
}
