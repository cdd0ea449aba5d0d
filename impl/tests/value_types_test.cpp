// Value types (issue 16, defects 9 and 11): a moved-from aggregate_exception stays usable, and
// callbacks are invoked with the value category their type promises — the same on the inline
// (S6) and the stored (S5) path:
//  - cancellation_callback<Callback> invokes std::forward<Callback>(fn), as std::stop_callback:
//    an lvalue for F&, a const lvalue for const F&, an rvalue for an object type;
//  - register_callback stores a std::decay_t<F> copy and invokes it as an rvalue, also inline.
// Callables the class cannot invoke are refused by the constraints (checked with `requires`).
#include <cancelkit/cancelkit.hpp>

#include <concepts>
#include <exception>
#include <functional>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <stop_token>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "test_support.hpp"

using namespace cancelkit;
using cktest::error_ids;
using cktest::test_error;

namespace {

// Which overload of operator() ran.
enum class category { none, lvalue, const_lvalue, rvalue, const_rvalue };

const char* name(category c) {
  switch (c) {
    case category::none: return "none";
    case category::lvalue: return "lvalue";
    case category::const_lvalue: return "const lvalue";
    case category::rvalue: return "rvalue";
    case category::const_rvalue: return "const rvalue";
  }
  return "?";
}

// So that a failed EXPECT_EQ prints "rvalue", not the enum's bytes (found by ADL).
[[maybe_unused]] void PrintTo(category c, std::ostream* os) { *os << name(c); }

// Records which of its four overloads was called.
struct all_overloads {
  category* ran;
  void operator()() & { *ran = category::lvalue; }
  void operator()() const& { *ran = category::const_lvalue; }
  void operator()() && { *ran = category::rvalue; }
  void operator()() const&& { *ran = category::const_rvalue; }
};

// Callable only as a non-const lvalue.
struct lvalue_only {
  category* ran;
  int* runs;
  void operator()() & {
    *ran = category::lvalue;
    ++*runs;
  }
  void operator()() && = delete;
};

// Callable only as a non-const rvalue.
struct rvalue_only {
  category* ran;
  void operator()() && { *ran = category::rvalue; }
  void operator()() & = delete;
};

// Counts its own calls in a member: shows whether the caller's object or a copy ran.
struct self_counting {
  category* ran;
  int calls = 0;
  void operator()() & {
    *ran = category::lvalue;
    ++calls;
  }
  void operator()() && {
    *ran = category::rvalue;
    ++calls;
  }
};

struct move_only_callable {
  std::unique_ptr<int> p = std::make_unique<int>(0);
  void operator()() && { ++*p; }
};

// ---- compile-time checks: what the constraints accept and refuse -------------------------------

// `Callback` names a valid cancellation_callback and it can be built from an `Arg`.
template <class Callback, class Arg>
concept callback_constructible =
    requires { typename cancellation_callback<Callback>; } &&
    std::constructible_from<cancellation_callback<Callback>, const cancellation_token&, Arg>;

template <class Callback>
concept callback_type = requires { typename cancellation_callback<Callback>; };

// register_callback accepts an argument of type `Arg` (an lvalue for `T&`, an rvalue for `T`).
template <class Arg>
concept registrable = requires(const cancellation_token& t, Arg&& a) {
  { t.register_callback(std::forward<Arg>(a)) } -> std::same_as<cancellation_registration>;
};

// cancellation_callback<Callback> is constrained on std::invocable<Callback>, i.e. on how it is
// really invoked (std::forward<Callback>(fn)). Defect 11.
static_assert(callback_type<lvalue_only&>);                  // F&: invoked as an lvalue
static_assert(!callback_type<const lvalue_only&>);           // no const& overload
static_assert(!callback_type<lvalue_only>);                  // object type: invoked as an rvalue
static_assert(callback_type<rvalue_only>);                   // object type: invoked as an rvalue
static_assert(!callback_type<rvalue_only&>);                 // F&: an lvalue, && refused
static_assert(!callback_type<const rvalue_only&>);
static_assert(callback_constructible<lvalue_only&, lvalue_only&>);
static_assert(callback_constructible<rvalue_only, rvalue_only>);
static_assert(callback_constructible<all_overloads&, all_overloads&>);
static_assert(callback_constructible<const all_overloads&, all_overloads&>);
static_assert(callback_constructible<const all_overloads&, const all_overloads&>);
// A reference Callback cannot be bound to a temporary (it would dangle after the constructor).
static_assert(!callback_constructible<const all_overloads&, all_overloads>);
static_assert(!callback_constructible<const all_overloads&, const all_overloads>);
static_assert(!callback_constructible<all_overloads&, all_overloads>);
static_assert(!callback_constructible<const std::function<void()>&, void (*)()>);
static_assert(callback_constructible<const std::function<void()>&, std::function<void()>&>);
// ...while an object type takes anything it can be built from, as before.
static_assert(callback_constructible<std::function<void()>, void (*)()>);
static_assert(callback_constructible<all_overloads, all_overloads&>);

// register_callback is constrained on what its stored std::decay_t<F> copy is invoked as: an
// rvalue. Defect 11: before, it asked std::invocable<F> and failed deep inside callback_storage.
static_assert(!registrable<lvalue_only&>);
static_assert(!registrable<lvalue_only>);
static_assert(registrable<rvalue_only&>);
static_assert(registrable<const rvalue_only&>);
static_assert(registrable<rvalue_only>);
static_assert(registrable<all_overloads&>);
static_assert(registrable<const all_overloads&>);
static_assert(!registrable<move_only_callable&>);  // the copy cannot be made
static_assert(registrable<move_only_callable>);

// aggregate_exception: copies (and so "moves") never throw, as std::exception requires. Defect 9.
static_assert(std::is_nothrow_copy_constructible_v<aggregate_exception>);
static_assert(std::is_nothrow_copy_assignable_v<aggregate_exception>);
static_assert(std::is_nothrow_move_constructible_v<aggregate_exception>);
static_assert(std::is_nothrow_move_assignable_v<aggregate_exception>);

// An aggregate_exception holding test_error{1} and test_error{2}, as cancel() throws it.
aggregate_exception thrown_by_cancel() {
  cancellation_source s;
  auto r1 = s.token().register_callback([] { throw test_error{1}; });
  auto r2 = s.token().register_callback([] { throw test_error{2}; });
  try {
    (void)s.cancel();
  } catch (aggregate_exception& e) {
    return e;
  }
  ADD_FAILURE() << "cancel() did not throw aggregate_exception";
  return aggregate_exception(std::vector<std::exception_ptr>{});
}

}  // namespace

