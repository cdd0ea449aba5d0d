// Allocation behaviour, in its own executable because it replaces the global operator new
// (test_support/counting_new.cpp):
// - S25 strong guarantee: an allocation failure throws std::bad_alloc and changes nothing, leaks
//   nothing. Each test fails the 1st, 2nd, ... allocation of one call until the call succeeds.
// - API: token operations and cancellation_callback never allocate; a source allocates once at
//   most, and nothing where one was just destroyed (the per-thread cache of state blocks, which
//   holds state_cache_capacity at most); duplicate parents cost nothing extra (S19).
// - S17, S21: dropped sources with armed timers and dropped linked children do not accumulate.
#include <cancelkit/cancelkit.hpp>
#include <cancelkit/coroutine.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <new>
#include <optional>
#include <stop_token>
#include <vector>

#include "coro_task.hpp"
#include "counting_new.hpp"
#include "test_support.hpp"

using namespace cancelkit;
using namespace std::chrono_literals;
namespace alloc = cktest::alloc;

namespace {

// Far above any small-callable buffer: registering it must allocate.
struct large_callable {
  std::array<char, 256> payload{};
  std::vector<int>* order;
  int id;
  void operator()() const { order->push_back(id); }
};
static_assert(sizeof(large_callable) > 64);

// Upper bound on the allocations any single call here may make.
constexpr std::int64_t max_attempts = 64;

// Runs `body` once untouched, so that lazily created process- and thread-wide structures (timer
// service internals, per-thread caches) exist before live allocations are compared.
template <class F>
void warm_up(F&& body) {
  body();
  body();
}

// Takes every block of this thread's cache of freed states (detail::state_cache_capacity at
// most) and keeps it while alive, so that the next source allocates its state from the heap and
// an injected failure can hit that allocation. Without it a source made after the warm-up would
// reuse a cached block and the failure path of the state's allocation would never run.
struct empty_state_cache {
  std::vector<cancellation_source> held{detail::state_cache_capacity};
};

}  // namespace

// ---- S25: allocation failure changes nothing ---------------------------------------------------

TEST(AllocationFailure, RegisterLargeCallable_ThrowsBadAllocAndChangesNothing) {  // S25
  std::vector<int> order;
  order.reserve(64);
  bool saw_failure = false;
  bool succeeded = false;
  const auto attempt = [&](std::int64_t fail_at) {
    order.clear();
    cancellation_source s;
    const auto t = s.token();
    auto r1 = t.register_callback([&] { order.push_back(1); });
    auto r2 = t.register_callback([&] { order.push_back(2); });
    auto r3 = t.register_callback([&] { order.push_back(3); });
    std::optional<cancellation_registration> big;
    bool threw = false;
    {
      alloc::fail_nth guard(fail_at);
      try {
        big.emplace(t.register_callback(large_callable{{}, &order, 4}));
      } catch (const std::bad_alloc&) {
        threw = true;
      }
    }
    if (threw) {
      saw_failure = true;
      EXPECT_FALSE(big.has_value());
      EXPECT_FALSE(t.is_cancellation_requested()) << "fail_at " << fail_at;
      EXPECT_TRUE(s.cancel());
      EXPECT_EQ(order, (std::vector<int>{3, 2, 1})) << "fail_at " << fail_at;
    } else {
      succeeded = true;
      EXPECT_TRUE(s.cancel());
      EXPECT_EQ(order, (std::vector<int>{4, 3, 2, 1}));
    }
  };
  warm_up([&] { attempt(0); });
  saw_failure = false;
  succeeded = false;
  for (std::int64_t n = 1; n <= max_attempts && !succeeded; ++n) {
    const auto live_before = alloc::live();
    attempt(n);
    EXPECT_EQ(alloc::live(), live_before) << "leak when allocation " << n << " failed";
  }
  EXPECT_TRUE(saw_failure) << "registering a large callable never allocated";
  EXPECT_TRUE(succeeded);
}

TEST(AllocationFailure, RegisterLargeCallable_EarlierCallbacksStillRunOnceEach) {  // S25, S4, S5
  cancellation_source s;
  const auto t = s.token();
  std::vector<int> order;
  order.reserve(64);
  auto r1 = t.register_callback([&] { order.push_back(1); });
  auto r2 = t.register_callback([&] { order.push_back(2); });
  for (int i = 0; i < 3; ++i) {
    bool threw = false;
    {
      alloc::fail_nth guard(1);
      try {
        auto reg = t.register_callback(large_callable{{}, &order, 9});
      } catch (const std::bad_alloc&) {
        threw = true;
      }
    }
    EXPECT_TRUE(threw);
  }
  auto r3 = t.register_callback([&] { order.push_back(3); });
  EXPECT_TRUE(s.cancel());
  EXPECT_EQ(order, (std::vector<int>{3, 2, 1}));
  EXPECT_TRUE(r1.token() == t);
  EXPECT_FALSE(r1.unregister());
}

