// The public surface of API.md: signatures, noexcept, copy/move rules and sizes (checked at
// compile time), then the documented details of each class that are not a numbered rule:
// equality, the empty (moved-from) source, empty and moved registrations, exception texts.
#include <cancelkit/cancelkit.hpp>

#include <chrono>
#include <concepts>
#include <exception>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "test_support.hpp"

using namespace cancelkit;
using namespace std::chrono_literals;

namespace {

struct plain_callable {
  void operator()() const {}
};
struct needs_an_argument {
  void operator()(int) const {}
};
void free_function() {}

inline constexpr auto empty_lambda = [] {};
using empty_lambda_t = std::remove_cvref_t<decltype(empty_lambda)>;

// ---- cancellation_token ------------------------------------------------------------------------
static_assert(sizeof(cancellation_token) == sizeof(void*));
static_assert(std::is_nothrow_default_constructible_v<cancellation_token>);
static_assert(std::is_nothrow_copy_constructible_v<cancellation_token>);
static_assert(std::is_nothrow_move_constructible_v<cancellation_token>);
static_assert(std::is_nothrow_copy_assignable_v<cancellation_token>);
static_assert(std::is_nothrow_move_assignable_v<cancellation_token>);
static_assert(std::is_nothrow_destructible_v<cancellation_token>);
static_assert(std::equality_comparable<cancellation_token>);
static_assert(requires(const cancellation_token& t) {
  { cancellation_token::none() } noexcept -> std::same_as<cancellation_token>;
  { t.is_cancellation_requested() } noexcept -> std::same_as<bool>;
  { t.can_be_canceled() } noexcept -> std::same_as<bool>;
  { t.throw_if_cancellation_requested() } -> std::same_as<void>;
  { t.cancellation_reason() } noexcept -> std::same_as<std::exception_ptr>;
  { t.wait() } -> std::same_as<void>;
  { t.wait_for(std::chrono::milliseconds(1)) } -> std::same_as<bool>;
  { t.wait_for(std::chrono::duration<double>(0.5)) } -> std::same_as<bool>;
  { t.wait_until(std::chrono::steady_clock::now()) } -> std::same_as<bool>;
  { t.wait_until(std::chrono::system_clock::now()) } -> std::same_as<bool>;
  { t.to_stop_token() } -> std::same_as<std::stop_token>;
  { t == t } noexcept -> std::same_as<bool>;
  { t != t } noexcept -> std::same_as<bool>;
});
// throw_if_cancellation_requested and wait throw, so they cannot be noexcept.
static_assert(
    !noexcept(std::declval<const cancellation_token&>().throw_if_cancellation_requested()));
static_assert(!noexcept(std::declval<const cancellation_token&>().wait()));
// register_callback takes any std::invocable and returns the registration handle.
static_assert(requires(const cancellation_token& t, plain_callable f, void (*fp)(),
                       std::function<void()> sf) {
  { t.register_callback(f) } -> std::same_as<cancellation_registration>;
  { t.register_callback(std::move(f)) } -> std::same_as<cancellation_registration>;
  { t.register_callback(fp) } -> std::same_as<cancellation_registration>;
  { t.register_callback(free_function) } -> std::same_as<cancellation_registration>;
  { t.register_callback(sf) } -> std::same_as<cancellation_registration>;
});
template <class F>
concept registrable = requires(const cancellation_token& t, F f) { t.register_callback(f); };
static_assert(registrable<plain_callable>);
static_assert(!registrable<int>);
static_assert(!registrable<needs_an_argument>);

// ---- cancel_options ----------------------------------------------------------------------------
static_assert(std::is_same_v<decltype(cancel_options::reason), std::exception_ptr>);
static_assert(std::is_same_v<decltype(cancel_options::throw_on_first_exception), bool>);
static_assert(std::is_aggregate_v<cancel_options>);

// ---- cancellation_source -----------------------------------------------------------------------
static_assert(sizeof(cancellation_source) == sizeof(void*));
static_assert(std::is_default_constructible_v<cancellation_source>);
static_assert(std::is_copy_constructible_v<cancellation_source>);
static_assert(std::is_copy_assignable_v<cancellation_source>);
static_assert(std::is_move_constructible_v<cancellation_source>);
static_assert(std::is_move_assignable_v<cancellation_source>);
static_assert(std::equality_comparable<cancellation_source>);
static_assert(std::is_constructible_v<cancellation_source, timer_service&>);
static_assert(!std::is_convertible_v<timer_service&, cancellation_source>);  // explicit
static_assert(std::is_constructible_v<cancellation_source, std::chrono::nanoseconds>);
static_assert(std::is_constructible_v<cancellation_source, std::chrono::seconds>);
static_assert(
    std::is_constructible_v<cancellation_source, std::chrono::nanoseconds, timer_service&>);
static_assert(!std::is_convertible_v<std::chrono::nanoseconds, cancellation_source>);  // explicit
static_assert(requires(cancellation_source& s, const cancellation_source& cs,
                       const cancel_options& o, std::span<const cancellation_token> parents_span,
                       std::initializer_list<cancellation_token> parents_list,
                       std::stop_token stop) {
  { cs.token() } noexcept -> std::same_as<cancellation_token>;
  { cs.is_cancellation_requested() } noexcept -> std::same_as<bool>;
  { s.cancel() } -> std::same_as<bool>;
  { s.cancel(o) } -> std::same_as<bool>;
  { s.cancel_after(std::chrono::nanoseconds(1)) } -> std::same_as<void>;
  { s.cancel_after(1s) } -> std::same_as<void>;
  { s.try_reset() } -> std::same_as<bool>;
  { cancellation_source::linked(parents_span) } -> std::same_as<cancellation_source>;
  { cancellation_source::linked(parents_list) } -> std::same_as<cancellation_source>;
  { cancellation_source::linked(stop) } -> std::same_as<cancellation_source>;
  { cs == cs } noexcept -> std::same_as<bool>;
  { cs != cs } noexcept -> std::same_as<bool>;
});
// cancel and cancel_after report callback exceptions (S12, S17), so they cannot be noexcept.
static_assert(!noexcept(std::declval<cancellation_source&>().cancel()));
static_assert(
    !noexcept(std::declval<cancellation_source&>().cancel_after(std::chrono::nanoseconds(0))));

// ---- cancellation_registration -----------------------------------------------------------------
static_assert(std::is_nothrow_default_constructible_v<cancellation_registration>);
static_assert(!std::is_copy_constructible_v<cancellation_registration>);
static_assert(!std::is_copy_assignable_v<cancellation_registration>);
static_assert(std::is_move_constructible_v<cancellation_registration>);
static_assert(std::is_move_assignable_v<cancellation_registration>);
static_assert(std::is_nothrow_destructible_v<cancellation_registration>);
static_assert(requires(cancellation_registration& r, const cancellation_registration& cr) {
  { r.unregister() } noexcept -> std::same_as<bool>;
  { r.dispose() } noexcept -> std::same_as<void>;
  { cr.token() } noexcept -> std::same_as<cancellation_token>;
});

// ---- cancellation_callback ---------------------------------------------------------------------
static_assert(sizeof(cancellation_callback<empty_lambda_t>) <= 40);
static_assert(!std::is_copy_constructible_v<cancellation_callback<empty_lambda_t>>);
static_assert(!std::is_move_constructible_v<cancellation_callback<empty_lambda_t>>);
static_assert(!std::is_copy_assignable_v<cancellation_callback<empty_lambda_t>>);
static_assert(!std::is_move_assignable_v<cancellation_callback<empty_lambda_t>>);
static_assert(std::is_constructible_v<cancellation_callback<empty_lambda_t>,
                                      const cancellation_token&, empty_lambda_t>);
static_assert(std::is_constructible_v<cancellation_callback<std::function<void()>>,
                                      const cancellation_token&, std::function<void()>>);
static_assert(std::is_constructible_v<cancellation_callback<void (*)()>, const cancellation_token&,
                                      void (*)()>);
static_assert(requires(cancellation_callback<empty_lambda_t>& cb) {
  { cb.unregister() } noexcept -> std::same_as<bool>;
});
template <class C>
concept callback_type = requires { typename cancellation_callback<C>; };
static_assert(callback_type<empty_lambda_t>);
static_assert(!callback_type<int>);
static_assert(!callback_type<needs_an_argument>);

// ---- exceptions --------------------------------------------------------------------------------
static_assert(std::is_base_of_v<std::exception, operation_canceled>);
static_assert(std::is_nothrow_constructible_v<operation_canceled, cancellation_token>);
static_assert(!std::is_convertible_v<cancellation_token, operation_canceled>);  // explicit
static_assert(requires(const operation_canceled& e) {
  { e.token() } noexcept -> std::same_as<cancellation_token>;
});
static_assert(std::is_base_of_v<std::exception, aggregate_exception>);
static_assert(requires(const aggregate_exception& e) {
  { e.exceptions() } noexcept -> std::same_as<const std::vector<std::exception_ptr>&>;
});
static_assert(std::is_base_of_v<std::runtime_error, deadline_exceeded>);

// ---- timers ------------------------------------------------------------------------------------
static_assert(std::is_base_of_v<timer_service, manual_timer_service>);
static_assert(std::is_default_constructible_v<manual_timer_service>);
static_assert(std::is_same_v<decltype(system_timer_service()), timer_service&>);
static_assert(requires(timer_service& ts, std::function<void(std::exception_ptr)> handler) {
  ts.set_error_handler(handler);
});
static_assert(requires(const manual_timer_service& m) {
  { m.now() } -> std::same_as<std::chrono::steady_clock::time_point>;
});
static_assert(requires(manual_timer_service& m) {
  { m.advance(std::chrono::nanoseconds(1)) } -> std::same_as<void>;
  { m.advance(1ms) } -> std::same_as<void>;
});

}  // namespace

