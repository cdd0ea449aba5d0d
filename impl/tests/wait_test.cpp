// wait / wait_for / wait_until (API, S3, S23): they return once cancelled, never overflow on huge
// timeouts, and do not hang when nothing can cancel the token any more.
#include <cancelkit/cancelkit.hpp>

#include <atomic>
#include <chrono>
#include <latch>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include "test_support.hpp"

using namespace cancelkit;
using namespace std::chrono_literals;
using cktest::bounded_thread;
using cktest::delayed_cancel;
using cktest::elapsed_since;
using cktest::eventually;
using cktest::steady;

namespace {

// "At once": far below the timeouts used, generous for a loaded machine.
constexpr auto at_once = 2s;

}  // namespace

// ---- wait --------------------------------------------------------------------------------------

TEST(Wait, ReturnsOnceCancelledFromAnotherThread) {  // API
  cancellation_source s;
  const auto t = s.token();
  delayed_cancel canceller(s, 30ms);
  t.wait();
  EXPECT_TRUE(t.is_cancellation_requested());
}

TEST(Wait, OnACancelledToken_ReturnsAtOnce) {  // API
  cancellation_source s;
  s.cancel();
  EXPECT_NO_THROW(s.token().wait());
}

TEST(Wait, OnACancelledTokenWithoutHandles_ReturnsAtOnce) {  // API, S24
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  s->cancel();
  s.reset();
  EXPECT_NO_THROW(t.wait());
}

TEST(Wait, OnTheNoneToken_ThrowsLogicError) {  // API, S23
  EXPECT_THROW(cancellation_token::none().wait(), std::logic_error);
}

TEST(Wait, OnATokenThatCanNoLongerBeCanceled_ThrowsLogicError) {  // API, S23
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  s.reset();
  EXPECT_THROW(t.wait(), std::logic_error);
}

TEST(Wait, LastSourceDroppedWhileWaiting_ThrowsLogicError) {  // API, S23
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  std::atomic<bool> waiting{false};
  std::atomic<bool> threw_logic_error{false};
  bounded_thread waiter([&] {
    waiting = true;
    try {
      t.wait();
    } catch (const std::logic_error&) {
      threw_logic_error = true;
    }
  });
  ASSERT_TRUE(eventually([&] { return waiting.load(); }));
  std::this_thread::sleep_for(30ms);  // let it block
  s.reset();
  waiter.join(5s);
  EXPECT_TRUE(threw_logic_error.load());
}

TEST(Wait, LastSourceDroppedRacingWithWait_AlwaysThrowsLogicError) {  // API, S23
  for (int i = 0; i < 200; ++i) {
    std::optional<cancellation_source> s(std::in_place);
    const auto t = s->token();
    std::atomic<bool> threw_logic_error{false};
    std::latch start(2);
    bounded_thread waiter([&] {
      start.arrive_and_wait();
      try {
        t.wait();
      } catch (const std::logic_error&) {
        threw_logic_error = true;
      }
    });
    start.arrive_and_wait();
    s.reset();
    waiter.join(5s);
    ASSERT_TRUE(threw_logic_error.load()) << "iteration " << i;
  }
}

TEST(Wait, LastParentDroppedWhileAChildTokenWaits_ThrowsLogicError) {  // API, S23
  std::optional<cancellation_source> parent(std::in_place);
  const auto t = cancellation_source::linked({parent->token()}).token();
  std::atomic<bool> waiting{false};
  std::atomic<bool> threw_logic_error{false};
  bounded_thread waiter([&] {
    waiting = true;
    try {
      t.wait();
    } catch (const std::logic_error&) {
      threw_logic_error = true;
    }
  });
  ASSERT_TRUE(eventually([&] { return waiting.load(); }));
  std::this_thread::sleep_for(30ms);
  parent.reset();
  waiter.join(5s);
  EXPECT_TRUE(threw_logic_error.load());
}

TEST(Wait, ManyWaiters_AllWokenByOneCancel) {  // API, S3
  cancellation_source s;
  const auto t = s.token();
  std::atomic<int> woken{0};
  std::vector<std::unique_ptr<bounded_thread>> waiters;
  for (int i = 0; i < 8; ++i) {
    waiters.push_back(std::make_unique<bounded_thread>([&] {
      t.wait();
      woken.fetch_add(1);
    }));
  }
  std::this_thread::sleep_for(20ms);
  s.cancel();
  waiters.clear();
  EXPECT_EQ(woken.load(), 8);
}

