// <cancelkit/coroutine.hpp>: co_await cancelled(token) (S26), co_await delay(...) (S27), and
// destruction of a suspended coroutine (S28) (issue 18). The handshake under every schedule is
// the Relacy test in stress/model_check/coroutine_tests.cpp; the long race is the stress
// scenario delay_vs_cancel_vs_destroy. These tests pin the behaviour of each rule, on a
// manual_timer_service wherever time matters, so they are deterministic.
#include <cancelkit/cancelkit.hpp>
#include <cancelkit/coroutine.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "coro_task.hpp"
#include "test_support.hpp"

using namespace cancelkit;
using namespace std::chrono_literals;
using cktest::task;

namespace {

// How a coroutine under test ended, written by its body and read after task::finished().
enum class outcome { none, resumed, canceled, logic_error, other_error };

// Counts destructions: a local of the coroutine, destroyed with its frame.
struct frame_probe {
  std::atomic<int>* destroyed;
  ~frame_probe() { destroyed->fetch_add(1, std::memory_order_relaxed); }
};

struct record {
  std::atomic<int> resumptions{0};
  std::atomic<int> destroyed{0};
  outcome result = outcome::none;
  std::thread::id resumed_on{};
  cancellation_token canceled_token;
};

task await_cancelled(cancellation_token token, record& r) {
  frame_probe probe{&r.destroyed};
  try {
    co_await cancelled(token);
    r.result = outcome::resumed;
  } catch (const std::logic_error&) {
    r.result = outcome::logic_error;
  }
  r.resumed_on = std::this_thread::get_id();
  r.resumptions.fetch_add(1, std::memory_order_relaxed);
}

task await_delay(std::chrono::nanoseconds d, cancellation_token token, timer_service& timers,
                 record& r) {
  frame_probe probe{&r.destroyed};
  try {
    co_await delay(d, token, timers);
    r.result = outcome::resumed;
  } catch (const operation_canceled& e) {
    r.result = outcome::canceled;
    r.canceled_token = e.token();
  } catch (...) {
    r.result = outcome::other_error;
  }
  r.resumed_on = std::this_thread::get_id();
  r.resumptions.fetch_add(1, std::memory_order_relaxed);
}

// After the delay, parks in cancelled(park): a second resumption of the delay would resume it
// here instead (and end it with the wrong outcome).
task await_delay_then_park(std::chrono::nanoseconds d, cancellation_token token,
                           timer_service& timers, cancellation_token park, record& r) {
  frame_probe probe{&r.destroyed};
  try {
    co_await delay(d, token, timers);
    r.result = outcome::resumed;
  } catch (const operation_canceled&) {
    r.result = outcome::canceled;
  }
  r.resumptions.fetch_add(1, std::memory_order_relaxed);
  co_await cancelled(park);
  r.resumptions.fetch_add(100, std::memory_order_relaxed);  // the park's own resumption
}

}  // namespace

// ---- cancelled(token) (S26, S23) ---------------------------------------------------------------

TEST(CoroutineCancelled, AlreadyCancelled_DoesNotSuspend) {  // S26; issue 18
  cancellation_source src;
  static_cast<void>(src.cancel());
  record r;
  task t = await_cancelled(src.token(), r);
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(r.result, outcome::resumed);
}

TEST(CoroutineCancelled, SuspendsUntilCancelled) {  // S26; issue 18
  cancellation_source src;
  record r;
  task t = await_cancelled(src.token(), r);
  EXPECT_FALSE(t.finished());
  EXPECT_EQ(r.resumptions.load(), 0);
  static_cast<void>(src.cancel());
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(r.result, outcome::resumed);
  EXPECT_EQ(r.resumptions.load(), 1);
}

TEST(CoroutineCancelled, ResumesOnTheCancellingThread_BeforeCancelReturns) {  // S26, S5
  cancellation_source src;
  record r;
  task t = await_cancelled(src.token(), r);
  std::thread::id canceller;
  bool finished_when_cancel_returned = false;
  {
    cktest::bounded_thread th([&] {
      canceller = std::this_thread::get_id();
      static_cast<void>(src.cancel());
      finished_when_cancel_returned = t.finished();
    });
  }
  EXPECT_TRUE(finished_when_cancel_returned);
  EXPECT_EQ(r.resumed_on, canceller);
}