// ---- token -------------------------------------------------------------------------------------

TEST(Token, DefaultConstructed_IsTheNoneToken) {  // API: the "none" token
  const cancellation_token t;
  EXPECT_TRUE(t == cancellation_token::none());
  EXPECT_FALSE(t.is_cancellation_requested());
  EXPECT_FALSE(t.can_be_canceled());
  EXPECT_EQ(t.cancellation_reason(), nullptr);
  EXPECT_NO_THROW(t.throw_if_cancellation_requested());
}

TEST(Token, FromLiveSource_CanBeCanceledAndIsNotRequested) {  // API, S24
  cancellation_source s;
  const auto t = s.token();
  EXPECT_TRUE(t.can_be_canceled());
  EXPECT_FALSE(t.is_cancellation_requested());
}

TEST(TokenEquality, TokensOfOneSource_AreEqual) {  // API: equal iff same source
  cancellation_source s;
  EXPECT_TRUE(s.token() == s.token());
  const cancellation_source copy = s;
  EXPECT_TRUE(s.token() == copy.token());
}

TEST(TokenEquality, CopiedAndMovedTokens_StayEqual) {  // API
  cancellation_source s;
  const auto t = s.token();
  auto copy = t;
  EXPECT_TRUE(copy == t);
  const auto moved = std::move(copy);
  EXPECT_TRUE(moved == t);
}

