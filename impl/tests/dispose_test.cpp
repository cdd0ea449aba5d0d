// S9–S11: dispose() waits for a callback running elsewhere but not for itself; what a callback may
// do to its own source; races between cancel() and unregister()/dispose().
#include <cancelkit/cancelkit.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <latch>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace cancelkit;
using namespace std::chrono_literals;
using cktest::bounded_thread;
using cktest::eventually;

namespace {

// A callback that flags its start, sleeps, then flags its end.
struct slow_callback_flags {
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};
};
auto slow_callback(slow_callback_flags& flags) {
  return [&flags] {
    flags.started = true;
    std::this_thread::sleep_for(50ms);
    flags.finished = true;
  };
}

}  // namespace

// ---- S9 ----------------------------------------------------------------------------------------

TEST(Dispose, BeforeCancel_TheCallbackNeverRuns) {  // S9
  cancellation_source s;
  int runs = 0;
  auto reg = s.token().register_callback([&] { ++runs; });
  reg.dispose();
  s.cancel();
  EXPECT_EQ(runs, 0);
}

TEST(Dispose, AfterTheCallbackRan_Returns) {  // S9
  cancellation_source s;
  int runs = 0;
  auto reg = s.token().register_callback([&] { ++runs; });
  s.cancel();
  reg.dispose();
  reg.dispose();
  EXPECT_EQ(runs, 1);
}

TEST(Dispose, WaitsForTheCallbackRunningOnAnotherThread) {  // S9
  cancellation_source s;
  slow_callback_flags flags;
  auto reg = s.token().register_callback(slow_callback(flags));
  bounded_thread canceller([&] { s.cancel(); });
  ASSERT_TRUE(eventually([&] { return flags.started.load(); }));
  reg.dispose();
  EXPECT_TRUE(flags.finished.load());
}

TEST(Dispose, DestructorWaitsForTheCallbackRunningOnAnotherThread) {  // S9
  cancellation_source s;
  slow_callback_flags flags;
  std::optional<cancellation_registration> reg(s.token().register_callback(slow_callback(flags)));
  bounded_thread canceller([&] { s.cancel(); });
  ASSERT_TRUE(eventually([&] { return flags.started.load(); }));
  reg.reset();
  EXPECT_TRUE(flags.finished.load());
}

TEST(Dispose, CancellationCallbackDestructorWaitsForItsRunningCallback) {  // S9
  cancellation_source s;
  slow_callback_flags flags;
  std::optional<cancellation_callback<std::function<void()>>> cb;
  cb.emplace(s.token(), slow_callback(flags));
  bounded_thread canceller([&] { s.cancel(); });
  ASSERT_TRUE(eventually([&] { return flags.started.load(); }));
  cb.reset();
  EXPECT_TRUE(flags.finished.load());
}

TEST(Dispose, FromInsideOwnCallback_DoesNotDeadlock) {  // S9, S10
  cancellation_source s;
  cancellation_registration reg;
  std::atomic<bool> disposed{false};
  reg = s.token().register_callback([&] {
    reg.dispose();
    disposed = true;
  });
  bounded_thread canceller([&] { s.cancel(); });
  canceller.join();
  EXPECT_TRUE(disposed.load());
}

TEST(Dispose, DestroyingCancellationCallbackInsideItself_DoesNotDeadlock) {  // S9, S10
  cancellation_source s;
  std::optional<cancellation_callback<std::function<void()>>> cb;
  std::atomic<bool> ran{false};
  cb.emplace(s.token(), [&] {
    ran = true;
    cb.reset();  // destroys this very callable: touch nothing of it afterwards
  });
  bounded_thread canceller([&] { s.cancel(); });
  canceller.join();
  EXPECT_TRUE(ran.load());
  EXPECT_FALSE(cb.has_value());
}

TEST(Dispose, DestroyingTheRegistrationInsideItsOwnCallback_DoesNotDeadlock) {  // S9, S10
  cancellation_source s;
  std::optional<cancellation_registration> reg;
  std::atomic<bool> ran{false};
  reg.emplace(s.token().register_callback([&] {
    ran = true;
    reg.reset();  // destroys the handle owning this very callable: touch nothing of it afterwards
  }));
  bounded_thread canceller([&] { s.cancel(); });
  canceller.join();
  EXPECT_TRUE(ran.load());
  EXPECT_FALSE(reg.has_value());
}

