// S12–S15: what happens when callbacks throw — aggregated by default, first one out with
// throw_on_first_exception, out of register_callback when run inline, to the timer service's
// error handler when the cancel came from a timer.
#include <cancelkit/cancelkit.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace cancelkit;
using namespace std::chrono_literals;
using cktest::error_ids;
using cktest::test_error;

namespace {

// Registers callbacks 1..n on `t` (in that order); those whose id is in `throwers` throw
// test_error{id}; every callback appends its id to `order` first.
std::vector<cancellation_registration> register_numbered(const cancellation_token& t, int n,
                                                         std::vector<int> throwers,
                                                         std::vector<int>& order) {
  std::vector<cancellation_registration> regs;
  for (int id = 1; id <= n; ++id) {
    bool throws = false;
    for (int k : throwers) throws = throws || k == id;
    regs.push_back(t.register_callback([&order, id, throws] {
      order.push_back(id);
      if (throws) throw test_error{id};
    }));
  }
  return regs;
}

}  // namespace

// ---- S12 ---------------------------------------------------------------------------------------

TEST(CallbackExceptions, EveryCallbackRunsEvenIfSomeThrow) {  // S12
  cancellation_source s;
  std::vector<int> order;
  auto regs = register_numbered(s.token(), 4, {1, 3}, order);
  EXPECT_THROW(s.cancel(), aggregate_exception);
  EXPECT_EQ(order, (std::vector<int>{4, 3, 2, 1}));
}

TEST(CallbackExceptions, CancelThrowsAggregateInTheOrderTheCallbacksRan) {  // S12
  cancellation_source s;
  std::vector<int> order;
  auto regs = register_numbered(s.token(), 5, {1, 2, 4}, order);
  try {
    s.cancel();
    FAIL() << "cancel() did not throw";
  } catch (const aggregate_exception& e) {
    EXPECT_EQ(error_ids(e.exceptions()), (std::vector<int>{4, 2, 1}));
  }
}

TEST(CallbackExceptions, SingleThrowingCallback_IsStillReportedAsAggregate) {  // S12
  cancellation_source s;
  std::vector<int> order;
  auto regs = register_numbered(s.token(), 2, {2}, order);
  try {
    s.cancel();
    FAIL() << "cancel() did not throw";
  } catch (const aggregate_exception& e) {
    EXPECT_EQ(error_ids(e.exceptions()), (std::vector<int>{2}));
  }
}

TEST(CallbackExceptions, StandardExceptionsKeepTheirTypeInsideTheAggregate) {  // S12
  cancellation_source s;
  auto reg = s.token().register_callback([] { throw std::out_of_range("index"); });
  try {
    s.cancel();
    FAIL() << "cancel() did not throw";
  } catch (const aggregate_exception& e) {
    ASSERT_EQ(e.exceptions().size(), 1u);
    try {
      std::rethrow_exception(e.exceptions()[0]);
    } catch (const std::out_of_range& inner) {
      EXPECT_EQ(std::string_view(inner.what()), "index");
    } catch (...) {
      ADD_FAILURE() << "the exception lost its type";
    }
  }
}

TEST(CallbackExceptions, SourceIsCancelledAfterTheAggregateIsThrown) {  // S12
  cancellation_source s;
  const auto t = s.token();
  std::vector<int> order;
  auto regs = register_numbered(t, 1, {1}, order);
  EXPECT_THROW(s.cancel(), aggregate_exception);
  EXPECT_TRUE(s.is_cancellation_requested());
  EXPECT_TRUE(t.is_cancellation_requested());
  EXPECT_FALSE(s.cancel());
}

TEST(CallbackExceptions, ReasonIsRecordedEvenWhenCallbacksThrow) {  // S12, S16
  cancellation_source s;
  std::vector<int> order;
  auto regs = register_numbered(s.token(), 1, {1}, order);
  const auto reason = std::make_exception_ptr(test_error{42});
  EXPECT_THROW(s.cancel(cancel_options{.reason = reason}), aggregate_exception);
  EXPECT_EQ(s.token().cancellation_reason(), reason);
}

TEST(CallbackExceptions, NoCallbackThrows_CancelReturnsTrue) {  // S12
  cancellation_source s;
  std::vector<int> order;
  auto regs = register_numbered(s.token(), 3, {}, order);
  bool result = false;
  EXPECT_NO_THROW(result = s.cancel());
  EXPECT_TRUE(result);
}

TEST(CallbackExceptions, ThrowingCallbacks_RunOnlyOnce) {  // S12, S4
  cancellation_source s;
  std::vector<int> order;
  auto regs = register_numbered(s.token(), 2, {1, 2}, order);
  EXPECT_THROW(s.cancel(), aggregate_exception);
  EXPECT_NO_THROW(s.cancel());
  EXPECT_EQ(order, (std::vector<int>{2, 1}));
  EXPECT_FALSE(regs[0].unregister());
  EXPECT_FALSE(regs[1].unregister());
}