TEST(TokenEquality, TokensOfDifferentSources_AreNotEqual) {  // API
  cancellation_source a;
  cancellation_source b;
  EXPECT_FALSE(a.token() == b.token());
  EXPECT_TRUE(a.token() != b.token());
}

TEST(TokenEquality, NoneTokens_AreEqual) {  // API
  EXPECT_TRUE(cancellation_token() == cancellation_token::none());
  EXPECT_TRUE(cancellation_token::none() == cancellation_token::none());
}

TEST(TokenEquality, SourceToken_IsNotEqualToNone) {  // API
  cancellation_source s;
  EXPECT_FALSE(s.token() == cancellation_token::none());
}

TEST(TokenEquality, EqualityDoesNotDependOnState) {  // API: same source, whatever its state
  cancellation_source s;
  const auto before = s.token();
  s.cancel();
  EXPECT_TRUE(before == s.token());
}

TEST(TokenEquality, TokenOfDroppedSource_IsStillNotNone) {  // API: it comes from a source; S24
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  s.reset();
  EXPECT_FALSE(t.can_be_canceled());
  EXPECT_FALSE(t == cancellation_token::none());
  const auto copy = t;
  EXPECT_TRUE(copy == t);
}

// ---- source ------------------------------------------------------------------------------------

TEST(Source, CopiesShareOneSource) {  // API: copies share one source
  cancellation_source s;
  cancellation_source copy = s;
  EXPECT_TRUE(copy == s);
  EXPECT_TRUE(copy.cancel());
  EXPECT_TRUE(s.is_cancellation_requested());
  EXPECT_FALSE(s.cancel());
}

