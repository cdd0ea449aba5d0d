// S23–S24: tokens and registrations keep the state alive; a source stays cancellable while a
// handle, an armed timer or a cancellable linked parent remains; after that, pending callbacks
// never run and can_be_canceled() is false.
#include <cancelkit/cancelkit.hpp>

#include <atomic>
#include <chrono>
#include <latch>
#include <optional>
#include <stop_token>
#include <thread>
#include <utility>

#include "test_support.hpp"

using namespace cancelkit;
using namespace std::chrono_literals;

// ---- S23 ---------------------------------------------------------------------------------------

TEST(Lifetime, TokenOutlivesItsSource) {  // S23
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  s.reset();
  EXPECT_FALSE(t.is_cancellation_requested());
  EXPECT_EQ(t.cancellation_reason(), nullptr);
  EXPECT_NO_THROW(t.throw_if_cancellation_requested());
}

TEST(Lifetime, RegistrationOutlivesSourceAndToken) {  // S23
  std::optional<cancellation_source> s(std::in_place);
  std::optional<cancellation_token> t(s->token());
  int runs = 0;
  auto reg = t->register_callback([&] { ++runs; });
  s.reset();
  t.reset();
  EXPECT_FALSE(reg.token().can_be_canceled());
  EXPECT_FALSE(reg.token().is_cancellation_requested());
  reg.dispose();
  EXPECT_EQ(runs, 0);
}

TEST(Lifetime, RegistrationOutlivesACancelledSource) {  // S23
  std::optional<cancellation_source> s(std::in_place);
  int runs = 0;
  auto reg = s->token().register_callback([&] { ++runs; });
  s->cancel();
  s.reset();
  EXPECT_TRUE(reg.token().is_cancellation_requested());
  EXPECT_FALSE(reg.unregister());
  EXPECT_EQ(runs, 1);
}

TEST(Lifetime, LastHandleGone_PendingCallbacksNeverRun) {  // S23
  std::optional<cancellation_source> s(std::in_place);
  int runs = 0;
  auto reg = s->token().register_callback([&] { ++runs; });
  s.reset();
  reg.dispose();
  EXPECT_EQ(runs, 0);
}

TEST(Lifetime, LastHandleGone_UnregisterReturnsFalse) {  // S23, S8
  std::optional<cancellation_source> s(std::in_place);
  auto reg = s->token().register_callback([] {});
  cancellation_callback cb(s->token(), [] {});
  s.reset();
  EXPECT_FALSE(reg.unregister());
  EXPECT_FALSE(cb.unregister());
}

TEST(Lifetime, LastHandleGone_CannotBeCanceled) {  // S23, S24
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  s.reset();
  EXPECT_FALSE(t.can_be_canceled());
}

TEST(Lifetime, AnyRemainingCopyKeepsItCancellable) {  // S23
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  cancellation_source copy = *s;
  int runs = 0;
  auto reg = t.register_callback([&] { ++runs; });
  s.reset();
  EXPECT_TRUE(t.can_be_canceled());
  EXPECT_TRUE(copy.cancel());
  EXPECT_EQ(runs, 1);
}

TEST(Lifetime, LastHandleDroppedOnAnotherThread_CannotBeCanceled) {  // S23
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  cktest::bounded_thread dropper([&] { s.reset(); });
  dropper.join();
  EXPECT_FALSE(t.can_be_canceled());
}

TEST(Lifetime, ArmedTimerKeepsItCancellable) {  // S23, S17
  manual_timer_service timers;
  std::optional<cancellation_source> s(std::in_place, timers);
  const auto t = s->token();
  int runs = 0;
  auto reg = t.register_callback([&] { ++runs; });
  s->cancel_after(1s);
  s.reset();
  EXPECT_TRUE(t.can_be_canceled());
  timers.advance(1s);
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(t.is_cancellation_requested());
}

TEST(Lifetime, DisarmedTimerNoLongerKeepsItCancellable) {  // S23, S17, S18
  manual_timer_service timers;
  std::optional<cancellation_source> s(std::in_place, timers);
  const auto t = s->token();
  s->cancel_after(1s);
  EXPECT_TRUE(s->try_reset());
  s.reset();
  EXPECT_FALSE(t.can_be_canceled());
}