// ---- defect 9: aggregate_exception after a move -------------------------------------------------

// S12; issue 16, defect 9: the implicit move left the shared list null and exceptions()
// dereferenced it. Moving now copies: the moved-from object keeps the same exceptions.
TEST(ValueTypesAggregate, MoveConstructedFromKeepsItsExceptions) {
  aggregate_exception from = thrown_by_cancel();
  ASSERT_EQ(error_ids(from.exceptions()), (std::vector<int>{2, 1}));  // LIFO (S5)
  const std::vector<std::exception_ptr> before = from.exceptions();

  aggregate_exception to(std::move(from));

  EXPECT_EQ(error_ids(to.exceptions()), (std::vector<int>{2, 1}));
  EXPECT_EQ(to.exceptions(), before);
  EXPECT_EQ(from.exceptions(), before);  // NOLINT(bugprone-use-after-move): the point of the test
  EXPECT_EQ(std::string_view(from.what()), "one or more cancellation callbacks threw");
  EXPECT_EQ(std::string_view(to.what()), "one or more cancellation callbacks threw");
}

// S12; issue 16, defect 9: same for move assignment, onto an object that held other exceptions.
TEST(ValueTypesAggregate, MoveAssignedFromKeepsItsExceptions) {
  aggregate_exception from = thrown_by_cancel();
  const std::vector<std::exception_ptr> before = from.exceptions();
  aggregate_exception to(std::vector<std::exception_ptr>{std::make_exception_ptr(test_error{7})});

  to = std::move(from);

  EXPECT_EQ(error_ids(to.exceptions()), (std::vector<int>{2, 1}));
  EXPECT_EQ(to.exceptions(), before);
  EXPECT_EQ(from.exceptions(), before);  // NOLINT(bugprone-use-after-move): the point of the test
  EXPECT_EQ(std::string_view(from.what()), "one or more cancellation callbacks threw");
}