TEST(CallbackExceptions, CancellationCallbackThatThrows_IsAggregatedToo) {  // S12
  cancellation_source s;
  cancellation_callback cb(s.token(), [] { throw test_error{9}; });
  try {
    s.cancel();
    FAIL() << "cancel() did not throw";
  } catch (const aggregate_exception& e) {
    EXPECT_EQ(error_ids(e.exceptions()), (std::vector<int>{9}));
  }
}

// ---- S13 ---------------------------------------------------------------------------------------

TEST(ThrowOnFirstException, FirstExceptionPropagatesWithItsOwnType) {  // S13
  cancellation_source s;
  std::vector<int> order;
  auto regs = register_numbered(s.token(), 4, {1, 3}, order);
  try {
    s.cancel(cancel_options{.throw_on_first_exception = true});
    FAIL() << "cancel() did not throw";
  } catch (const test_error& e) {
    EXPECT_EQ(e.id, 3);
  } catch (...) {
    FAIL() << "the first exception did not propagate unchanged";
  }
}

TEST(ThrowOnFirstException, CallbacksNotYetRun_NeverRun) {  // S13
  cancellation_source s;
  std::vector<int> order;
  auto regs = register_numbered(s.token(), 4, {3}, order);
  EXPECT_THROW(s.cancel(cancel_options{.throw_on_first_exception = true}), test_error);
  EXPECT_EQ(order, (std::vector<int>{4, 3}));
  EXPECT_FALSE(s.cancel());
  EXPECT_EQ(order, (std::vector<int>{4, 3}));
}

TEST(ThrowOnFirstException, UnregisterOnTheSkippedCallbacks_ReturnsTrue) {  // S13, S11
  cancellation_source s;
  std::vector<int> order;
  auto regs = register_numbered(s.token(), 4, {3}, order);
  EXPECT_THROW(s.cancel(cancel_options{.throw_on_first_exception = true}), test_error);
  EXPECT_TRUE(regs[0].unregister());   // id 1: skipped
  EXPECT_TRUE(regs[1].unregister());   // id 2: skipped
  EXPECT_FALSE(regs[2].unregister());  // id 3: ran (and threw)
  EXPECT_FALSE(regs[3].unregister());  // id 4: ran
  EXPECT_EQ(order, (std::vector<int>{4, 3}));
}

TEST(ThrowOnFirstException, SkippedCallbacks_DisposeWithoutRunning) {  // S13, S9
  cancellation_source s;
  std::vector<int> order;
  auto regs = register_numbered(s.token(), 3, {3}, order);
  EXPECT_THROW(s.cancel(cancel_options{.throw_on_first_exception = true}), test_error);
  regs.clear();
  EXPECT_EQ(order, (std::vector<int>{3}));
}

TEST(ThrowOnFirstException, SourceIsCancelledRegardless) {  // S13
  cancellation_source s;
  const auto t = s.token();
  std::vector<int> order;
  auto regs = register_numbered(t, 2, {2}, order);
  const auto reason = std::make_exception_ptr(test_error{77});
  EXPECT_THROW(s.cancel(cancel_options{.reason = reason, .throw_on_first_exception = true}),
               test_error);
  EXPECT_TRUE(t.is_cancellation_requested());
  EXPECT_EQ(t.cancellation_reason(), reason);
  int late_runs = 0;
  auto late = t.register_callback([&] { ++late_runs; });
  EXPECT_EQ(late_runs, 1);
}

TEST(ThrowOnFirstException, NothingThrows_EveryCallbackRuns) {  // S13, S5
  cancellation_source s;
  std::vector<int> order;
  auto regs = register_numbered(s.token(), 3, {}, order);
  EXPECT_TRUE(s.cancel(cancel_options{.throw_on_first_exception = true}));
  EXPECT_EQ(order, (std::vector<int>{3, 2, 1}));
}

// ---- S14 ---------------------------------------------------------------------------------------

TEST(InlineCallbackExceptions, PropagateOutOfRegisterCallback) {  // S14, S6
  cancellation_source s;
  s.cancel();
  try {
    auto reg = s.token().register_callback([] { throw test_error{5}; });
    FAIL() << "register_callback did not throw";
  } catch (const test_error& e) {
    EXPECT_EQ(e.id, 5);
  }
}

TEST(InlineCallbackExceptions, TokenStaysCancelledAndUsable) {  // S14, S25
  cancellation_source s;
  const auto t = s.token();
  s.cancel();
  EXPECT_THROW((void)t.register_callback([] { throw test_error{1}; }), test_error);
  EXPECT_TRUE(t.is_cancellation_requested());
  int runs = 0;
  auto reg = t.register_callback([&] { ++runs; });
  EXPECT_EQ(runs, 1);
  EXPECT_FALSE(s.cancel());
}

// ---- S15 ---------------------------------------------------------------------------------------

