// S19–S21: linked sources — cancelled by any parent (with its reason), propagation through trees
// and chains of any depth without stack growth, exceptions of descendants, staying attached while
// referenced. The std::stop_token side of S22 is in interop_test.cpp.
#include <cancelkit/cancelkit.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <latch>
#include <memory>
#include <optional>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "test_support.hpp"

using namespace cancelkit;
using namespace std::chrono_literals;
using cktest::error_ids;
using cktest::test_error;

namespace {

constexpr int deep = 100'000;
// Enough for any loop-based propagation, far too small for one frame per level.
constexpr std::size_t small_stack = std::size_t{2} << 20;

// A chain root -> s1 -> ... -> s_depth built iteratively; only the returned leaf handle refers to
// the intermediate sources (through their children).
cancellation_source build_chain(const cancellation_source& root, int depth) {
  cancellation_source leaf = root;
  for (int i = 0; i < depth; ++i) leaf = cancellation_source::linked({leaf.token()});
  return leaf;
}

}  // namespace

// ---- S19 ---------------------------------------------------------------------------------------

TEST(Linked, CancelledWhenTheFirstParentIs) {  // S19
  cancellation_source a;
  cancellation_source b;
  const auto child = cancellation_source::linked({a.token(), b.token()});
  EXPECT_FALSE(child.is_cancellation_requested());
  a.cancel();
  EXPECT_TRUE(child.is_cancellation_requested());
  EXPECT_FALSE(b.is_cancellation_requested());
}

TEST(Linked, CancelledWhenTheLastParentIs) {  // S19
  cancellation_source a;
  cancellation_source b;
  const auto child = cancellation_source::linked({a.token(), b.token()});
  b.cancel();
  EXPECT_TRUE(child.is_cancellation_requested());
  EXPECT_FALSE(a.is_cancellation_requested());
}

TEST(Linked, FromASpan) {  // S19, API
  cancellation_source a;
  cancellation_source b;
  const std::vector<cancellation_token> parents{a.token(), b.token()};
  const auto child = cancellation_source::linked(std::span<const cancellation_token>(parents));
  const auto child2 = cancellation_source::linked(parents);
  b.cancel();
  EXPECT_TRUE(child.is_cancellation_requested());
  EXPECT_TRUE(child2.is_cancellation_requested());
}

TEST(Linked, IsANewSource) {  // S19
  cancellation_source a;
  const auto child = cancellation_source::linked({a.token()});
  EXPECT_FALSE(child == a);
  EXPECT_FALSE(child.token() == a.token());
}

TEST(Linked, BornCancelledIfAParentAlreadyIs) {  // S19
  cancellation_source a;
  cancellation_source b;
  b.cancel();
  const auto child = cancellation_source::linked({a.token(), b.token()});
  EXPECT_TRUE(child.is_cancellation_requested());
  int runs = 0;
  auto reg = child.token().register_callback([&] { ++runs; });
  EXPECT_EQ(runs, 1);
}

TEST(Linked, BornCancelled_OwnCancelReturnsFalse) {  // S19, S2
  cancellation_source a;
  a.cancel();
  auto child = cancellation_source::linked({a.token()});
  EXPECT_FALSE(child.cancel());
}

TEST(Linked, NoneParentsAreIgnored) {  // S19
  auto child = cancellation_source::linked({cancellation_token::none(), cancellation_token()});
  EXPECT_FALSE(child.is_cancellation_requested());
  EXPECT_TRUE(child.token().can_be_canceled());
  EXPECT_TRUE(child.cancel());
}

TEST(Linked, NoneParentsDoNotKeepItCancellable) {  // S19, S23
  std::optional<cancellation_source> child(
      cancellation_source::linked({cancellation_token::none()}));
  const auto t = child->token();
  child.reset();
  EXPECT_FALSE(t.can_be_canceled());
}

TEST(Linked, NoParents_IsAnIndependentSource) {  // S19
  auto from_span = cancellation_source::linked(std::span<const cancellation_token>());
  auto from_list = cancellation_source::linked(std::initializer_list<cancellation_token>{});
  EXPECT_TRUE(from_span.token().can_be_canceled());
  EXPECT_TRUE(from_span.cancel());
  EXPECT_FALSE(from_list.is_cancellation_requested());
  EXPECT_TRUE(from_list.cancel());
}

