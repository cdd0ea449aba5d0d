// S4–S8: callbacks run at most once, LIFO, on the cancelling thread; inline when already
// cancelled; never on a token that cannot be cancelled; unregister() removes them.
#include <cancelkit/cancelkit.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <latch>
#include <optional>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace cancelkit;
using namespace std::chrono_literals;
using cktest::bounded_thread;
using cktest::eventually;

// ---- S4 ----------------------------------------------------------------------------------------

TEST(Callbacks, RunOnceWhenCancelled) {  // S4, S5
  cancellation_source s;
  int runs = 0;
  auto reg = s.token().register_callback([&] { ++runs; });
  s.cancel();
  EXPECT_EQ(runs, 1);
}

TEST(Callbacks, SecondCancel_DoesNotRunThemAgain) {  // S4
  cancellation_source s;
  int runs = 0;
  auto reg = s.token().register_callback([&] { ++runs; });
  s.cancel();
  s.cancel();
  s.cancel(cancel_options{.throw_on_first_exception = true});
  s.cancel_after(0ns);
  EXPECT_EQ(runs, 1);
}

TEST(Callbacks, DisposeAfterRun_DoesNotRunItAgain) {  // S4
  cancellation_source s;
  int runs = 0;
  auto reg = s.token().register_callback([&] { ++runs; });
  s.cancel();
  reg.dispose();
  EXPECT_EQ(runs, 1);
}

TEST(Callbacks, RegisteredTwice_RunsOncePerRegistration) {  // S4, S5
  cancellation_source s;
  int runs = 0;
  auto callback = [&] { ++runs; };
  auto first = s.token().register_callback(callback);
  auto second = s.token().register_callback(callback);
  s.cancel();
  EXPECT_EQ(runs, 2);
}

// ---- S5 ----------------------------------------------------------------------------------------

TEST(Callbacks, RunLatestRegisteredFirst) {  // S5
  cancellation_source s;
  std::vector<int> order;
  std::vector<cancellation_registration> regs;
  for (int i = 1; i <= 5; ++i) {
    regs.push_back(s.token().register_callback([&order, i] { order.push_back(i); }));
  }
  s.cancel();
  EXPECT_EQ(order, (std::vector<int>{5, 4, 3, 2, 1}));
}

TEST(Callbacks, LifoOrder_SkipsUnregisteredOnes) {  // S5, S8
  cancellation_source s;
  std::vector<int> order;
  std::vector<cancellation_registration> regs;
  for (int i = 1; i <= 5; ++i) {
    regs.push_back(s.token().register_callback([&order, i] { order.push_back(i); }));
  }
  EXPECT_TRUE(regs[1].unregister());
  EXPECT_TRUE(regs[4].unregister());
  s.cancel();
  EXPECT_EQ(order, (std::vector<int>{4, 3, 1}));
}

TEST(Callbacks, LifoOrder_SpansRegistrationKinds) {  // S5
  cancellation_source s;
  std::vector<int> order;
  auto first = s.token().register_callback([&] { order.push_back(1); });
  cancellation_callback second(s.token(), [&] { order.push_back(2); });
  auto third = s.token().register_callback([&] { order.push_back(3); });
  cancellation_callback fourth(s.token(), [&] { order.push_back(4); });
  s.cancel();
  EXPECT_EQ(order, (std::vector<int>{4, 3, 2, 1}));
}

TEST(Callbacks, LifoOrder_SpansTokenCopies) {  // S5: one source, one order
  cancellation_source s;
  cancellation_source copy = s;
  std::vector<int> order;
  auto first = s.token().register_callback([&] { order.push_back(1); });
  auto second = copy.token().register_callback([&] { order.push_back(2); });
  const auto t = s.token();
  auto third = t.register_callback([&] { order.push_back(3); });
  copy.cancel();
  EXPECT_EQ(order, (std::vector<int>{3, 2, 1}));
}

TEST(Callbacks, RunOnTheCancellingThread) {  // S5
  cancellation_source s;
  std::thread::id ran_on;
  std::thread::id canceller_id;
  auto reg = s.token().register_callback([&] { ran_on = std::this_thread::get_id(); });
  bounded_thread canceller([&] {
    canceller_id = std::this_thread::get_id();
    s.cancel();
  });
  canceller.join();
  EXPECT_EQ(ran_on, canceller_id);
}

TEST(Callbacks, AllHaveRunWhenCancelReturns) {  // S5
  cancellation_source s;
  constexpr int count = 1000;
  int runs = 0;
  std::vector<cancellation_registration> regs;
  for (int i = 0; i < count; ++i) regs.push_back(s.token().register_callback([&] { ++runs; }));
  s.cancel();
  EXPECT_EQ(runs, count);
}

