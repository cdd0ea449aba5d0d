// Internal: the per-source services that live outside the concurrent core — the source's timer
// entry, the std::stop_source bridge behind to_stop_token(), and a std::stop_token parent.
// Installed on a state at first use (detail::state::install_extension) and destroyed with it.
//
// Locking: timer fields are guarded by the owning timer_service's mutex, which is always taken
// before any state lock, never after ([I12] in detail/state.hpp). The bridge has its own mutex,
// never held while calling out (request_stop runs user callbacks).
//
// ---------------------------------------------------------------------------------------------
// Std-triggered cancellation without recursion (S20, S22; issue 16, defect 6)
//
// A chain linked through std::stop_token (`linked(prev.token().to_stop_token())`, possibly with
// foreign std::stop_sources in between) would otherwise recurse once per link: request(parent)
// -> on_requested -> bridge.request_stop() -> child's std_parent_trigger -> request(child) -> ...
// Instead, a trigger that fires while its thread is already running a std-triggered cancellation
// (a *drain*) only queues its source, and the drain cancels the queued sources one after the
// other, at constant stack depth. Invariants, cited as [B1]..[B5]:
//
// [B1] A std_parent_trigger runs at most once (std::stop_callback invokes it at most once) and an
//      extension has at most one, so an extension is queued at most once in its life: one
//      intrusive pointer (`deferred_next_`) is all the storage a queue needs. Nothing allocates,
//      and a drain's queue never holds more than one entry per std-linked source.
// [B2] A queued extension carries one reference to its owner, taken by the trigger's
//      try_add_ref() and dropped by the drain after cancelling it. So the owner and its extension
//      stay alive while queued, even if every handle is dropped meanwhile (S10), and the
//      extension's destructor (which deregisters the trigger) cannot run before the drain is done
//      with it.
// [B3] A queue lives in the frame of the trigger that drains it, and only that thread's
//      `active_drain` (thread_local) points to it, from before the first cancel until after the
//      queue is empty. Queue and `deferred_next_` of queued extensions are touched by that thread
//      only: no atomics needed.
// [B4] The drain empties its queue before its trigger returns: so the request_stop() that fired
//      the outermost trigger, and the cancel() that called it, return only once every source
//      linked below (transitively, through std or native links) is cancelled and its callbacks
//      have run (S20).
// [B5] Only the drain's own requests defer. Every entry point that starts a cancellation for a
//      caller that expects it complete on return -- cancel(), cancel_after(<= 0), a timer firing,
//      the born-cancelled check of linked(std::stop_token), to_stop_token() -- runs inside a
//      std_trigger_scope, which hides the enclosing drain: a trigger fired in there drains its own
//      queue before that call returns, even when the call is made from a callback inside a drain
//      (recursion then follows the nesting of user calls, as with native links, not the chain).
//      What still defers is a std::stop_source::request_stop() that user code calls inside a
//      drain: the sources linked to it are cancelled before the outermost cancellation returns,
//      but after that request_stop() returns.
// [B6] The bridge's stop_source is requested by whichever comes first: the canceller's
//      on_requested(), or a to_stop_token() that finds the source already cancelled (it cannot
//      know whether on_requested() saw the bridge). std::stop_source::request_stop() returns
//      false at once to the loser, without waiting for the winner's callbacks, which include the
//      triggers of the std-linked children. So the winner of a to_stop_token() sets
//      `bridge_requested_` when its request_stop() has returned, and an on_requested() that lost
//      waits for that before it returns: the canceller's cancel() still returns only once every
//      std-linked descendant is cancelled (S20; found by the stress scenario std_linked_chains).
//      The winner is never the waiter's own thread (a thread calls on_requested() before any
//      callback of that cancellation runs), and the wait ends when the winner's std callbacks
//      return. One way it cannot: a callback run by the winner that waits for the canceller's
//      thread (e.g. disposes a registration whose callback that thread is running further up
//      its stack, having called cancel() from it); the old code returned early there instead.
// ---------------------------------------------------------------------------------------------
#pragma once

#include <cancelkit/detail/orphan_watch.hpp>
#include <cancelkit/detail/state.hpp>
#include <cancelkit/detail/timer_entry.hpp>
#include <cancelkit/timer_service.hpp>

#include "core/state_slow_paths.hpp"  // the core's cold paths: cancel, orphan, link

#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <stop_token>
#include <vector>

namespace cancelkit::detail {

// Cancels `s` on behalf of a timer (not a user call): all callbacks run; exceptions go to
// `service`'s error handler, or std::terminate without one (S15). Every source linked below `s`
// is cancelled before it returns [B5].
void cancel_in_background(state* s, const std::exception_ptr& reason,
                          timer_service& service) noexcept;

class source_extension;
struct std_drain_queue;  // a drain's queue (source_extension.cpp)

// Fires the linked source (reason null) when the std::stop_token parent is requested (S22): at
// once, or queued on this thread's running drain [B1]..[B5]. Holds no reference: it runs only
// while the extension exists, since the extension's destructor deregisters it.
struct std_parent_trigger {
  source_extension* child;
  void operator()() const noexcept;
};

// The queue of the drain this thread is running, or null: no drain, or one hidden by a
// std_trigger_scope [B3] [B5]. A plain thread-local pointer: no dynamic initialisation, no
// destructor.
struct active_drain_tag;
inline std_drain_queue*& active_drain() noexcept {
  return sync::thread_slot<active_drain_tag, std_drain_queue>();
}

// Hides this thread's running drain, if any, for the scope's lifetime [B5]: std triggers fired
// inside it cancel their sources (and drain what those queue) before the scope ends.
class std_trigger_scope {
 public:
  // Inline: every cancel() with work passes here, and the common case (no drain) is one
  // thread-local load and a test.
  std_trigger_scope() noexcept : hidden_(active_drain()) {
    if (hidden_ != nullptr) active_drain() = nullptr;  // the common case (no drain) writes nothing
  }
  ~std_trigger_scope() {
    if (hidden_ != nullptr) active_drain() = hidden_;
  }
  std_trigger_scope(const std_trigger_scope&) = delete;
  std_trigger_scope& operator=(const std_trigger_scope&) = delete;