TEST(Linked, DuplicateParents_CancelTheChildOnce) {  // S19
  cancellation_source a;
  const auto child = cancellation_source::linked({a.token(), a.token(), a.token()});
  int runs = 0;
  auto reg = child.token().register_callback([&] { ++runs; });
  EXPECT_TRUE(a.cancel());
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(child.is_cancellation_requested());
}

TEST(Linked, CanBeCancelledOnItsOwn) {  // S19
  cancellation_source parent;
  auto child = cancellation_source::linked({parent.token()});
  EXPECT_TRUE(child.cancel());
  EXPECT_TRUE(child.is_cancellation_requested());
  EXPECT_FALSE(parent.is_cancellation_requested());
}

TEST(Linked, OwnCancelLeavesSiblingsLive) {  // S19
  cancellation_source parent;
  auto child = cancellation_source::linked({parent.token()});
  const auto sibling = cancellation_source::linked({parent.token()});
  child.cancel();
  EXPECT_FALSE(sibling.is_cancellation_requested());
  parent.cancel();
  EXPECT_TRUE(sibling.is_cancellation_requested());
}

TEST(Linked, AlreadyCancelledChild_IsNotAffectedByParentCancel) {  // S19, S1
  cancellation_source parent;
  auto child = cancellation_source::linked({parent.token()});
  int runs = 0;
  auto reg = child.token().register_callback([&] { ++runs; });
  child.cancel();
  parent.cancel();
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(child.token().cancellation_reason(), nullptr);
}

TEST(Linked, ParentThatCanNoLongerBeCanceled_IsNoLiveParent) {  // S19, S23
  std::optional<cancellation_source> parent(std::in_place);
  const auto parent_token = parent->token();
  parent.reset();
  std::optional<cancellation_source> child(cancellation_source::linked({parent_token}));
  EXPECT_FALSE(child->is_cancellation_requested());
  const auto t = child->token();
  EXPECT_TRUE(t.can_be_canceled());
  child.reset();
  EXPECT_FALSE(t.can_be_canceled());
}

TEST(Linked, ChildCallbacksRunOnTheParentsCancellingThread) {  // S19, S20, S5
  cancellation_source parent;
  const auto child = cancellation_source::linked({parent.token()});
  std::thread::id ran_on;
  std::thread::id canceller_id;
  auto reg = child.token().register_callback([&] { ran_on = std::this_thread::get_id(); });
  cktest::bounded_thread canceller([&] {
    canceller_id = std::this_thread::get_id();
    parent.cancel();
  });
  canceller.join();
  EXPECT_EQ(ran_on, canceller_id);
}

// ---- S20 ---------------------------------------------------------------------------------------

TEST(LinkedPropagation, WholeTreeIsCancelledWhenTheRootsCancelReturns) {  // S20
  cancellation_source root;
  const auto c1 = cancellation_source::linked({root.token()});
  const auto c2 = cancellation_source::linked({root.token()});
  const auto g1 = cancellation_source::linked({c1.token()});
  const auto g2 = cancellation_source::linked({c1.token()});
  const auto g3 = cancellation_source::linked({c2.token()});
  const auto gg = cancellation_source::linked({g3.token(), g1.token()});
  std::atomic<int> runs{0};
  std::vector<cancellation_registration> regs;
  for (const auto* s : {&c1, &c2, &g1, &g2, &g3, &gg}) {
    regs.push_back(s->token().register_callback([&] { ++runs; }));
  }
  int runs_when_cancel_returned = -1;
  cktest::bounded_thread canceller([&] {
    EXPECT_TRUE(root.cancel());
    runs_when_cancel_returned = runs.load();
  });
  canceller.join();
  EXPECT_EQ(runs_when_cancel_returned, 6);
  for (const auto* s : {&c1, &c2, &g1, &g2, &g3, &gg}) EXPECT_TRUE(s->is_cancellation_requested());
}

TEST(LinkedPropagation, DiamondDescendant_IsCancelledOnce) {  // S20, S4
  cancellation_source root;
  const auto left = cancellation_source::linked({root.token()});
  const auto right = cancellation_source::linked({root.token()});
  const auto bottom = cancellation_source::linked({left.token(), right.token(), root.token()});
  int runs = 0;
  auto reg = bottom.token().register_callback([&] { ++runs; });
  root.cancel();
  EXPECT_EQ(runs, 1);
}