TEST(Callbacks, AllHaveRunWhenCancelReturnsOnAnotherThread) {  // S5
  cancellation_source s;
  std::atomic<int> runs{0};
  std::atomic<int> runs_seen_by_canceller{-1};
  std::vector<cancellation_registration> regs;
  for (int i = 0; i < 100; ++i) regs.push_back(s.token().register_callback([&] { ++runs; }));
  bounded_thread canceller([&] {
    s.cancel();
    runs_seen_by_canceller = runs.load();
  });
  canceller.join();
  EXPECT_EQ(runs_seen_by_canceller.load(), 100);
}

// ---- S6 ----------------------------------------------------------------------------------------

TEST(Callbacks, RegisterOnCancelledToken_RunsBeforeRegisterReturns) {  // S6
  cancellation_source s;
  s.cancel();
  int runs = 0;
  auto reg = s.token().register_callback([&] { ++runs; });
  EXPECT_EQ(runs, 1);
}

TEST(Callbacks, RegisterOnCancelledToken_RunsOnTheRegisteringThread) {  // S6
  cancellation_source s;
  bounded_thread canceller([&] { s.cancel(); });
  canceller.join();
  std::thread::id ran_on;
  auto reg = s.token().register_callback([&] { ran_on = std::this_thread::get_id(); });
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(Callbacks, RegisterOnCancelledToken_RegistrationIsInert) {  // S6
  cancellation_source s;
  s.cancel();
  int runs = 0;
  auto reg = s.token().register_callback([&] { ++runs; });
  EXPECT_FALSE(reg.unregister());
  reg.dispose();
  s.cancel();
  EXPECT_EQ(runs, 1);
}

TEST(Callbacks, CancellationCallbackOnCancelledToken_RunsInTheConstructor) {  // S6
  cancellation_source s;
  s.cancel();
  int runs = 0;
  cancellation_callback cb(s.token(), [&] { ++runs; });
  EXPECT_EQ(runs, 1);
  EXPECT_FALSE(cb.unregister());
}

TEST(Callbacks, RegisterRacingWithCancel_RunsExactlyOnce) {  // S6
  constexpr int iterations = 500;
  for (int i = 0; i < iterations; ++i) {
    cancellation_source s;
    const auto t = s.token();
    std::atomic<int> runs{0};
    std::latch start(2);
    bounded_thread canceller([&] {
      start.arrive_and_wait();
      s.cancel();
    });
    start.arrive_and_wait();
    auto reg = t.register_callback([&] { runs.fetch_add(1); });
    canceller.join();
    ASSERT_EQ(runs.load(), 1) << "iteration " << i;
    EXPECT_FALSE(reg.unregister()) << "iteration " << i;
  }
}

TEST(Callbacks, RegisterRacingWithCancel_NotRunInlineIsRunByCancellerBeforeItReturns) {  // S5, S6
  constexpr int iterations = 300;
  for (int i = 0; i < iterations; ++i) {
    cancellation_source s;
    const auto t = s.token();
    std::atomic<int> runs{0};
    std::atomic<int> runs_when_cancel_returned{-1};
    std::latch start(2);
    bounded_thread canceller([&] {
      start.arrive_and_wait();
      const bool won = s.cancel();
      if (won) runs_when_cancel_returned = runs.load();
    });
    start.arrive_and_wait();
    const auto me = std::this_thread::get_id();
    std::atomic<bool> ran_inline{false};
    auto reg = t.register_callback([&] {
      if (std::this_thread::get_id() == me) ran_inline = true;
      runs.fetch_add(1);
    });
    canceller.join();
    if (!ran_inline.load()) {
      EXPECT_EQ(runs_when_cancel_returned.load(), 1) << "iteration " << i;
    }
  }
}

TEST(Callbacks, CancellationCallbackRacingWithCancel_RunsExactlyOnce) {  // S6
  constexpr int iterations = 500;
  for (int i = 0; i < iterations; ++i) {
    cancellation_source s;
    const auto t = s.token();
    std::atomic<int> runs{0};
    std::latch start(2);
    bounded_thread canceller([&] {
      start.arrive_and_wait();
      s.cancel();
    });
    start.arrive_and_wait();
    {
      cancellation_callback cb(t, [&] { runs.fetch_add(1); });
      canceller.join();
      EXPECT_FALSE(cb.unregister()) << "iteration " << i;
    }
    ASSERT_EQ(runs.load(), 1) << "iteration " << i;
  }
}

// ---- S7 ----------------------------------------------------------------------------------------

TEST(Callbacks, RegisterOnNoneToken_NeverRuns) {  // S7
  int runs = 0;
  auto reg = cancellation_token::none().register_callback([&] { ++runs; });
  EXPECT_FALSE(reg.unregister());
  reg.dispose();
  EXPECT_EQ(runs, 0);
}

TEST(Callbacks, CancellationCallbackOnNoneToken_NeverRuns) {  // S7
  int runs = 0;
  {
    cancellation_callback cb(cancellation_token::none(), [&] { ++runs; });
    EXPECT_FALSE(cb.unregister());
  }
  EXPECT_EQ(runs, 0);
}

TEST(Callbacks, RegisterOnTokenThatCanNoLongerBeCanceled_StoresNothing) {  // S7, S23
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  s.reset();
  int runs = 0;
  auto reg = t.register_callback([&] { ++runs; });
  EXPECT_FALSE(reg.unregister());
  EXPECT_EQ(runs, 0);
  EXPECT_FALSE(t.is_cancellation_requested());
}

TEST(Callbacks, RegisterOnLinkedTokenWhoseParentsAreGone_StoresNothing) {  // S7, S23
  std::optional<cancellation_source> parent(std::in_place);
  const auto t = cancellation_source::linked({parent->token()}).token();
  parent.reset();
  ASSERT_FALSE(t.can_be_canceled());
  int runs = 0;
  auto reg = t.register_callback([&] { ++runs; });
  EXPECT_FALSE(reg.unregister());
  EXPECT_EQ(runs, 0);
}

TEST(Callbacks, RegisterRacingWithTheLastHandleDrop_NeverRuns) {  // S7, S23, S8
  constexpr int iterations = 300;
  for (int i = 0; i < iterations; ++i) {
    std::optional<cancellation_source> s(std::in_place);
    const auto t = s->token();
    std::atomic<int> runs{0};
    std::latch start(2);
    bounded_thread dropper([&] {
      start.arrive_and_wait();
      s.reset();
    });
    start.arrive_and_wait();
    auto reg = t.register_callback([&] { runs.fetch_add(1); });
    dropper.join();
    EXPECT_FALSE(t.can_be_canceled()) << "iteration " << i;
    EXPECT_FALSE(reg.unregister()) << "stored or dropped, never removable now; iteration " << i;
    ASSERT_EQ(runs.load(), 0) << "iteration " << i;
  }
}

// ---- S8 ----------------------------------------------------------------------------------------

TEST(Unregister, BeforeCancel_ReturnsTrueAndTheCallbackNeverRuns) {  // S8
  cancellation_source s;
  int runs = 0;
  auto reg = s.token().register_callback([&] { ++runs; });
  EXPECT_TRUE(reg.unregister());
  s.cancel();
  EXPECT_EQ(runs, 0);
}

TEST(Unregister, SecondCall_ReturnsFalse) {  // S8
  cancellation_source s;
  auto reg = s.token().register_callback([] {});
  EXPECT_TRUE(reg.unregister());
  EXPECT_FALSE(reg.unregister());
}

TEST(Unregister, AfterTheCallbackRan_ReturnsFalse) {  // S8
  cancellation_source s;
  auto reg = s.token().register_callback([] {});
  s.cancel();
  EXPECT_FALSE(reg.unregister());
}

TEST(Unregister, OnlyRemovesItsOwnCallback) {  // S8
  cancellation_source s;
  int a = 0;
  int b = 0;
  auto ra = s.token().register_callback([&] { ++a; });
  auto rb = s.token().register_callback([&] { ++b; });
  EXPECT_TRUE(ra.unregister());
  s.cancel();
  EXPECT_EQ(a, 0);
  EXPECT_EQ(b, 1);
}

TEST(Unregister, WhileTheCallbackRunsElsewhere_ReturnsFalseWithoutBlocking) {  // S8
  cancellation_source s;
  std::atomic<bool> started{false};
  std::atomic<bool> release{false};
  std::atomic<bool> finished{false};
  auto reg = s.token().register_callback([&] {
    started = true;
    eventually([&] { return release.load(); }, 10s);
    finished = true;
  });
  bounded_thread canceller([&] { s.cancel(); });
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  EXPECT_FALSE(reg.unregister());
  EXPECT_FALSE(finished.load()) << "unregister() waited for the running callback";
  release = true;
  canceller.join();
}

TEST(Unregister, CancellationCallbackBeforeCancel_ReturnsTrueAndNeverRuns) {  // S8
  cancellation_source s;
  int runs = 0;
  cancellation_callback cb(s.token(), [&] { ++runs; });
  EXPECT_TRUE(cb.unregister());
  EXPECT_FALSE(cb.unregister());
  s.cancel();
  EXPECT_EQ(runs, 0);
}

TEST(Unregister, CancellationCallbackAfterRun_ReturnsFalse) {  // S8
  cancellation_source s;
  cancellation_callback cb(s.token(), [] {});
  s.cancel();
  EXPECT_FALSE(cb.unregister());
}
