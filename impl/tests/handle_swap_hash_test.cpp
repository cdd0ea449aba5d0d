// Hidden-friend swap and std::hash for the handle types (issue 21, part 2): what a user moving
// from std::stop_token / shared_ptr expects of a value handle. swap exchanges what two handles
// refer to and touches no state (no reference count, no registration); std::hash agrees with
// operator== (API: tokens are equal iff they view one source; sources iff they share a state).
#include <cancelkit/cancelkit.hpp>

#include <concepts>
#include <functional>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "test_support.hpp"

using namespace cancelkit;

namespace {

static_assert(std::is_nothrow_swappable_v<cancellation_token>);
static_assert(std::is_nothrow_swappable_v<cancellation_source>);
static_assert(std::is_nothrow_swappable_v<cancellation_registration>);

// Found by argument-dependent lookup alone (no `using std::swap`), which only a namespace-scope
// or hidden-friend swap gives.
template <class T>
concept adl_swappable = requires(T& a, T& b) { swap(a, b); };
static_assert(adl_swappable<cancellation_token>);
static_assert(adl_swappable<cancellation_source>);
static_assert(adl_swappable<cancellation_registration>);

static_assert(std::is_nothrow_invocable_r_v<std::size_t, std::hash<cancellation_token>,
                                            const cancellation_token&>);
static_assert(std::is_nothrow_invocable_r_v<std::size_t, std::hash<cancellation_source>,
                                            const cancellation_source&>);

TEST(HandleSwap, Tokens_ExchangeTheirSources) {  // API
  cancellation_source a, b;
  cancellation_token ta = a.token(), tb = b.token();
  swap(ta, tb);
  EXPECT_EQ(ta, b.token());
  EXPECT_EQ(tb, a.token());
  a.cancel();
  EXPECT_FALSE(ta.is_cancellation_requested());
  EXPECT_TRUE(tb.is_cancellation_requested());
}

TEST(HandleSwap, Sources_ExchangeTheirStates) {  // API
  cancellation_source a, b;
  const cancellation_token ta = a.token();
  swap(a, b);
  EXPECT_EQ(b.token(), ta);
  EXPECT_TRUE(b.cancel());
  EXPECT_TRUE(ta.is_cancellation_requested());
  EXPECT_FALSE(a.is_cancellation_requested());
}

TEST(HandleSwap, WithAnEmptySource_MovesTheStateAcross) {  // API: empty source
  cancellation_source live;
  cancellation_source empty = std::move(live);
  swap(live, empty);  // NOLINT(bugprone-use-after-move): swapping into a moved-from source
  EXPECT_TRUE(live.stop_possible());
  EXPECT_FALSE(empty.stop_possible());
}

TEST(HandleSwap, Registrations_KeepBothCallbacksRegistered) {  // S8: each still unregisters its own
  cancellation_source a, b;
  int ran_a = 0, ran_b = 0;
  cancellation_registration ra = a.token().register_callback([&] { ++ran_a; });
  cancellation_registration rb = b.token().register_callback([&] { ++ran_b; });
  swap(ra, rb);
  EXPECT_EQ(ra.token(), b.token());
  EXPECT_EQ(rb.token(), a.token());
  EXPECT_TRUE(ra.unregister());  // removes b's callback
  a.cancel();
  b.cancel();
  EXPECT_EQ(ran_a, 1);
  EXPECT_EQ(ran_b, 0);
}

TEST(HandleSwap, RegistrationWithEmpty_LeavesTheCallbackRegistered) {  // S8
  cancellation_source source;
  int ran = 0;
  cancellation_registration held = source.token().register_callback([&] { ++ran; });
  cancellation_registration empty;
  swap(held, empty);
  EXPECT_FALSE(held.unregister());
  held = cancellation_registration();  // disposing the empty one removes nothing
  source.cancel();
  EXPECT_EQ(ran, 1);
}

TEST(HandleHash, EqualTokens_HashEqual) {  // API: hash agrees with ==
  cancellation_source source;
  const cancellation_token a = source.token();
  const cancellation_token b = a;  // NOLINT(performance-unnecessary-copy-initialization)
  EXPECT_EQ(std::hash<cancellation_token>{}(a), std::hash<cancellation_token>{}(b));
  EXPECT_EQ(std::hash<cancellation_token>{}(cancellation_token()),
            std::hash<cancellation_token>{}(cancellation_token::none()));
}

TEST(HandleHash, TokensInAnUnorderedSet_OneEntryPerSource) {  // API
  cancellation_source a, b;
  std::unordered_set<cancellation_token> set{a.token(), a.token(), b.token(), cancellation_token()};
  EXPECT_EQ(set.size(), 3u);
  EXPECT_EQ(set.count(a.token()), 1u);
  EXPECT_EQ(set.count(cancellation_token::none()), 1u);
}

TEST(HandleHash, SourcesAsMapKeys_CopiesFindTheSameEntry) {  // API
  cancellation_source a, b;
  std::unordered_map<cancellation_source, int> map;
  map[a] = 1;
  map[b] = 2;
  const cancellation_source copy = a;  // NOLINT(performance-unnecessary-copy-initialization)
  EXPECT_EQ(map.at(copy), 1);
  EXPECT_EQ(std::hash<cancellation_source>{}(copy), std::hash<cancellation_source>{}(a));
  EXPECT_EQ(map.size(), 2u);
}

}  // namespace
