// cancelkit/coroutine.hpp — awaitable cancellation and a cancellable delay for C++20 coroutines.
//
// Framework-agnostic: each awaiter has await_ready / await_suspend(std::coroutine_handle<>) /
// await_resume and works with any coroutine type. An awaiter lives in the coroutine frame (the
// temporary of `co_await cancelled(t)`), and so do its registration on the token (an intrusive
// callback node, as in cancellation_callback) and its timer entry (detail/timer_entry.hpp):
// awaiting allocates nothing in the steady state (S26, S29).
//
//   co_await cancelled(token);            // S26: resumes once cancellation is requested
//   co_await delay(1s, token);            // S27: after 1 s, or throws operation_canceled
//   co_await delay(1s, token, timers);    //      on `timers` (a manual_timer_service in tests)
//   co_await delay(1s);                   //      no token: only the timer
//
// Each awaiter is awaited at most once (precondition). The cancellation side of an awaiter is a
// registration like a callback's: a successful try_reset() drops it (S18), and a dispatch that
// throw_on_first_exception stopped (S13) does not reach it (docs/spec/SEMANTICS.md, after S27). Resumption happens on the thread that
// decided it: the cancelling thread (inside cancel(), like a callback, S5), the timer service's
// thread (a worker of system_timer_service(); advance() for a manual_timer_service), or the
// thread that made the token unable to be cancelled (S23: the one that dropped the last source).
//
// ---------------------------------------------------------------------------------------------
// The resumption handshake (cited as [C1]..[C6]). Parties: the coroutine's own thread in
// await_suspend (arming), the resumers — the cancel callback, the timer (delay), the orphaning
// (cancelled) — and the destroyer (the awaiter's destructor, run when a suspended coroutine is
// destroyed). They agree through one atomic word, `phase`:
//
//   idle --await_suspend--> arming --finish--> waiting --claim--> by_cancel | by_event
//                             |                   `--withdraw--> withdrawn
//                             `--early claim--> early_cancel | early_event --await_suspend--> by_*
//
// [C1] Every transition out of `arming` or `waiting` is a compare-exchange, so exactly one party
//      leaves each: one resumer wins, or the destroyer does. (by_event: the timer for delay(),
//      the orphaning for cancelled().) A load then a store resumes twice (mutant 60).
// [C2] Only the winner of a claim from `waiting` resumes the coroutine, once. A resumer that
//      comes while await_suspend is still registering (`arming`) resumes nothing: it leaves an
//      early claim, await_suspend sees it in finish() and returns false, so the coroutine goes on
//      without suspending (mutant 61 ignores it: nobody resumes). Nothing resumes a `withdrawn`
//      awaiter.
// [C3] The winner withdraws the other parties before the coroutine runs again: a cancel takes
//      the timer off its service (or the orphan watch off the source); the timer disposes the
//      cancel node; the orphaning needs nothing (the core drops the callbacks before it tells
//      anyone, S23). So a resumed awaiter is registered nowhere, and its destructor has nothing
//      to do — a winner that skipped this would leave a timer or a node pointing into a frame
//      that may be gone by the time they fire (mutant 63: the timer).
// [C4] A loser touches the awaiter no more after its failed compare-exchange, and each party
//      claims only while the destroyer can still wait for it: the cancel callback while the core
//      marks it running (dispose waits for a callback running on another thread, never for
//      itself), the timer under the service's mutex ([T5] in impl/src/timer_service.cpp), the
//      orphaning under the extension's mutex. The same holds for the coroutine's own thread
//      after an early claim: it goes on only after the operation that waits for the claimer
//      (for the timer's early claim, a withdrawal that takes the service's mutex, since run_due
//      clears `armed` after claiming). So the destroyer, once it has moved `waiting` to
//      `withdrawn`, withdraws each registration with the operation that waits for its party,
//      and after those nothing can touch the frame: no resumption, no access, no leak (mutant 62
//      leaves the node linked: a later cancel() runs it in the freed frame).
// [C5] A destruction that races a resumption that has started — a claim from `waiting` that
//      succeeded: the cancel callback's, or the timer's in run_due() (it may then wait in a
//      worker queue before the coroutine runs) — is the caller's bug, as destroying any
//      coroutine that another thread is resuming: the destructor sees that its withdraw failed
//      and can do nothing. The window closes at that compare-exchange; before it, destroying
//      the suspended coroutine from any thread is safe.
// [C6] The handle is written before `arming` is published and read by the winner only after
//      its acquire claim, which reads finish()'s release (or, for an early claim, by nobody but
//      the coroutine's own thread).
// ---------------------------------------------------------------------------------------------
#pragma once

