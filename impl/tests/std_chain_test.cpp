// S20, S22: chains linked through std::stop_token (`linked(prev.token().to_stop_token())`, also
// through foreign std::stop_sources and mixed with native links) are cancelled without recursion
// (issue 16, defect 6). The old code recursed once per std link and overflowed the stack (SIGSEGV)
// at a depth of about 40 000 on 8 MiB.
//
// A stack overflow kills the whole process, so every deep test runs its body in a death-test child
// (style "threadsafe": a fresh re-executed process, so it also works under TSan) and expects exit
// code 0; the body runs on a thread with a 2 MiB stack, which the old code overflows long before
// 100 000 levels (in every build flavour) while the fixed code's stack use does not depend on the
// depth. Inside the child, a failed check prints to stderr and makes the exit code 1.
#include <cancelkit/cancelkit.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <stop_token>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace cancelkit;

namespace {

constexpr int deep = 100'000;
constexpr std::size_t small_stack = std::size_t{2} << 20;

// Failed checks inside a death-test child: gtest does not report them to the parent, so they go
// to stderr (shown by the parent on failure) and into the exit code.
std::atomic<int> child_failures{0};

void check(bool ok, const char* what) {
  if (ok) return;
  child_failures.fetch_add(1);
  std::fprintf(stderr, "check failed: %s\n", what);
}

// Runs `body` on a small stack in the death-test child and exits with 0 iff every check passed.
// std::exit, not _Exit: ThreadSanitizer turns a reported race into exit code 66 at exit.
template <class Body>
[[noreturn]] void run_deep(Body body) {
  cktest::run_on_small_stack(body, small_stack);
  std::fflush(stderr);
  std::exit(child_failures.load() == 0 ? 0 : 1);
}

// The test's check: `body` ran to the end in the child, on a small stack, with every check passed.
template <class Body>
void expect_deep(Body body) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(run_deep(body), ::testing::ExitedWithCode(0), "");
}

// A chain of `depth` sources below a root, level i linked to level i - 1 through
// `to_stop_token()` (or natively where `native(i)`); sources[0] is the root, itself linked to
// `above` if that can stop. Each level has a callback counting its runs and noting a non-null
// reason.
struct chain {
  std::vector<std::optional<cancellation_source>> sources;
  std::vector<std::optional<cancellation_registration>> regs;
  std::vector<int> runs;
  int non_null_reasons = 0;

  template <class NativeAt>
  chain(int depth, NativeAt native, const std::stop_token& above = {}) {
    sources.reserve(static_cast<std::size_t>(depth) + 1);
    regs.reserve(static_cast<std::size_t>(depth) + 1);
    runs.assign(static_cast<std::size_t>(depth) + 1, 0);
    if (above.stop_possible()) {
      sources.emplace_back(cancellation_source::linked(above));
    } else {
      sources.emplace_back(std::in_place);
    }
    for (int i = 1; i <= depth; ++i) {
      const cancellation_token prev = sources.back()->token();
      if (native(i)) {
        sources.emplace_back(cancellation_source::linked({prev}));
      } else {
        sources.emplace_back(cancellation_source::linked(prev.to_stop_token()));
      }
    }
    for (std::size_t i = 0; i < sources.size(); ++i) {
      const cancellation_token t = sources[i]->token();
      regs.emplace_back(t.register_callback([this, i, t] {
        ++runs[i];
        if (t.cancellation_reason() != nullptr) ++non_null_reasons;
      }));
    }
  }
  explicit chain(int depth, const std::stop_token& above = {})
      : chain(depth, [](int) { return false; }, above) {}

  std::size_t size() const { return sources.size(); }
  cancellation_source& root() { return *sources.front(); }
  cancellation_source& leaf() { return *sources.back(); }

  bool all_cancelled_once() const {
    for (std::size_t i = 0; i < sources.size(); ++i) {
      if (!sources[i]->is_cancellation_requested() || runs[i] != 1) return false;
    }
    return true;
  }

  void destroy_leaf_first() {
    while (!sources.empty()) {
      regs.pop_back();
      sources.pop_back();
    }
  }
  void destroy_root_first() {
    for (std::size_t i = 0; i < sources.size(); ++i) {
      regs[i].reset();
      sources[i].reset();
    }
  }
};

}  // namespace

// ---- the deep chain of the issue ---------------------------------------------------------------

TEST(StdChainDeathTest, DeepChain_CancelFromTheRoot_EveryLevelCancelledWithReasonNull) {
  // S20, S22: issue 16, defect 6
  expect_deep([] {
    chain c(deep);
    check(c.root().cancel(), "root.cancel() returned true");
    check(c.all_cancelled_once(), "every level cancelled, its callback run once, on return");
    check(c.non_null_reasons == 0, "every std-triggered level has reason null");
    check(c.leaf().token().cancellation_reason() == nullptr, "leaf reason null");
    c.destroy_leaf_first();
  });
}