TEST(LinkedPropagation, EachSourcesCallbacksRunLifo) {  // S20, S5
  cancellation_source root;
  const auto child = cancellation_source::linked({root.token()});
  std::vector<int> root_order;
  std::vector<int> child_order;
  std::vector<cancellation_registration> regs;
  for (int i = 1; i <= 3; ++i) {
    regs.push_back(root.token().register_callback([&root_order, i] { root_order.push_back(i); }));
    regs.push_back(
        child.token().register_callback([&child_order, i] { child_order.push_back(i); }));
  }
  root.cancel();
  EXPECT_EQ(root_order, (std::vector<int>{3, 2, 1}));
  EXPECT_EQ(child_order, (std::vector<int>{3, 2, 1}));
}

TEST(LinkedPropagation, WideTree_AllChildrenCancelled) {  // S20
  cancellation_source root;
  constexpr int width = 10'000;
  std::vector<cancellation_source> children;
  std::vector<cancellation_registration> regs;
  int runs = 0;
  for (int i = 0; i < width; ++i) {
    children.push_back(cancellation_source::linked({root.token()}));
    regs.push_back(children.back().token().register_callback([&] { ++runs; }));
  }
  root.cancel();
  EXPECT_EQ(runs, width);
  EXPECT_TRUE(std::all_of(children.begin(), children.end(), [](const cancellation_source& c) {
    return c.is_cancellation_requested();
  }));
}

TEST(LinkedPropagation, DeepChain_CancelFromTheRoot_NoStackOverflow) {  // S20
  cktest::run_on_small_stack(
      [] {
        cancellation_source root;
        std::optional<cancellation_source> leaf(build_chain(root, deep));
        int runs = 0;
        auto reg = leaf->token().register_callback([&] { ++runs; });
        const auto reason = std::make_exception_ptr(test_error{1});
        EXPECT_TRUE(root.cancel(cancel_options{.reason = reason}));
        EXPECT_EQ(runs, 1);
        EXPECT_TRUE(leaf->is_cancellation_requested());
        EXPECT_EQ(leaf->token().cancellation_reason(), reason);
        reg.dispose();
        leaf.reset();  // frees the cancelled chain from the leaf
      },
      small_stack);
}

TEST(LinkedPropagation, DeepChain_LeafTokenOnly_IsCancelledFromTheRoot) {  // S20, S21
  cktest::run_on_small_stack(
      [] {
        cancellation_source root;
        std::optional<cancellation_token> leaf_token(build_chain(root, deep).token());
        EXPECT_TRUE(leaf_token->can_be_canceled());
        root.cancel();
        EXPECT_TRUE(leaf_token->is_cancellation_requested());
        leaf_token.reset();
      },
      small_stack);
}

TEST(LinkedPropagation, DeepChain_DestroyedFromTheLeaf_NoStackOverflow) {  // S20, S21
  cktest::run_on_small_stack(
      [] {
        cancellation_source root;
        std::optional<cancellation_source> leaf(build_chain(root, deep));
        leaf.reset();  // the whole chain below the root goes away
        EXPECT_TRUE(root.cancel());
      },
      small_stack);
}

TEST(LinkedPropagation, DeepChain_RootDroppedFirst_NoStackOverflow) {  // S20, S23
  cktest::run_on_small_stack(
      [] {
        std::optional<cancellation_source> root(std::in_place);
        std::optional<cancellation_source> leaf(build_chain(*root, deep));
        const auto leaf_token = leaf->token();
        root.reset();  // nothing above the leaf can cancel it any more
        EXPECT_TRUE(leaf_token.can_be_canceled());  // its own handle still can
        leaf.reset();
        EXPECT_FALSE(leaf_token.can_be_canceled());
        EXPECT_FALSE(leaf_token.is_cancellation_requested());
      },
      small_stack);
}

TEST(LinkedPropagation, DeepChain_CallbackExceptionAtTheLeaf_ReachesTheRoot) {  // S20, S12
  cktest::run_on_small_stack(
      [] {
        cancellation_source root;
        std::optional<cancellation_source> leaf(build_chain(root, deep));
        auto reg = leaf->token().register_callback([] { throw test_error{7}; });
        try {
          root.cancel();
          ADD_FAILURE() << "cancel() did not throw";
        } catch (const aggregate_exception& e) {
          EXPECT_EQ(error_ids(e.exceptions()), (std::vector<int>{7}));
        }
        reg.dispose();
        leaf.reset();
      },
      small_stack);
}

TEST(LinkedPropagation, ThrowOnFirstException_NeverSkipsPropagation) {  // S20, S13
  cancellation_source root;
  const auto child = cancellation_source::linked({root.token()});
  const auto grandchild = cancellation_source::linked({child.token()});
  auto reg = root.token().register_callback([] { throw test_error{1}; });
  EXPECT_THROW(root.cancel(cancel_options{.throw_on_first_exception = true}), test_error);
  EXPECT_TRUE(child.is_cancellation_requested());
  EXPECT_TRUE(grandchild.is_cancellation_requested());
}

