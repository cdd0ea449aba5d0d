// cancelkit/cancellation_token.hpp — a cheap, copyable view of one source's cancellation state.
//
// A token is one pointer. Copying, moving, comparing and the checks never allocate and never
// throw. `is_cancellation_requested()` is a single acquire load: once it returns true, everything
// the cancelling thread did before its successful `cancel()` is visible to the caller (S3).
// The default-constructed token is the "none" token: never cancelled, `can_be_canceled()` false.
#pragma once

#include <cancelkit/detail/state.hpp>

#include <chrono>
#include <cmath>
#include <concepts>
#include <exception>
#include <stop_token>
#include <type_traits>
#include <utility>

namespace cancelkit {

class cancellation_registration;
class cancellation_source;
template <std::invocable Callback>
class cancellation_callback;

class cancellation_token {
 public:
  // The none token.
  cancellation_token() noexcept = default;
  static cancellation_token none() noexcept { return {}; }

  cancellation_token(const cancellation_token& other) noexcept : s_(other.s_) {
    if (s_) s_->add_ref();
  }
  cancellation_token(cancellation_token&& other) noexcept : s_(std::exchange(other.s_, nullptr)) {}
  cancellation_token& operator=(const cancellation_token& other) noexcept {
    cancellation_token(other).swap(*this);
    return *this;
  }
  cancellation_token& operator=(cancellation_token&& other) noexcept {
    cancellation_token(std::move(other)).swap(*this);
    return *this;
  }
  ~cancellation_token() {
    if (s_) detail::state::release(s_);
  }

  // True once cancellation was requested (S1); stays true.
  bool is_cancellation_requested() const noexcept { return s_ != nullptr && s_->is_requested(); }

  // False for the none token and once nothing can cancel the source any more (S23, S24); true
  // once cancellation was requested.
  bool can_be_canceled() const noexcept { return s_ != nullptr && s_->can_be_canceled(); }

  // Throws operation_canceled carrying this token if cancellation was requested (S16).
  void throw_if_cancellation_requested() const;

  // The reason given to cancel() (S16); null before the request, for the none token, and for a
  // cancel() without a reason.
  std::exception_ptr cancellation_reason() const noexcept {
    return is_cancellation_requested() ? s_->reason() : std::exception_ptr();
  }

  // Registers `callback` to run once when cancellation is requested (S5), or runs it right away
  // on this thread if it already was (S6, S14). Stores nothing on the none token or on a token
  // that can no longer be cancelled (S7). Throws std::invalid_argument for an empty
  // std::function or a null function pointer, and std::bad_alloc, before changing anything (S25).
  // What runs is always a copy, `std::decay_t<F>` built from `callback`, invoked as an rvalue —
  // when stored and when run inline alike (like std::stop_callback<std::decay_t<F>>), so the
  // constraint asks for exactly that; an lvalue functor with only `operator()() &` is refused.
  // Defined in cancellation_registration.hpp.
  template <class F>
    requires std::constructible_from<std::decay_t<F>, F> && std::invocable<std::decay_t<F>>
  [[nodiscard]] cancellation_registration register_callback(F&& callback) const;

  // Blocks until cancellation is requested. Throws std::logic_error if the token cannot be
  // canceled, also when that becomes so while waiting (S23).
  void wait() const;

  // Wait at most `timeout` / until `deadline`; return is_cancellation_requested() at return.
  // Return false at once when the token cannot be canceled (S23). Huge values (`max()`, +inf)
  // do not overflow: they wait without a time limit; zero, negative values and -inf return the
  // current state at once. A floating-point NaN timeout or deadline is refused: they throw
  // std::invalid_argument before anything else (also on the none token), as .NET refuses a NaN
  // TimeSpan (issue 16, defect 10). The time limit is kept as a deadline, so signals delivered
  // to the waiting thread do not extend it (issue 16, defect 3).
  template <class Rep, class Period>
  bool wait_for(const std::chrono::duration<Rep, Period>& timeout) const {
    // In floating point, so that no value can overflow; NaN is the one value it cannot order.
    const double timeout_ns = std::chrono::duration<double, std::nano>(timeout).count();
    if (std::isnan(timeout_ns)) throw_nan_wait_time("wait_for: the timeout is NaN");
    if (s_ == nullptr) return false;
    if (timeout <= timeout.zero()) return is_cancellation_requested();
    if (timeout_ns >= forever_ns) return wait_without_limit();
    return wait_until(std::chrono::steady_clock::now() +
                      std::chrono::ceil<std::chrono::nanoseconds>(timeout));
  }

  template <class Clock, class Duration>
  bool wait_until(const std::chrono::time_point<Clock, Duration>& deadline) const {
    // Computed in floating point so that time_point::max() cannot overflow.
    const double deadline_ns =
        std::chrono::duration<double, std::nano>(deadline.time_since_epoch()).count();
    if (std::isnan(deadline_ns)) throw_nan_wait_time("wait_until: the deadline is NaN");
    if (s_ == nullptr) return false;
    // A clock that is not steady may jump; re-read it at least once a second. Each slice's
    // length comes from a fresh Clock::now(), so the slices add up to the deadline.
    constexpr double slice_ns = Clock::is_steady ? 3.6e12 : 1e9;
    for (;;) {
      const double left =
          deadline_ns -
          std::chrono::duration<double, std::nano>(Clock::now().time_since_epoch()).count();
      if (left <= 0) return is_cancellation_requested();
      const auto slice = std::chrono::nanoseconds(
          static_cast<std::chrono::nanoseconds::rep>(left < slice_ns ? left + 1 : slice_ns));
      switch (s_->wait(slice)) {
        case detail::wait_result::requested: return true;
        case detail::wait_result::cannot_cancel: return false;
        case detail::wait_result::timed_out: break;
      }
    }
  }

  // A std::stop_token that is requested when this token is cancelled (S22). For the none token,
  // and once the token can no longer be canceled, stop_possible() is false.
  std::stop_token to_stop_token() const;

  friend bool operator==(const cancellation_token& a, const cancellation_token& b) noexcept {
    return a.s_ == b.s_;
  }

  void swap(cancellation_token& other) noexcept { std::swap(s_, other.s_); }

 private:
  friend class cancellation_source;
  friend class cancellation_registration;
  template <std::invocable Callback>
  friend class cancellation_callback;

  static constexpr double forever_ns = 1e17;  // ~3 years: treated as "no limit"

  // Takes one more reference on `s`.
  explicit cancellation_token(detail::state* s) noexcept : s_(s) {
    if (s_) s_->add_ref();
  }

  bool wait_without_limit() const;
  [[noreturn]] static void throw_nan_wait_time(const char* what);

  detail::state* s_ = nullptr;
};

}  // namespace cancelkit

#include <cancelkit/cancellation_registration.hpp>