TEST(AllocationFailure, RegisterOnCancelledToken_NeverRunsTheCallbackWhenItThrows) {  // S25, S6
  bool succeeded = false;
  for (std::int64_t n = 1; n <= max_attempts && !succeeded; ++n) {
    cancellation_source s;
    s.cancel();
    std::vector<int> order;
    order.reserve(8);
    bool threw = false;
    {
      alloc::fail_nth guard(n);
      try {
        auto reg = s.token().register_callback(large_callable{{}, &order, 1});
      } catch (const std::bad_alloc&) {
        threw = true;
      }
    }
    if (threw) {
      EXPECT_TRUE(order.empty()) << "the callback ran although register_callback threw";
    } else {
      succeeded = true;
      EXPECT_EQ(order, (std::vector<int>{1}));
    }
  }
  EXPECT_TRUE(succeeded);
}

TEST(AllocationFailure, SourceConstruction_ThrowsBadAllocWithoutLeak) {  // S25
  manual_timer_service timers;
  warm_up([&] {
    const empty_state_cache drained;  // then full: the loop below starts and ends that way
    cancellation_source s(timers);
  });
  bool succeeded = false;
  for (std::int64_t n = 1; n <= max_attempts && !succeeded; ++n) {
    const auto live_before = alloc::live();
    {
      const empty_state_cache drained;
      alloc::fail_nth guard(n);
      try {
        cancellation_source s(timers);
        succeeded = true;
      } catch (const std::bad_alloc&) {
      }
    }
    EXPECT_EQ(alloc::live(), live_before) << "leak when allocation " << n << " failed";
  }
  EXPECT_TRUE(succeeded);
}

TEST(AllocationFailure, DefaultSourceConstruction_ThrowsBadAllocWithoutLeak) {  // S25
  warm_up([] {
    const empty_state_cache drained;  // then full: the loop below starts and ends that way
    cancellation_source s;
  });
  bool succeeded = false;
  for (std::int64_t n = 1; n <= max_attempts && !succeeded; ++n) {
    const auto live_before = alloc::live();
    {
      const empty_state_cache drained;
      alloc::fail_nth guard(n);
      try {
        cancellation_source s;
        succeeded = true;
      } catch (const std::bad_alloc&) {
      }
    }
    EXPECT_EQ(alloc::live(), live_before) << "leak when allocation " << n << " failed";
  }
  EXPECT_TRUE(succeeded);
}

TEST(AllocationFailure, Linked_ThrowsBadAllocWithoutLeakAndParentsAreUnaffected) {  // S25, S19
  bool saw_failure = false;
  bool succeeded = false;
  const auto attempt = [&](std::int64_t fail_at) {
    cancellation_source a;
    cancellation_source b;
    int a_runs = 0;
    int b_runs = 0;
    auto ra = a.token().register_callback([&] { ++a_runs; });
    auto rb = b.token().register_callback([&] { ++b_runs; });
    std::optional<cancellation_source> child;
    bool threw = false;
    {
      const empty_state_cache drained;
      alloc::fail_nth guard(fail_at);
      try {
        child.emplace(cancellation_source::linked({a.token(), b.token()}));
      } catch (const std::bad_alloc&) {
        threw = true;
      }
    }
    if (threw) {
      saw_failure = true;
      EXPECT_FALSE(child.has_value());
    } else {
      succeeded = true;
    }
    EXPECT_TRUE(a.cancel());
    EXPECT_TRUE(b.cancel());
    EXPECT_EQ(a_runs, 1);
    EXPECT_EQ(b_runs, 1);
    if (child) {
      EXPECT_TRUE(child->is_cancellation_requested());
    }
  };
  warm_up([&] { attempt(0); });
  saw_failure = false;
  succeeded = false;
  for (std::int64_t n = 1; n <= max_attempts && !succeeded; ++n) {
    const auto live_before = alloc::live();
    attempt(n);
    EXPECT_EQ(alloc::live(), live_before) << "leak when allocation " << n << " failed";
  }
  EXPECT_TRUE(saw_failure) << "linked() never allocated";
  EXPECT_TRUE(succeeded);
}