TEST(Source, CopyAssignment_SharesTheSource) {  // API
  cancellation_source s;
  cancellation_source other;
  other = s;
  EXPECT_TRUE(other == s);
  EXPECT_TRUE(other.token() == s.token());
}

TEST(Source, MoveConstruction_TransfersTheSource) {  // API
  cancellation_source s;
  const auto t = s.token();
  cancellation_source moved = std::move(s);
  EXPECT_TRUE(moved.token() == t);
  EXPECT_TRUE(moved.cancel());
  EXPECT_TRUE(t.is_cancellation_requested());
}

TEST(Source, MoveAssignment_TransfersTheSource) {  // API
  cancellation_source s;
  const auto t = s.token();
  cancellation_source target;
  target = std::move(s);
  EXPECT_TRUE(target.token() == t);
  EXPECT_TRUE(s.token() == cancellation_token::none());
  EXPECT_TRUE(target.cancel());
  EXPECT_TRUE(t.is_cancellation_requested());
}

TEST(SourceEquality, DifferentSources_AreNotEqual) {  // API
  cancellation_source a;
  cancellation_source b;
  EXPECT_FALSE(a == b);
  EXPECT_TRUE(a != b);
}

TEST(SourceEquality, TwoEmptySources_AreEqual) {  // API: registration details
  cancellation_source a;
  cancellation_source b;
  const auto a2 = std::move(a);
  const auto b2 = std::move(b);
  EXPECT_TRUE(a == b);
}

TEST(SourceEquality, EmptySource_NeverEqualsNonEmpty) {  // API: registration details
  cancellation_source a;
  const auto a2 = std::move(a);
  cancellation_source live;
  EXPECT_FALSE(a == live);
  EXPECT_FALSE(live == a);
  EXPECT_FALSE(a == a2);
}

TEST(EmptySource, TokenIsNone) {  // API: empty (moved-from) source
  cancellation_source s;
  const auto keep = std::move(s);
  EXPECT_TRUE(s.token() == cancellation_token::none());
}

TEST(EmptySource, IsNotCancellationRequested) {  // API
  cancellation_source s;
  auto keep = std::move(s);
  keep.cancel();
  EXPECT_FALSE(s.is_cancellation_requested());
}

TEST(EmptySource, CancelReturnsFalse) {  // API
  cancellation_source s;
  const auto t = s.token();
  const auto keep = std::move(s);
  EXPECT_FALSE(s.cancel());
  EXPECT_FALSE(s.cancel(cancel_options{.reason = std::make_exception_ptr(cktest::test_error{1}),
                                       .throw_on_first_exception = true}));
  EXPECT_FALSE(t.is_cancellation_requested());
}