TEST(LinkedPropagation, ThrowOnFirstException_DescendantsExceptionPropagatesAfterAllAreCancelled) {
  // S20, S13
  cancellation_source root;
  const auto a = cancellation_source::linked({root.token()});
  const auto b = cancellation_source::linked({root.token()});
  const auto a1 = cancellation_source::linked({a.token()});
  const auto b1 = cancellation_source::linked({b.token()});
  auto ra = a.token().register_callback([] { throw test_error{2}; });
  auto rb = b.token().register_callback([] { throw test_error{3}; });
  try {
    root.cancel(cancel_options{.throw_on_first_exception = true});
    FAIL() << "cancel() did not throw";
  } catch (const test_error& e) {
    EXPECT_TRUE(e.id == 2 || e.id == 3) << e.id;
  }
  for (const cancellation_source* s : {&std::as_const(root), &a, &b, &a1, &b1}) {
    EXPECT_TRUE(s->is_cancellation_requested());
  }
}

TEST(LinkedPropagation, DescendantsExceptionsAreReportedWithTheParents) {  // S20, S12
  cancellation_source root;
  const auto child = cancellation_source::linked({root.token()});
  const auto grandchild = cancellation_source::linked({child.token()});
  auto r1 = root.token().register_callback([] { throw test_error{1}; });
  auto r2 = child.token().register_callback([] { throw test_error{2}; });
  auto r3 = grandchild.token().register_callback([] { throw test_error{3}; });
  try {
    root.cancel();
    FAIL() << "cancel() did not throw";
  } catch (const aggregate_exception& e) {
    auto ids = error_ids(e.exceptions());
    std::sort(ids.begin(), ids.end());
    EXPECT_EQ(ids, (std::vector<int>{1, 2, 3}));
  }
}

TEST(LinkedPropagation, DescendantsExceptionsKeepEachSourcesLifoOrder) {  // S20, S12
  cancellation_source root;
  const auto child = cancellation_source::linked({root.token()});
  auto r1 = child.token().register_callback([] { throw test_error{21}; });
  auto r2 = child.token().register_callback([] { throw test_error{22}; });
  auto r3 = root.token().register_callback([] { throw test_error{11}; });
  auto r4 = root.token().register_callback([] { throw test_error{12}; });
  try {
    root.cancel();
    FAIL() << "cancel() did not throw";
  } catch (const aggregate_exception& e) {
    const auto ids = error_ids(e.exceptions());
    ASSERT_EQ(ids.size(), 4u);
    const auto pos = [&](int id) { return std::find(ids.begin(), ids.end(), id) - ids.begin(); };
    EXPECT_LT(pos(22), pos(21));
    EXPECT_LT(pos(12), pos(11));
  }
}

TEST(LinkedPropagation, ChildCancelledByParent_LaterOwnCancelReturnsFalse) {  // S20, S2
  cancellation_source root;
  auto child = cancellation_source::linked({root.token()});
  EXPECT_TRUE(root.cancel());
  EXPECT_FALSE(child.cancel());
}

// ---- S21 ---------------------------------------------------------------------------------------

TEST(LinkedAttachment, TokenOfATemporaryLinkedSource_IsCancelledWithAParent) {  // S21
  cancellation_source a;
  cancellation_source b;
  const auto t = cancellation_source::linked({a.token(), b.token()}).token();
  EXPECT_TRUE(t.can_be_canceled());
  b.cancel();
  EXPECT_TRUE(t.is_cancellation_requested());
}

TEST(LinkedAttachment, RegistrationAloneKeepsItAttached) {  // S21
  cancellation_source a;
  int runs = 0;
  auto reg = cancellation_source::linked({a.token()}).token().register_callback([&] { ++runs; });
  a.cancel();
  EXPECT_EQ(runs, 1);
}

TEST(LinkedAttachment, CancellationCallbackAloneKeepsItAttached) {  // S21
  cancellation_source a;
  int runs = 0;
  cancellation_callback cb(cancellation_source::linked({a.token()}).token(), [&] { ++runs; });
  a.cancel();
  EXPECT_EQ(runs, 1);
}