TEST(StdChainDeathTest, DeepChain_CancelledThenDestroyedFromTheRoot_NoStackOverflow) {
  // S20, S23: issue 16, defect 6
  expect_deep([] {
    chain c(deep);
    c.root().cancel();
    check(c.all_cancelled_once(), "every level cancelled");
    c.destroy_root_first();
  });
}

TEST(StdChainDeathTest, DeepChain_CancelFromTheMiddle_CancelsOnlyTheLevelsBelow) {
  // S20, S22: issue 16, defect 6
  expect_deep([] {
    chain c(deep);
    const std::size_t mid = c.size() / 2;
    check(c.sources[mid]->cancel(), "middle cancel() returned true");
    bool above_live = true;
    bool below_done = true;
    for (std::size_t i = 0; i < c.size(); ++i) {
      if (i < mid) above_live = above_live && !c.sources[i]->is_cancellation_requested();
      if (i >= mid) below_done = below_done && c.sources[i]->is_cancellation_requested() &&
                                 c.runs[i] == 1;
    }
    check(above_live, "levels above the middle stay live");
    check(below_done, "levels from the middle down are cancelled, callbacks run");
    check(c.root().cancel(), "root can still be cancelled");
    check(c.all_cancelled_once(), "each callback ran exactly once");
  });
}

// ---- shapes: fans, mixed links, foreign stop sources --------------------------------------------

TEST(StdChainDeathTest, FanOfDeepChainsBelowAStdLevel_AllCancelledWhenRootCancelReturns) {
  // S20, S22: issue 16, defect 6 (several sources queued at once on one drain)
  expect_deep([] {
    constexpr int branches = 4;
    cancellation_source root;
    const auto mid = cancellation_source::linked(root.token().to_stop_token());
    // Each branch's root is std-linked below `mid`: cancelling `mid` queues all of them at once.
    std::vector<std::unique_ptr<chain>> fan;
    for (int b = 0; b < branches; ++b)
      fan.push_back(std::make_unique<chain>(deep / branches, mid.token().to_stop_token()));
    check(root.cancel(), "root.cancel() returned true");
    check(mid.is_cancellation_requested(), "mid cancelled");
    bool all = true;
    for (auto& br : fan) all = all && br->all_cancelled_once() && br->non_null_reasons == 0;
    check(all, "every level of every branch cancelled, callbacks run, reason null");
  });
}

TEST(StdChainDeathTest, DeepMixedChain_NativeAndStdLinksAlternating_CancelledFromTheRoot) {
  // S20, S22, S16: issue 16, defect 6
  expect_deep([] {
    chain c(deep, [](int i) { return i % 2 == 1; });  // level 1 native, 2 std, 3 native, ...
    const auto reason = std::make_exception_ptr(cktest::test_error{3});
    check(c.root().cancel(cancel_options{.reason = reason}), "root.cancel() returned true");
    check(c.all_cancelled_once(), "every level cancelled, callbacks run once");
    check(c.sources[1]->token().cancellation_reason() == reason, "native child: root's reason");
    bool nulls = true;
    for (std::size_t i = 2; i < c.size(); ++i)
      nulls = nulls && c.sources[i]->token().cancellation_reason() == nullptr;
    check(nulls, "below the first std link every reason is null");
    c.destroy_leaf_first();
  });
}

namespace {

// A user std::stop_callback that forwards a stop request to a foreign std::stop_source.
struct forward_stop {
  std::stop_source* to;
  void operator()() const noexcept { to->request_stop(); }
};

}  // namespace

TEST(StdChainDeathTest, DeepChainThroughForeignStopSources_CancelledFromTheRoot) {
  // S20, S22: issue 16, defect 6 (a foreign std::stop_source between every two levels)
  expect_deep([] {
    constexpr int depth = deep / 2;
    std::vector<std::stop_source> foreign(static_cast<std::size_t>(depth));
    std::vector<std::unique_ptr<std::stop_callback<forward_stop>>> forwards;
    std::vector<cancellation_source> levels;
    levels.reserve(static_cast<std::size_t>(depth) + 1);
    levels.emplace_back();
    for (std::size_t i = 0; i < foreign.size(); ++i) {
      forwards.push_back(std::make_unique<std::stop_callback<forward_stop>>(
          levels.back().token().to_stop_token(), forward_stop{&foreign[i]}));
      levels.push_back(cancellation_source::linked(foreign[i].get_token()));
    }
    int runs = 0;
    auto reg = levels.back().token().register_callback([&] { ++runs; });
    check(levels.front().cancel(), "root.cancel() returned true");
    check(levels.back().is_cancellation_requested(), "leaf cancelled on return");
    check(runs == 1, "leaf callback ran on return");
    check(levels.back().token().cancellation_reason() == nullptr, "leaf reason null");
    forwards.clear();
    reg.dispose();
  });
}

// ---- what callbacks inside a std-triggered cancellation may do ----------------------------------

