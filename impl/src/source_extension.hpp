// Internal: the per-source services that live outside the concurrent core — the source's timer
// entry, the std::stop_source bridge behind to_stop_token(), and a std::stop_token parent.
// Installed on a state at first use (detail::state::install_extension) and destroyed with it.
//
// Locking: timer fields are guarded by the owning timer_service's mutex, which is always taken
// before any state lock, never after ([I12] in detail/state.hpp). The bridge has its own mutex,
// never held while calling out (request_stop runs user callbacks).
#pragma once

#include <cancelkit/detail/state.hpp>
#include <cancelkit/timer_service.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <stop_token>
#include <vector>

namespace cancelkit::detail {

// Cancels `s` on behalf of a timer or a std::stop_token parent (not a user call): all callbacks
// run; exceptions go to `service`'s error handler, or std::terminate without one (S15).
void cancel_in_background(state* s, const std::exception_ptr& reason,
                          timer_service& service) noexcept;

// Fires the linked source when the std::stop_token parent is requested (S22). Holds no
// reference: it runs only while the state exists, since the state's destructor destroys it.
struct std_parent_trigger {
  state* target;
  timer_service* service;
  void operator()() const noexcept;
};

class source_extension final : public state_extension {
 public:
  source_extension(state* owner, timer_service& service) noexcept
      : owner_(owner), service_(service) {}
  ~source_extension() override;

  void on_requested() noexcept override;
  void on_orphaned() noexcept override;

  state* owner() const noexcept { return owner_; }
  timer_service& service() const noexcept { return service_; }

  // The bridge's stop_source, created on first use; a source without stop state once the owner
  // can no longer be cancelled (S23). Throws std::bad_alloc.
  std::stop_source bridge();

  // Links the owner below `parent` (which must have stop_possible()). Throws std::bad_alloc.
  void attach_std_parent(const std::stop_token& parent);

  // Timer bookkeeping, written under service().mutex ([T1]..[T4] in timer_service.cpp). `armed`
  // is also read without the mutex, as a pre-check in disarm/forget: it is only set by arm(),
  // which needs a source handle, so a state that was just cancelled can trust a false reading,
  // and a state that is being destroyed can trust an acquire reading of false [T2]; either then
  // never touches the service (which may already be gone in tests that destroy a
  // manual_timer_service before the last token).
  std::atomic<bool> armed{false};
  bool firing = false;
  timer_service::clock::time_point deadline{};
  std::uint64_t sequence = 0;

 private:
  state* const owner_;
  timer_service& service_;

  std::mutex bridge_mutex_;
  std::optional<std::stop_source> bridge_;  // guarded by bridge_mutex_
  bool orphaned_ = false;                   // guarded by bridge_mutex_

  std::optional<std::stop_callback<std_parent_trigger>> std_parent_;  // set once, at creation
};

// The extension of `s`, installed on first use. Throws std::bad_alloc.
source_extension& extension_of(state* s);

// The timer_service internals that sources use (defined in timer_service.cpp).
struct timer_access {
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
};

}  // namespace cancelkit::detail