TEST(AllocationFailure, LinkedFailure_ParentCancelStillCancelsOtherChildren) {  // S25, S20
  cancellation_source parent;
  const auto before = cancellation_source::linked({parent.token()});
  for (std::int64_t n = 1; n <= 4; ++n) {
    alloc::fail_nth guard(n);
    try {
      const auto child = cancellation_source::linked({parent.token()});
    } catch (const std::bad_alloc&) {
    }
  }
  const auto after = cancellation_source::linked({parent.token()});
  EXPECT_TRUE(parent.cancel());
  EXPECT_TRUE(before.is_cancellation_requested());
  EXPECT_TRUE(after.is_cancellation_requested());
}

TEST(AllocationFailure, LinkedToStopToken_ThrowsBadAllocWithoutLeak) {  // S25, S22
  bool succeeded = false;
  const auto attempt = [&](std::int64_t fail_at) {
    std::stop_source stop;
    std::optional<cancellation_source> child;
    {
      const empty_state_cache drained;
      alloc::fail_nth guard(fail_at);
      try {
        child.emplace(cancellation_source::linked(stop.get_token()));
        succeeded = true;
      } catch (const std::bad_alloc&) {
      }
    }
    EXPECT_TRUE(stop.request_stop());
    if (child) {
      EXPECT_TRUE(child->is_cancellation_requested());
    }
  };
  warm_up([&] { attempt(0); });
  succeeded = false;
  for (std::int64_t n = 1; n <= max_attempts && !succeeded; ++n) {
    const auto live_before = alloc::live();
    attempt(n);
    EXPECT_EQ(alloc::live(), live_before) << "leak when allocation " << n << " failed";
  }
  EXPECT_TRUE(succeeded);
}

TEST(AllocationFailure, CancelAfter_KeepsThePreviouslyArmedTimer) {  // S25, S17
  manual_timer_service timers;
  bool succeeded = false;
  for (std::int64_t n = 1; n <= max_attempts && !succeeded; ++n) {
    cancellation_source s(timers);
    s.cancel_after(10ms);
    bool threw = false;
    {
      alloc::fail_nth guard(n);
      try {
        s.cancel_after(1h);
        succeeded = true;
      } catch (const std::bad_alloc&) {
        threw = true;
      }
    }
    timers.advance(10ms);
    if (threw) {
      EXPECT_TRUE(s.is_cancellation_requested()) << "the failed re-arm lost the old timer";
    } else {
      EXPECT_FALSE(s.is_cancellation_requested()) << "the re-arm did not replace the old timer";
    }
  }
  EXPECT_TRUE(succeeded);
}

TEST(AllocationFailure, ToStopToken_ThrowsBadAllocAndChangesNothing) {  // S25, S22
  bool succeeded = false;
  for (std::int64_t n = 1; n <= max_attempts && !succeeded; ++n) {
    cancellation_source s;
    int runs = 0;
    auto reg = s.token().register_callback([&] { ++runs; });
    std::optional<std::stop_token> st;
    {
      alloc::fail_nth guard(n);
      try {
        st = s.token().to_stop_token();
        succeeded = true;
      } catch (const std::bad_alloc&) {
      }
    }
    EXPECT_FALSE(s.is_cancellation_requested());
    EXPECT_TRUE(s.cancel());
    EXPECT_EQ(runs, 1);
    if (st) {
      EXPECT_TRUE(st->stop_requested());
    }
  }
  EXPECT_TRUE(succeeded);
}

// ---- API: what never allocates -----------------------------------------------------------------

TEST(Allocations, TokenCopyMoveCompareAndChecks_NeverAllocate) {  // API
  cancellation_source s;
  const auto t = s.token();
  std::int64_t allocations = -1;
  bool failed = true;
  bool equal = false;
  bool requested = true;
  bool cancellable = false;
  bool none_equals_fresh = true;
  std::exception_ptr reason = std::make_exception_ptr(0);
  {
    alloc::fail_nth guard(1);
    const alloc::count_scope counter;
    auto copy = t;
    const auto moved = std::move(copy);
    copy = moved;
    equal = copy == t;
    requested = t.is_cancellation_requested();
    cancellable = t.can_be_canceled();
    reason = t.cancellation_reason();
    const auto none = cancellation_token::none();
    const auto fresh = s.token();
    none_equals_fresh = none == fresh;
    allocations = counter.count();
    failed = guard.triggered();
  }
  EXPECT_EQ(allocations, 0);
  EXPECT_FALSE(failed);
  EXPECT_TRUE(equal);
  EXPECT_FALSE(requested);
  EXPECT_TRUE(cancellable);
  EXPECT_EQ(reason, nullptr);
  EXPECT_FALSE(none_equals_fresh);
}