#include <cancelkit/cancellation_token.hpp>
#include <cancelkit/detail/orphan_watch.hpp>
#include <cancelkit/detail/state.hpp>
#include <cancelkit/detail/sync.hpp>
#include <cancelkit/detail/timer_entry.hpp>
#include <cancelkit/detail/token_access.hpp>
#include <cancelkit/exceptions.hpp>
#include <cancelkit/timer_service.hpp>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <stdexcept>
#include <utility>

namespace cancelkit {

namespace detail {

// The handshake word and the handle it guards ([C1]..[C6]).
class resumption {
 public:
  static constexpr std::uint32_t idle = 0;
  static constexpr std::uint32_t arming = 1;
  static constexpr std::uint32_t waiting = 2;
  static constexpr std::uint32_t withdrawn = 3;
  static constexpr std::uint32_t by_cancel = 4;
  static constexpr std::uint32_t by_event = 5;
  static constexpr std::uint32_t early_cancel = 6;
  static constexpr std::uint32_t early_event = 7;

  // await_suspend, before anything is registered [C6].
  void begin(std::coroutine_handle<> h) noexcept {
    handle_.set(h);
    // relaxed: nothing shares the awaiter yet; the registrations that share it publish this
    // store through their locks (state lock, service mutex, extension mutex).
    phase_.store(arming, sync::relaxed);
  }

  // await_suspend's arming threw before anything was registered: as if never awaited.
  void abandon() noexcept { phase_.store(idle, sync::relaxed); }  // relaxed: not shared

  // A resumer's claim [C1] [C2]: true when the caller must withdraw the others and resume.
  bool claim(std::uint32_t won, std::uint32_t early) noexcept {
    std::uint32_t p = waiting;
    for (;;) {
      if (p == waiting) {
        // acq_rel: acquire reads finish()'s release, so the handle and every registration of
        // await_suspend are visible [C6]; release: a destroyer's failed withdraw is ordered after.
        // acquire on failure: the next round decides on the value read.
        if (phase_.compare_exchange_strong(p, won, sync::acq_rel, sync::acquire)) return true;
      } else if (p == arming) {
        // acq_rel: release publishes what this resumer did before (the cancelling thread's
        // writes, S3) to finish(), whose failure is acquire.
        if (phase_.compare_exchange_strong(p, early, sync::acq_rel, sync::acquire)) return false;
      } else {
        return false;  // another party won, or the destroyer [C4]: touch nothing more
      }
    }
  }

  // The end of await_suspend: `waiting` (stay suspended, touch nothing more) or the early claim
  // to complete [C2].
  std::uint32_t finish() noexcept {
    std::uint32_t p = arming;
    // release: publishes the handle and the registrations to the winner's acquire claim [C6];
    // acquire on failure: the early claimer's prior writes (a cancel's, S3) happen-before the
    // coroutine going on.
    if (phase_.compare_exchange_strong(p, waiting, sync::release, sync::acquire)) return waiting;
    return p;
  }

  // await_suspend completes an early claim on the coroutine's own thread.
  void complete(std::uint32_t won) noexcept { phase_.store(won, sync::relaxed); }  // not shared

  // The destructor: true when it won (`waiting` -> `withdrawn`) and must withdraw everything [C4].
  bool withdraw() noexcept {
    std::uint32_t p = waiting;
    // acq_rel: acquire reads finish()'s release (the registrations to withdraw), also when the
    // frame is destroyed by another thread than the one that suspended it; release: a resumer's
    // failed claim (acquire) is ordered after it. relaxed on failure: nothing is read then [C5].
    return phase_.compare_exchange_strong(p, withdrawn, sync::acq_rel, sync::relaxed);
  }

  // await_resume: who resumed us. relaxed: the coroutine runs after the claim on the claimer's
  // thread (resume() is a call), or after finish()/complete() on its own.
  std::uint32_t outcome() const noexcept { return phase_.load(sync::relaxed); }

  void resume() { handle_.get().resume(); }

