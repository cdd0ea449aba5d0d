// cancelkit/detail/token_access.hpp — the state behind a token, for the coroutine awaiters.
//
// The awaiters of coroutine.hpp register an intrusive node on the token's state, as
// cancellation_callback does, so they need the state pointer that cancellation_token keeps
// private; cancellation_token befriends this one accessor for them.
#pragma once

#include <cancelkit/cancellation_token.hpp>

namespace cancelkit::detail {

struct token_access {
  // The state `t` views (null for the none token); no reference is taken.
  static state* state_of(const cancellation_token& t) noexcept { return t.s_; }
};

inline state* state_of(const cancellation_token& t) noexcept { return token_access::state_of(t); }

}  // namespace cancelkit::detail
