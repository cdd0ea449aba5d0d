// S22: std::stop_token interop — to_stop_token(), linked(std::stop_token), std::jthread and
// std::condition_variable_any.
#include <cancelkit/cancelkit.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>

#include "test_support.hpp"

using namespace cancelkit;
using namespace std::chrono_literals;
using cktest::bounded_thread;
using cktest::eventually;

// ---- to_stop_token -----------------------------------------------------------------------------

TEST(ToStopToken, NoneToken_StopIsNotPossible) {  // API, S22
  const auto st = cancellation_token::none().to_stop_token();
  EXPECT_FALSE(st.stop_possible());
  EXPECT_FALSE(st.stop_requested());
}

TEST(ToStopToken, LiveToken_StopIsPossibleButNotRequested) {  // S22
  cancellation_source s;
  const auto st = s.token().to_stop_token();
  EXPECT_TRUE(st.stop_possible());
  EXPECT_FALSE(st.stop_requested());
}

TEST(ToStopToken, RequestedWhenTheTokenIsCancelled) {  // S22
  cancellation_source s;
  const auto st = s.token().to_stop_token();
  s.cancel();
  EXPECT_TRUE(st.stop_requested());
}

// The std bridge hears of the request through the state's extension, also when one callback is
// all the source has besides it (that request has a short path of its own, issue 20).
TEST(ToStopToken, RequestedWhenATokenWithOneCallbackIsCancelled) {  // S22
  cancellation_source s;
  const auto st = s.token().to_stop_token();
  int runs = 0;
  cancellation_callback cb(s.token(), [&] { ++runs; });
  s.cancel();
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(st.stop_requested());
}

TEST(ToStopToken, OfACancelledToken_IsAlreadyRequested) {  // S22
  cancellation_source s;
  s.cancel();
  EXPECT_TRUE(s.token().to_stop_token().stop_requested());
}

TEST(ToStopToken, StopCallbackRunsWhenTheTokenIsCancelled) {  // S22
  cancellation_source s;
  const auto st = s.token().to_stop_token();
  int runs = 0;
  std::stop_callback cb(st, [&] { ++runs; });
  EXPECT_EQ(runs, 0);
  s.cancel();
  EXPECT_EQ(runs, 1);
}

TEST(ToStopToken, RequestedWhenALinkedParentCancels) {  // S22, S20
  cancellation_source parent;
  const auto child = cancellation_source::linked({parent.token()});
  const auto st = child.token().to_stop_token();
  parent.cancel();
  EXPECT_TRUE(st.stop_requested());
}

TEST(ToStopToken, RequestedByATimer) {  // S22, S17
  manual_timer_service timers;
  cancellation_source s(timers);
  const auto st = s.token().to_stop_token();
  s.cancel_after(1ms);
  timers.advance(1ms);
  EXPECT_TRUE(st.stop_requested());
}

TEST(ToStopToken, OutlivesTheSourceAndToken) {  // S22, S23
  std::optional<cancellation_source> s(std::in_place);
  std::optional<std::stop_token> st;
  {
    const auto t = s->token();
    st = t.to_stop_token();
  }
  s->cancel();
  s.reset();
  EXPECT_TRUE(st->stop_requested());
}

TEST(ToStopToken, ConditionVariableAnyWaitIsWokenByCancel) {  // S22
  cancellation_source s;
  const auto st = s.token().to_stop_token();
  std::mutex m;
  std::condition_variable_any cv;
  std::atomic<bool> woke{false};
  bounded_thread waiter([&] {
    std::unique_lock lock(m);
    const bool pred = cv.wait(lock, st, [] { return false; });
    EXPECT_FALSE(pred);
    woke = true;
  });
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(woke.load());
  s.cancel();
  waiter.join(5s);
  EXPECT_TRUE(woke.load());
}

TEST(ToStopToken, DrivesAJthreadStyleWorkerLoop) {  // S22
  cancellation_source s;
  std::atomic<bool> stopped_by_token{false};
  {
    std::jthread worker([st = s.token().to_stop_token(), &stopped_by_token] {
      const auto give_up = cktest::steady::now() + 10s;
      while (!st.stop_requested() && cktest::steady::now() < give_up) {
        std::this_thread::sleep_for(1ms);
      }
      stopped_by_token = st.stop_requested();
    });
    std::this_thread::sleep_for(10ms);
    s.cancel();
  }  // joins
  EXPECT_TRUE(stopped_by_token.load());
}

// ---- linked(std::stop_token) -------------------------------------------------------------------

TEST(LinkedToStopToken, CancelledWhenStopIsRequested) {  // S22
  std::stop_source stop;
  const auto child = cancellation_source::linked(stop.get_token());
  EXPECT_FALSE(child.is_cancellation_requested());
  stop.request_stop();
  EXPECT_TRUE(child.is_cancellation_requested());
  EXPECT_EQ(child.token().cancellation_reason(), nullptr);
}

