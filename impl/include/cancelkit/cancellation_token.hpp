// cancelkit/cancellation_token.hpp — a cheap, copyable view of one source's cancellation state.
//
// A token is one pointer to the state it shares with its source (rules: docs/spec/SEMANTICS.md,
// S1–S29). Copying, moving, comparing, swapping, hashing and the checks never allocate and never
// throw; copies take a reference (one relaxed atomic increment), so a token keeps the state alive
// however long the source lives (S23). The default-constructed token is the "none" token: never
// cancelled, `can_be_canceled()` false, registering on it stores nothing (S7).
//
// Thread safety, the shared_ptr rule: distinct token objects may be used from any threads at the
// same time without synchronization, also when they are copies of one another (the shared state
// is synchronized by the library). One token object may be used by several threads at once only
// through its const members; assigning to it, moving from it, swapping or destroying it while
// another thread uses that same object is a data race.
//
// Memory ordering, in one sentence: a cancellation that a token reports (true from a check, a
// return from wait(), a callback running) shows everything the cancelling thread did before the
// cancel() that made the request (S3).
#pragma once

#include <cancelkit/detail/state.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <stop_token>
#include <type_traits>
#include <utility>

namespace cancelkit {

class cancellation_registration;
class cancellation_source;
namespace detail {
struct token_access;
}
template <std::invocable Callback>
class cancellation_callback;

class cancellation_token {
 public:
  // The none token.
  cancellation_token() noexcept = default;
  [[nodiscard]] static cancellation_token none() noexcept { return {}; }

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

  // True once cancellation was requested (S1); stays true. Never blocks. One acquire load: a
  // true result synchronizes with the request, so everything the cancelling thread did before
  // its successful cancel() is visible to the caller (S3). False orders nothing.
  [[nodiscard]] bool is_cancellation_requested() const noexcept { return s_ != nullptr && s_->is_requested(); }

  // False for the none token and once nothing can cancel the source any more (S23, S24); true
  // once cancellation was requested. One acquire load; never blocks.
  [[nodiscard]] bool can_be_canceled() const noexcept { return s_ != nullptr && s_->can_be_canceled(); }

  // Throws operation_canceled carrying this token if cancellation was requested (S16); no
  // effect otherwise. The check is is_cancellation_requested(), with its ordering.
  void throw_if_cancellation_requested() const;

  // The reason given to cancel() (S16); null before the request, for the none token, and for a
  // cancel() without a reason; deadline_exceeded for a timer's cancellation. Never blocks,
  // allocates or throws (it copies an exception_ptr: one atomic increment). Ordering: the reason
  // is written before the request is published and read after the acquire load that sees it
  // ([I5] in detail/state.hpp), so a non-null result is the complete object given to cancel(),
  // and once is_cancellation_requested() was true on this thread the reason is that one, never
  // null in between.
  [[nodiscard]] std::exception_ptr cancellation_reason() const noexcept {
    return is_cancellation_requested() ? s_->reason() : std::exception_ptr();
  }

  // Registers `callback` to run once when cancellation is requested (S5), or runs it right away
  // on this thread if it already was (S6, S14). Stores nothing on the none token or on a token
  // that can no longer be cancelled (S7). Throws std::invalid_argument for an empty
  // std::function or a null function pointer, and std::bad_alloc, before changing anything (S25).
  // Allocation: one block for the stored callable, from a per-thread cache when it is at most
  // 64 bytes (no heap allocation in the steady state when registrations are released on the
  // thread that made them; README, "Guarantees"); none when nothing is stored.
  // Ordering: registration and cancellation are ordered by the source's lock, so a callback run
  // by the cancelling thread sees everything the registering thread did before register_callback,
  // and an inline run (S6) sees the request as is_cancellation_requested() does (S3).
  // What runs is always a copy, `std::decay_t<F>` built from `callback`, invoked as an rvalue —
  // when stored and when run inline alike (like std::stop_callback<std::decay_t<F>>), so the
  // constraint asks for exactly that; an lvalue functor with only `operator()() &` is refused.
  // Defined in cancellation_registration.hpp.
  template <class F>
    requires std::constructible_from<std::decay_t<F>, F> && std::invocable<std::decay_t<F>>
  [[nodiscard]] cancellation_registration register_callback(F&& callback) const;

  // Blocks until cancellation is requested. Throws std::logic_error if the token cannot be
  // canceled, also when that becomes so while waiting (S23). Allocates nothing. On return the
  // request happens-before the caller's next step, as for a true is_cancellation_requested()
  // (S3). Waiters sleep (a futex on Linux), they do not spin; cancel() wakes them all.
  void wait() const;