TEST(Dispose, UnregisterFromInsideOwnCallback_ReturnsFalse) {  // S8, S10
  cancellation_source s;
  cancellation_registration reg;
  std::optional<bool> result;
  reg = s.token().register_callback([&] { result = reg.unregister(); });
  s.cancel();
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(*result);
}

TEST(Dispose, AfterDisposeReturns_TheCallbackIsNeitherRunningNorWillRun) {  // S9, S11
  constexpr int iterations = 300;
  for (int i = 0; i < iterations; ++i) {
    cancellation_source s;
    std::atomic<int> running{0};
    std::atomic<int> runs{0};
    auto reg = s.token().register_callback([&] {
      running.fetch_add(1);
      std::this_thread::yield();
      runs.fetch_add(1);
      running.fetch_sub(1);
    });
    std::latch start(2);
    bounded_thread canceller([&] {
      start.arrive_and_wait();
      s.cancel();
    });
    start.arrive_and_wait();
    reg.dispose();
    const int running_after = running.load();
    const int runs_after = runs.load();
    canceller.join();
    EXPECT_EQ(running_after, 0) << "iteration " << i;
    EXPECT_EQ(runs.load(), runs_after) << "ran after dispose() returned, iteration " << i;
  }
}

// ---- S10: inside a callback --------------------------------------------------------------------

TEST(InsideCallback, CancelSameSource_ReturnsFalse) {  // S10
  cancellation_source s;
  std::optional<bool> inner;
  auto reg = s.token().register_callback([&] { inner = s.cancel(); });
  bounded_thread canceller([&] { EXPECT_TRUE(s.cancel()); });
  canceller.join();
  ASSERT_TRUE(inner.has_value());
  EXPECT_FALSE(*inner);
}

TEST(InsideCallback, RegisterOnSameToken_RunsInline) {  // S10, S6
  cancellation_source s;
  const auto t = s.token();
  int inner_runs = 0;
  std::optional<int> runs_when_register_returned;
  auto reg = t.register_callback([&] {
    auto inner = t.register_callback([&] { ++inner_runs; });
    runs_when_register_returned = inner_runs;
    EXPECT_FALSE(inner.unregister());
  });
  bounded_thread canceller([&] { s.cancel(); });
  canceller.join();
  EXPECT_EQ(runs_when_register_returned, 1);
  EXPECT_EQ(inner_runs, 1);
}

TEST(InsideCallback, DisposeOtherNotYetRun_ItNeverRuns) {  // S10
  cancellation_source s;
  int other_runs = 0;
  auto other = s.token().register_callback([&] { ++other_runs; });  // registered first: runs last
  auto disposer = s.token().register_callback([&] { other.dispose(); });
  bounded_thread canceller([&] { s.cancel(); });
  canceller.join();
  EXPECT_EQ(other_runs, 0);
}

TEST(InsideCallback, UnregisterOtherNotYetRun_ReturnsTrueAndItNeverRuns) {  // S10, S8
  cancellation_source s;
  int other_runs = 0;
  std::optional<bool> result;
  auto other = s.token().register_callback([&] { ++other_runs; });
  auto remover = s.token().register_callback([&] { result = other.unregister(); });
  s.cancel();
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(*result);
  EXPECT_EQ(other_runs, 0);
}

TEST(InsideCallback, DisposeOtherAlreadyRun_Returns) {  // S10
  cancellation_source s;
  int other_runs = 0;
  cancellation_registration other;
  bool disposed = false;
  auto disposer = s.token().register_callback([&] {  // registered first: runs last
    other.dispose();
    disposed = true;
  });
  other = s.token().register_callback([&] { ++other_runs; });
  bounded_thread canceller([&] { s.cancel(); });
  canceller.join();
  EXPECT_TRUE(disposed);
  EXPECT_EQ(other_runs, 1);
}

TEST(InsideCallback, DestroyOtherCancellationCallbackNotYetRun_ItNeverRuns) {  // S10
  cancellation_source s;
  int other_runs = 0;
  std::optional<cancellation_callback<std::function<void()>>> other;
  other.emplace(s.token(), [&] { ++other_runs; });
  cancellation_callback destroyer(s.token(), [&] { other.reset(); });
  bounded_thread canceller([&] { s.cancel(); });
  canceller.join();
  EXPECT_EQ(other_runs, 0);
}