TEST(CoroutineCancelled, RunsInLifoOrderWithCallbacks) {  // S26: "like a callback", S5
  cancellation_source src;
  std::vector<int> order;
  auto before = src.token().register_callback([&] { order.push_back(1); });
  record r;
  task t = await_cancelled(src.token(), r);
  auto after = src.token().register_callback([&] { order.push_back(3); });
  cancellation_callback probe(src.token(), [&] { order.push_back(r.resumptions.load() + 10); });
  static_cast<void>(src.cancel());
  // LIFO: probe (sees 0 resumptions), `after`, the coroutine, `before` (sees... nothing more).
  ASSERT_EQ(order.size(), 3u);
  EXPECT_EQ(order[0], 10);
  EXPECT_EQ(order[1], 3);
  EXPECT_EQ(order[2], 1);
  EXPECT_EQ(r.resumptions.load(), 1);
}

TEST(CoroutineCancelled, NoneToken_ThrowsLogicErrorWithoutSuspending) {  // S26, S24
  record r;
  task t = await_cancelled(cancellation_token::none(), r);
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(r.result, outcome::logic_error);
}

TEST(CoroutineCancelled, TokenThatCanNoLongerBeCanceled_ThrowsLogicError) {  // S26, S23
  cancellation_token token;
  {
    cancellation_source src;
    token = src.token();
  }
  ASSERT_FALSE(token.can_be_canceled());
  record r;
  task t = await_cancelled(token, r);
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(r.result, outcome::logic_error);
}

TEST(CoroutineCancelled, BecomesUnableWhileSuspended_ResumesWithLogicError) {  // S26, S23
  record r;
  task t;
  std::thread::id dropper;
  {
    auto src = std::make_unique<cancellation_source>();
    t = await_cancelled(src->token(), r);
    EXPECT_FALSE(t.finished());
    cktest::bounded_thread th([&] {
      dropper = std::this_thread::get_id();
      src.reset();  // the last source handle: the token can no longer be canceled
    });
  }
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(r.result, outcome::logic_error);
  EXPECT_EQ(r.resumed_on, dropper);  // on the thread that made it unable
  EXPECT_EQ(r.resumptions.load(), 1);
}

TEST(CoroutineCancelled, LinkedChildBecomesUnableWhenItsParentsGo) {  // S26, S23 through links
  record r;
  task t;
  {
    auto parent = std::make_unique<cancellation_source>();
    cancellation_source child = cancellation_source::linked({parent->token()});
    cancellation_token token = child.token();
    {
      cancellation_source gone = std::move(child);
    }  // the child's own handle is gone; the parent still can cancel it
    t = await_cancelled(token, r);
    EXPECT_FALSE(t.finished());
    parent.reset();
  }
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(r.result, outcome::logic_error);
}

TEST(CoroutineCancelled, DestroyedWhileSuspended_IsNeverResumed) {  // S28; issue 18
  cancellation_source src;
  record r;
  task t = await_cancelled(src.token(), r);
  t.destroy();
  EXPECT_EQ(r.destroyed.load(), 1);
  static_cast<void>(src.cancel());  // would resume freed memory if still registered
  EXPECT_EQ(r.resumptions.load(), 0);
}

TEST(CoroutineCancelled, DestroyedWhileSuspended_IsNotResumedByTheOrphaning) {  // S28, S23
  record r;
  auto src = std::make_unique<cancellation_source>();
  task t = await_cancelled(src->token(), r);
  t.destroy();
  src.reset();
  EXPECT_EQ(r.destroyed.load(), 1);
  EXPECT_EQ(r.resumptions.load(), 0);
}

TEST(CoroutineCancelled, ResumedCoroutineDestroysAnotherStillSuspended) {  // S28, S5 (LIFO)
  cancellation_source src;
  record first;
  task victim = await_cancelled(src.token(), first);
  record second;
  // Registered later, so resumed first (LIFO): it destroys `victim` before its turn.
  auto killer = [](cancellation_token token, task& other, record& r) -> task {
    co_await cancelled(token);
    other.destroy();
    r.resumptions.fetch_add(1, std::memory_order_relaxed);
  };
  task k = killer(src.token(), victim, second);
  static_cast<void>(src.cancel());
  EXPECT_EQ(second.resumptions.load(), 1);
  EXPECT_EQ(first.destroyed.load(), 1);
  EXPECT_EQ(first.resumptions.load(), 0);
}