  // Wait at most `timeout` / until `deadline`; return is_cancellation_requested() at return.
  // Allocate nothing; true carries the ordering of is_cancellation_requested() (S3).
  // Return false at once when the token cannot be canceled (S23). Huge values (`max()`, +inf)
  // do not overflow: they wait without a time limit; zero, negative values and -inf return the
  // current state at once. A floating-point NaN timeout or deadline is refused: they throw
  // std::invalid_argument before anything else (also on the none token), as .NET refuses a NaN
  // TimeSpan (issue 16, defect 10). The time limit is kept as a deadline, so signals delivered
  // to the waiting thread do not extend it (issue 16, defect 3).
  template <class Rep, class Period>
  [[nodiscard]] bool wait_for(const std::chrono::duration<Rep, Period>& timeout) const {
    // In floating point, so that no value can overflow; NaN is the one value it cannot order.
    const double timeout_ns = std::chrono::duration<double, std::nano>(timeout).count();
    if (is_nan(timeout_ns)) throw_nan_wait_time("wait_for: the timeout is NaN");
    if (s_ == nullptr) return false;
    if (timeout <= timeout.zero()) return is_cancellation_requested();
    if (timeout_ns >= forever_ns) return wait_without_limit();
    return wait_until(std::chrono::steady_clock::now() +
                      std::chrono::ceil<std::chrono::nanoseconds>(timeout));
  }

  template <class Clock, class Duration>
  [[nodiscard]] bool wait_until(const std::chrono::time_point<Clock, Duration>& deadline) const {
    // Computed in floating point so that time_point::max() cannot overflow.
    const double deadline_ns =
        std::chrono::duration<double, std::nano>(deadline.time_since_epoch()).count();
    if (is_nan(deadline_ns)) throw_nan_wait_time("wait_until: the deadline is NaN");
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
  [[nodiscard]] std::stop_token to_stop_token() const;

  // ---- the std::stoppable_token shape (C++26 [stoptoken.concepts]; see stoppable_token.hpp) --
  // The same answers under the standard's names, so generic code written against the concept
  // takes a cancellation_token as it is.

  // is_cancellation_requested(): one acquire load, with its guarantee (S3).
  [[nodiscard]] bool stop_requested() const noexcept { return is_cancellation_requested(); }
  // can_be_canceled(): false for the none token and once nothing can cancel the source (S23).
  [[nodiscard]] bool stop_possible() const noexcept { return can_be_canceled(); }
  // The RAII registration type generic code names as `Token::callback_type<CB>`.
  template <class CB>
  using callback_type = cancellation_callback<CB>;

  // Tokens are equal iff they view the same source's state; all none tokens are equal.
  friend bool operator==(const cancellation_token& a, const cancellation_token& b) noexcept {
    return a.s_ == b.s_;
  }

  void swap(cancellation_token& other) noexcept { std::swap(s_, other.s_); }
  friend void swap(cancellation_token& a, cancellation_token& b) noexcept { a.swap(b); }

 private:
  friend class cancellation_source;
  friend class cancellation_registration;
  template <std::invocable Callback>
  friend class cancellation_callback;
  friend struct std::hash<cancellation_token>;
  friend struct detail::token_access;  // the coroutine awaiters (detail/token_access.hpp)

  static constexpr double forever_ns = 1e17;  // ~3 years: treated as "no limit"

  // std::isnan without <cmath> in the public header (issue 21, part 5: <cmath> alone is a tenth
  // of the preprocessed size); the builtin is what std::isnan calls in both compilers.
  static constexpr bool is_nan(double x) noexcept { return __builtin_isnan(x); }

  // Takes one more reference on `s`.
  explicit cancellation_token(detail::state* s) noexcept : s_(s) {
    if (s_) s_->add_ref();
  }

  bool wait_without_limit() const;
  [[noreturn]] static void throw_nan_wait_time(const char* what);

  detail::state* s_ = nullptr;
};

}  // namespace cancelkit

// Hashes the state a token views, consistently with operator== (equal tokens hash equal; every
// none token hashes alike). Never throws, never allocates.
template <>
struct std::hash<cancelkit::cancellation_token> {
  std::size_t operator()(const cancelkit::cancellation_token& t) const noexcept {
    return std::hash<const void*>{}(t.s_);
  }
};

#include <cancelkit/cancellation_registration.hpp>