TEST(TimerCallbackExceptions, ErrorHandlerIsCalledOnceWithTheAggregate) {  // S15
  manual_timer_service timers;
  std::vector<std::exception_ptr> reported;
  timers.set_error_handler([&](std::exception_ptr e) { reported.push_back(e); });
  cancellation_source s(timers);
  std::vector<int> order;
  auto regs = register_numbered(s.token(), 3, {1, 3}, order);
  s.cancel_after(10ms);
  EXPECT_NO_THROW(timers.advance(10ms));
  ASSERT_EQ(reported.size(), 1u);
  try {
    std::rethrow_exception(reported[0]);
  } catch (const aggregate_exception& e) {
    EXPECT_EQ(error_ids(e.exceptions()), (std::vector<int>{3, 1}));
  } catch (...) {
    ADD_FAILURE() << "the error handler did not get an aggregate_exception";
  }
}

TEST(TimerCallbackExceptions, EveryCallbackRunsBeforeTheErrorHandler) {  // S15
  manual_timer_service timers;
  std::vector<int> order;
  std::vector<int> order_seen_by_handler;
  timers.set_error_handler([&](std::exception_ptr) { order_seen_by_handler = order; });
  cancellation_source s(timers);
  auto regs = register_numbered(s.token(), 3, {3}, order);
  s.cancel_after(1ms);
  timers.advance(1ms);
  EXPECT_EQ(order_seen_by_handler, (std::vector<int>{3, 2, 1}));
  EXPECT_TRUE(s.is_cancellation_requested());
}

TEST(TimerCallbackExceptions, ErrorHandlerRunsOnTheTimersThread) {  // S15
  manual_timer_service timers;  // its timers fire on the thread calling advance()
  std::thread::id handler_thread;
  timers.set_error_handler(
      [&](std::exception_ptr) { handler_thread = std::this_thread::get_id(); });
  cancellation_source s(timers);
  auto reg = s.token().register_callback([] { throw test_error{1}; });
  s.cancel_after(1ms);
  cktest::bounded_thread advancer([&] { timers.advance(1ms); });
  const auto advancer_id = advancer.id();
  advancer.join();
  EXPECT_EQ(handler_thread, advancer_id);
}

TEST(TimerCallbackExceptions, NoCallbackThrows_ErrorHandlerIsNotCalled) {  // S15
  manual_timer_service timers;
  int reports = 0;
  timers.set_error_handler([&](std::exception_ptr) { ++reports; });
  cancellation_source s(timers);
  std::vector<int> order;
  auto regs = register_numbered(s.token(), 2, {}, order);
  s.cancel_after(1ms);
  timers.advance(1ms);
  EXPECT_EQ(order, (std::vector<int>{2, 1}));
  EXPECT_EQ(reports, 0);
}

TEST(TimerCallbackExceptions, OneCallPerTimerThatHadThrowingCallbacks) {  // S15
  manual_timer_service timers;
  std::vector<std::vector<int>> reports;
  timers.set_error_handler([&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const aggregate_exception& agg) {
      reports.push_back(error_ids(agg.exceptions()));
    } catch (...) {
      reports.push_back({-1});
    }
  });
  cancellation_source a(timers);
  cancellation_source b(timers);
  auto ra = a.token().register_callback([] { throw test_error{1}; });
  auto rb = b.token().register_callback([] { throw test_error{2}; });
  a.cancel_after(1ms);
  b.cancel_after(2ms);
  timers.advance(5ms);
  EXPECT_EQ(reports, (std::vector<std::vector<int>>{{1}, {2}}));
}

TEST(TimerCallbackExceptions, SystemTimerService_ReportsOnceOnItsOwnThread) {  // S15
  struct uninstall_on_exit {
    ~uninstall_on_exit() { system_timer_service().set_error_handler({}); }
  } uninstall;
  std::atomic<int> reports{0};
  std::atomic<bool> got_aggregate{false};
  std::atomic<std::thread::id> handler_thread{};
  system_timer_service().set_error_handler([&](std::exception_ptr e) {
    got_aggregate = cktest::holds<aggregate_exception>(e);
    handler_thread = std::this_thread::get_id();
    reports.fetch_add(1);
  });
  cancellation_source s;
  auto reg = s.token().register_callback([] { throw test_error{1}; });
  s.cancel_after(5ms);
  ASSERT_TRUE(cktest::eventually([&] { return reports.load() == 1; }));
  EXPECT_TRUE(got_aggregate.load());
  EXPECT_NE(handler_thread.load(), std::this_thread::get_id());
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(reports.load(), 1);
}

TEST(TimerCallbackExceptionsDeathTest, NoErrorHandler_CallsTerminate) {  // S15
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        manual_timer_service timers;
        cancellation_source s(timers);
        auto reg = s.token().register_callback([] { throw test_error{1}; });
        s.cancel_after(1ms);
        timers.advance(1ms);
      },
      "");
}