TEST(CoroutineCancelled, ManyCoroutinesOnOneToken_EachResumedOnce) {  // S26
  cancellation_source src;
  std::vector<record> records(50);
  std::vector<task> tasks;
  for (record& r : records) tasks.push_back(await_cancelled(src.token(), r));
  static_cast<void>(src.cancel());
  for (const record& r : records) EXPECT_EQ(r.resumptions.load(), 1);
}

TEST(CoroutineCancelled, DestroyedByAnEarlierCallbackOfTheSameCancel_IsNeverResumed) {  // S28
  // A callback registered after the await runs first (S5) and destroys the suspended coroutine
  // on the cancelling thread: its node is withdrawn before the dispatcher reaches it.
  cancellation_source src;
  record r;
  task t = await_cancelled(src.token(), r);
  auto reg = src.token().register_callback([&] { t.destroy(); });
  static_cast<void>(src.cancel());
  EXPECT_EQ(r.destroyed.load(), 1);
  EXPECT_EQ(r.resumptions.load(), 0);
}

// ---- delay(d, token, timers) (S27) ------------------------------------------------------------

TEST(CoroutineDelay, ResumesWhenTheDurationHasPassed_InAdvance) {  // S27; issue 18
  manual_timer_service timers;
  cancellation_source src;
  record r;
  task t = await_delay(10ms, src.token(), timers, r);
  timers.advance(10ms - 1ns);
  EXPECT_FALSE(t.finished());
  std::thread::id advancer;
  {
    cktest::bounded_thread th([&] {
      advancer = std::this_thread::get_id();
      timers.advance(1ns);
    });
  }
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(r.result, outcome::resumed);
  EXPECT_EQ(r.resumed_on, advancer);
}

TEST(CoroutineDelay, CancelResumesWithOperationCanceledCarryingTheToken) {  // S27, S16
  manual_timer_service timers;
  cancellation_source src;
  record r;
  task t = await_delay(1h, src.token(), timers, r);
  std::thread::id canceller;
  {
    cktest::bounded_thread th([&] {
      canceller = std::this_thread::get_id();
      static_cast<void>(src.cancel());
    });
  }
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(r.result, outcome::canceled);
  EXPECT_TRUE(r.canceled_token == src.token());
  EXPECT_EQ(r.resumed_on, canceller);
}

TEST(CoroutineDelay, CancelThenTimerDue_ResumesOnce) {  // S27: exactly one resumes
  manual_timer_service timers;
  cancellation_source src;
  record r;
  task t = await_delay(10ms, src.token(), timers, r);
  static_cast<void>(src.cancel());
  timers.advance(1h);
  EXPECT_EQ(r.result, outcome::canceled);
  EXPECT_EQ(r.resumptions.load(), 1);
}

TEST(CoroutineDelay, CancelResume_LeavesNoTimerBehind) {  // S27, [C3]; issue 18
  // The frame is gone before the timer would be due: a timer left armed by the cancel would be
  // taken from freed memory by the next advance() (ASan reports it; the Relacy test
  // delay_cancel_vs_advance_vs_destroy kills mutant 63 in every build).
  manual_timer_service timers;
  record first;
  {
    cancellation_source src;
    task t = await_delay(10ms, src.token(), timers, first);
    static_cast<void>(src.cancel());
    ASSERT_TRUE(t.finished());
  }  // frame destroyed
  record second;
  cancellation_source other;
  task u = await_delay(20ms, other.token(), timers, second);
  timers.advance(20ms);
  EXPECT_EQ(second.result, outcome::resumed);
  EXPECT_EQ(second.resumptions.load(), 1);
  EXPECT_EQ(first.resumptions.load(), 1);
}

TEST(CoroutineDelay, TimerThenCancel_DoesNotResumeAgain) {  // S27: exactly one resumes; [C3]
  manual_timer_service timers;
  cancellation_source src;
  cancellation_source park;
  record r;
  task t = await_delay_then_park(10ms, src.token(), timers, park.token(), r);
  timers.advance(10ms);
  EXPECT_EQ(r.result, outcome::resumed);
  EXPECT_EQ(r.resumptions.load(), 1);
  static_cast<void>(src.cancel());  // the delay's registration must be gone
  EXPECT_EQ(r.resumptions.load(), 1);
  EXPECT_FALSE(t.finished());
  static_cast<void>(park.cancel());
  EXPECT_EQ(r.resumptions.load(), 101);
}