// S12; issue 16, defect 9: an exception caught by reference can be moved out of the handler
// (e.g. into a std::exception_ptr-free store) and the caught object is still fine to inspect.
TEST(ValueTypesAggregate, CaughtExceptionMovedOutStaysUsable) {
  cancellation_source s;
  auto r = s.token().register_callback([] { throw test_error{3}; });
  std::vector<aggregate_exception> kept;
  try {
    (void)s.cancel();
    ADD_FAILURE() << "cancel() did not throw";
  } catch (aggregate_exception& e) {
    kept.push_back(std::move(e));
    EXPECT_EQ(error_ids(e.exceptions()), (std::vector<int>{3}));  // NOLINT(bugprone-use-after-move)
  }
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(error_ids(kept[0].exceptions()), (std::vector<int>{3}));
}

// ---- defect 11: cancellation_callback invokes std::forward<Callback>(fn) -----------------------

// S5; issue 16, defect 11: cancellation_callback<F&> ran the caller's functor as an rvalue.
TEST(ValueTypesCallback, LvalueRefCallbackRunsAsLvalueWhenStored) {
  category ran = category::none;
  all_overloads f{&ran};
  cancellation_source s;
  cancellation_callback<all_overloads&> cb(s.token(), f);
  EXPECT_EQ(ran, category::none);
  EXPECT_TRUE(s.cancel());
  EXPECT_EQ(ran, category::lvalue);
}

// S6; issue 16, defect 11: the inline path must use the same category as the stored one.
TEST(ValueTypesCallback, LvalueRefCallbackRunsAsLvalueInline) {
  category ran = category::none;
  all_overloads f{&ran};
  cancellation_source s;
  ASSERT_TRUE(s.cancel());
  cancellation_callback<all_overloads&> cb(s.token(), f);
  EXPECT_EQ(ran, category::lvalue);
}

// S5; issue 16, defect 11: cancellation_callback<const F&> runs a const lvalue.
TEST(ValueTypesCallback, ConstLvalueRefCallbackRunsAsConstLvalueWhenStored) {
  category ran = category::none;
  const all_overloads f{&ran};
  cancellation_source s;
  cancellation_callback<const all_overloads&> cb(s.token(), f);
  EXPECT_TRUE(s.cancel());
  EXPECT_EQ(ran, category::const_lvalue);
}

// S6; issue 16, defect 11.
TEST(ValueTypesCallback, ConstLvalueRefCallbackRunsAsConstLvalueInline) {
  category ran = category::none;
  all_overloads f{&ran};  // non-const object, const view
  cancellation_source s;
  ASSERT_TRUE(s.cancel());
  cancellation_callback<const all_overloads&> cb(s.token(), f);
  EXPECT_EQ(ran, category::const_lvalue);
}

// S5; issue 16, defect 11: a functor with only operator()() & works as cancellation_callback<F&>
// (it did not compile), and it is the caller's object that runs, not a copy.
TEST(ValueTypesCallback, LvalueOnlyFunctorRunsThroughLvalueRefWhenStored) {
  category ran = category::none;
  int runs = 0;
  lvalue_only f{&ran, &runs};
  cancellation_source s;
  cancellation_callback<lvalue_only&> cb(s.token(), f);
  EXPECT_TRUE(s.cancel());
  EXPECT_EQ(ran, category::lvalue);
  EXPECT_EQ(runs, 1);
}

// S6; issue 16, defect 11.
TEST(ValueTypesCallback, LvalueOnlyFunctorRunsThroughLvalueRefInline) {
  category ran = category::none;
  int runs = 0;
  lvalue_only f{&ran, &runs};
  cancellation_source s;
  ASSERT_TRUE(s.cancel());
  cancellation_callback<lvalue_only&> cb(s.token(), f);
  EXPECT_EQ(ran, category::lvalue);
  EXPECT_EQ(runs, 1);
}

// S5; issue 16, defect 11: a reference Callback refers to the caller's object (no copy).
TEST(ValueTypesCallback, LvalueRefCallbackRunsTheCallersObject) {
  category ran = category::none;
  self_counting f{&ran};
  cancellation_source s;
  {
    cancellation_callback<self_counting&> cb(s.token(), f);
    EXPECT_TRUE(s.cancel());
  }
  EXPECT_EQ(f.calls, 1);
  EXPECT_EQ(ran, category::lvalue);
}

