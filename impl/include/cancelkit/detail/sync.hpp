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
// The layers around the core (timer_service, source_extension: impl/src) go through it too, for
// their mutexes (`sync::mutex`), the plain fields those mutexes guard (`sync::var`, which the
// model checker watches for data races) and per-thread pointers (`sync::thread_slot`), so the
// model checker runs their protocols from the same source as well (issue 17).
//
// Memory orders are passed explicitly at every call site in the core; this header never picks
// one on the caller's behalf.
//
// Blocking waits: on Linux the core sleeps on futexes. Elsewhere, or when the build defines
// CANCELKIT_PORTABLE_WAIT (CMake option of the same name; every translation unit of a program
// must agree, which the CMake target's PUBLIC definition ensures), it uses `sync::portable`: a
// futex emulation on mutex + condition_variable buckets. `sync::portable` is compiled in every
// std build, so the unit tests exercise it on Linux too (issue 16, defect 4). The portable
// selection gets its own inline namespace, so objects built both ways do not silently share
// inline definitions that differ.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <utility>

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
#if defined(CANCELKIT_PORTABLE_WAIT) || !defined(__linux__)
#define CANCELKIT_SYNC_PORTABLE_WAIT 1
#define CANCELKIT_CORE_NS std_portable_core
#else
#define CANCELKIT_CORE_NS std_core
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cerrno>
#include <ctime>
#endif
#include <condition_variable>
#include <cstddef>
#include <mutex>
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

// The clock of timed waits' deadlines. A timed wait turns its timeout into one deadline on this
// clock up front and passes that deadline to every sleep, so a sleep cut short (a signal, a
// spurious wake-up) resumes with what is left, not with the whole timeout (issue 16, defect 3).
using wait_clock = std::chrono::steady_clock;

#if defined(CANCELKIT_SYNC_RELACY)

using memory_order = rl::memory_order;
inline constexpr memory_order relaxed = rl::mo_relaxed;
inline constexpr memory_order acquire = rl::mo_acquire;
inline constexpr memory_order release = rl::mo_release;
inline constexpr memory_order acq_rel = rl::mo_acq_rel;
inline constexpr memory_order seq_cst = rl::mo_seq_cst;

// Relacy records, for every step, where it was taken. The wrappers below take the caller's
// source location as a defaulted last argument, so the execution history Relacy prints for
// a failing schedule names the library's own line (state.hpp(199), timer_service.cpp(83)), not
// this header's; the core's call sites read the same in both builds.
// (std::source_location would do, but clang 14 with libstdc++ 12 lacks it; the builtins behind
// it are in both compilers and, as default arguments, name the caller.)
struct here {
  const char* function;
  const char* file;
  unsigned line;
  static constexpr here current(const char* function = __builtin_FUNCTION(),
                                const char* file = __builtin_FILE(),
                                unsigned line = __builtin_LINE()) noexcept {
    return here{function, file, line};
  }
};
inline rl::debug_info at(const here& where) noexcept {
  return rl::debug_info(where.function, where.file, where.line);
}

// Relacy's atomics need that debug-info argument on every access.
template <class T>
class atomic {
 public:
  constexpr atomic() noexcept = default;
  explicit atomic(T v) noexcept : a_(v) {}
  atomic(const atomic&) = delete;
  atomic& operator=(const atomic&) = delete;

  T load(memory_order mo, here w = here::current()) const noexcept { return a_(at(w)).load(mo); }
  void store(T v, memory_order mo, here w = here::current()) noexcept {
    a_(at(w)).store(v, mo);
  }
  T exchange(T v, memory_order mo, here w = here::current()) noexcept {
    return a_(at(w)).exchange(v, mo);
  }
  bool compare_exchange_weak(T& expected, T desired, memory_order success, memory_order failure,
                             here w = here::current()) noexcept {
    return a_(at(w)).compare_exchange_weak(expected, desired, success, failure);
  }
  bool compare_exchange_strong(T& expected, T desired, memory_order success,
                               memory_order failure, here w = here::current()) noexcept {
    return a_(at(w)).compare_exchange_strong(expected, desired, success, failure);
  }
  T fetch_add(T v, memory_order mo, here w = here::current()) noexcept {
    return a_(at(w)).fetch_add(v, mo);
  }
  T fetch_sub(T v, memory_order mo, here w = here::current()) noexcept {
    return a_(at(w)).fetch_sub(v, mo);
  }

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
inline void spin_pause(here w = here::current()) noexcept { rl::yield(1, at(w)); }

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

// A mutex the scheduler knows: lock() is a scheduling point, and unlock/lock order memory as a
// mutex does, so the protocols guarded by it are explored, not assumed (lock order included:
// a deadlock is reported).
class mutex {
 public:
  mutex() = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;
  void lock(here w = here::current()) { m_.lock(at(w)); }
  bool try_lock(here w = here::current()) { return m_.try_lock(at(w)); }
  void unlock(here w = here::current()) { m_.unlock(at(w)); }

 private:
  rl::mutex m_;
};

// A plain (non-atomic) variable guarded by some other means (a mutex, a single owning thread).
// Every access is reported to the checker through a shadow rl::var, so an access that is not
// ordered with a conflicting one (a broken guard) is reported as a data race; the value itself
// is stored as is, so T may be any copyable type (time points, maps).
template <class T>
class var {
 public:
  var() : v_() {}
  explicit var(T v) : v_(std::move(v)) {}
  var(const var&) = delete;
  var& operator=(const var&) = delete;

  T get(here w = here::current()) const { read_probe(w); return v_; }
  void set(T v, here w = here::current()) { write_probe(w); v_ = std::move(v); }
  // In-place access, for types not copied as a whole (containers): counts as a write.
  T& write(here w = here::current()) { write_probe(w); return v_; }

 private:
  void read_probe(const here& w) const { (void)static_cast<int>(probe_(at(w))); }
  void write_probe(const here& w) { probe_(at(w)) = 0; }
  mutable rl::var<int> probe_{0};
  T v_;
};

// One T* per thread: thread_slot<Tag, T>() is this thread's, null until set. Model threads are
// fibers sharing one OS thread, so a C++ thread_local would be shared by all of them: the slots
// are indexed by the model's thread number instead. A protocol that leaves its slots null when
// each thread ends (as [B3] in impl/src/source_extension.hpp does) starts every schedule clean.
inline constexpr unsigned max_model_threads = 16;
template <class Tag, class T>
T*& thread_slot() noexcept {
  static T* slots[max_model_threads] = {};
  const unsigned index = rl::thread_index();
  RL_ASSERT(index < max_model_threads);
  return slots[index];
}

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

// The mutex of the layers around the core: std::mutex itself (an alias, so code that names
// std::mutex and code that names sync::mutex share one type).
using mutex = std::mutex;

// A plain variable guarded by a mutex or by its single owning thread; in the model checker every
// access is checked for data races. Here it is just the value.
template <class T>
class var {
 public:
  var() : v_() {}
  explicit var(T v) : v_(std::move(v)) {}
  var(const var&) = delete;
  var& operator=(const var&) = delete;

  T get() const { return v_; }
  void set(T v) { v_ = std::move(v); }
  T& write() { return v_; }

 private:
  T v_;
};

// One T* per thread, null until set: thread_slot<Tag, T>() is this thread's (a thread_local
// with constant initialisation: no guard, no destructor). Tag makes distinct slots.
template <class Tag, class T>
T*& thread_slot() noexcept {
  thread_local T* slot = nullptr;
  return slot;
}

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
