// cancelkit/detail/sync.hpp — the one seam between the concurrent core and the machine.
//
// Every atomic operation, thread identity and spin hint used by `detail/state.hpp` goes through
// this header, and so do the futex-style waits of the core's slow paths (declared in
// impl/src/core/sync_wait.hpp, which only the library's sources and the model checker include:
// no system header of the wait path reaches users). A normal build maps them onto `std::atomic`,
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
// futex emulation on mutex + condition_variable buckets. The portable selection gets its own
// inline namespace (chosen here, since it names the core's namespace in every header), so objects
// built both ways do not silently share inline definitions that differ.
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
#endif
#include <mutex>
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

  // The futex model (impl/src/core/sync_wait.hpp): how many wake_all() calls this word has
  // seen. Stands for the kernel's wait queue, not for program memory, so it is plain (the
  // simulation runs one fiber at a time).
  unsigned futex_wakes = 0;

 private:
  mutable rl::atomic<T> a_;
};

using thread_id = unsigned;
inline thread_id current_thread() noexcept { return rl::thread_index(); }

// Callbacks per dispatch batch after the first (detail/state.hpp [I6]): 2 here, so that the
// model's tests of two or three callbacks cross batch ends and fill a batch; 16 in the library.
inline constexpr unsigned dispatch_batch = 2;

// Polls before a disposer sleeps on its callback's completion (state::wait_for_completion): none
// here, so that the model reaches the sleep, and with it any lost wake-up, in every schedule
// rather than only when the dispatcher is starved for the whole spin.
inline constexpr unsigned completion_spins = 0;

// In the model, a spin iteration must yield so that the scheduler explores the other threads
// and does not report a livelock.
inline void spin_pause(here w = here::current()) noexcept { rl::yield(1, at(w)); }


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

  // For the futex calls of impl/src/core/sync_wait.hpp only.
  std::atomic<T>& native() noexcept { return a_; }

 private:
  std::atomic<T> a_{};
};

// A thread's identity: the address of this thread's instance of a thread_local. Distinct for
// any two threads alive at the same time (a thread's thread-local block is reused only after
// the thread ended), which is all the core asks of it: a disposer compares it with the
// dispatcher's while that thread runs a callback, so is alive. One thread-pointer-relative
// address, where std::this_thread::get_id() is a call of pthread_self (issue 20).
using thread_id = const void*;
inline thread_local const char thread_marker = 0;
inline thread_id current_thread() noexcept { return &thread_marker; }

// Callbacks per dispatch batch after the first (detail/state.hpp [I6]): one lock round trip per
// 16 callbacks (the most that the claims word holds).
inline constexpr unsigned dispatch_batch = 16;

// Polls before a disposer sleeps on its callback's completion (state::wait_for_completion): a
// short callback ends within them, without a futex call on either side.
inline constexpr unsigned completion_spins = 128;

// The CPU's spin-wait hint: x86 PAUSE through the compiler builtin (what _mm_pause expands to,
// without <immintrin.h> in a public header), ARM YIELD.
inline void spin_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
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