TEST(EmptySource, CancelAfterDoesNothing) {  // API
  manual_timer_service timers;
  cancellation_source s(timers);
  const auto t = s.token();
  const auto keep = std::move(s);
  s.cancel_after(0ns);
  s.cancel_after(-1s);
  s.cancel_after(1ms);
  s.cancel_after(std::chrono::nanoseconds::max());
  timers.advance(1s);
  EXPECT_FALSE(s.is_cancellation_requested());
  EXPECT_FALSE(t.is_cancellation_requested());
}

TEST(EmptySource, TryResetReturnsFalse) {  // API
  cancellation_source s;
  const auto keep = std::move(s);
  EXPECT_FALSE(s.try_reset());
}

TEST(EmptySource, CanBeAssignedAgainAndUsed) {  // API: no UB after a move
  cancellation_source s;
  const auto keep = std::move(s);
  s = cancellation_source();
  EXPECT_TRUE(s.token().can_be_canceled());
  EXPECT_TRUE(s.cancel());
}

TEST(EmptySource, DoesNotKeepTheOldSourceAlive) {  // API, S23: a moved-from handle is no canceller
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  std::optional<cancellation_source> moved(std::move(*s));
  EXPECT_TRUE(t.can_be_canceled());
  moved.reset();
  EXPECT_FALSE(t.can_be_canceled());
}

// ---- cancel_options ----------------------------------------------------------------------------

TEST(CancelOptions, Defaults_NoReasonAndNoThrowOnFirst) {  // API
  const cancel_options o;
  EXPECT_EQ(o.reason, nullptr);
  EXPECT_FALSE(o.throw_on_first_exception);
}

// ---- registration ------------------------------------------------------------------------------

TEST(Registration, Empty_UnregisterReturnsFalse) {  // API: empty registration
  cancellation_registration r;
  EXPECT_FALSE(r.unregister());
  r.dispose();
  EXPECT_FALSE(r.unregister());
}

TEST(Registration, Empty_TokenIsNone) {  // API: registration details
  const cancellation_registration r;
  EXPECT_TRUE(r.token() == cancellation_token::none());
}

TEST(Registration, TokenIsTheRegisteredToken) {  // API: registration details
  cancellation_source s;
  const auto r = s.token().register_callback([] {});
  EXPECT_TRUE(r.token() == s.token());
}

TEST(Registration, TokenAfterCallbackRan_IsTheRegisteredToken) {  // API, S5
  cancellation_source s;
  const auto r = s.token().register_callback([] {});
  s.cancel();
  EXPECT_TRUE(r.token() == s.token());
}

TEST(Registration, TokenOfInlineRun_IsTheRegisteredToken) {  // API, S6
  cancellation_source s;
  s.cancel();
  bool ran = false;
  const auto r = s.token().register_callback([&] { ran = true; });
  EXPECT_TRUE(ran);
  EXPECT_TRUE(r.token() == s.token());
}

TEST(Registration, TokenOfNoneRegistration_IsNone) {  // API, S7
  const auto r = cancellation_token::none().register_callback([] {});
  EXPECT_TRUE(r.token() == cancellation_token::none());
}

TEST(Registration, TokenOfNeverStoredRegistration_IsTheRegisteredToken) {  // API, S7
  std::optional<cancellation_source> s(std::in_place);
  const auto t = s->token();
  s.reset();
  const auto r = t.register_callback([] {});
  EXPECT_TRUE(r.token() == t);
}

TEST(Registration, MovedFrom_IsEmpty) {  // API: a moved-from registration is empty
  cancellation_source s;
  auto r = s.token().register_callback([] {});
  auto moved = std::move(r);
  EXPECT_TRUE(r.token() == cancellation_token::none());
  EXPECT_FALSE(r.unregister());
  EXPECT_TRUE(moved.token() == s.token());
}

