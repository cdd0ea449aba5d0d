// cancelkit/detail/timer_entry.hpp — one armed timer of a timer_service, intrusive.
//
// A timer_service keeps its armed timers as pointers to timer_entry objects that live elsewhere:
// a source's timer lives in its source_extension (impl/src), a coroutine delay's timer lives in
// its awaiter, inside the coroutine frame (coroutine.hpp). The service orders them in a binary
// heap of pointers (deadline, then arming sequence); each entry knows its index in that heap, so
// removing one is O(log n), and the heap's capacity is reused: arming allocates nothing once the
// heap has grown to the number of timers armed at once (issue 18). The protocol invariants
// ([T1]..[T5]) are at the top of impl/src/timer_service.cpp.
#pragma once

#include <cancelkit/detail/sync.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace cancelkit {
class timer_service;
}

namespace cancelkit::detail {

struct timer_entry {
  using time_point = std::chrono::steady_clock::time_point;

  // When the entry is due, run_due() calls `take` under the service's mutex, before it clears
  // `armed` [T2]: it returns whether to hand the entry off, after which `fire` is called exactly
  // once, outside the mutex, on a thread of the service (or never, for a service past its
  // shutdown point). An entry that `take` refuses is not touched again.
  using take_fn = bool (*)(timer_entry&) noexcept;
  using fire_fn = void (*)(timer_entry&) noexcept;

  timer_entry(take_fn t, fire_fn f) noexcept : take(t), fire(f) {}
  timer_entry(const timer_entry&) = delete;
  timer_entry& operator=(const timer_entry&) = delete;

  const take_fn take;
  const fire_fn fire;

  // [T1]: written only under the service's mutex; the entry is in the heap iff `armed`. Atomic so
  // that an owner may pre-check it without the mutex (source_extension: disarm, forget [T2]).
  sync::atomic<bool> armed{false};
  sync::var<time_point> deadline;               // [T1] guarded by the service's mutex
  sync::var<std::uint64_t> sequence{0};         // [T1] ties keep arming order
  sync::var<std::size_t> heap_index{0};         // [T1] position in the heap while armed
};

// Arms `e` on `service` for `deadline`, or moves it there if it is already armed (S17 for a
// source's timer). Throws std::system_error when the service cannot run its timers and
// std::bad_alloc when the heap cannot grow, arming nothing and leaving an earlier arming as it
// was (S25). Defined in impl/src/timer_service.cpp.
void arm_timer_entry(timer_service& service, timer_entry& e, timer_entry::time_point deadline);

// Takes `e` off `service` if it is armed, and returns whether it was: false means it was never
// armed or run_due() has taken it due already (and decided under the mutex, through `take`,
// whether it fires). Never blocks beyond the service's mutex.
bool withdraw_timer_entry(timer_service& service, timer_entry& e) noexcept;

}  // namespace cancelkit::detail