TEST(CoroutineDelay, TimerDueInsideTheCancellation_ResumesOnce) {  // S27: the race, in order
  // A callback registered after the await runs first (LIFO) and advances the timer: the timer
  // wins while the cancellation is under way, and the awaiter's own callback must not resume.
  manual_timer_service timers;
  cancellation_source src;
  cancellation_source park;
  record r;
  task t = await_delay_then_park(10ms, src.token(), timers, park.token(), r);
  auto reg = src.token().register_callback([&] { timers.advance(10ms); });
  static_cast<void>(src.cancel());
  EXPECT_EQ(r.result, outcome::resumed);
  EXPECT_EQ(r.resumptions.load(), 1);
  static_cast<void>(park.cancel());
  EXPECT_EQ(r.resumptions.load(), 101);
}

TEST(CoroutineDelay, ZeroOrNegative_DoesNotSuspend) {  // S27
  manual_timer_service timers;
  cancellation_source src;
  record a;
  task t = await_delay(0ns, src.token(), timers, a);
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(a.result, outcome::resumed);
  record b;
  task u = await_delay(-5s, src.token(), timers, b);
  EXPECT_TRUE(u.finished());
  EXPECT_EQ(b.result, outcome::resumed);
}

TEST(CoroutineDelay, AlreadyCancelledToken_ThrowsWithoutSuspending) {  // S27
  manual_timer_service timers;
  cancellation_source src;
  static_cast<void>(src.cancel());
  record r;
  task t = await_delay(1h, src.token(), timers, r);
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(r.result, outcome::canceled);
}

TEST(CoroutineDelay, MaxMeansNoTimer_OnlyTheCancelResumes) {  // S27
  manual_timer_service timers;
  cancellation_source src;
  record r;
  task t = await_delay(std::chrono::nanoseconds::max(), src.token(), timers, r);
  timers.advance(std::chrono::nanoseconds::max());
  EXPECT_FALSE(t.finished());
  static_cast<void>(src.cancel());
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(r.result, outcome::canceled);
}

TEST(CoroutineDelay, DeadlineBeyondTheClock_MeansNoTimer) {  // S27: no overflow
  manual_timer_service timers;
  timers.advance(std::chrono::nanoseconds::max() / 2);
  cancellation_source src;
  record r;
  task t = await_delay(std::chrono::nanoseconds::max() - 1ns, src.token(), timers, r);
  timers.advance(std::chrono::nanoseconds::max());
  EXPECT_FALSE(t.finished());
  static_cast<void>(src.cancel());
  EXPECT_EQ(r.result, outcome::canceled);
}

TEST(CoroutineDelay, WithoutAToken_OnlyTheTimerResumes) {  // S27
  manual_timer_service timers;
  std::atomic<int> done{0};
  auto body = [](timer_service& ts, std::atomic<int>& d) -> task {
    co_await delay(5ms, ts);
    d.fetch_add(1);
  };
  task t = body(timers, done);
  timers.advance(4ms);
  EXPECT_EQ(done.load(), 0);
  timers.advance(1ms);
  EXPECT_EQ(done.load(), 1);
}

TEST(CoroutineDelay, TokenThatCanNoLongerBeCanceled_StillResumesByTimer) {  // S27, S23
  manual_timer_service timers;
  record r;
  task t;
  {
    cancellation_source src;
    t = await_delay(5ms, src.token(), timers, r);
  }
  timers.advance(5ms);
  EXPECT_EQ(r.result, outcome::resumed);
}

TEST(CoroutineDelay, DestroyedWhileSuspended_WithdrawsTimerAndRegistration) {  // S28
  manual_timer_service timers;
  cancellation_source src;
  record r;
  task t = await_delay(10ms, src.token(), timers, r);
  t.destroy();  // a timer or node left behind points into freed memory (ASan, Relacy)
  EXPECT_EQ(r.destroyed.load(), 1);
  timers.advance(1h);
  static_cast<void>(src.cancel());
  EXPECT_EQ(r.resumptions.load(), 0);
}

