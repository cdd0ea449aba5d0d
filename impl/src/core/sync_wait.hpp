// impl/src/core/sync_wait.hpp — the futex-style waits of the seam (detail/sync.hpp).
//
// Internal: included by the library's sources and the model checker only, so that the system
// headers of the wait path (<linux/futex.h>, <sys/syscall.h>, <unistd.h>, <condition_variable>)
// never reach a user's translation unit (issue 21, part 5). The core calls these only from its
// slow paths (impl/src/core/state_slow_paths.hpp, impl/src/state.cpp): blocking waits, dispose
// waiting for a running callback, waking waiters at cancellation and orphaning.
//
// Three implementations behind one contract (below): the Linux futex system call; `portable`, a
// futex emulation on mutex + condition_variable buckets (non-Linux, or CANCELKIT_PORTABLE_WAIT;
// compiled in every std build, so the unit tests exercise it on Linux too: issue 16, defect 4);
// and, in a model-checking build, a futex modelled for Relacy.
#pragma once

#include <cancelkit/detail/sync.hpp>

#include <chrono>
#include <cstdint>

#if !defined(CANCELKIT_SYNC_RELACY)
#include <condition_variable>
#include <cstddef>
#include <mutex>
#if !defined(CANCELKIT_SYNC_PORTABLE_WAIT)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cerrno>
#include <ctime>
#endif
#endif