TEST(Allocations, CancellationCallback_NeverAllocates) {  // API
  cancellation_source s;
  int runs = 0;
  auto fn = [&runs] { ++runs; };
  std::optional<cancellation_callback<decltype(fn)>> kept;
  std::optional<cancellation_callback<decltype(fn)>> removed;
  std::optional<cancellation_callback<decltype(fn)>> on_none;
  std::int64_t allocations = -1;
  bool failed = true;
  {
    alloc::fail_nth guard(1);
    const alloc::count_scope counter;
    kept.emplace(s.token(), fn);
    removed.emplace(s.token(), fn);
    on_none.emplace(cancellation_token::none(), fn);
    removed.reset();
    allocations = counter.count();
    failed = guard.triggered();
  }
  EXPECT_EQ(allocations, 0);
  EXPECT_FALSE(failed);
  s.cancel();
  EXPECT_EQ(runs, 1);
  {
    alloc::fail_nth guard(1);
    const alloc::count_scope counter;
    kept.reset();
    on_none.reset();
    allocations = counter.count();
  }
  EXPECT_EQ(allocations, 0);
}

TEST(Allocations, CancellationCallbackOnCancelledToken_NeverAllocates) {  // API, S6
  cancellation_source s;
  s.cancel();
  int runs = 0;
  std::int64_t allocations = -1;
  {
    alloc::fail_nth guard(1);
    const alloc::count_scope counter;
    { cancellation_callback cb(s.token(), [&] { ++runs; }); }
    allocations = counter.count();
  }
  EXPECT_EQ(allocations, 0);
  EXPECT_EQ(runs, 1);
}

TEST(Allocations, SourceConstruction_AllocatesOnceAtMost) {  // API
  manual_timer_service timers;
  warm_up([&] { cancellation_source s(timers); });
  warm_up([] { cancellation_source s; });
  {
    const alloc::count_scope counter;
    cancellation_source s(timers);
    EXPECT_LE(counter.count(), 1);
  }
  {
    const alloc::count_scope counter;
    cancellation_source s;
    EXPECT_LE(counter.count(), 1);
  }
}

TEST(Allocations, SourceMadeWhereOneWasDestroyed_AllocatesNothing) {  // API; issue 20
  if (!CANCELKIT_STATE_CACHE) GTEST_SKIP() << "no state cache in this build (AddressSanitizer)";
  manual_timer_service timers;
  const auto round = [&] {
    {
      cancellation_source s;
      const cancellation_token t = s.token();
      EXPECT_TRUE(s.cancel());
    }
    const cancellation_source a(timers);  // two alive at once: two cached blocks reused
    const cancellation_source b;
  };
  warm_up(round);
  for (int i = 0; i < 3; ++i) {
    const alloc::count_scope counter;
    round();
    EXPECT_EQ(counter.count(), 0) << "round " << i;
  }
}

TEST(Allocations, DestroyedSources_AtMostStateCacheCapacityStayCached) {  // API; issue 20
  warm_up([] { cancellation_source s; });
  const auto before = alloc::live();
  {
    std::vector<cancellation_source> many(4 * detail::state_cache_capacity);
  }
  // The blocks kept for reuse are bounded: the rest went back to the heap.
  EXPECT_LE(alloc::live() - before, static_cast<std::int64_t>(detail::state_cache_capacity));
}

TEST(Allocations, RegisterSmallCallable_AllocatesNothingInTheSteadyState) {  // API (README)
  // Small callables live in per-thread recycled blocks (detail/callback_storage.hpp,
  // impl/src/node_pool.cpp, up to 64 cached per thread): after the first registrations,
  // cycles of 48 registrations held at once, then disposed, reach the heap no more.
  cancellation_source s;
  int runs = 0;
  const auto cycle = [&] {
    std::vector<cancellation_registration> regs;
    regs.reserve(48);
    for (int i = 0; i < 48; ++i) regs.push_back(s.token().register_callback([&runs] { ++runs; }));
  };
  warm_up(cycle);
  std::int64_t allocations = -1;
  {
    const alloc::count_scope counter;
    for (int round = 0; round < 10; ++round) cycle();
    allocations = counter.count();
  }
  // One per round: the vector's buffer. None for the 480 registrations.
  EXPECT_EQ(allocations, 10);
  EXPECT_EQ(runs, 0);
}