// A request with exactly one callback and nothing else takes a short path of its own (issue
// 20); a waiter is "something else", and must be woken by it like by any other request.
TEST(Wait, ReturnsOnceACancelWithOneCallbackRan) {  // API, S3
  cancellation_source s;
  const auto t = s.token();
  std::atomic<bool> ran{false};
  cancellation_callback cb(t, [&] { ran = true; });
  std::atomic<bool> returned{false};
  bounded_thread waiter([&] {
    t.wait();
    returned = true;
  });
  std::this_thread::sleep_for(20ms);  // the waiter is asleep (or about to be) when we cancel
  EXPECT_FALSE(returned.load());
  EXPECT_TRUE(s.cancel());
  waiter.join(5s);
  EXPECT_TRUE(returned.load());
  EXPECT_TRUE(ran.load());
}

TEST(Wait, RacingWithCancel_AlwaysReturns) {  // API, S3
  for (int i = 0; i < 300; ++i) {
    cancellation_source s;
    const auto t = s.token();
    std::latch start(2);
    bounded_thread waiter([&] {
      start.arrive_and_wait();
      t.wait();
    });
    start.arrive_and_wait();
    s.cancel();
    waiter.join(5s);
  }
}

TEST(Wait, TimerCancel_WakesTheWaiter) {  // API, S17
  manual_timer_service timers;
  cancellation_source s(timers);
  const auto t = s.token();
  s.cancel_after(1s);
  std::atomic<bool> returned{false};
  bounded_thread waiter([&] {
    t.wait();
    returned = true;
  });
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(returned.load());
  timers.advance(1s);
  waiter.join(5s);
  EXPECT_TRUE(returned.load());
}

// ---- wait_for ----------------------------------------------------------------------------------

TEST(WaitFor, ReturnsTrueOnceCancelled) {  // API
  cancellation_source s;
  delayed_cancel canceller(s, 30ms);
  EXPECT_TRUE(s.token().wait_for(10s));
}

TEST(WaitFor, TimesOut_ReturnsFalseAfterTheTimeout) {  // API
  cancellation_source s;
  const auto start = steady::now();
  EXPECT_FALSE(s.token().wait_for(30ms));
  EXPECT_GE(steady::now() - start, 30ms);
}

TEST(WaitFor, OnACancelledToken_ReturnsTrueAtOnce) {  // API
  cancellation_source s;
  s.cancel();
  const auto start = steady::now();
  EXPECT_TRUE(s.token().wait_for(10s));
  EXPECT_LT(elapsed_since(start), at_once);
}

TEST(WaitFor, ZeroTimeout_ReturnsTheCurrentState) {  // API
  cancellation_source s;
  EXPECT_FALSE(s.token().wait_for(0ns));
  s.cancel();
  EXPECT_TRUE(s.token().wait_for(0ns));
}

TEST(WaitFor, NegativeTimeout_ReturnsTheCurrentState) {  // API
  cancellation_source s;
  EXPECT_FALSE(s.token().wait_for(-1s));
  EXPECT_FALSE(s.token().wait_for(std::chrono::nanoseconds::min()));
  s.cancel();
  EXPECT_TRUE(s.token().wait_for(-1s));
  EXPECT_TRUE(s.token().wait_for(std::chrono::hours::min()));
}

TEST(WaitFor, MaxNanoseconds_DoesNotOverflow) {  // API
  cancellation_source s;
  delayed_cancel canceller(s, 50ms);
  EXPECT_TRUE(s.token().wait_for(std::chrono::nanoseconds::max()));
}

TEST(WaitFor, MaxMilliseconds_DoesNotOverflow) {  // API
  cancellation_source s;
  delayed_cancel canceller(s, 50ms);
  EXPECT_TRUE(s.token().wait_for(std::chrono::milliseconds::max()));
}

TEST(WaitFor, MaxHours_DoesNotOverflow) {  // API
  cancellation_source s;
  delayed_cancel canceller(s, 50ms);
  EXPECT_TRUE(s.token().wait_for(std::chrono::hours::max()));
}

TEST(WaitFor, MaxFloatingPointSeconds_DoesNotOverflow) {  // API
  cancellation_source s;
  delayed_cancel canceller(s, 50ms);
  EXPECT_TRUE(s.token().wait_for(std::chrono::duration<double>::max()));
}

TEST(WaitFor, NoneToken_ReturnsFalseAtOnce) {  // API, S23
  const auto start = steady::now();
  EXPECT_FALSE(cancellation_token::none().wait_for(10s));
  EXPECT_FALSE(cancellation_token::none().wait_for(std::chrono::nanoseconds::max()));
  EXPECT_LT(elapsed_since(start), at_once);
}

TEST(WaitFor, TokenThatCanNoLongerBeCanceled_ReturnsFalseAtOnce) {  // API, S23
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  s.reset();
  const auto start = steady::now();
  EXPECT_FALSE(t.wait_for(10s));
  EXPECT_FALSE(t.wait_for(std::chrono::hours::max()));
  EXPECT_LT(elapsed_since(start), at_once);
}