namespace cancelkit::detail {
inline namespace CANCELKIT_CORE_NS {
namespace sync {

// The clock of timed waits' deadlines. A timed wait turns its timeout into one deadline on this
// clock up front and passes that deadline to every sleep, so a sleep cut short (a signal, a
// spurious wake-up) resumes with what is left, not with the whole timeout (issue 16, defect 3).
using wait_clock = std::chrono::steady_clock;

#if defined(CANCELKIT_SYNC_RELACY)

// A futex, modelled by its contract: wait_on() sleeps only if the word still holds `expected`,
// checked atomically with going to sleep, and then until a wake_all() on the word, or it returns
// spuriously (a choice the scheduler explores). A waiter whose wake-up came before it went to
// sleep (a lost wake-up) therefore never returns: Relacy reports a livelock. The check is an RMW
// because an RMW reads the latest value in modification order, as the kernel's check does; the
// wake count is read before it, so a wake_all() after the check always ends the sleep. No
// happens-before edge is added from waker to sleeper: the callers re-check with their own
// acquire loads, and their memory orders stay under test. (Timed waits keep the simple model:
// a yield, then "woken", never "timed out": the model explores orders, not time.)
inline void wait_on(atomic<std::uint32_t>& word, std::uint32_t expected,
                    here w = here::current()) noexcept {
  const unsigned wakes = word.futex_wakes;
  if (word.fetch_add(0, relaxed, w) != expected) return;
  if (rl::rand(4) == 0) {  // spurious wake-up: the callers must re-check
    rl::yield(1, at(w));
    return;
  }
  while (word.futex_wakes == wakes) rl::yield(1, at(w));
}
inline bool wait_on_until(atomic<std::uint32_t>&, std::uint32_t, wait_clock::time_point,
                          here w = here::current()) noexcept {
  rl::yield(1, at(w));
  return true;
}
inline void wake_all(atomic<std::uint32_t>& word) noexcept { ++word.futex_wakes; }

#else  // std build

// ---- futex-style waits ----------------------------------------------------------------------
//
// Contract of wait_on / wait_on_until / wake_all, whichever implementation is selected:
//  - wait_on(word, expected) sleeps only if `word == expected`, checked atomically with going to
//    sleep against wake_all(word): a wake_all() that follows a change of `word` (in happens-before
//    order) is never missed. It may return spuriously; the caller re-checks.
//  - wait_on_until(word, expected, deadline) is wait_on bounded by an absolute deadline. It
//    returns false iff the deadline has passed (then or at the call), true when woken, when
//    `word != expected`, or spuriously. Callers loop with the SAME deadline.
//  - wake_all(word) wakes every thread sleeping on `word`.
// None of them orders memory for the caller: callers re-check with their own acquire loads.

// Portable futex emulation: a fixed table of (mutex, condition_variable) buckets keyed by the
// word's address. The waiter checks the word under its bucket's mutex and sleeps on the bucket's
// condition variable, which releases the mutex atomically; wake_all takes the same mutex before
// notifying. So a waker's change to the word either happens before the waiter's check (the
// waker's unlock synchronizes with the waiter's lock: the check sees the change) or the waiter is
// already asleep when the waker notifies: no lost wake-up. condition_variable::wait_until takes
// the absolute steady-clock deadline, so interruptions do not extend a wait. Words that share a
// bucket only get spurious wake-ups. Mutex errors (impossible for these uses) end the program
// through noexcept rather than returning an unchecked failure.
namespace portable {

struct bucket {
  std::mutex mutex;
  std::condition_variable wakeup;
};

inline bucket& bucket_of(const void* word) noexcept {
  constexpr std::size_t bucket_count = 64;
  struct table {
    bucket buckets[bucket_count];
  };
  // Never destroyed: a detached thread may still wait or wake during static destruction.
  union never_destroyed {
    table t;
    never_destroyed() : t() {}
    ~never_destroyed() {}
  };
  static never_destroyed lot;  // thread-safe initialisation (magic static)
  // Words are 4-byte aligned: drop the bits that are always zero.
  const auto key = reinterpret_cast<std::uintptr_t>(word) >> 2;
  return lot.t.buckets[key % bucket_count];
}

inline void wait_on(atomic<std::uint32_t>& word, std::uint32_t expected) noexcept {
  bucket& b = bucket_of(&word);
  std::unique_lock<std::mutex> lock(b.mutex);
  // relaxed: the bucket mutex orders this check after a waker's change (see above).
  if (word.load(relaxed) != expected) return;
  b.wakeup.wait(lock);
}

inline bool wait_on_until(atomic<std::uint32_t>& word, std::uint32_t expected,
                          wait_clock::time_point deadline) noexcept {
  if (wait_clock::now() >= deadline) return false;
  bucket& b = bucket_of(&word);
  std::unique_lock<std::mutex> lock(b.mutex);
  // relaxed: the bucket mutex orders this check after a waker's change (see above).
  if (word.load(relaxed) != expected) return true;
  return b.wakeup.wait_until(lock, deadline) == std::cv_status::no_timeout;
}

inline void wake_all(atomic<std::uint32_t>& word) noexcept {
  bucket& b = bucket_of(&word);
  {
    // Empty critical section: a waiter that checked the old value under this mutex is asleep on
    // the condition variable once we get it, so the notification below reaches it.
    const std::lock_guard<std::mutex> lock(b.mutex);
  }
  b.wakeup.notify_all();
}

}  // namespace portable

// True when the core uses sync::portable (non-Linux, or CANCELKIT_PORTABLE_WAIT).
#if defined(CANCELKIT_SYNC_PORTABLE_WAIT)
inline constexpr bool uses_portable_wait = true;

inline void wait_on(atomic<std::uint32_t>& word, std::uint32_t expected) noexcept {
  portable::wait_on(word, expected);
}
inline bool wait_on_until(atomic<std::uint32_t>& word, std::uint32_t expected,
                          wait_clock::time_point deadline) noexcept {
  return portable::wait_on_until(word, expected, deadline);
}
inline void wake_all(atomic<std::uint32_t>& word) noexcept { portable::wake_all(word); }
#else
inline constexpr bool uses_portable_wait = false;

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "the futex calls need a plain 32-bit atomic word");

inline long futex_call(std::atomic<std::uint32_t>& word, int op, std::uint32_t value,
                       const timespec* timeout) noexcept {
  // The kernel reads the word itself; std::atomic<uint32_t> is a plain aligned 32-bit word.
  return ::syscall(SYS_futex, static_cast<void*>(&word), op, value, timeout, nullptr, 0);
}

// Sleeps while `word == expected`; may return spuriously. The caller re-checks.
inline void wait_on(atomic<std::uint32_t>& word, std::uint32_t expected) noexcept {
  futex_call(word.native(), FUTEX_WAIT_PRIVATE, expected, nullptr);
}

// As wait_on, until `deadline`. The relative futex timeout is recomputed from the deadline on
// every call, so a sleep that a signal cut short (EINTR) or a spurious wake-up ended is resumed
// by the caller's next call with only the time that is left (issue 16, defect 3). Relative
// rather than FUTEX_WAIT_BITSET's absolute CLOCK_MONOTONIC time: that needs no assumption about
// which clock steady_clock reads.
inline bool wait_on_until(atomic<std::uint32_t>& word, std::uint32_t expected,
                          wait_clock::time_point deadline) noexcept {
  const wait_clock::duration left = deadline - wait_clock::now();
  if (left <= wait_clock::duration::zero()) return false;
  // Rounded up: waking before the deadline would only cost another call.
  const auto left_ns = std::chrono::ceil<std::chrono::nanoseconds>(left);
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(left_ns);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(secs.count());
  ts.tv_nsec = static_cast<long>((left_ns - secs).count());
  const long rc = futex_call(word.native(), FUTEX_WAIT_PRIVATE, expected, &ts);
  return !(rc == -1 && errno == ETIMEDOUT);
}

inline void wake_all(atomic<std::uint32_t>& word) noexcept {
  futex_call(word.native(), FUTEX_WAKE_PRIVATE, static_cast<std::uint32_t>(INT32_MAX), nullptr);
}
#endif

#endif

}  // namespace sync
}  // namespace CANCELKIT_CORE_NS
}  // namespace cancelkit::detail