TEST(Allocations, RegistrationsReleasedOnAnotherThread_AllocateOnTheRegisteringThread) {
  // README (issue 21, part 4): the steady state holds only when registrations are released on
  // the thread that made them. A block goes back to the releasing thread's cache, so a thread
  // that only registers (here: this one) takes a fresh block from the heap every time. The count
  // is this thread's only (counting_new.hpp), so the releasing thread's frees do not blur it.
  cancellation_source s;
  int runs = 0;
  const auto cycle = [&] {
    std::vector<cancellation_registration> regs;
    regs.reserve(48);
    for (int i = 0; i < 48; ++i) regs.push_back(s.token().register_callback([&runs] { ++runs; }));
    cktest::bounded_thread releaser([regs = std::move(regs)]() mutable { regs.clear(); });
    releaser.join();
  };
  warm_up(cycle);
  std::int64_t allocations = -1;
  {
    const alloc::count_scope counter;
    for (int round = 0; round < 10; ++round) cycle();
    allocations = counter.count();
  }
  // At least one block per registration: 480 (plus the vectors and the threads).
  EXPECT_GE(allocations, 480);
  EXPECT_EQ(runs, 0);
}

// ---- issue 18: awaiting allocates nothing in the steady state -----------------------------------

namespace {
// Awaits delay(10ms, token, timers) `rounds` times; counts the resumptions by the timer.
cktest::task delay_loop(cancellation_token token, manual_timer_service& timers, int rounds,
                        int& resumed) {
  for (int i = 0; i < rounds; ++i) {
    co_await delay(std::chrono::milliseconds(10), token, timers);
    ++resumed;
  }
}

// Awaits cancelled() on each token in turn.
cktest::task cancelled_loop(const std::vector<cancellation_token>& tokens, int& resumed) {
  for (const cancellation_token& t : tokens) {
    co_await cancelled(t);
    ++resumed;
  }
}

// Suspends in cancelled(t) until destroyed: makes `t`'s source set up what awaiting needs.
cktest::task await_once(cancellation_token t) { co_await cancelled(t); }
}  // namespace

TEST(Allocations, DelayAwaitedRepeatedly_AllocatesNothingPerAwait) {  // S27, S29; issue 18
  // The timer entry lives in the awaiter, in the coroutine frame; the service's heap keeps its
  // capacity. Only the frame (before counting) is allocated.
  manual_timer_service timers;
  cancellation_source source;
  int resumed = 0;
  cktest::task t = delay_loop(source.token(), timers, 210, resumed);
  for (int i = 0; i < 10; ++i) timers.advance(std::chrono::milliseconds(10));  // warm up
  std::int64_t allocations = -1;
  {
    const alloc::count_scope counter;
    for (int i = 0; i < 200; ++i) timers.advance(std::chrono::milliseconds(10));
    allocations = counter.count();
  }
  EXPECT_EQ(resumed, 210);
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(allocations, 0);
}

TEST(Allocations, CancelledAwaitedRepeatedly_AllocatesNothingPerAwait) {  // S26, S29; issue 18
  // The registration node lives in the awaiter. What a source sets up for its first awaiter
  // (the orphan watch list) is per source, made here before counting.
  constexpr int n = 100;
  std::vector<cancellation_source> sources(n);
  std::vector<cancellation_token> tokens;
  for (const auto& s : sources) tokens.push_back(s.token());
  for (const auto& t : tokens) await_once(t).destroy();
  int resumed = 0;
  cktest::task t = cancelled_loop(tokens, resumed);
  std::int64_t allocations = -1;
  {
    const alloc::count_scope counter;
    for (auto& s : sources) s.cancel();
    allocations = counter.count();
  }
  EXPECT_EQ(resumed, n);
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(allocations, 0);
}

TEST(Allocations, LinkedDuplicateParents_CostNothingExtra) {  // S19
  cancellation_source a;
  const auto allocations = [&](std::initializer_list<cancellation_token> parents) {
    const alloc::count_scope counter;
    const auto child = cancellation_source::linked(parents);
    return counter.count();
  };
  warm_up([&] { allocations({a.token()}); });
  const auto single = allocations({a.token()});
  const auto repeated = allocations({a.token(), a.token(), a.token(), a.token()});
  EXPECT_LE(repeated, single);
}

// ---- S17, S21: nothing accumulates -------------------------------------------------------------

