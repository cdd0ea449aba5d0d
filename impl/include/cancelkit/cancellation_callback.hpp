// cancelkit/cancellation_callback.hpp — RAII registration with no heap allocation.
//
// Like std::stop_callback: constructing one registers `callback` on a token (or runs it at once
// if the token is already cancelled, S6); destroying it disposes the registration, waiting for a
// callback that runs on another thread but never for itself (S9). The callback lives inside the
// object, so registering allocates nothing, and the object holds no reference count of its own:
// the state keeps one collective reference for all of them (see [I7] in detail/state.hpp).
// Neither copyable nor movable: the source's callback list points into it.
#pragma once

#include <cancelkit/cancellation_token.hpp>
#include <cancelkit/detail/callback_storage.hpp>

#include <concepts>
#include <functional>
#include <utility>

namespace cancelkit {

template <std::invocable Callback>
class cancellation_callback : private detail::callback_node {
 public:
  // Throws std::invalid_argument for an empty std::function or null function pointer (S25),
  // and whatever the callback throws when it runs inline (S14); nothing is registered then.
  template <class C>
    requires std::constructible_from<Callback, C>
  cancellation_callback(const cancellation_token& token, C&& callback)
      : fn_((detail::require_callable(callback), std::forward<C>(callback))) {
    detail::state* s = token.s_;
    if (s == nullptr) return;  // S7
    invoke = &run;
    switch (s->link(this, /*raii=*/true)) {
      case detail::link_result::linked:
        s_ = s;
        break;
      case detail::link_result::already_requested:  // S6, S14
        std::invoke(std::move(fn_));
        break;
      case detail::link_result::cannot_cancel:  // S7
        break;
    }
  }

  cancellation_callback(const cancellation_callback&) = delete;
  cancellation_callback& operator=(const cancellation_callback&) = delete;

  ~cancellation_callback() {
    if (s_ != nullptr) s_->dispose(this, /*raii=*/true, /*defer_release=*/false);
  }

  // True iff this call removed the callback before it started (S8). Never blocks.
  bool unregister() noexcept { return s_ != nullptr && s_->unregister(this); }

 private:
  static void run(detail::callback_node* n) {
    std::invoke(std::move(static_cast<cancellation_callback*>(n)->fn_));
  }

  detail::state* s_ = nullptr;  // non-null iff stored: counted in the state's raii_count [I9]
  [[no_unique_address]] Callback fn_;
};

template <class C>
cancellation_callback(cancellation_token, C) -> cancellation_callback<C>;

}  // namespace cancelkit