 private:
  sync::atomic<std::uint32_t> phase_{idle};
  sync::var<std::coroutine_handle<>> handle_;
};

}  // namespace detail

// What `co_await cancelled(token)` awaits (S26). Neither copyable nor movable.
class [[nodiscard]] cancelled_awaiter : private detail::callback_node,
                                        private detail::orphan_watch {
 public:
  explicit cancelled_awaiter(cancellation_token token) noexcept : token_(std::move(token)) {
    invoke = &on_cancel;
    claim = &on_orphan_claim;
    resume = &on_orphan_resume;
  }
  cancelled_awaiter(const cancelled_awaiter&) = delete;
  cancelled_awaiter& operator=(const cancelled_awaiter&) = delete;

  // Destroying a coroutine suspended here withdraws the registration: nothing resumes it
  // afterwards, nothing leaks ([C4]; S28 for a destruction racing a resumption).
  ~cancelled_awaiter() {
    if (!r_.withdraw()) return;  // never suspended, or resumed: registered nowhere [C3]
    detail::state* s = detail::state_of(token_);
    s->dispose(this, /*raii=*/false, /*defer_release=*/false);  // waits for a losing callback
    detail::unwatch_orphaning(s, *this);
  }

  // Does not suspend when cancellation was requested, or when it never can be (S26, S23).
  bool await_ready() const noexcept {
    detail::state* s = detail::state_of(token_);
    return s == nullptr || s->is_requested() || !s->can_be_canceled();
  }

  // Registers and suspends; returns false (go on at once) if cancellation was requested, or
  // became impossible, meanwhile. Throws std::bad_alloc (the source's extension, created once
  // per source, could not be allocated), registering nothing.
  bool await_suspend(std::coroutine_handle<> h) {
    detail::state* s = detail::state_of(token_);
    r_.begin(h);
    detail::watch_result watched;
    try {
      watched = detail::watch_orphaning(s, *this);  // first: an orphaning after it is seen
    } catch (...) {
      r_.abandon();
      throw;
    }
    if (watched == detail::watch_result::orphaned) {
      r_.complete(detail::resumption::by_event);  // S23: nothing registered, resume now
      return false;
    }
    switch (s->link(this, /*raii=*/false)) {
      case detail::link_result::linked:
        break;
      case detail::link_result::already_requested:  // cancelled between await_ready and now
        static_cast<void>(
            r_.claim(detail::resumption::by_cancel, detail::resumption::early_cancel));
        break;
      case detail::link_result::cannot_cancel:  // orphaned meanwhile: the watch is told [C2]
        break;
    }
    const std::uint32_t p = r_.finish();
    if (p == detail::resumption::waiting) return true;  // from here on *this may be resumed
    if (p == detail::resumption::early_cancel) {
      detail::unwatch_orphaning(s, *this);  // [C3]
      r_.complete(detail::resumption::by_cancel);
    } else {
      r_.complete(detail::resumption::by_event);  // the core dropped (or never linked) the node
    }
    return false;
  }

  // Returns once cancellation was requested; throws std::logic_error if the token cannot be
  // canceled, or became unable while suspended (S23), as wait() does.
  void await_resume() const {
    if (token_.is_cancellation_requested()) return;
    throw std::logic_error(
        detail::state_of(token_) == nullptr
            ? "cancelkit: cancelled() on a token that cannot be canceled"
            : "cancelkit: cancelled() on a token that can no longer be canceled");
  }

 private:
  static void on_cancel(detail::callback_node* n) {
    auto* self = static_cast<cancelled_awaiter*>(n);
    if (!self->r_.claim(detail::resumption::by_cancel, detail::resumption::early_cancel)) return;
    detail::unwatch_orphaning(detail::state_of(self->token_), *self);  // [C3]
    self->r_.resume();  // on the cancelling thread (S26); *self may be gone after this
  }

  static bool on_orphan_claim(detail::orphan_watch& w) noexcept {
    auto& self = static_cast<cancelled_awaiter&>(w);
    return self.r_.claim(detail::resumption::by_event, detail::resumption::early_event);
  }

  static void on_orphan_resume(detail::orphan_watch& w) noexcept {
    // [C3]: the core dropped the node before on_orphaned() (S23). Resumption runs the coroutine
    // up to its next suspension; an exception it lets escape goes to its promise, not here.
    static_cast<cancelled_awaiter&>(w).r_.resume();
  }

  cancellation_token token_;
  detail::resumption r_;
};

// Suspends until cancellation is requested on `token` (S26). See cancelled_awaiter.
inline cancelled_awaiter cancelled(const cancellation_token& token) noexcept {
  return cancelled_awaiter(token);
}

// What `co_await delay(...)` awaits (S27). Neither copyable nor movable.
class [[nodiscard]] delay_awaiter : private detail::callback_node, private detail::timer_entry {
 public:
  delay_awaiter(std::chrono::nanoseconds d, cancellation_token token,
                timer_service& timers) noexcept
      : detail::timer_entry(&on_due, &on_fire), d_(d), token_(std::move(token)), timers_(timers) {
    invoke = &on_cancel;
  }
  delay_awaiter(const delay_awaiter&) = delete;
  delay_awaiter& operator=(const delay_awaiter&) = delete;

  // Destroying a coroutine suspended here withdraws the timer and the registration ([C4]).
  ~delay_awaiter() {
    if (!r_.withdraw()) return;  // never suspended, or resumed: registered nowhere [C3]
    static_cast<void>(detail::withdraw_timer_entry(timers_, *this));
    if (detail::state* s = detail::state_of(token_))
      s->dispose(this, /*raii=*/false, /*defer_release=*/false);
  }