namespace {
// Live allocations added by running `body` 1000 times, after 1000 warm-up runs.
template <class F>
std::int64_t growth_over_1000_runs(F&& body) {
  for (int i = 0; i < 1000; ++i) body();
  const auto before = alloc::live();
  for (int i = 0; i < 1000; ++i) body();
  return alloc::live() - before;
}
}  // namespace

TEST(NoAccumulation, DroppedSourcesWithArmedManualTimers_AreFreed) {  // S17
  manual_timer_service timers;
  EXPECT_LT(growth_over_1000_runs([&] { cancellation_source s(1h, timers); }), 50);
}

TEST(NoAccumulation, DroppedTokensOfTimedSources_AreFreed) {  // S17
  manual_timer_service timers;
  EXPECT_LT(growth_over_1000_runs([&] { const auto t = cancellation_source(1h, timers).token(); }),
            50);
}

TEST(NoAccumulation, DroppedSourcesWithArmedSystemTimers_AreFreed) {  // S17
  EXPECT_LT(growth_over_1000_runs([] {
              cancellation_source s;
              s.cancel_after(1h);
            }),
            50);
}

TEST(NoAccumulation, DroppedLinkedChildren_AreRemovedFromALongLivedParent) {  // S21
  cancellation_source parent;
  EXPECT_LT(growth_over_1000_runs([&] {
              const auto child = cancellation_source::linked({parent.token()});
            }),
            50);
}

TEST(NoAccumulation, DroppedLinkedChildTokensAndRegistrations_AreRemoved) {  // S21
  cancellation_source a;
  cancellation_source b;
  EXPECT_LT(growth_over_1000_runs([&] {
              const auto t = cancellation_source::linked({a.token(), b.token()}).token();
              auto reg = t.register_callback([] {});
            }),
            50);
}

TEST(NoAccumulation, DisposedRegistrations_AreFreed) {  // S9
  cancellation_source s;
  EXPECT_LT(growth_over_1000_runs([&] {
              std::vector<int> order;
              auto small = s.token().register_callback([] {});
              auto large = s.token().register_callback(large_callable{{}, &order, 1});
            }),
            50);
}

TEST(NoAccumulation, DroppedLinkedChildrenOfAStopToken_AreRemoved) {  // S21, S22
  std::stop_source stop;
  EXPECT_LT(growth_over_1000_runs([&] {
              const auto child = cancellation_source::linked(stop.get_token());
            }),
            50);
}

// S12, S15: a callback's exception is reported even when there is no memory to collect it. Two
// callbacks throw (an int: throwing allocates nothing through operator new) and cancel() runs
// with its first, second, ... allocation failing. Whichever fails, every callback runs once and
// cancel() throws: the aggregate_exception of both (nothing failed), or one that still holds the
// first exception (collection ran out of memory), or std::bad_alloc from building that report.
TEST(AllocationFailure, Cancel_OutOfMemoryWhileCollectingCallbackErrors_StillReportsAnError) {
  bool collection_failed = false;
  bool succeeded = false;
  for (std::int64_t n = 1; n <= max_attempts && !succeeded; ++n) {
    cancellation_source s;
    int runs = 0;
    auto r1 = s.token().register_callback([&runs] { ++runs; throw 1; });
    auto r2 = s.token().register_callback([&runs] { ++runs; throw 2; });
    std::size_t reported = 0;
    int first = 0;
    bool out_of_memory = false;
    {
      alloc::fail_nth guard(n);
      try {
        s.cancel();
        ADD_FAILURE() << "cancel() returned although two callbacks threw";
      } catch (const aggregate_exception& e) {
        reported = e.exceptions().size();
        try {
          std::rethrow_exception(e.exceptions().front());
        } catch (int v) {
          first = v;
        }
      } catch (const std::bad_alloc&) {
        out_of_memory = true;  // building the report itself ran out of memory
      }
      if (!guard.triggered()) succeeded = true;
    }
    EXPECT_TRUE(s.is_cancellation_requested());
    EXPECT_EQ(runs, 2) << "allocation failure " << n;
    if (out_of_memory) continue;
    EXPECT_GE(reported, 1U) << "allocation failure " << n;
    EXPECT_EQ(first, 2) << "the latest registration runs first (S5), so its exception is first";
    if (reported == 1) collection_failed = true;
    if (succeeded) {
      EXPECT_EQ(reported, 2U);
    }
  }
  EXPECT_TRUE(succeeded);
  EXPECT_TRUE(collection_failed) << "no allocation failure hit the collection of the errors";
}
