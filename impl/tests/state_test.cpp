// S1–S3: a source is live until the one request; exactly one cancel() wins; the request
// publishes everything its thread did before it.
#include <cancelkit/cancelkit.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <latch>
#include <memory>
#include <vector>

#include "test_support.hpp"

using namespace cancelkit;
using namespace std::chrono_literals;
using cktest::bounded_thread;
using cktest::eventually;

// ---- S1 ----------------------------------------------------------------------------------------

TEST(State, NewSource_IsNotCancellationRequested) {  // S1
  cancellation_source s;
  EXPECT_FALSE(s.is_cancellation_requested());
  EXPECT_FALSE(s.token().is_cancellation_requested());
}

TEST(State, Cancel_MakesTheRequestVisibleOnSourceAndTokens) {  // S1
  cancellation_source s;
  const auto t = s.token();
  EXPECT_TRUE(s.cancel());
  EXPECT_TRUE(s.is_cancellation_requested());
  EXPECT_TRUE(t.is_cancellation_requested());
  EXPECT_TRUE(s.token().is_cancellation_requested());
}

TEST(State, Request_StaysTrue) {  // S1
  cancellation_source s;
  const auto t = s.token();
  s.cancel();
  s.cancel();
  EXPECT_FALSE(s.try_reset());
  s.cancel_after(1h);
  s.cancel_after(std::chrono::nanoseconds::max());
  EXPECT_TRUE(s.is_cancellation_requested());
  EXPECT_TRUE(t.is_cancellation_requested());
}

TEST(State, Request_StaysTrueAfterEveryHandleIsGone) {  // S1, S24
  cancellation_token t;
  {
    cancellation_source s;
    t = s.token();
    s.cancel();
  }
  EXPECT_TRUE(t.is_cancellation_requested());
  EXPECT_TRUE(t.can_be_canceled());
}

TEST(State, SecondCancel_ReturnsFalse) {  // S1, S2
  cancellation_source s;
  EXPECT_TRUE(s.cancel());
  EXPECT_FALSE(s.cancel());
  EXPECT_FALSE(s.cancel(cancel_options{.throw_on_first_exception = true}));
}

TEST(State, CancelThroughACopy_ReturnsFalseOnTheOriginal) {  // S1, S2
  cancellation_source s;
  cancellation_source copy = s;
  EXPECT_TRUE(copy.cancel());
  EXPECT_FALSE(s.cancel());
}

TEST(State, CancellingOneSource_LeavesOthersLive) {  // S1
  cancellation_source a;
  cancellation_source b;
  a.cancel();
  EXPECT_FALSE(b.is_cancellation_requested());
  EXPECT_TRUE(b.cancel());
}

// ---- S2 ----------------------------------------------------------------------------------------

TEST(State, ConcurrentCancel_ExactlyOneCallerReturnsTrue) {  // S2
  constexpr int iterations = 200;
  constexpr std::ptrdiff_t threads = 4;
  for (int i = 0; i < iterations; ++i) {
    cancellation_source s;
    std::atomic<int> winners{0};
    std::atomic<int> runs{0};
    auto reg = s.token().register_callback([&] { runs.fetch_add(1); });
    std::latch start(threads);
    std::vector<std::unique_ptr<bounded_thread>> pool;
    for (std::ptrdiff_t k = 0; k < threads; ++k) {
      pool.push_back(std::make_unique<bounded_thread>([&] {
        start.arrive_and_wait();
        if (s.cancel()) winners.fetch_add(1);
      }));
    }
    pool.clear();  // joins
    ASSERT_EQ(winners.load(), 1) << "iteration " << i;
    ASSERT_EQ(runs.load(), 1) << "iteration " << i;
  }
}

TEST(State, ConcurrentCancelWithReasons_WinnersReasonIsRecorded) {  // S2, S16
  constexpr int iterations = 200;
  constexpr int threads = 4;
  for (int i = 0; i < iterations; ++i) {
    cancellation_source s;
    std::array<std::exception_ptr, threads> reasons;
    std::array<bool, threads> won{};
    for (int k = 0; k < threads; ++k) {
      reasons[static_cast<std::size_t>(k)] = std::make_exception_ptr(cktest::test_error{k});
    }
    std::latch start(threads);
    std::vector<std::unique_ptr<bounded_thread>> pool;
    for (std::size_t k = 0; k < threads; ++k) {
      pool.push_back(std::make_unique<bounded_thread>([&, k] {
        start.arrive_and_wait();
        won[k] = s.cancel(cancel_options{.reason = reasons[k]});
      }));
    }
    pool.clear();
    int winners = 0;
    for (std::size_t k = 0; k < threads; ++k) {
      if (!won[k]) continue;
      ++winners;
      EXPECT_EQ(s.token().cancellation_reason(), reasons[k]) << "iteration " << i;
    }
    ASSERT_EQ(winners, 1) << "iteration " << i;
  }
}