// S5; issue 16, defect 11: an object-type Callback is stored by value and run as an rvalue, so
// an &&-only functor works.
TEST(ValueTypesCallback, RvalueOnlyFunctorByValueRunsAsRvalueWhenStored) {
  category ran = category::none;
  cancellation_source s;
  cancellation_callback<rvalue_only> cb(s.token(), rvalue_only{&ran});
  EXPECT_TRUE(s.cancel());
  EXPECT_EQ(ran, category::rvalue);
}

// S6; issue 16, defect 11.
TEST(ValueTypesCallback, RvalueOnlyFunctorByValueRunsAsRvalueInline) {
  category ran = category::none;
  cancellation_source s;
  ASSERT_TRUE(s.cancel());
  cancellation_callback<rvalue_only> cb(s.token(), rvalue_only{&ran});
  EXPECT_EQ(ran, category::rvalue);
}

// S5; issue 16, defect 11: the deduction guide gives the decayed type, run as an rvalue (on a
// copy: the caller's lvalue is not run).
TEST(ValueTypesCallback, DeducedCallbackIsACopyRunAsRvalueWhenStored) {
  category ran = category::none;
  self_counting f{&ran};
  cancellation_source s;
  cancellation_callback cb(s.token(), f);
  static_assert(std::is_same_v<decltype(cb), cancellation_callback<self_counting>>);
  EXPECT_TRUE(s.cancel());
  EXPECT_EQ(ran, category::rvalue);
  EXPECT_EQ(f.calls, 0);
}

// S6; issue 16, defect 11.
TEST(ValueTypesCallback, DeducedCallbackIsACopyRunAsRvalueInline) {
  category ran = category::none;
  self_counting f{&ran};
  cancellation_source s;
  ASSERT_TRUE(s.cancel());
  cancellation_callback cb(s.token(), f);
  EXPECT_EQ(ran, category::rvalue);
  EXPECT_EQ(f.calls, 0);
}

// S25 still applies to reference Callbacks: an empty std::function throws, nothing registered.
TEST(ValueTypesCallback, EmptyFunctionThroughConstRefStillRefused) {
  const std::function<void()> empty;
  cancellation_source s;
  using cb_t = cancellation_callback<const std::function<void()>&>;
  EXPECT_THROW(static_cast<void>(cb_t(s.token(), empty)), std::invalid_argument);
  EXPECT_TRUE(s.cancel());  // nothing registered: nothing to call
}

// The claim the fix relies on: libstdc++'s std::stop_callback invokes std::forward<Callback>,
// i.e. an lvalue for F&, a const lvalue for const F&, an rvalue for an object type.
TEST(ValueTypesCallback, StdStopCallbackUsesTheSameCategories) {
  category ran = category::none;
  all_overloads f{&ran};
  {
    std::stop_source ss;
    std::stop_callback<all_overloads&> cb(ss.get_token(), f);
    ss.request_stop();
    EXPECT_EQ(ran, category::lvalue);
  }
  {
    std::stop_source ss;
    std::stop_callback<const all_overloads&> cb(ss.get_token(), f);
    ss.request_stop();
    EXPECT_EQ(ran, category::const_lvalue);
  }
  {
    std::stop_source ss;
    std::stop_callback cb(ss.get_token(), f);  // deduces all_overloads
    ss.request_stop();
    EXPECT_EQ(ran, category::rvalue);
  }
  {
    std::stop_source ss;
    ss.request_stop();
    std::stop_callback<all_overloads&> cb(ss.get_token(), f);  // inline
    EXPECT_EQ(ran, category::lvalue);
  }
}

// ---- defect 11: register_callback invokes its decayed copy as an rvalue ------------------------

// S5; issue 16, defect 11: an lvalue argument is copied; the copy runs as an rvalue.
TEST(ValueTypesRegister, LvalueArgumentRunsAsRvalueWhenStored) {
  category ran = category::none;
  all_overloads f{&ran};
  cancellation_source s;
  auto r = s.token().register_callback(f);
  EXPECT_TRUE(s.cancel());
  EXPECT_EQ(ran, category::rvalue);
}

