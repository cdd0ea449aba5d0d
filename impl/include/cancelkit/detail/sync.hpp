// cancelkit/detail/sync.hpp — the one seam between the concurrent core and the machine.
//
// Every atomic operation, thread identity, spin hint and futex-style wait/notify used by
// `detail/state.hpp` goes through this header. A normal build maps them onto `std::atomic`,
// `std::this_thread` and the Linux futex system call. A model-checking build defines
// `CANCELKIT_SYNC_RELACY` before including any cancelkit header; the same names then map onto
// Relacy's simulated atomics and scheduler, and the core is compiled into a different inline
// namespace (`CANCELKIT_CORE_NS`) so the two instantiations never violate the ODR when linked
// into one program.
//
// Memory orders are passed explicitly at every call site in the core; this header never picks
// one on the caller's behalf.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#if defined(CANCELKIT_SYNC_RELACY)
#include <relacy/relacy.hpp>
// relacy.hpp turns `new`, `delete`, `malloc`..`free` and `memory_order_*` into macros. They
// break ordinary C++ (`= delete`, `std::memory_order_relaxed`) in the core and in any header
// included after this one, so they are undone here. Allocation tracking is unaffected: Relacy
// also replaces the global operator new/delete, which is what it uses to detect leaks and
// accesses to freed memory (build the model checker with -fno-sized-deallocation so that
// `delete p` reaches the replaced unsized operator). `assert` stays mapped to RL_ASSERT.
#undef new
#undef delete
#undef malloc
#undef calloc
#undef realloc
#undef free
#undef memory_order_relaxed
#undef memory_order_consume
#undef memory_order_acquire
#undef memory_order_release
#undef memory_order_acq_rel
#undef memory_order_seq_cst
#define CANCELKIT_CORE_NS relacy_core
#else
#define CANCELKIT_CORE_NS std_core
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cerrno>
#include <ctime>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#endif