TEST(State, LaterCancel_ReturnsFalseWithoutWaitingForRunningCallbacks) {  // S2
  cancellation_source s;
  std::atomic<bool> started{false};
  std::atomic<bool> release{false};
  std::atomic<bool> finished{false};
  auto reg = s.token().register_callback([&] {
    started = true;
    eventually([&] { return release.load(); }, 10s);
    finished = true;
  });
  bounded_thread canceller([&] { EXPECT_TRUE(s.cancel()); });
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  EXPECT_FALSE(s.cancel());
  EXPECT_FALSE(finished.load()) << "the second cancel() waited for the running callback";
  EXPECT_TRUE(s.is_cancellation_requested());
  release = true;
  canceller.join();
  EXPECT_TRUE(finished.load());
}

TEST(State, RequestIsVisibleWhileCallbacksRun) {  // S1, S2
  cancellation_source s;
  const auto t = s.token();
  bool seen = false;
  auto reg = t.register_callback([&] { seen = t.is_cancellation_requested(); });
  s.cancel();
  EXPECT_TRUE(seen);
}

// ---- S3 ----------------------------------------------------------------------------------------

namespace {
constexpr std::size_t payload_size = 64;
void write_payload(std::array<int, payload_size>& data, int round) {
  for (std::size_t i = 0; i < payload_size; ++i) data[i] = round * 1000 + static_cast<int>(i);
}
bool payload_is(const std::array<int, payload_size>& data, int round) {
  for (std::size_t i = 0; i < payload_size; ++i) {
    if (data[i] != round * 1000 + static_cast<int>(i)) return false;
  }
  return true;
}
}  // namespace

TEST(MemoryOrdering, WritesBeforeCancel_VisibleAfterObservingTheRequest) {  // S3
  for (int round = 1; round <= 100; ++round) {
    std::array<int, payload_size> data{};  // plain, non-atomic
    cancellation_source s;
    const auto t = s.token();
    bounded_thread writer([&] {
      write_payload(data, round);
      s.cancel();
    });
    ASSERT_TRUE(eventually([&] { return t.is_cancellation_requested(); }));
    EXPECT_TRUE(payload_is(data, round)) << "round " << round;
  }
}

TEST(MemoryOrdering, WritesBeforeCancel_VisibleAfterSourceObservesTheRequest) {  // S3
  for (int round = 1; round <= 100; ++round) {
    std::array<int, payload_size> data{};
    cancellation_source s;
    cancellation_source copy = s;
    bounded_thread writer([&] {
      write_payload(data, round);
      copy.cancel();
    });
    ASSERT_TRUE(eventually([&] { return s.is_cancellation_requested(); }));
    EXPECT_TRUE(payload_is(data, round)) << "round " << round;
  }
}

TEST(MemoryOrdering, WritesBeforeCancel_VisibleAfterWaitReturns) {  // S3
  for (int round = 1; round <= 100; ++round) {
    std::array<int, payload_size> data{};
    cancellation_source s;
    const auto t = s.token();
    bounded_thread writer([&] {
      write_payload(data, round);
      s.cancel();
    });
    t.wait();
    EXPECT_TRUE(payload_is(data, round)) << "round " << round;
  }
}

TEST(MemoryOrdering, WritesBeforeCancel_VisibleAfterWaitForReturnsTrue) {  // S3
  for (int round = 1; round <= 100; ++round) {
    std::array<int, payload_size> data{};
    cancellation_source s;
    const auto t = s.token();
    bounded_thread writer([&] {
      write_payload(data, round);
      s.cancel();
    });
    ASSERT_TRUE(t.wait_for(5s));
    EXPECT_TRUE(payload_is(data, round)) << "round " << round;
  }
}

TEST(MemoryOrdering, WritesBeforeCancel_VisibleInACallbackRunInline) {  // S3, S6
  for (int round = 1; round <= 100; ++round) {
    std::array<int, payload_size> data{};
    cancellation_source s;
    const auto t = s.token();
    bounded_thread writer([&] {
      write_payload(data, round);
      s.cancel();
    });
    // Register until a callback runs inline here (the request was observed by register_callback).
    // A callback run by the writer instead does nothing, and is waited for before going on.
    const auto me = std::this_thread::get_id();
    bool seen_inline = false;
    bool payload_ok = false;
    ASSERT_TRUE(eventually([&] {
      auto reg = t.register_callback([&] {
        if (std::this_thread::get_id() != me) return;
        seen_inline = true;
        payload_ok = payload_is(data, round);
      });
      if (seen_inline) return true;
      reg.dispose();
      return false;
    }));
    EXPECT_TRUE(seen_inline);
    EXPECT_TRUE(payload_ok) << "round " << round;
  }
}

TEST(MemoryOrdering, WritesBeforeCancel_VisibleInCallbacksOnTheCancellingThread) {  // S3, S5
  std::array<int, payload_size> data{};
  cancellation_source s;
  bool payload_ok = false;
  auto reg = s.token().register_callback([&] { payload_ok = payload_is(data, 7); });
  bounded_thread writer([&] {
    write_payload(data, 7);
    s.cancel();
  });
  writer.join();
  EXPECT_TRUE(payload_ok);
}
