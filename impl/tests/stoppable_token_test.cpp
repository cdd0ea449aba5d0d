// The std::stoppable_token shape (issue 21, part 1): cancellation_token models C++26's
// stoppable_token strictly (member callback_type), std::stop_token models it through
// stop_callback_for_t, and one generic algorithm written against the concept runs with both.
// The std-named members answer exactly as their cancelkit-named twins.
#include <cancelkit/cancelkit.hpp>

#include <atomic>
#include <functional>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "test_support.hpp"

using namespace cancelkit;
using cktest::test_error;

namespace {

struct count_calls {
  int* calls;
  void operator()() const noexcept { ++*calls; }
};

// ---- concepts ------------------------------------------------------------------------------

static_assert(stoppable_token<cancellation_token>);
static_assert(!stoppable_token<std::stop_token>,
              "libstdc++ 12's std::stop_token has no member callback_type; if this fires, the "
              "library gained it and the trait's std::stop_token case can go");
static_assert(stoppable_token_via_trait<cancellation_token>);
static_assert(stoppable_token_via_trait<std::stop_token>);
static_assert(!stoppable_token_via_trait<int>);
static_assert(!stoppable_token_via_trait<cancellation_source>, "a source is not a token");
static_assert(stoppable_source<cancellation_source>);
static_assert(stoppable_source<std::stop_source>);
static_assert(!stoppable_source<cancellation_token>);

static_assert(std::is_same_v<cancellation_token::callback_type<count_calls>,
                             cancellation_callback<count_calls>>);
static_assert(std::is_same_v<stop_callback_for_t<cancellation_token, count_calls>,
                             cancellation_callback<count_calls>>);
static_assert(std::is_same_v<stop_callback_for_t<std::stop_token, count_calls>,
                             std::stop_callback<count_calls>>);

static_assert(stoppable_callback_for<count_calls, cancellation_token>);
static_assert(stoppable_callback_for<count_calls, std::stop_token>);
static_assert(stoppable_callback_for<std::function<void()>, cancellation_token, void (*)()>);
// Not invocable without arguments: no callback type.
static_assert(!stoppable_callback_for<std::function<void(int)>, cancellation_token>);

// A cancellation_callback is constructible from every value category of token (the concept's
// four cases, spelled out).
using cb_t = cancellation_callback<count_calls>;
static_assert(std::is_constructible_v<cb_t, cancellation_token, count_calls>);
static_assert(std::is_constructible_v<cb_t, cancellation_token&, count_calls>);
static_assert(std::is_constructible_v<cb_t, const cancellation_token&, count_calls>);
static_assert(std::is_constructible_v<cb_t, const cancellation_token, count_calls>);

// ---- one generic algorithm -----------------------------------------------------------------

struct generic_run {
  bool requested_before = true;  // stop_requested() before the request
  bool possible_before = false;  // stop_possible() before the request
  int calls_before = -1;         // callback runs before the request
  int calls_after = -1;          // callback runs after the request
  bool requested_after = false;
};

// Written only against the concept: registers through the trait, polls, requests, polls.
template <stoppable_token_via_trait Token, class Request>
generic_run run_generic(Token token, Request request) {
  generic_run r;
  int calls = 0;
  {
    stop_callback_for_t<Token, count_calls> registration(token, count_calls{&calls});
    r.requested_before = token.stop_requested();
    r.possible_before = token.stop_possible();
    r.calls_before = calls;
    request();
    r.calls_after = calls;
    r.requested_after = token.stop_requested();
  }
  return r;
}

void expect_request_seen(const generic_run& r) {
  EXPECT_FALSE(r.requested_before);
  EXPECT_TRUE(r.possible_before);
  EXPECT_EQ(r.calls_before, 0);
  EXPECT_EQ(r.calls_after, 1);  // S4: exactly once, on the requesting thread (S5)
  EXPECT_TRUE(r.requested_after);
}

TEST(StoppableToken, GenericAlgorithm_WithCancellationToken_SeesTheRequest) {
  cancellation_source source;
  expect_request_seen(run_generic(source.get_token(), [&] { EXPECT_TRUE(source.request_stop()); }));
}

TEST(StoppableToken, GenericAlgorithm_WithStdStopToken_SeesTheRequest) {
  std::stop_source source;
  expect_request_seen(run_generic(source.get_token(), [&] { EXPECT_TRUE(source.request_stop()); }));
}

// ---- the std-named members -----------------------------------------------------------------

TEST(StoppableToken, NoneToken_StopRequestedAndStopPossibleAreFalse) {  // API: none token
  const cancellation_token none;
  EXPECT_FALSE(none.stop_requested());
  EXPECT_FALSE(none.stop_possible());
}

TEST(StoppableToken, LiveToken_StopPossibleIsTrue_StopRequestedIsFalse) {  // S24
  cancellation_source source;
  const cancellation_token t = source.token();
  EXPECT_FALSE(t.stop_requested());
  EXPECT_TRUE(t.stop_possible());
}

TEST(StoppableToken, CancelledToken_StopRequestedAndStopPossibleAreTrue) {  // S1, S24
  cancellation_source source;
  const cancellation_token t = source.token();
  source.cancel();
  EXPECT_TRUE(t.stop_requested());
  EXPECT_TRUE(t.stop_possible());
}

TEST(StoppableToken, TokenWhoseSourcesAreGone_StopPossibleIsFalse) {  // S23, as std::stop_token
  cancellation_token t;
  {
    cancellation_source source;
    t = source.token();
  }
  EXPECT_FALSE(t.stop_requested());
  EXPECT_FALSE(t.stop_possible());
}

TEST(StoppableSource, GetToken_IsTheSourcesToken) {  // API
  cancellation_source source;
  EXPECT_EQ(source.get_token(), source.token());
}

TEST(StoppableSource, RequestStop_ReturnsTrueOnlyForTheCallThatMadeTheRequest) {  // S2
  cancellation_source source;
  EXPECT_FALSE(source.stop_requested());
  EXPECT_TRUE(source.request_stop());
  EXPECT_TRUE(source.stop_requested());
  EXPECT_FALSE(source.request_stop());
}

TEST(StoppableSource, RequestStop_PropagatesCallbackExceptionsLikeCancel) {  // S12
  cancellation_source source;
  auto reg = source.token().register_callback([] { throw test_error{1}; });
  EXPECT_THROW(static_cast<void>(source.request_stop()), aggregate_exception);
  EXPECT_TRUE(source.stop_requested());
}

TEST(StoppableSource, StopPossible_IsFalseOnlyForAnEmptySource) {  // API: moved-from source
  cancellation_source source;
  EXPECT_TRUE(source.stop_possible());
  cancellation_source taken = std::move(source);
  EXPECT_FALSE(source.stop_possible());  // NOLINT(bugprone-use-after-move): the tested state
  EXPECT_TRUE(taken.stop_possible());
  taken.cancel();
  EXPECT_TRUE(taken.stop_possible());  // as std::stop_source: it has a state
}

TEST(StoppableCallback, ConstructedFromEveryTokenCategory_RunsOnRequest) {  // S5
  cancellation_source source;
  cancellation_token token = source.token();
  const cancellation_token const_token = source.token();
  int calls = 0;
  cancellation_callback from_lvalue(token, count_calls{&calls});
  cancellation_callback from_const(const_token, count_calls{&calls});
  cancellation_callback from_rvalue(source.token(), count_calls{&calls});
  static_assert(std::is_same_v<decltype(from_rvalue), cancellation_callback<count_calls>>);
  source.cancel();
  EXPECT_EQ(calls, 3);
}

}  // namespace