namespace cancelkit::detail {
inline namespace CANCELKIT_CORE_NS {
namespace sync {

// Schedule perturbation: the core calls perturb(site) at the steps where races are decided.
// Normal builds compile it away. A stress build defines CANCELKIT_PERTURBATION for the library
// and the harness alike and defines `cancelkit::detail::perturbation_point`, which may yield or
// spin (seeded) to widen race windows.
enum class site : unsigned {
  before_lock,           // about to take a state's lock
  after_claim,           // REQUESTED published, callbacks not yet run
  before_invoke,         // node unlinked and marked running, callback not yet called
  after_invoke,          // callback returned, running not yet cleared
  dispose_before_wait,   // disposer decided to wait for a running callback
  before_release,        // about to drop a reference
  orphan_children,       // orphaning, about to walk children
};

#if defined(CANCELKIT_SYNC_RELACY)

using memory_order = rl::memory_order;
inline constexpr memory_order relaxed = rl::mo_relaxed;
inline constexpr memory_order acquire = rl::mo_acquire;
inline constexpr memory_order release = rl::mo_release;
inline constexpr memory_order acq_rel = rl::mo_acq_rel;
inline constexpr memory_order seq_cst = rl::mo_seq_cst;

// Relacy's atomics need a debug-info argument on every access; this wrapper supplies it so the
// core's call sites read the same in both builds.
template <class T>
class atomic {
 public:
  constexpr atomic() noexcept = default;
  explicit atomic(T v) noexcept : a_(v) {}
  atomic(const atomic&) = delete;
  atomic& operator=(const atomic&) = delete;

  T load(memory_order mo) const noexcept { return a_($).load(mo); }
  void store(T v, memory_order mo) noexcept { a_($).store(v, mo); }
  T exchange(T v, memory_order mo) noexcept { return a_($).exchange(v, mo); }
  bool compare_exchange_weak(T& expected, T desired, memory_order success,
                             memory_order failure) noexcept {
    return a_($).compare_exchange_weak(expected, desired, success, failure);
  }
  bool compare_exchange_strong(T& expected, T desired, memory_order success,
                               memory_order failure) noexcept {
    return a_($).compare_exchange_strong(expected, desired, success, failure);
  }
  T fetch_add(T v, memory_order mo) noexcept { return a_($).fetch_add(v, mo); }
  T fetch_sub(T v, memory_order mo) noexcept { return a_($).fetch_sub(v, mo); }

  // The futex model below: how many wake_all() calls this word has seen. Stands for the kernel's
  // wait queue, not for program memory, so it is plain (the simulation runs one fiber at a time).
  unsigned futex_wakes = 0;

 private:
  mutable rl::atomic<T> a_;
};

using thread_id = unsigned;
inline thread_id current_thread() noexcept { return rl::thread_index(); }

// In the model, a spin iteration must yield so that the scheduler explores the other threads
// and does not report a livelock.
inline void spin_pause() noexcept { rl::yield(1, $); }

// A futex, modelled by its contract: wait_on() sleeps only if the word still holds `expected`,
// checked atomically with going to sleep, and then until a wake_all() on the word, or it returns
// spuriously (a choice the scheduler explores). A waiter whose wake-up came before it went to
// sleep (a lost wake-up) therefore never returns: Relacy reports a livelock. The check is an RMW
// because an RMW reads the latest value in modification order, as the kernel's check does; the
// wake count is read before it, so a wake_all() after the check always ends the sleep. No
// happens-before edge is added from waker to sleeper: the callers re-check with their own
// acquire loads, and their memory orders stay under test. (Timed waits keep the simple model:
// a yield, then "woken".)
inline void wait_on(atomic<std::uint32_t>& word, std::uint32_t expected) noexcept {
  const unsigned wakes = word.futex_wakes;
  if (word.fetch_add(0, relaxed) != expected) return;
  if (rl::rand(4) == 0) {  // spurious wake-up: the callers must re-check
    rl::yield(1, $);
    return;
  }
  while (word.futex_wakes == wakes) rl::yield(1, $);
}
inline bool wait_on_for(atomic<std::uint32_t>&, std::uint32_t, std::chrono::nanoseconds) noexcept {
  rl::yield(1, $);
  return true;
}
inline void wake_all(atomic<std::uint32_t>& word) noexcept { ++word.futex_wakes; }

#else  // std build

using memory_order = std::memory_order;
inline constexpr memory_order relaxed = std::memory_order_relaxed;
inline constexpr memory_order acquire = std::memory_order_acquire;
inline constexpr memory_order release = std::memory_order_release;
inline constexpr memory_order acq_rel = std::memory_order_acq_rel;
inline constexpr memory_order seq_cst = std::memory_order_seq_cst;

template <class T>
class atomic {
 public:
  constexpr atomic() noexcept = default;
  constexpr explicit atomic(T v) noexcept : a_(v) {}
  atomic(const atomic&) = delete;
  atomic& operator=(const atomic&) = delete;

  T load(memory_order mo) const noexcept { return a_.load(mo); }
  void store(T v, memory_order mo) noexcept { a_.store(v, mo); }
  T exchange(T v, memory_order mo) noexcept { return a_.exchange(v, mo); }
  bool compare_exchange_weak(T& expected, T desired, memory_order success,
                             memory_order failure) noexcept {
    return a_.compare_exchange_weak(expected, desired, success, failure);
  }
  bool compare_exchange_strong(T& expected, T desired, memory_order success,
                               memory_order failure) noexcept {
    return a_.compare_exchange_strong(expected, desired, success, failure);
  }
  T fetch_add(T v, memory_order mo) noexcept { return a_.fetch_add(v, mo); }
  T fetch_sub(T v, memory_order mo) noexcept { return a_.fetch_sub(v, mo); }

  // For the futex calls below only.
  std::atomic<T>& native() noexcept { return a_; }

 private:
  std::atomic<T> a_{};
};

using thread_id = std::thread::id;
inline thread_id current_thread() noexcept { return std::this_thread::get_id(); }

inline void spin_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

#if defined(__linux__)
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

// As wait_on, for at most `timeout`. Returns false when the timeout elapsed.
inline bool wait_on_for(atomic<std::uint32_t>& word, std::uint32_t expected,
                        std::chrono::nanoseconds timeout) noexcept {
  if (timeout <= std::chrono::nanoseconds::zero()) return false;
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(secs.count());
  ts.tv_nsec = static_cast<long>((timeout - secs).count());
  const long rc = futex_call(word.native(), FUTEX_WAIT_PRIVATE, expected, &ts);
  return !(rc == -1 && errno == ETIMEDOUT);
}

inline void wake_all(atomic<std::uint32_t>& word) noexcept {
  futex_call(word.native(), FUTEX_WAKE_PRIVATE, static_cast<std::uint32_t>(INT32_MAX), nullptr);
}
#else
// Portable fallback: C++20 atomic wait for the untimed case, short sleeps for the timed one.
inline void wait_on(atomic<std::uint32_t>& word, std::uint32_t expected) noexcept {
  word.native().wait(expected, std::memory_order_relaxed);
}
inline bool wait_on_for(atomic<std::uint32_t>& word, std::uint32_t expected,
                        std::chrono::nanoseconds timeout) noexcept {
  if (timeout <= std::chrono::nanoseconds::zero()) return false;
  if (word.load(std::memory_order_relaxed) != expected) return true;
  std::this_thread::sleep_for(std::min(timeout, std::chrono::nanoseconds(std::chrono::milliseconds(1))));
  return true;
}
inline void wake_all(atomic<std::uint32_t>& word) noexcept { word.native().notify_all(); }
#endif

#endif

#if defined(CANCELKIT_PERTURBATION) && !defined(CANCELKIT_SYNC_RELACY)
}  // namespace sync
}  // namespace CANCELKIT_CORE_NS
void perturbation_point(unsigned site) noexcept;  // defined by the stress harness
inline namespace CANCELKIT_CORE_NS {
namespace sync {
inline void perturb(site s) noexcept { ::cancelkit::detail::perturbation_point(static_cast<unsigned>(s)); }
#else
inline void perturb(site) noexcept {}
#endif

}  // namespace sync
}  // namespace CANCELKIT_CORE_NS
}  // namespace cancelkit::detail
