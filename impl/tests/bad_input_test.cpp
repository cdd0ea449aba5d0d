// S25: empty callables are rejected with std::invalid_argument before anything changes, on any
// token; no operation leaves a source that a later operation can crash on. (Allocation failure is
// covered by alloc_test.cpp, a separate executable with a failing operator new.)
#include <cancelkit/cancelkit.hpp>

#include <functional>
#include <optional>
#include <stdexcept>
#include <vector>

#include "test_support.hpp"

using namespace cancelkit;
using namespace std::chrono_literals;

namespace {
using fn_ptr = void (*)();
using empty_function_callback = cancellation_callback<std::function<void()>>;
using fn_ptr_callback = cancellation_callback<fn_ptr>;
}  // namespace

TEST(BadInput, EmptyStdFunction_ThrowsInvalidArgument) {  // S25
  cancellation_source s;
  EXPECT_THROW((void)s.token().register_callback(std::function<void()>()), std::invalid_argument);
}

TEST(BadInput, EmptyStdFunctionLvalue_ThrowsInvalidArgument) {  // S25
  cancellation_source s;
  const std::function<void()> empty;
  EXPECT_THROW((void)s.token().register_callback(empty), std::invalid_argument);
}

TEST(BadInput, NullFunctionPointer_ThrowsInvalidArgument) {  // S25
  cancellation_source s;
  const fn_ptr null = nullptr;
  EXPECT_THROW((void)s.token().register_callback(null), std::invalid_argument);
}

TEST(BadInput, EmptyStdFunction_ChangesNothing) {  // S25
  cancellation_source s;
  std::vector<int> order;
  auto r1 = s.token().register_callback([&] { order.push_back(1); });
  auto r2 = s.token().register_callback([&] { order.push_back(2); });
  EXPECT_THROW((void)s.token().register_callback(std::function<void()>()), std::invalid_argument);
  EXPECT_FALSE(s.is_cancellation_requested());
  EXPECT_TRUE(s.cancel());
  EXPECT_EQ(order, (std::vector<int>{2, 1}));
}

TEST(BadInput, OnTheNoneToken_StillThrows) {  // S25: arguments are checked first
  const fn_ptr null = nullptr;
  EXPECT_THROW((void)cancellation_token::none().register_callback(std::function<void()>()),
               std::invalid_argument);
  EXPECT_THROW((void)cancellation_token::none().register_callback(null), std::invalid_argument);
}

TEST(BadInput, OnACancelledToken_ThrowsInvalidArgumentInsteadOfCalling) {  // S25
  cancellation_source s;
  s.cancel();
  const fn_ptr null = nullptr;
  EXPECT_THROW((void)s.token().register_callback(std::function<void()>()), std::invalid_argument);
  EXPECT_THROW((void)s.token().register_callback(null), std::invalid_argument);
}

TEST(BadInput, OnATokenThatCanNoLongerBeCanceled_StillThrows) {  // S25
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  s.reset();
  EXPECT_THROW((void)t.register_callback(std::function<void()>()), std::invalid_argument);
}

TEST(BadInput, CancellationCallbackWithEmptyStdFunction_ThrowsInvalidArgument) {  // S25
  cancellation_source s;
  EXPECT_THROW(static_cast<void>(empty_function_callback(s.token(), std::function<void()>())), std::invalid_argument);
}

TEST(BadInput, CancellationCallbackWithNullFunctionPointer_ThrowsInvalidArgument) {  // S25
  cancellation_source s;
  const fn_ptr null = nullptr;
  EXPECT_THROW(static_cast<void>(fn_ptr_callback(s.token(), null)), std::invalid_argument);
}