// S6; issue 16, defect 11: inline, it ran the argument as passed (an lvalue), unlike the stored
// path; now it runs a decayed copy as an rvalue too.
TEST(ValueTypesRegister, LvalueArgumentRunsAsRvalueInline) {
  category ran = category::none;
  all_overloads f{&ran};
  cancellation_source s;
  ASSERT_TRUE(s.cancel());
  auto r = s.token().register_callback(f);
  EXPECT_EQ(ran, category::rvalue);
}

// S5; issue 16, defect 11.
TEST(ValueTypesRegister, ConstLvalueArgumentRunsAsRvalueWhenStored) {
  category ran = category::none;
  const all_overloads f{&ran};
  cancellation_source s;
  auto r = s.token().register_callback(f);
  EXPECT_TRUE(s.cancel());
  EXPECT_EQ(ran, category::rvalue);
}

// S6; issue 16, defect 11: inline it ran as a const lvalue before.
TEST(ValueTypesRegister, ConstLvalueArgumentRunsAsRvalueInline) {
  category ran = category::none;
  const all_overloads f{&ran};
  cancellation_source s;
  ASSERT_TRUE(s.cancel());
  auto r = s.token().register_callback(f);
  EXPECT_EQ(ran, category::rvalue);
}

// S5; issue 16, defect 11: an &&-only functor passed as an lvalue is accepted (the stored copy
// can run it); it was refused by the old std::invocable<F&> constraint.
TEST(ValueTypesRegister, RvalueOnlyLvalueArgumentRunsWhenStored) {
  category ran = category::none;
  rvalue_only f{&ran};
  cancellation_source s;
  auto r = s.token().register_callback(f);
  EXPECT_TRUE(s.cancel());
  EXPECT_EQ(ran, category::rvalue);
}

// S6; issue 16, defect 11.
TEST(ValueTypesRegister, RvalueOnlyLvalueArgumentRunsInline) {
  category ran = category::none;
  const rvalue_only f{&ran};
  cancellation_source s;
  ASSERT_TRUE(s.cancel());
  auto r = s.token().register_callback(f);
  EXPECT_EQ(ran, category::rvalue);
}

// S5; issue 16, defect 11: an rvalue argument runs as an rvalue.
TEST(ValueTypesRegister, RvalueOnlyRvalueArgumentRunsWhenStored) {
  category ran = category::none;
  cancellation_source s;
  auto r = s.token().register_callback(rvalue_only{&ran});
  EXPECT_TRUE(s.cancel());
  EXPECT_EQ(ran, category::rvalue);
}

// S6; issue 16, defect 11.
TEST(ValueTypesRegister, RvalueOnlyRvalueArgumentRunsInline) {
  category ran = category::none;
  cancellation_source s;
  ASSERT_TRUE(s.cancel());
  auto r = s.token().register_callback(rvalue_only{&ran});
  EXPECT_EQ(ran, category::rvalue);
}

// S6; issue 16, defect 11: inline as when stored, it is a copy that runs, never the caller's
// object.
TEST(ValueTypesRegister, InlineRunsACopyAsTheStoredPathDoes) {
  category ran = category::none;
  self_counting inline_f{&ran};
  self_counting stored_f{&ran};
  cancellation_source later;
  auto stored = later.token().register_callback(stored_f);
  EXPECT_TRUE(later.cancel());
  cancellation_source already;
  ASSERT_TRUE(already.cancel());
  auto r = already.token().register_callback(inline_f);
  EXPECT_EQ(stored_f.calls, 0);
  EXPECT_EQ(inline_f.calls, 0);
  EXPECT_EQ(ran, category::rvalue);
}

// S14; issue 16, defect 11: the inline copy still propagates what the callback throws.
TEST(ValueTypesRegister, InlineCopyStillPropagatesItsException) {
  cancellation_source s;
  ASSERT_TRUE(s.cancel());
  auto thrower = [] { throw test_error{5}; };
  try {
    auto r = s.token().register_callback(thrower);
    ADD_FAILURE() << "register_callback did not throw";
  } catch (const test_error& e) {
    EXPECT_EQ(e.id, 5);
  }
}