  // Does not suspend for `d <= 0` or a token already cancelled (S27).
  bool await_ready() const noexcept {
    return d_ <= std::chrono::nanoseconds::zero() || token_.is_cancellation_requested();
  }

  // Arms the timer (none for nanoseconds::max() or a deadline past the clock's range) and
  // registers on the token. Throws std::system_error (the service cannot run its timers) or
  // std::bad_alloc (its heap cannot grow), registering nothing (S25).
  bool await_suspend(std::coroutine_handle<> h) {
    detail::state* s = detail::state_of(token_);
    r_.begin(h);
    try {
      const timer_service::clock::time_point now = timers_.now();
      if (d_ != std::chrono::nanoseconds::max() &&
          d_ <= timer_service::clock::time_point::max() - now)
        detail::arm_timer_entry(timers_, *this, now + d_);  // may be taken due at once: early
    } catch (...) {
      r_.abandon();
      throw;
    }
    if (s != nullptr && s->link(this, /*raii=*/false) == detail::link_result::already_requested)
      static_cast<void>(r_.claim(detail::resumption::by_cancel, detail::resumption::early_cancel));
    // (cannot_cancel: only the timer can resume it; with no timer either, it never resumes.)
    const std::uint32_t p = r_.finish();
    if (p == detail::resumption::waiting) return true;  // from here on *this may be resumed
    if (p == detail::resumption::early_cancel) {
      static_cast<void>(detail::withdraw_timer_entry(timers_, *this));  // [C3]
      r_.complete(detail::resumption::by_cancel);
    } else {  // early_event: run_due took the timer during arming
      // [C4]: run_due still clears `armed` after its claim, under the service's mutex; taking
      // that mutex (the withdrawal finds `armed` false and does nothing else) waits for it, so
      // the frame may end as soon as the coroutine goes on. Skipping it let that store land in
      // a destroyed frame (found by the generated programs under Relacy; mutant 64).
      static_cast<void>(detail::withdraw_timer_entry(timers_, *this));
      if (s != nullptr) s->dispose(this, false, false);  // [C3]
      r_.complete(detail::resumption::by_event);
    }
    return false;
  }

  // Returns when the delay elapsed; throws operation_canceled carrying the token when the
  // cancellation resumed it (or came first, S27).
  void await_resume() const {
    const std::uint32_t p = r_.outcome();
    if (p == detail::resumption::by_cancel ||
        (p == detail::resumption::idle && token_.is_cancellation_requested()))
      throw operation_canceled(token_);
  }

 private:
  static void on_cancel(detail::callback_node* n) {
    auto* self = static_cast<delay_awaiter*>(n);
    if (!self->r_.claim(detail::resumption::by_cancel, detail::resumption::early_cancel)) return;
    static_cast<void>(detail::withdraw_timer_entry(self->timers_, *self));  // [C3]
    self->r_.resume();  // on the cancelling thread (S27); *self may be gone after this
  }

  // Under the service's mutex, when due [T5]: the timer's claim.
  static bool on_due(detail::timer_entry& e) noexcept {
    auto& self = static_cast<delay_awaiter&>(e);
    return self.r_.claim(detail::resumption::by_event, detail::resumption::early_event);
  }

  // On a thread of the service, after a successful claim.
  static void on_fire(detail::timer_entry& e) noexcept {
    auto& self = static_cast<delay_awaiter&>(e);
    // [C3]: waits for our callback if it runs (and loses) on another thread.
    if (detail::state* s = detail::state_of(self.token_))
      s->dispose(&self, /*raii=*/false, /*defer_release=*/false);
    self.r_.resume();  // self may be gone after this
  }

  std::chrono::nanoseconds d_;
  cancellation_token token_;
  timer_service& timers_;
  detail::resumption r_;
};

// S27: resumes after `d` on `timers`' thread, or on the cancelling thread with
// operation_canceled; `d <= 0` or a cancelled token does not suspend; nanoseconds::max() (or a
// deadline beyond the clock) means no timer. `timers` must outlive the await (precondition).
inline delay_awaiter delay(std::chrono::nanoseconds d, const cancellation_token& token,
                           timer_service& timers) noexcept {
  return delay_awaiter(d, token, timers);
}
inline delay_awaiter delay(std::chrono::nanoseconds d, const cancellation_token& token) {
  return delay_awaiter(d, token, system_timer_service());
}
inline delay_awaiter delay(std::chrono::nanoseconds d, timer_service& timers) noexcept {
  return delay_awaiter(d, cancellation_token(), timers);
}
inline delay_awaiter delay(std::chrono::nanoseconds d) {
  return delay_awaiter(d, cancellation_token(), system_timer_service());
}

}  // namespace cancelkit