TEST(StdChainDeathTest, CancelInsideADeepStdTriggeredCallback_CancelsItsStdChildrenBeforeReturning) {
  // S20 (for the inner cancel()), S10: issue 16, defect 6
  expect_deep([] {
    chain c(deep);
    cancellation_source other;
    const auto other_child = cancellation_source::linked(other.token().to_stop_token());
    const auto other_grandchild = cancellation_source::linked(other_child.token().to_stop_token());
    bool inner_returned = false;
    bool complete_on_return = false;
    auto reg = c.leaf().token().register_callback([&] {
      other.cancel();
      inner_returned = true;
      complete_on_return = other_child.is_cancellation_requested() &&
                           other_grandchild.is_cancellation_requested();
    });
    c.root().cancel();
    check(inner_returned, "the leaf's callback ran");
    check(complete_on_return, "other.cancel() returned with its std-linked chain cancelled");
  });
}

TEST(StdChainDeathTest, TimerAdvancedInsideADeepStdTriggeredCallback_CancelsItsStdChildrenFirst) {
  // S17, S20: issue 16, defect 6
  expect_deep([] {
    chain c(deep);
    manual_timer_service timers;
    cancellation_source timed(timers);
    const auto timed_child = cancellation_source::linked(timed.token().to_stop_token());
    timed.cancel_after(std::chrono::milliseconds(1));
    bool complete_on_return = false;
    auto reg = c.leaf().token().register_callback([&] {
      timers.advance(std::chrono::milliseconds(1));
      complete_on_return = timed.is_cancellation_requested() &&
                           timed_child.is_cancellation_requested();
    });
    c.root().cancel();
    check(complete_on_return, "advance() returned with the timed source's std child cancelled");
  });
}

TEST(StdChainDeathTest, LinkedToARequestedStopTokenInsideADeepStdTriggeredCallback_IsBornCancelled) {
  // S19, S22: issue 16, defect 6
  expect_deep([] {
    chain c(deep);
    std::stop_source requested;
    requested.request_stop();
    bool born_cancelled = false;
    auto reg = c.leaf().token().register_callback([&] {
      born_cancelled =
          cancellation_source::linked(requested.get_token()).is_cancellation_requested();
    });
    c.root().cancel();
    check(born_cancelled, "linked(requested stop token) is born cancelled");
  });
}

TEST(StdChainDeathTest, DeepChain_EveryLevelDropsItsLastHandlesInItsCallback_NoCrash) {
  // S10, S20: issue 16, defect 6
  expect_deep([] {
    constexpr std::size_t depth = deep;
    std::vector<std::optional<cancellation_source>> sources;
    std::vector<std::optional<cancellation_registration>> regs(depth + 1);
    sources.reserve(depth + 1);
    sources.emplace_back(std::in_place);
    for (std::size_t i = 1; i <= depth; ++i)
      sources.emplace_back(cancellation_source::linked(sources.back()->token().to_stop_token()));
    std::size_t runs = 0;
    for (std::size_t i = 0; i <= depth; ++i) {
      regs[i].emplace(sources[i]->token().register_callback([&, i] {
        ++runs;
        sources[i].reset();  // the last source handle
        regs[i].reset();     // and the registration itself: nothing else refers to the state
      }));
    }
    cancellation_source& root = *sources[0];
    const cancellation_token root_token = root.token();  // keeps the root's state for the cancel
    root.cancel();
    check(runs == depth + 1, "every level's callback ran");
  });
}

TEST(StdChainDeathTest, DeepChain_CallbackExceptionAtTheLeaf_GoesToTheErrorHandler) {
  // S15, S20: issue 16, defect 6
  expect_deep([] {
    std::vector<std::exception_ptr> reported;
    system_timer_service().set_error_handler([&](std::exception_ptr e) { reported.push_back(e); });
    {
      chain c(deep);
      auto reg = c.leaf().token().register_callback([] { throw cktest::test_error{9}; });
      bool threw = false;
      try {
        c.root().cancel();
      } catch (...) {
        threw = true;
      }
      check(!threw, "root.cancel() does not report a std-linked descendant's exception");
      check(c.all_cancelled_once(), "every level cancelled");
      bool ok = reported.size() == 1;
      if (ok) {
        try {
          std::rethrow_exception(reported[0]);
        } catch (const aggregate_exception& e) {
          ok = cktest::error_ids(e.exceptions()) == std::vector<int>{9};
        } catch (...) {
          ok = false;
        }
      }
      check(ok, "the handler got one aggregate_exception holding the leaf's exception");
    }
    system_timer_service().set_error_handler({});
  });
}

TEST(StdChainDeathTest, DeepChain_RootAndMiddleCancelledConcurrently_EveryLevelOnce) {
  // S2, S4, S20: issue 16, defect 6 (drains on two threads)
  expect_deep([] {
    chain c(deep);
    const std::size_t mid = c.size() / 2;
    std::atomic<bool> go{false};
    {
      cktest::bounded_thread other([&] {
        while (!go.load()) std::this_thread::yield();
        c.sources[mid]->cancel();
      });
      go.store(true);
      c.root().cancel();
      other.join(std::chrono::seconds(60));
    }
    check(c.all_cancelled_once(), "every level cancelled, each callback exactly once");
    check(c.non_null_reasons == 0, "reasons null");
  });
}