 private:
  std_drain_queue* hidden_;  // the drain queue hidden by this scope, or null
};

struct timer_access;

// The source's timer is its timer_entry base (one entry per source, re-armed in place, S17).
class source_extension final : public state_extension, public timer_entry {
 public:
  source_extension(state* owner, timer_service& service) noexcept;
  ~source_extension() override;

  void on_requested() noexcept override;
  void on_orphaned() noexcept override;

  state* owner() const noexcept { return owner_; }
  timer_service& service() const noexcept { return service_; }

  // The bridge's stop_source, created on first use; a source without stop state once the owner
  // can no longer be cancelled (S23). Throws std::bad_alloc.
  std::stop_source bridge();

  // to_stop_token() on a cancelled owner: requests the bridge `b` (idempotent); if this call won
  // the request, tells a waiting on_requested() that the std callbacks have run [B6].
  void request_bridge(std::stop_source& b) noexcept;

  // Links the owner below `parent` (which must have stop_possible()). Throws std::bad_alloc.
  void attach_std_parent(const std::stop_token& parent);

  // Coroutines suspended in cancelled(token) (coroutine.hpp), told when the owner can no longer
  // be cancelled (S23): on_orphaned() claims and resumes them one at a time.
  watch_result watch(orphan_watch& w);
  void unwatch(orphan_watch& w) noexcept;

  // Timer bookkeeping (the timer_entry base: `armed`, `deadline`, `sequence`, `heap_index`),
  // written under service().mutex ([T1]..[T4] in timer_service.cpp). `armed` is also read
  // without the mutex, as a pre-check in disarm/forget: it is only set by arm(), which needs a
  // source handle, so a state that was just cancelled can trust a false reading, and a state
  // that is being destroyed can trust an acquire reading of false [T2]; either then never
  // touches the service (which may already be gone in tests that destroy a
  // manual_timer_service before the last token).
  sync::var<bool> firing{false};

 private:
  state* const owner_;
  timer_service& service_;

  sync::mutex bridge_mutex_;
  sync::var<std::optional<std::stop_source>> bridge_;  // guarded by bridge_mutex_
  sync::var<bool> orphaned_{false};                    // guarded by bridge_mutex_
  sync::var<orphan_watch*> watchers_{nullptr};         // guarded by bridge_mutex_ (intrusive)
  // [B6]: 1 once a to_stop_token() that won the bridge's request_stop() has returned from it.
  sync::atomic<std::uint32_t> bridge_requested_{0};

  std::optional<std::stop_callback<std_parent_trigger>> std_parent_;  // set once, at creation

  // Next entry on the drain queue of the thread that queued this extension [B1] [B3].
  sync::var<source_extension*> deferred_next_{nullptr};
  friend struct std_parent_trigger;
};

// The extension of `s`, installed on first use. Throws std::bad_alloc.
source_extension& extension_of(state* s);

// The timer_service internals that sources and delays use (defined in timer_service.cpp).
struct timer_access {
  // (Re)arms any entry; a first arming of a source's entry adds a canceller to `canceller_of`
  // [T4]. Throws std::system_error or std::bad_alloc, changing nothing.
  static void arm_entry(timer_service& service, timer_entry& e,
                        timer_service::clock::time_point deadline, state* canceller_of);
  // Takes `e` off the heap if armed; returns whether it was [T5].
  static bool withdraw_entry(timer_service& service, timer_entry& e) noexcept;
  // A source entry's `take` and `fire` (timer_entry): the reference and `firing` [T2] [T3],
  // then fire() below.
  static bool take(timer_entry& e) noexcept;
  static void fire_entry(timer_entry& e) noexcept;
  // (Re)arms `e` for `deadline`; a newly armed timer counts as a canceller [I10].
  // Throws std::bad_alloc, leaving any earlier timer as it was.
  static void arm(source_extension& e, timer_service::clock::time_point deadline);
  // Disarms `e` if armed, releasing the timer's canceller.
  static void disarm(source_extension& e) noexcept;
  // S18: fails if the timer is firing or the source is cancelled; else disarms and drops every
  // registration.
  static bool reset(source_extension& e) noexcept;
  // At the owner's destruction: removes the entry, touching no count; returns only once no
  // timer can touch `e` any more [T2].
  static void forget(source_extension& e) noexcept;
  // Cancels the source of a due timer that run_due() took off the service with a reference
  // [T2]; then clears `firing` [T3], releases the timer's canceller [T4] and the reference.
  static void fire(source_extension& e) noexcept;
  // Passes callback exceptions to the error handler, or calls std::terminate (S15).
  static void report(timer_service& service, dispatch_outcome&& outcome) noexcept;
  // The service's own mutex (the map, the error handler), for fork handling only. Nothing holds
  // it while taking another service lock, so system_timer_service's fork handler may take it
  // after its own mutex.
  static sync::mutex& mutex_of(timer_service& service) noexcept;
};

}  // namespace cancelkit::detail
