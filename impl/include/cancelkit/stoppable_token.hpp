// cancelkit/stoppable_token.hpp — the standard's stop-token concepts, for g++ 12 and clang 14.
//
// C++26 names the shape generic cancellation code may rely on ([stoptoken.concepts]):
// `std::stoppable_token` (stop_requested(), stop_possible(), a member alias template
// `callback_type<CB>`, copyable, equality-comparable), the callback concept
// `stoppable-callback-for` and `std::stop_callback_for_t`. libstdc++ 12 ships none of them. This
// header defines the same concepts under cancelkit's name, so code written against them compiles
// today and moves to `std::` unchanged:
//
// - `cancelkit::stoppable_token<T>`: the C++26 concept, word for word. `cancellation_token`
//   models it. libstdc++ 12's `std::stop_token` does not: it lacks the member `callback_type`
//   (a C++26 addition).
// - `cancelkit::stop_callback_for_t<Token, CB>`: the registration type for a token. It is the
//   member `Token::callback_type<CB>` where one exists, and `std::stop_callback<CB>` for
//   `std::stop_token`, so one generic function template registers on either.
// - `cancelkit::stoppable_token_via_trait<T>`: stoppable_token with the callback type found
//   through the trait rather than the member. Both `cancellation_token` and `std::stop_token`
//   model it: constrain generic code on it to accept both.
// - `cancelkit::stoppable_callback_for<CB, Token, Init>`: the C++26 exposition-only concept; the
//   registration type is constructible from the token (const or not, lvalue or rvalue) and an
//   initializer.
// - `cancelkit::stoppable_source<S>`: C++26's exposition-only source concept;
//   `cancellation_source` and `std::stop_source` model it.
//
// The static_asserts at the end state that cancelkit's types model these concepts; the unit
// tests instantiate one generic algorithm with both token types (impl/tests/stoppable_token_test.cpp).
#pragma once

#include <cancelkit/cancellation_callback.hpp>
#include <cancelkit/cancellation_source.hpp>
#include <cancelkit/cancellation_token.hpp>

#include <concepts>
#include <stop_token>
#include <type_traits>

namespace cancelkit {

namespace detail {
template <template <class> class>
struct check_type_alias_exists;

// A callable used only to ask a token type for its callback type.
struct probe_callback {
  void operator()() const noexcept {}
};

template <class Token>
struct stop_callback_for {};

template <class Token>
  requires requires { typename Token::template callback_type<probe_callback>; }
struct stop_callback_for<Token> {
  template <class CB>
  using type = typename Token::template callback_type<CB>;
};

template <>
struct stop_callback_for<std::stop_token> {
  template <class CB>
  using type = std::stop_callback<CB>;
};
}  // namespace detail

namespace detail {
// What both token concepts below ask besides a callback type.
template <class Token>
concept stop_token_queries =
    requires(const Token tok) {
      { tok.stop_requested() } noexcept -> std::same_as<bool>;
      { tok.stop_possible() } noexcept -> std::same_as<bool>;
      { Token(tok) } noexcept;
    } &&
    std::copyable<Token> && std::equality_comparable<Token>;
}  // namespace detail

// C++26 std::stoppable_token.
template <class Token>
concept stoppable_token =
    requires { typename detail::check_type_alias_exists<Token::template callback_type>; } &&
    detail::stop_token_queries<Token>;

// C++26 std::unstoppable_token: a token type whose stop_possible() is false at compile time.
template <class Token>
concept unstoppable_token = stoppable_token<Token> && requires {
  requires std::bool_constant<(!Token::stop_possible())>::value;
};

// C++26 std::stop_callback_for_t, extended to libstdc++ 12's std::stop_token (see above).
template <class Token, class CB>
using stop_callback_for_t = typename detail::stop_callback_for<Token>::template type<CB>;

// stoppable_token, with the callback type found through stop_callback_for_t.
template <class Token>
concept stoppable_token_via_trait =
    requires { typename stop_callback_for_t<Token, detail::probe_callback>; } &&
    detail::stop_token_queries<Token>;

// C++26's exposition-only stoppable-callback-for.
template <class CB, class Token, class Init = CB>
concept stoppable_callback_for =
    std::invocable<CB> && std::constructible_from<CB, Init> &&
    requires { typename stop_callback_for_t<Token, CB>; } &&
    std::constructible_from<stop_callback_for_t<Token, CB>, Token, Init> &&
    std::constructible_from<stop_callback_for_t<Token, CB>, Token&, Init> &&
    std::constructible_from<stop_callback_for_t<Token, CB>, const Token, Init> &&
    std::constructible_from<stop_callback_for_t<Token, CB>, const Token&, Init>;

// C++26's exposition-only stoppable-source.
template <class Source>
concept stoppable_source = requires(Source& src, const Source csrc) {
  { csrc.get_token() } -> stoppable_token_via_trait;
  { csrc.stop_possible() } noexcept -> std::same_as<bool>;
  { csrc.stop_requested() } noexcept -> std::same_as<bool>;
  { src.request_stop() } -> std::same_as<bool>;
};

static_assert(stoppable_token<cancellation_token>);
static_assert(stoppable_token_via_trait<cancellation_token>);
static_assert(!unstoppable_token<cancellation_token>);
static_assert(stoppable_token_via_trait<std::stop_token>);
static_assert(stoppable_callback_for<detail::probe_callback, cancellation_token>);
static_assert(stoppable_source<cancellation_source>);

}  // namespace cancelkit