TEST(Lifetime, CancellableLinkedParentKeepsTheChildCancellable) {  // S23, S21
  cancellation_source parent;
  std::optional<cancellation_source> child(cancellation_source::linked({parent.token()}));
  const auto t = child->token();
  child.reset();
  EXPECT_TRUE(t.can_be_canceled());
  parent.cancel();
  EXPECT_TRUE(t.is_cancellation_requested());
}

TEST(Lifetime, LinkedChildWithoutHandle_CannotBeCanceledOnceEveryParentIsGone) {  // S23
  std::optional<cancellation_source> a(std::in_place);
  std::optional<cancellation_source> b(std::in_place);
  const auto t = cancellation_source::linked({a->token(), b->token()}).token();
  int runs = 0;
  auto reg = t.register_callback([&] { ++runs; });
  a.reset();
  EXPECT_TRUE(t.can_be_canceled());
  b.reset();
  EXPECT_FALSE(t.can_be_canceled());
  EXPECT_FALSE(reg.unregister());
  EXPECT_EQ(runs, 0);
}

TEST(Lifetime, LinkedChildOfAnUncancellableParent_CannotBeCanceledWithoutHandle) {  // S23
  std::optional<cancellation_source> parent(std::in_place);
  const auto parent_token = parent->token();
  parent.reset();
  const auto t = cancellation_source::linked({parent_token}).token();
  EXPECT_FALSE(t.can_be_canceled());
}

TEST(Lifetime, GrandchildOfADroppedRoot_CannotBeCanceled) {  // S23
  std::optional<cancellation_source> root(std::in_place);
  const auto t = cancellation_source::linked(
                     {cancellation_source::linked({root->token()}).token()})
                     .token();
  EXPECT_TRUE(t.can_be_canceled());
  root.reset();
  EXPECT_FALSE(t.can_be_canceled());
}

TEST(Lifetime, ParentCancelledAfterTheChildsHandleIsGone_ChildTokenSeesIt) {  // S23, S21
  cancellation_source parent;
  cancellation_token t;
  {
    const auto child = cancellation_source::linked({parent.token()});
    t = child.token();
  }
  parent.cancel(cancel_options{.reason = std::make_exception_ptr(cktest::test_error{1})});
  EXPECT_TRUE(t.is_cancellation_requested());
  EXPECT_TRUE(cktest::holds<cktest::test_error>(t.cancellation_reason()));
}

// ---- S24 ---------------------------------------------------------------------------------------

TEST(CanBeCanceled, NoneToken_False) {  // S24
  EXPECT_FALSE(cancellation_token::none().can_be_canceled());
}

TEST(CanBeCanceled, LiveSource_True) {  // S24
  cancellation_source s;
  EXPECT_TRUE(s.token().can_be_canceled());
}

TEST(CanBeCanceled, CancelledSource_True) {  // S24
  cancellation_source s;
  s.cancel();
  EXPECT_TRUE(s.token().can_be_canceled());
}

TEST(CanBeCanceled, CancelledThenEveryHandleGone_StaysTrue) {  // S24
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  s->cancel();
  s.reset();
  EXPECT_TRUE(t.can_be_canceled());
}

TEST(CanBeCanceled, LinkedChildCancelledByParentThenEverythingGone_StaysTrue) {  // S24
  std::optional<cancellation_source> parent(std::in_place);
  const auto t = cancellation_source::linked({parent->token()}).token();
  parent->cancel();
  parent.reset();
  EXPECT_TRUE(t.can_be_canceled());
  EXPECT_TRUE(t.is_cancellation_requested());
}

TEST(CanBeCanceled, TokenOfAnEmptySource_False) {  // S24, API
  cancellation_source s;
  const auto keep = std::move(s);
  EXPECT_FALSE(s.token().can_be_canceled());
}

// ---- races -------------------------------------------------------------------------------------

TEST(LifetimeRaces, LastHandleDroppedWhileUnregistering_CallbackNeverRuns) {  // S23, S8
  for (int i = 0; i < 300; ++i) {
    std::optional<cancellation_source> s(std::in_place);
    std::atomic<int> runs{0};
    auto reg = s->token().register_callback([&] { runs.fetch_add(1); });
    std::latch start(2);
    cktest::bounded_thread dropper([&] {
      start.arrive_and_wait();
      s.reset();
    });
    start.arrive_and_wait();
    const bool removed = reg.unregister();
    dropper.join();
    EXPECT_FALSE(reg.unregister());
    ASSERT_EQ(runs.load(), 0) << "iteration " << i << (removed ? " (removed)" : " (dropped)");
  }
}