TEST(LinkedToStopToken, CallbacksRunOnTheRequestingThread) {  // S22, S5
  std::stop_source stop;
  const auto child = cancellation_source::linked(stop.get_token());
  std::thread::id ran_on;
  std::thread::id requester_id;
  auto reg = child.token().register_callback([&] { ran_on = std::this_thread::get_id(); });
  bounded_thread requester([&] {
    requester_id = std::this_thread::get_id();
    stop.request_stop();
  });
  requester.join();
  EXPECT_EQ(ran_on, requester_id);
}

TEST(LinkedToStopToken, BornCancelledIfStopWasAlreadyRequested) {  // S22, S19
  std::stop_source stop;
  stop.request_stop();
  const auto child = cancellation_source::linked(stop.get_token());
  EXPECT_TRUE(child.is_cancellation_requested());
  EXPECT_EQ(child.token().cancellation_reason(), nullptr);
}

TEST(LinkedToStopToken, CanBeCancelledOnItsOwn) {  // S22, S19
  std::stop_source stop;
  auto child = cancellation_source::linked(stop.get_token());
  EXPECT_TRUE(child.cancel());
  EXPECT_FALSE(stop.stop_requested());
}

TEST(LinkedToStopToken, StopNotPossible_IsNoLiveParent) {  // S22, S23
  std::optional<cancellation_source> child(cancellation_source::linked(std::stop_token()));
  const auto t = child->token();
  EXPECT_FALSE(t.is_cancellation_requested());
  EXPECT_TRUE(t.can_be_canceled());  // its own handle
  child.reset();
  EXPECT_FALSE(t.can_be_canceled());
}

TEST(LinkedToStopToken, TokenOfATemporaryChild_IsCancelledWhenStopIsRequested) {  // S22, S21
  std::stop_source stop;
  const auto t = cancellation_source::linked(stop.get_token()).token();
  EXPECT_TRUE(t.can_be_canceled());
  stop.request_stop();
  EXPECT_TRUE(t.is_cancellation_requested());
}

TEST(LinkedToStopToken, PropagatesToGrandchildren) {  // S22, S20
  std::stop_source stop;
  const auto child = cancellation_source::linked(stop.get_token());
  const auto grandchild = cancellation_source::linked({child.token()});
  int runs = 0;
  auto reg = grandchild.token().register_callback([&] { ++runs; });
  stop.request_stop();
  EXPECT_EQ(runs, 1);
}

TEST(LinkedToStopToken, StopSourceOutlivedByTheChild_NoCrash) {  // S22, S23
  auto stop = std::make_unique<std::stop_source>();
  auto child = cancellation_source::linked(stop->get_token());
  stop.reset();
  EXPECT_FALSE(child.is_cancellation_requested());
  EXPECT_TRUE(child.cancel());
}

TEST(LinkedToStopToken, ChildDroppedBeforeTheStopRequest_NoCrash) {  // S22, S21
  std::stop_source stop;
  { const auto child = cancellation_source::linked(stop.get_token()); }
  EXPECT_TRUE(stop.request_stop());
}

TEST(LinkedToStopToken, RoundTripThroughToStopToken) {  // S22
  cancellation_source s;
  const auto child = cancellation_source::linked(s.token().to_stop_token());
  s.cancel();
  EXPECT_TRUE(child.is_cancellation_requested());
}

// ---- std::jthread ------------------------------------------------------------------------------

TEST(Jthread, RequestStopCancelsALinkedSource) {  // S22
  std::jthread worker([](std::stop_token st) {
    const auto give_up = cktest::steady::now() + 10s;
    while (!st.stop_requested() && cktest::steady::now() < give_up) {
      std::this_thread::sleep_for(1ms);
    }
  });
  const auto child = cancellation_source::linked(worker.get_stop_token());
  EXPECT_FALSE(child.is_cancellation_requested());
  worker.request_stop();
  EXPECT_TRUE(child.is_cancellation_requested());
}

TEST(Jthread, DestructorCancelsALinkedSource) {  // S22
  std::optional<cancellation_source> child;
  {
    std::jthread worker([](std::stop_token st) {
      const auto give_up = cktest::steady::now() + 10s;
      while (!st.stop_requested() && cktest::steady::now() < give_up) {
        std::this_thread::sleep_for(1ms);
      }
    });
    child.emplace(cancellation_source::linked(worker.get_stop_token()));
  }  // requests stop, joins
  EXPECT_TRUE(child->is_cancellation_requested());
}

TEST(Jthread, WorkerWaitsOnALinkedToken) {  // S22
  std::atomic<bool> woke{false};
  {
    std::jthread worker([&woke](std::stop_token st) {
      const auto t = cancellation_source::linked(st).token();
      woke = t.wait_for(10s);
    });
    std::this_thread::sleep_for(10ms);
  }  // request_stop wakes the wait
  EXPECT_TRUE(woke.load());
}