TEST(BadInput, CancellationCallbackOnNoneOrCancelledToken_StillThrows) {  // S25
  cancellation_source s;
  s.cancel();
  const fn_ptr null = nullptr;
  EXPECT_THROW(static_cast<void>(empty_function_callback(cancellation_token::none(), std::function<void()>())),
               std::invalid_argument);
  EXPECT_THROW(static_cast<void>(fn_ptr_callback(cancellation_token::none(), null)), std::invalid_argument);
  EXPECT_THROW(static_cast<void>(empty_function_callback(s.token(), std::function<void()>())), std::invalid_argument);
  EXPECT_THROW(static_cast<void>(fn_ptr_callback(s.token(), null)), std::invalid_argument);
}

TEST(BadInput, CancellationCallbackRejected_ChangesNothing) {  // S25
  cancellation_source s;
  std::vector<int> order;
  auto r1 = s.token().register_callback([&] { order.push_back(1); });
  EXPECT_THROW(static_cast<void>(empty_function_callback(s.token(), std::function<void()>())), std::invalid_argument);
  auto r2 = s.token().register_callback([&] { order.push_back(2); });
  EXPECT_TRUE(s.cancel());
  EXPECT_EQ(order, (std::vector<int>{2, 1}));
}

TEST(BadInput, NonEmptyStdFunctionAndFunctionPointer_AreAccepted) {  // S25 (the converse)
  cancellation_source s;
  static int pointer_runs = 0;
  pointer_runs = 0;
  int function_runs = 0;
  auto r1 = s.token().register_callback(std::function<void()>([&] { ++function_runs; }));
  auto r2 = s.token().register_callback(+[] { ++pointer_runs; });
  fn_ptr_callback r3(s.token(), +[] { ++pointer_runs; });
  s.cancel();
  EXPECT_EQ(function_runs, 1);
  EXPECT_EQ(pointer_runs, 2);
}

// ---- no later crash ----------------------------------------------------------------------------

TEST(NoLaterCrash, AfterAggregateException_EveryOperationStillWorks) {  // S25, S12
  cancellation_source s;
  auto thrower = s.token().register_callback([] { throw cktest::test_error{1}; });
  auto bystander = s.token().register_callback([] {});
  EXPECT_THROW(s.cancel(), aggregate_exception);
  EXPECT_FALSE(s.cancel());
  EXPECT_FALSE(s.try_reset());
  s.cancel_after(0ns);
  s.cancel_after(1ms);
  EXPECT_FALSE(thrower.unregister());
  thrower.dispose();
  bystander.dispose();
  int runs = 0;
  auto late = s.token().register_callback([&] { ++runs; });
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(s.token().wait_for(0ns));
  const auto child = cancellation_source::linked({s.token()});
  EXPECT_TRUE(child.is_cancellation_requested());
}

TEST(NoLaterCrash, AfterThrowOnFirstException_EveryOperationStillWorks) {  // S25, S13
  cancellation_source s;
  int skipped_runs = 0;
  auto skipped = s.token().register_callback([&] { ++skipped_runs; });
  auto thrower = s.token().register_callback([] { throw cktest::test_error{1}; });
  EXPECT_THROW(s.cancel(cancel_options{.throw_on_first_exception = true}), cktest::test_error);
  EXPECT_FALSE(s.cancel());
  EXPECT_FALSE(s.try_reset());
  EXPECT_TRUE(skipped.unregister());
  skipped.dispose();
  thrower.dispose();
  EXPECT_EQ(skipped_runs, 0);
  EXPECT_TRUE(s.token().wait_for(0ns));
}

TEST(NoLaterCrash, AfterInvalidArgument_EveryOperationStillWorks) {  // S25
  cancellation_source s;
  EXPECT_THROW((void)s.token().register_callback(std::function<void()>()), std::invalid_argument);
  int runs = 0;
  auto reg = s.token().register_callback([&] { ++runs; });
  EXPECT_TRUE(s.try_reset());
  auto reg2 = s.token().register_callback([&] { ++runs; });
  EXPECT_TRUE(s.cancel());
  EXPECT_EQ(runs, 1);
}