TEST(LinkedAttachment, GrandchildTokenAloneKeepsTheChainAttached) {  // S21, S23
  cancellation_source root;
  const auto t = cancellation_source::linked(
                     {cancellation_source::linked({root.token()}).token()})
                     .token();
  EXPECT_TRUE(t.can_be_canceled());
  root.cancel();
  EXPECT_TRUE(t.is_cancellation_requested());
}

TEST(LinkedAttachment, ManyDroppedChildren_ParentStillCancelsTheLiveOnes) {  // S21
  cancellation_source parent;
  for (int i = 0; i < 10'000; ++i) {
    const auto dropped = cancellation_source::linked({parent.token()});
  }
  const auto live = cancellation_source::linked({parent.token()});
  EXPECT_TRUE(parent.cancel());
  EXPECT_TRUE(live.is_cancellation_requested());
}

// ---- races -------------------------------------------------------------------------------------

TEST(LinkedRaces, LinkingWhileTheParentIsCancelled_ChildEndsCancelled) {  // S19, S20
  for (int i = 0; i < 300; ++i) {
    cancellation_source parent;
    std::latch start(2);
    cktest::bounded_thread canceller([&] {
      start.arrive_and_wait();
      parent.cancel();
    });
    start.arrive_and_wait();
    const auto child = cancellation_source::linked({parent.token()});
    canceller.join();
    ASSERT_TRUE(child.is_cancellation_requested()) << "iteration " << i;
  }
}

TEST(LinkedRaces, ManyThreadsLinkingWhileTheParentIsCancelled_AllChildrenEndCancelled) {
  // S19, S20
  constexpr int threads = 4;
  constexpr int per_thread = 200;
  cancellation_source parent;
  std::vector<std::vector<cancellation_source>> children(threads);
  std::latch start(threads + 1);
  std::vector<std::unique_ptr<cktest::bounded_thread>> pool;
  for (std::size_t k = 0; k < threads; ++k) {
    pool.push_back(std::make_unique<cktest::bounded_thread>([&, k] {
      start.arrive_and_wait();
      for (int i = 0; i < per_thread; ++i) {
        children[k].push_back(cancellation_source::linked({parent.token()}));
      }
    }));
  }
  start.arrive_and_wait();
  std::this_thread::yield();
  parent.cancel();
  pool.clear();
  for (const auto& list : children) {
    for (const auto& child : list) ASSERT_TRUE(child.is_cancellation_requested());
  }
}

TEST(LinkedRaces, ChildDroppedWhileTheParentCancels_RunsAtMostOnce) {  // S20, S21
  for (int i = 0; i < 300; ++i) {
    cancellation_source parent;
    std::optional<cancellation_source> child(cancellation_source::linked({parent.token()}));
    std::atomic<int> runs{0};
    std::optional<cancellation_registration> reg(
        child->token().register_callback([&] { runs.fetch_add(1); }));
    std::latch start(2);
    cktest::bounded_thread canceller([&] {
      start.arrive_and_wait();
      EXPECT_TRUE(parent.cancel());
    });
    start.arrive_and_wait();
    reg.reset();
    child.reset();
    canceller.join();
    ASSERT_LE(runs.load(), 1) << "iteration " << i;
  }
}

TEST(LinkedRaces, ParentAndChildCancelledConcurrently_ChildCallbacksRunOnce) {  // S4, S2, S20
  for (int i = 0; i < 300; ++i) {
    cancellation_source parent;
    auto child = cancellation_source::linked({parent.token()});
    std::atomic<int> runs{0};
    auto reg = child.token().register_callback([&] { runs.fetch_add(1); });
    std::latch start(2);
    cktest::bounded_thread canceller([&] {
      start.arrive_and_wait();
      parent.cancel();
    });
    start.arrive_and_wait();
    child.cancel();
    canceller.join();
    ASSERT_EQ(runs.load(), 1) << "iteration " << i;
  }
}

TEST(LinkedRaces, LastParentHandleDroppedWhileLinking_ChildIsConsistent) {  // S19, S23
  for (int i = 0; i < 300; ++i) {
    std::optional<cancellation_source> parent(std::in_place);
    const auto parent_token = parent->token();
    std::latch start(2);
    cktest::bounded_thread dropper([&] {
      start.arrive_and_wait();
      parent.reset();
    });
    start.arrive_and_wait();
    std::optional<cancellation_source> child(cancellation_source::linked({parent_token}));
    const auto t = child->token();
    dropper.join();
    EXPECT_TRUE(t.can_be_canceled());  // its own handle
    child.reset();
    ASSERT_FALSE(t.can_be_canceled()) << "iteration " << i;
  }
}