TEST(Registration, MovedTo_OwnsTheRegistration) {  // API
  cancellation_source s;
  int runs = 0;
  auto r = s.token().register_callback([&] { ++runs; });
  cancellation_registration moved(std::move(r));
  EXPECT_TRUE(moved.unregister());
  s.cancel();
  EXPECT_EQ(runs, 0);
}

TEST(Registration, MoveAssignOntoNonEmpty_DisposesTheOldOne) {  // API: registration details
  cancellation_source s;
  int old_runs = 0;
  int new_runs = 0;
  auto r = s.token().register_callback([&] { ++old_runs; });
  auto other = s.token().register_callback([&] { ++new_runs; });
  r = std::move(other);
  s.cancel();
  EXPECT_EQ(old_runs, 0);
  EXPECT_EQ(new_runs, 1);
  EXPECT_FALSE(r.unregister());
}

TEST(Registration, MoveAssignOntoNonEmpty_WaitsForTheOldCallbackRunningElsewhere) {  // API, S9
  cancellation_source s;
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};
  auto r = s.token().register_callback([&] {
    started = true;
    std::this_thread::sleep_for(50ms);
    finished = true;
  });
  cktest::bounded_thread canceller([&] { s.cancel(); });
  ASSERT_TRUE(cktest::eventually([&] { return started.load(); }));
  r = cancellation_registration();
  EXPECT_TRUE(finished.load());
}

TEST(Registration, MoveAssignEmptyOntoNonEmpty_RemovesTheCallback) {  // API
  cancellation_source s;
  int runs = 0;
  auto r = s.token().register_callback([&] { ++runs; });
  r = cancellation_registration();
  s.cancel();
  EXPECT_EQ(runs, 0);
  EXPECT_TRUE(r.token() == cancellation_token::none());
}

TEST(Registration, Destructor_RemovesTheCallback) {  // API: the destructor calls dispose()
  cancellation_source s;
  int runs = 0;
  { auto r = s.token().register_callback([&] { ++runs; }); }
  s.cancel();
  EXPECT_EQ(runs, 0);
}

TEST(Registration, Dispose_MakesItsUnregisterReturnFalse) {  // API, S8
  cancellation_source s;
  auto r = s.token().register_callback([] {});
  r.dispose();
  EXPECT_FALSE(r.unregister());
}

// ---- cancellation_callback ---------------------------------------------------------------------

TEST(CancellationCallback, DeducesTheCallbackType) {  // API: deduction guide
  cancellation_source s;
  auto fn = [] {};
  cancellation_callback from_lambda(s.token(), fn);
  static_assert(std::is_same_v<decltype(from_lambda), cancellation_callback<decltype(fn)>>);
  cancellation_callback from_function(s.token(), free_function);
  static_assert(std::is_same_v<decltype(from_function), cancellation_callback<void (*)()>>);
  cancellation_callback from_pointer(s.token(), &free_function);
  static_assert(std::is_same_v<decltype(from_pointer), cancellation_callback<void (*)()>>);
}

TEST(CancellationCallback, RunsWhenCancelled) {  // API, S5
  cancellation_source s;
  int runs = 0;
  cancellation_callback cb(s.token(), [&] { ++runs; });
  s.cancel();
  EXPECT_EQ(runs, 1);
}

TEST(CancellationCallback, Destructor_RemovesTheCallback) {  // API: dispose semantics
  cancellation_source s;
  int runs = 0;
  { cancellation_callback cb(s.token(), [&] { ++runs; }); }
  s.cancel();
  EXPECT_EQ(runs, 0);
}

TEST(CancellationCallback, AcceptsAnLvalueToken) {  // API
  cancellation_source s;
  const cancellation_token t = s.token();
  int runs = 0;
  cancellation_callback cb(t, [&] { ++runs; });
  s.cancel();
  EXPECT_EQ(runs, 1);
}

// ---- exceptions --------------------------------------------------------------------------------

TEST(OperationCanceled, WhatIsOperationCanceled) {  // API
  const operation_canceled e(cancellation_token::none());
  EXPECT_EQ(std::string_view(e.what()), "operation canceled");
}