TEST(InsideCallback, CancelAnotherSource_RunsItsCallbacksNested) {  // S10
  cancellation_source outer;
  cancellation_source inner;
  std::vector<int> order;
  auto inner_reg = inner.token().register_callback([&] { order.push_back(2); });
  auto outer_reg = outer.token().register_callback([&] {
    order.push_back(1);
    EXPECT_TRUE(inner.cancel());
    order.push_back(3);
  });
  outer.cancel();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_TRUE(inner.is_cancellation_requested());
}

TEST(InsideCallback, CreateAndLinkSources) {  // S10, S19
  cancellation_source s;
  bool child_born_cancelled = false;
  bool fresh_cancelled = false;
  auto reg = s.token().register_callback([&] {
    cancellation_source fresh;
    fresh_cancelled = fresh.cancel();
    const auto child = cancellation_source::linked({s.token()});
    child_born_cancelled = child.is_cancellation_requested();
  });
  s.cancel();
  EXPECT_TRUE(fresh_cancelled);
  EXPECT_TRUE(child_born_cancelled);
}

TEST(InsideCallback, DestroyAnotherSource_ItsCallbacksNeverRun) {  // S10, S23
  cancellation_source s;
  std::optional<cancellation_source> other(std::in_place);
  const auto other_token = other->token();
  int other_runs = 0;
  auto other_reg = other_token.register_callback([&] { ++other_runs; });
  auto reg = s.token().register_callback([&] { other.reset(); });
  s.cancel();
  EXPECT_FALSE(other_token.can_be_canceled());
  EXPECT_EQ(other_runs, 0);
}

TEST(InsideCallback, DropLastHandleOfTheCancellingSource_StateStaysAlive) {  // S10
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  bool later_saw_request = false;
  int later_runs = 0;
  auto later = t.register_callback([&] {  // registered first: runs after the drop
    ++later_runs;
    later_saw_request = t.is_cancellation_requested();
  });
  auto dropper = t.register_callback([&] { s.reset(); });
  EXPECT_TRUE(s->cancel());  // the handle this call runs on is destroyed during the call
  EXPECT_FALSE(s.has_value());
  EXPECT_EQ(later_runs, 1);
  EXPECT_TRUE(later_saw_request);
  EXPECT_TRUE(t.is_cancellation_requested());
  EXPECT_TRUE(t.can_be_canceled());
}

TEST(InsideCallback, DropLastHandleAndEveryTokenDuringTimerCancel_NoCrash) {  // S10, S17
  manual_timer_service timers;
  std::optional<cancellation_source> s(std::in_place, timers);
  std::optional<cancellation_token> t(s->token());
  int runs = 0;
  std::optional<cancellation_registration> reg;
  reg.emplace(t->register_callback([&] {
    ++runs;
    s.reset();
    t.reset();
  }));
  s->cancel_after(1ms);
  timers.advance(1ms);
  EXPECT_EQ(runs, 1);
  EXPECT_FALSE(s.has_value());
  reg.reset();
}

// ---- S11 ---------------------------------------------------------------------------------------

TEST(ConcurrentUnregister, RacingCancel_EachCallbackRanXorWasRemoved) {  // S11
  constexpr int iterations = 100;
  constexpr std::size_t count = 64;
  for (int i = 0; i < iterations; ++i) {
    cancellation_source s;
    std::array<std::atomic<int>, count> runs{};
    std::array<bool, count> removed{};
    std::vector<cancellation_registration> regs;
    for (std::size_t k = 0; k < count; ++k) {
      regs.push_back(s.token().register_callback([&runs, k] { runs[k].fetch_add(1); }));
    }
    std::latch start(2);
    bounded_thread canceller([&] {
      start.arrive_and_wait();
      s.cancel();
    });
    start.arrive_and_wait();
    // Unregister from both ends towards the middle, so both early and late ones race.
    for (std::size_t k = 0; k < count / 2; ++k) {
      removed[k] = regs[k].unregister();
      removed[count - 1 - k] = regs[count - 1 - k].unregister();
    }
    canceller.join();
    for (std::size_t k = 0; k < count; ++k) {
      ASSERT_EQ(runs[k].load() + (removed[k] ? 1 : 0), 1)
          << "iteration " << i << ", callback " << k;
    }
  }
}

