// stress/scenarios/timing.hpp — time bounds for the scenarios that check punctuality as an
// invariant (signals_vs_waits, blocking_timer_callbacks).
//
// A bound must never fail on a loaded 2-core machine running two sanitized runners at once
// (ctest -j 2), yet stay far below what the bug it defends costs: a wait restarted by every
// signal never ends while the signals go on, and a timer stuck behind a blocking callback waits
// for the whole callback. The slack is therefore generous, and larger under a sanitizer.
#pragma once

#include <chrono>

namespace stress {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool sanitized_build = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool sanitized_build = true;
#else
inline constexpr bool sanitized_build = false;
#endif
#else
inline constexpr bool sanitized_build = false;
#endif

// How late a blocking wait may return after its deadline, or after the cancel() that should
// have woken it, before it counts as a violation.
inline constexpr std::chrono::milliseconds wait_slack{sanitized_build ? 250 : 150};

// How late a system-timer cancellation may be observed after its deadline: the timer thread and
// a worker of its pool must both be scheduled, on a machine where the stress workers spin.
inline constexpr std::chrono::milliseconds timer_slack{sanitized_build ? 400 : 200};

}  // namespace stress
