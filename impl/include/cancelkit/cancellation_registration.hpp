// cancelkit/cancellation_registration.hpp — the move-only handle that register_callback returns.
//
// The registration owns the type-erased callback and a reference to the source's state.
// `unregister()` removes the callback if it has not started (S8) and never waits; `dispose()`
// (also run by the destructor and by move assignment, for the registration it replaces)
// additionally waits for a callback running on another thread, but never for itself (S9).
// Nothing here allocates or throws; the callable's block is freed (to this thread's cache, see
// README "Guarantees") when the registration is destroyed.
//
// Thread safety: unregister() and dispose() may be called concurrently on the same object from
// several threads (S11), and token() with them; moving, swapping or destroying it while another
// thread uses that object is a data race. Distinct registrations are independent.
//
// Memory ordering: after a true unregister() the callback never runs, so there is nothing to
// order; when dispose() returns on a thread other than the one running the callback, the callback's
// effects happen-before that return, and it will never run again (S9).
#pragma once

#include <cancelkit/cancellation_token.hpp>
#include <cancelkit/detail/callback_storage.hpp>

#include <type_traits>
#include <utility>

namespace cancelkit {

class cancellation_registration {
 public:
  // An empty registration: unregister() returns false, token() is none.
  cancellation_registration() noexcept = default;

  cancellation_registration(cancellation_registration&& other) noexcept
      : s_(std::exchange(other.s_, nullptr)), n_(std::exchange(other.n_, nullptr)) {}

  // Disposes the registration held before, then takes over `other`'s.
  cancellation_registration& operator=(cancellation_registration&& other) noexcept {
    if (this != &other) {
      reset();
      s_ = std::exchange(other.s_, nullptr);
      n_ = std::exchange(other.n_, nullptr);
    }
    return *this;
  }

  cancellation_registration(const cancellation_registration&) = delete;
  cancellation_registration& operator=(const cancellation_registration&) = delete;

  ~cancellation_registration() { reset(); }

  // True iff this call removed the callback before it started; it will then never run (S8).
  // Never blocks (beyond the source's short list lock), never allocates or throws.
  [[nodiscard]] bool unregister() noexcept { return n_ != nullptr && s_->unregister(n_); }

  // unregister(), then wait until the callback is no longer running on another thread (S9);
  // from inside the callback itself it returns at once (S10). Once it returns the callback
  // neither runs nor will run, and a callback that ran on another thread has returned, its
  // effects visible to this thread (acquire on the dispatcher's release). The wait spins
  // briefly, then sleeps; it allocates nothing. Do not call it while holding a lock that the
  // callback takes.
  void dispose() noexcept {
    if (n_ != nullptr) s_->dispose(n_, /*raii=*/false, /*defer_release=*/false);
  }

  // The token the callback was registered with, also when it ran inline or was never stored;
  // none for an empty registration.
  [[nodiscard]] cancellation_token token() const noexcept { return cancellation_token(s_); }

  // Exchanges the registrations held; waits for nothing and unregisters nothing.
  void swap(cancellation_registration& other) noexcept {
    std::swap(s_, other.s_);
    std::swap(n_, other.n_);
  }
  friend void swap(cancellation_registration& a, cancellation_registration& b) noexcept {
    a.swap(b);
  }

 private:
  friend class cancellation_token;

  // Adopts one reference on `s` (may be null) and the node `n` (may be null).
  cancellation_registration(detail::state* s, detail::owned_callback_node* n) noexcept
      : s_(s), n_(n) {}

  void reset() noexcept {
    if (n_ != nullptr &&
        s_->dispose(n_, false, /*defer_release=*/true) == detail::state::dispose_result::done) {
      n_->release(n_);
    }
    n_ = nullptr;
    if (s_ != nullptr) detail::state::release(std::exchange(s_, nullptr));
  }

  detail::state* s_ = nullptr;
  detail::owned_callback_node* n_ = nullptr;
};

// The stored path invokes its decayed copy as an rvalue (owned_callback::run). The inline path
// (S6) does the same with a decayed copy of its own, rather than invoking `callback` as passed,
// so that which overload runs does not depend on whether the token was already cancelled, and
// the constraint (invocable as an rvalue `std::decay_t<F>`) holds for both. Rvalue rather than
// lvalue because the callback runs once (S4) and that is what std::stop_callback does for the
// decayed type its deduction guide gives.
template <class F>
  requires std::constructible_from<std::decay_t<F>, F> && std::invocable<std::decay_t<F>>
cancellation_registration cancellation_token::register_callback(F&& callback) const {
  detail::require_callable(callback);  // S25: checked first, on any token
  if (s_ == nullptr) return {};        // S7: the none token stores nothing
  if (s_->is_requested()) {            // S6: run inline; S14: exceptions propagate
    std::decay_t<F> copy(std::forward<F>(callback));  // as the stored path would store it
    std::invoke(std::move(copy));
    s_->add_ref();
    return cancellation_registration(s_, nullptr);
  }
  if (!s_->can_be_canceled()) {  // S7
    s_->add_ref();
    return cancellation_registration(s_, nullptr);
  }
  using node_t = detail::owned_callback<std::decay_t<F>>;
  node_t* node = node_t::create(std::forward<F>(callback));  // may throw: nothing changed yet
  switch (s_->link(node, /*raii=*/false)) {
    case detail::link_result::linked:
      s_->add_ref();
      return cancellation_registration(s_, node);
    case detail::link_result::already_requested:  // lost the race with cancel(): S6
      try {
        node_t::run(node);
      } catch (...) {
        node_t::destroy(node);
        throw;
      }
      node_t::destroy(node);
      break;
    case detail::link_result::cannot_cancel:  // S7
      node_t::destroy(node);
      break;
  }
  s_->add_ref();
  return cancellation_registration(s_, nullptr);
}

}  // namespace cancelkit