TEST(ConcurrentUnregister, TwoThreadsOnOneRegistration_AtMostOneSucceeds) {  // S11
  constexpr int iterations = 500;
  for (int i = 0; i < iterations; ++i) {
    cancellation_source s;
    std::atomic<int> runs{0};
    auto reg = s.token().register_callback([&] { runs.fetch_add(1); });
    std::atomic<bool> first{false};
    std::atomic<bool> second{false};
    std::latch start(3);
    bounded_thread a([&] {
      start.arrive_and_wait();
      first = reg.unregister();
    });
    bounded_thread b([&] {
      start.arrive_and_wait();
      second = reg.unregister();
    });
    start.arrive_and_wait();
    s.cancel();
    a.join();
    b.join();
    ASSERT_EQ(runs.load() + (first ? 1 : 0) + (second ? 1 : 0), 1) << "iteration " << i;
  }
}

// dispose() reports nothing, so when it wins the race neither outcome is visible; what S11 still
// demands: never both, and after dispose() returns the callback is not running and never runs.
TEST(ConcurrentUnregister, UnregisterAndDisposeOnOneRegistration_NeverBothNoRunAfterDispose) {
  // S11, S9
  constexpr int iterations = 500;
  for (int i = 0; i < iterations; ++i) {
    cancellation_source s;
    std::atomic<int> runs{0};
    std::atomic<int> running{0};
    auto reg = s.token().register_callback([&] {
      running.fetch_add(1);
      runs.fetch_add(1);
      running.fetch_sub(1);
    });
    std::atomic<bool> removed{false};
    std::atomic<int> running_after_dispose{-1};
    std::atomic<int> runs_after_dispose{-1};
    std::latch start(3);
    bounded_thread a([&] {
      start.arrive_and_wait();
      removed = reg.unregister();
    });
    bounded_thread b([&] {
      start.arrive_and_wait();
      reg.dispose();
      running_after_dispose = running.load();
      runs_after_dispose = runs.load();
    });
    start.arrive_and_wait();
    s.cancel();
    a.join();
    b.join();
    ASSERT_LE(runs.load() + (removed ? 1 : 0), 1) << "iteration " << i;
    ASSERT_EQ(running_after_dispose.load(), 0) << "iteration " << i;
    ASSERT_EQ(runs.load(), runs_after_dispose.load()) << "ran after dispose(), iteration " << i;
  }
}

TEST(ConcurrentUnregister, DisposeWhileItsCallbackRunsOnAnotherThread_WaitsForIt) {  // S11, S9
  constexpr int iterations = 20;
  for (int i = 0; i < iterations; ++i) {
    cancellation_source s;
    std::atomic<bool> started{false};
    std::atomic<bool> finished{false};
    auto reg = s.token().register_callback([&] {
      started = true;
      std::this_thread::sleep_for(5ms);
      finished = true;
    });
    bounded_thread canceller([&] { s.cancel(); });
    ASSERT_TRUE(eventually([&] { return started.load(); }));
    bounded_thread disposer([&] {
      reg.dispose();
      EXPECT_TRUE(finished.load());
    });
    disposer.join();
    canceller.join();
  }
}

TEST(ConcurrentUnregister, ManyRegistrationsDisposedWhileCancelling_NoCrash) {  // S11
  constexpr int iterations = 50;
  for (int i = 0; i < iterations; ++i) {
    cancellation_source s;
    std::atomic<int> runs{0};
    std::latch start(3);
    std::vector<cancellation_registration> left;
    std::vector<cancellation_registration> right;
    for (int k = 0; k < 50; ++k) {
      left.push_back(s.token().register_callback([&] { runs.fetch_add(1); }));
      right.push_back(s.token().register_callback([&] { runs.fetch_add(1); }));
    }
    bounded_thread a([&] {
      start.arrive_and_wait();
      left.clear();
    });
    bounded_thread b([&] {
      start.arrive_and_wait();
      right.clear();
    });
    start.arrive_and_wait();
    s.cancel();
    a.join();
    b.join();
    const int after = runs.load();
    EXPECT_LE(after, 100);
    // Nothing runs again: every callback either ran once or was removed.
    EXPECT_FALSE(s.cancel());
    EXPECT_EQ(runs.load(), after);
  }
}