TEST(LifetimeRaces, LastTwoHandlesDroppedConcurrently_CannotBeCanceled) {  // S23
  for (int i = 0; i < 300; ++i) {
    std::optional<cancellation_source> a(std::in_place);
    std::optional<cancellation_source> b(*a);
    const auto t = a->token();
    std::latch start(2);
    cktest::bounded_thread dropper([&] {
      start.arrive_and_wait();
      a.reset();
    });
    start.arrive_and_wait();
    b.reset();
    dropper.join();
    ASSERT_FALSE(t.can_be_canceled()) << "iteration " << i;
  }
}

TEST(LifetimeRaces, CancelRacingTheOtherHandlesDrop_RunsCallbacksOnce) {  // S23, S5
  for (int i = 0; i < 300; ++i) {
    cancellation_source a;
    std::optional<cancellation_source> b(a);
    std::atomic<int> runs{0};
    auto reg = a.token().register_callback([&] { runs.fetch_add(1); });
    std::latch start(2);
    cktest::bounded_thread dropper([&] {
      start.arrive_and_wait();
      b.reset();
    });
    start.arrive_and_wait();
    EXPECT_TRUE(a.cancel());
    dropper.join();
    ASSERT_EQ(runs.load(), 1) << "iteration " << i;
  }
}

// ---- issue 20: the dispatch holds no reference, DISPATCHING keeps the state ([I17]) --------------

// The one callback destroys its own registration and then the last source handle, which is then
// the state's only reference: the sole-owner free must step aside while the dispatcher still
// uses the state, and the dispatcher frees it once done (under ASan a free in between is a
// heap-use-after-free in cancel(); mutant 70).
TEST(DispatchLifetime, CallbackDestroysItsRegistrationAndTheLastSourceHandle) {  // S10
  struct counted {
    int* destroyed;
    int* ran;
    std::optional<cancellation_registration>* self;
    std::optional<cancellation_source>* source;
    counted(int* d, int* r, std::optional<cancellation_registration>* me,
            std::optional<cancellation_source>* s)
        : destroyed(d), ran(r), self(me), source(s) {}
    counted(const counted& o) : destroyed(o.destroyed), ran(o.ran), self(o.self), source(o.source) {}
    ~counted() { ++*destroyed; }
    void operator()() const {
      ++*ran;
      self->reset();    // ~cancellation_registration inside its own callback (S10)
      source->reset();  // the last handle: nothing else refers to the state now
    }
  };
  int destroyed = 0;
  int ran = 0;
  std::optional<cancellation_source> source(std::in_place);
  std::optional<cancellation_registration> reg;
  {
    const counted fn(&destroyed, &ran, &reg, &source);
    reg.emplace(source->token().register_callback(fn));
  }
  destroyed = 0;  // the temporaries above
  cancellation_source* const s = &*source;
  EXPECT_TRUE(s->cancel());  // `*s` is destroyed inside; cancel() must not touch it after
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(destroyed, 1);  // the stored callable, once, after it returned
  EXPECT_FALSE(reg.has_value());
  EXPECT_FALSE(source.has_value());
}

// A token dropped on another thread while the canceller's one callback destroys its registration
// and the last source handle: whichever drop takes the count to zero during the dispatch leaves
// the free to the dispatcher (mutant 68), or the source handle finds itself the sole owner and
// must step aside (mutant 70); the state is freed exactly once (ASan, TSan).
TEST(DispatchLifetime, LastHandlesDroppedOnTwoThreadsDuringTheDispatch) {  // S10
  for (int round = 0; round < 200; ++round) {
    std::optional<cancellation_source> source(std::in_place);
    std::optional<cancellation_token> token(source->token());
    std::optional<cancellation_registration> reg;
    std::latch started(2);
    int ran = 0;
    reg.emplace(source->token().register_callback([&] {
      ++ran;
      started.arrive_and_wait();
      reg.reset();     // inside its own callback: released after it returns (S10)
      source.reset();  // S10: the canceller's own handle
    }));
    std::thread other([&] {
      started.arrive_and_wait();
      token.reset();
    });
    cancellation_source* const s = &*source;
    EXPECT_TRUE(s->cancel());
    other.join();
    EXPECT_EQ(ran, 1);
    EXPECT_FALSE(reg.has_value());
  }
}