TEST(CoroutineDelay, EqualDeadlinesResumeInAwaitOrder) {  // S27 (ties: arming order, as S17)
  manual_timer_service timers;
  std::vector<int> order;
  auto body = [](timer_service& ts, std::vector<int>& o, int id) -> task {
    co_await delay(7ms, ts);
    o.push_back(id);
  };
  std::vector<task> tasks;
  for (int i = 0; i < 8; ++i) tasks.push_back(body(timers, order, i));
  timers.advance(7ms);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(CoroutineDelay, ManyDeadlinesWithWithdrawals_ResumeInDeadlineOrder) {  // S27: the heap
  manual_timer_service timers;
  std::vector<int> order;
  auto body = [](timer_service& ts, std::vector<int>& o, int id,
                 std::chrono::nanoseconds d) -> task {
    co_await delay(d, ts);
    o.push_back(id);
  };
  std::vector<task> tasks;
  std::vector<std::chrono::nanoseconds> due;
  for (int i = 0; i < 64; ++i) {
    // A scrambled permutation of 1..64 ms (37 is coprime with 64).
    due.push_back(std::chrono::milliseconds(1 + (i * 37) % 64));
    tasks.push_back(body(timers, order, i, due.back()));
  }
  for (int i = 0; i < 64; i += 3) tasks[static_cast<std::size_t>(i)].destroy();  // from the middle
  // A source timer in the same heap keeps its place too.
  cancellation_source timed(timers);
  timed.cancel_after(std::chrono::microseconds(32500));
  std::vector<int> expected;
  for (int ms = 1; ms <= 64; ++ms) {
    for (int i = 0; i < 64; ++i) {
      if (i % 3 != 0 && due[static_cast<std::size_t>(i)] == std::chrono::milliseconds(ms))
        expected.push_back(i);
    }
  }
  bool cancelled_in_order = false;
  auto reg = timed.token().register_callback([&] { cancelled_in_order = order.size() > 0; });
  for (int ms = 1; ms <= 64; ++ms) timers.advance(1ms);
  EXPECT_EQ(order, expected);
  EXPECT_TRUE(timed.is_cancellation_requested());
  EXPECT_TRUE(cancelled_in_order);
}

TEST(CoroutineDelay, SystemTimer_ResumesOnAServiceThread) {  // S27
  cancellation_source src;
  record r;
  const auto start = cktest::steady::now();
  task t = [](cancellation_token token, record& rec) -> task {
    co_await delay(20ms, token);
    rec.resumed_on = std::this_thread::get_id();
    rec.resumptions.fetch_add(1, std::memory_order_relaxed);
  }(src.token(), r);
  ASSERT_TRUE(cktest::eventually([&] { return t.finished(); }));
  EXPECT_GE(cktest::elapsed_since(start), 20ms);
  EXPECT_NE(r.resumed_on, std::this_thread::get_id());
  EXPECT_EQ(r.resumptions.load(), 1);
}

TEST(CoroutineDelay, SystemTimer_CancelResumesAtOnce) {  // S27
  cancellation_source src;
  record r;
  task t = await_delay(1h, src.token(), system_timer_service(), r);
  const auto start = cktest::steady::now();
  static_cast<void>(src.cancel());
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(r.result, outcome::canceled);
  EXPECT_LT(cktest::elapsed_since(start), 5s);
}

TEST(CoroutineDelay, AdvanceVsCancelOnTwoThreads_ResumesExactlyOnce) {  // S27: the race
  for (int i = 0; i < 300; ++i) {
    manual_timer_service timers;
    cancellation_source src;
    record r;
    task t = await_delay(1ms, src.token(), timers, r);
    std::atomic<bool> go{false};
    {
      cktest::bounded_thread advancer([&] {
        while (!go.load(std::memory_order_acquire)) {
        }
        timers.advance(1ms);
      });
      go.store(true, std::memory_order_release);
      static_cast<void>(src.cancel());
    }
    ASSERT_TRUE(t.finished());
    EXPECT_EQ(r.resumptions.load(), 1);
    EXPECT_TRUE(r.result == outcome::resumed || r.result == outcome::canceled);
  }
}