TEST(WaitFor, LastSourceDroppedWhileWaiting_ReturnsFalseAtOnce) {  // API, S23
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  std::atomic<bool> waiting{false};
  std::atomic<int> result{-1};
  bounded_thread waiter([&] {
    waiting = true;
    result = t.wait_for(30s) ? 1 : 0;
  });
  ASSERT_TRUE(eventually([&] { return waiting.load(); }));
  std::this_thread::sleep_for(30ms);
  const auto dropped_at = steady::now();
  s.reset();
  waiter.join(5s);
  EXPECT_LT(elapsed_since(dropped_at), at_once);
  EXPECT_EQ(result.load(), 0);
}

TEST(WaitFor, LastSourceDroppedWhileWaitingWithMaxTimeout_ReturnsFalse) {  // API, S23
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  std::atomic<bool> waiting{false};
  std::atomic<int> result{-1};
  bounded_thread waiter([&] {
    waiting = true;
    result = t.wait_for(std::chrono::nanoseconds::max()) ? 1 : 0;
  });
  ASSERT_TRUE(eventually([&] { return waiting.load(); }));
  std::this_thread::sleep_for(30ms);
  s.reset();
  waiter.join(5s);
  EXPECT_EQ(result.load(), 0);
}

// ---- wait_until --------------------------------------------------------------------------------

TEST(WaitUntil, ReturnsTrueOnceCancelled) {  // API
  cancellation_source s;
  delayed_cancel canceller(s, 30ms);
  EXPECT_TRUE(s.token().wait_until(steady::now() + 10s));
}

TEST(WaitUntil, TimesOut_ReturnsFalseAtTheDeadline) {  // API
  cancellation_source s;
  const auto deadline = steady::now() + 30ms;
  EXPECT_FALSE(s.token().wait_until(deadline));
  EXPECT_GE(steady::now(), deadline);
}

TEST(WaitUntil, OtherClock_TimesOut) {  // API
  cancellation_source s;
  const auto deadline = std::chrono::system_clock::now() + 30ms;
  EXPECT_FALSE(s.token().wait_until(deadline));
  EXPECT_GE(std::chrono::system_clock::now(), deadline);
}

TEST(WaitUntil, PastDeadline_ReturnsTheCurrentState) {  // API
  cancellation_source s;
  EXPECT_FALSE(s.token().wait_until(steady::now() - 1s));
  EXPECT_FALSE(s.token().wait_until(steady::time_point::min()));
  s.cancel();
  EXPECT_TRUE(s.token().wait_until(steady::now() - 1s));
  EXPECT_TRUE(s.token().wait_until(std::chrono::system_clock::time_point::min()));
}

TEST(WaitUntil, SteadyClockMax_DoesNotOverflow) {  // API
  cancellation_source s;
  delayed_cancel canceller(s, 50ms);
  EXPECT_TRUE(s.token().wait_until(steady::time_point::max()));
}

TEST(WaitUntil, SystemClockMax_DoesNotOverflow) {  // API
  cancellation_source s;
  delayed_cancel canceller(s, 50ms);
  EXPECT_TRUE(s.token().wait_until(std::chrono::system_clock::time_point::max()));
}

TEST(WaitUntil, CoarseTimePointMax_DoesNotOverflow) {  // API
  cancellation_source s;
  delayed_cancel canceller(s, 50ms);
  using coarse = std::chrono::time_point<std::chrono::steady_clock, std::chrono::hours>;
  EXPECT_TRUE(s.token().wait_until(coarse::max()));
}

TEST(WaitUntil, NoneToken_ReturnsFalseAtOnce) {  // API, S23
  const auto start = steady::now();
  EXPECT_FALSE(cancellation_token::none().wait_until(steady::now() + 10s));
  EXPECT_FALSE(cancellation_token::none().wait_until(steady::time_point::max()));
  EXPECT_LT(elapsed_since(start), at_once);
}

TEST(WaitUntil, TokenThatCanNoLongerBeCanceled_ReturnsFalseAtOnce) {  // API, S23
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  s.reset();
  const auto start = steady::now();
  EXPECT_FALSE(t.wait_until(steady::now() + 10s));
  EXPECT_FALSE(t.wait_until(std::chrono::system_clock::time_point::max()));
  EXPECT_LT(elapsed_since(start), at_once);
}

TEST(WaitUntil, LastSourceDroppedWhileWaiting_ReturnsFalseAtOnce) {  // API, S23
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  std::atomic<bool> waiting{false};
  std::atomic<int> result{-1};
  bounded_thread waiter([&] {
    waiting = true;
    result = t.wait_until(steady::time_point::max()) ? 1 : 0;
  });
  ASSERT_TRUE(eventually([&] { return waiting.load(); }));
  std::this_thread::sleep_for(30ms);
  const auto dropped_at = steady::now();
  s.reset();
  waiter.join(5s);
  EXPECT_LT(elapsed_since(dropped_at), at_once);
  EXPECT_EQ(result.load(), 0);
}