TEST(OperationCanceled, CarriesItsToken) {  // API
  cancellation_source s;
  const operation_canceled e(s.token());
  EXPECT_TRUE(e.token() == s.token());
}

TEST(OperationCanceled, CopyKeepsTheToken) {  // API
  cancellation_source s;
  const operation_canceled e(s.token());
  const operation_canceled copy = e;
  EXPECT_TRUE(copy.token() == s.token());
  EXPECT_EQ(std::string_view(copy.what()), "operation canceled");
}

TEST(DeadlineExceeded, WhatIsDeadlineExceeded) {  // API
  manual_timer_service timers;
  cancellation_source s(timers);
  s.cancel_after(0ns);
  const auto reason = s.token().cancellation_reason();
  ASSERT_TRUE(cktest::holds<deadline_exceeded>(reason));
  try {
    std::rethrow_exception(reason);
  } catch (const deadline_exceeded& e) {
    EXPECT_EQ(std::string_view(e.what()), "deadline exceeded");
  }
}

TEST(AggregateException, ExceptionsInRunOrder) {  // API, S12
  cancellation_source s;
  auto first = s.token().register_callback([] { throw cktest::test_error{1}; });
  auto second = s.token().register_callback([] { throw cktest::test_error{2}; });
  try {
    s.cancel();
    FAIL() << "cancel() did not throw";
  } catch (const aggregate_exception& e) {
    EXPECT_EQ(cktest::error_ids(e.exceptions()), (std::vector<int>{2, 1}));
  }
}

// ---- timers ------------------------------------------------------------------------------------

TEST(SystemTimerService, IsOneProcessWideInstance) {  // API
  EXPECT_EQ(&system_timer_service(), &system_timer_service());
}

TEST(SystemTimerService, DefaultSourceUsesIt_DelayConstructorArmsIt) {  // API
  const cancellation_source s(10ms);
  EXPECT_TRUE(s.token().wait_for(5s));
  EXPECT_TRUE(cktest::holds<deadline_exceeded>(s.token().cancellation_reason()));
}

TEST(ManualTimerService, StartsAtSomeNowAndStaysThere) {  // API: time moves only when told
  manual_timer_service timers;
  const auto start = timers.now();
  std::this_thread::sleep_for(5ms);
  EXPECT_EQ(timers.now(), start);
}

TEST(ManualTimerService, AdvanceMovesNowByExactlyBy) {  // API
  manual_timer_service timers;
  const auto start = timers.now();
  timers.advance(1500us);
  EXPECT_EQ(timers.now() - start, 1500us);
  timers.advance(0ns);
  EXPECT_EQ(timers.now() - start, 1500us);
  timers.advance(3ns);
  EXPECT_EQ(timers.now() - start, 1500003ns);
}

TEST(ManualTimerService, NegativeAdvance_ThrowsInvalidArgumentAndKeepsNow) {  // API
  manual_timer_service timers;
  timers.advance(1s);
  const auto before = timers.now();
  EXPECT_THROW(timers.advance(-1ns), std::invalid_argument);
  EXPECT_EQ(timers.now(), before);
}

TEST(ManualTimerService, NegativeAdvance_FiresNoTimer) {  // API
  manual_timer_service timers;
  cancellation_source s(timers);
  s.cancel_after(1ns);
  EXPECT_THROW(timers.advance(-1s), std::invalid_argument);
  EXPECT_FALSE(s.is_cancellation_requested());
}

TEST(ManualTimerService, IndependentInstancesHaveIndependentTime) {  // API
  manual_timer_service a;
  manual_timer_service b;
  cancellation_source on_b(b);
  on_b.cancel_after(1ms);
  const auto b_now = b.now();
  a.advance(1s);
  EXPECT_EQ(b.now(), b_now);
  EXPECT_FALSE(on_b.is_cancellation_requested());
}
