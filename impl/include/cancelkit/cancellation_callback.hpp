// cancelkit/cancellation_callback.hpp — RAII registration with no heap allocation.
//
// Like std::stop_callback: constructing one registers `callback` on a token (or runs it at once
// if the token is already cancelled, S6); destroying it disposes the registration, waiting for a
// callback that runs on another thread but never for itself (S9). The callback lives inside the
// object, so registering allocates nothing, and the object holds no reference count of its own:
// the state keeps one collective reference for all of them (see [I7] in detail/state.hpp).
// Neither copyable nor movable: the source's callback list points into it.
//
// Thread safety: unregister() may be called from any thread, concurrently with the callback
// running; destruction must not race another use of the same object. Memory ordering as for
// cancellation_registration: a callback run by the cancelling thread sees what the constructing
// thread did before constructing (the source's lock orders them), and when the destructor
// returns on another thread than the callback's, the callback has returned and its effects
// happen-before that return (S9).
//
// Value category, as std::stop_callback: the callback is invoked as
// `std::invoke(std::forward<Callback>(fn))`, on both the inline (S6) and the stored path — an
// rvalue for an object type `Callback` (what the deduction guide gives), an lvalue for `F&`, a
// const lvalue for `const F&`. The class constraint `std::invocable<Callback>` tests exactly that
// call, so a callable that cannot be invoked so is rejected by the constraint, not deep inside.
// A reference `Callback` refers to the caller's object, which must outlive the
// cancellation_callback; binding it to a temporary (which would dangle) does not compile.
#pragma once

#include <cancelkit/cancellation_token.hpp>
#include <cancelkit/detail/callback_storage.hpp>

#include <concepts>
#include <functional>
#include <type_traits>
#include <utility>

namespace cancelkit {

namespace detail {
// How std::reference_wrapper tells an lvalue from a temporary: an argument that would have to
// materialize a temporary (an rvalue, or a conversion producing one) picks the deleted overload.
template <class T>
void bind_lvalue(T&) noexcept;
template <class T>
void bind_lvalue(T&&) = delete;

// A `Callback` can be initialized from a `C` without leaving a reference member dangling.
template <class Callback, class C>
concept binds_without_temporary =
    !std::is_reference_v<Callback> ||
    requires { detail::bind_lvalue<std::remove_reference_t<Callback>>(std::declval<C>()); };
}  // namespace detail

// [[nodiscard]] (on the class for clang, on the constructor for g++, which warns only for the
// latter): `cancellation_callback(token, f);` as a statement registers and, at the end of the
// statement, unregisters at once; the compiler warns about that discarded temporary.
template <std::invocable Callback>
class [[nodiscard]] cancellation_callback : private detail::callback_node {
 public:
  // Throws std::invalid_argument for an empty std::function or null function pointer (S25),
  // and whatever the callback throws when it runs inline (S14); nothing is registered then.
  // For a reference `Callback`, `callback` must be an lvalue that outlives this object.
  template <class C>
    requires std::constructible_from<Callback, C> && detail::binds_without_temporary<Callback, C>
  [[nodiscard]] cancellation_callback(const cancellation_token& token, C&& callback)
      : detail::callback_node(&run, written_by_link{}),
        fn_((detail::require_callable(callback), std::forward<C>(callback))) {
    // `s_` is written once, below: null unless the node was stored, the only case in which the
    // node's fields are read again (written_by_link).
    detail::state* s = token.s_;
    if (s != nullptr) {
      switch (s->link(this, /*raii=*/true)) {
        case detail::link_result::linked:
          break;
        case detail::link_result::already_requested:  // S6, S14
          s_ = nullptr;  // before the call, as a constructed member would be
          invoke_callback();
          return;
        case detail::link_result::cannot_cancel:  // S7
          s = nullptr;
          break;
      }
    }
    s_ = s;
  }

  cancellation_callback(const cancellation_callback&) = delete;
  cancellation_callback& operator=(const cancellation_callback&) = delete;

  // Disposes: removes the callback if it has not started; if it runs on another thread, waits
  // until it has returned (spinning briefly, then sleeping); from inside the callback itself it
  // returns at once (S9, S10). Never allocates or throws. Do not destroy it while holding a lock
  // that the callback takes.
  ~cancellation_callback() {
    if (s_ != nullptr) {
      static_cast<void>(s_->dispose(this, /*raii=*/true, /*defer_release=*/false));
    }
  }

  // True iff this call removed the callback before it started (S8); it then never runs. Never
  // blocks (beyond the source's short list lock), allocates or throws.
  [[nodiscard]] bool unregister() noexcept { return s_ != nullptr && s_->unregister(this); }

 private:
  static void run(detail::callback_node* n) {
    static_cast<cancellation_callback*>(n)->invoke_callback();
  }

  // The one place the callback is invoked, so the inline (S6) and the stored path use the same
  // value category: std::forward<Callback>, as std::stop_callback does (S4: it runs once, so an
  // object type may be consumed as an rvalue; a reference type stays an lvalue of the caller's).
  void invoke_callback() { std::invoke(std::forward<Callback>(fn_)); }

  detail::state* s_;  // non-null iff stored: counted in the state's raii_ [I9]
  [[no_unique_address]] Callback fn_;
};

template <class C>
cancellation_callback(cancellation_token, C) -> cancellation_callback<C>;

}  // namespace cancelkit
