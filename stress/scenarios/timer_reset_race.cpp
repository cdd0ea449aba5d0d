// timer_reset_race — cancel_after() firing (a manual timer advanced by another worker, or the
// system timer thread) races try_reset() (sometimes after a re-arm), a concurrent cancel(), and
// workers registering and observing.
//
// Defends S17 (one timer per source; re-arming replaces it; when it fires the reason is
// deadline_exceeded) and S18 (try_reset() succeeds iff the source is not cancelled and its timer
// has not started firing; a successful reset disarms the timer — it must never cancel the source
// afterwards — and drops every registration: those never run and unregister() is false).
// Peer bug: dotnet/runtime#60182 (TryReset racing the timer: the timer fired after a successful
// reset and cancelled the reset source).
#include "common.hpp"

#include <chrono>
#include <memory>

namespace stress {
namespace {

constexpr unsigned pre_regs = 4;
constexpr unsigned regs_per_observer = 4;

class timer_reset_race final : public scenario {
  using ns = std::chrono::nanoseconds;

 public:
  explicit timer_reset_race(unsigned threads)
      : threads_(threads),
        pre_(pre_regs),
        pre_ran_(pre_regs),
        obs_regs_(threads * regs_per_observer),
        obs_ran_(threads * regs_per_observer) {}

  void setup(const round_info& r, rng& g) override {
    system_ = g.percent(12);
    delay_ = system_ ? ns(20000 + g.below(200000)) : ns(1000000);
    if (system_) {
      source_ = cancelkit::cancellation_source(cancelkit::system_timer_service());
    } else {
      timers_ = std::make_unique<cancelkit::manual_timer_service>();
      timers_->set_error_handler([](std::exception_ptr) {});
      source_ = cancelkit::cancellation_source(*timers_);
    }
    token_ = source_.token();
    user_reason_ = std::make_exception_ptr(stamped_reason(0, r.seed));
    done_.store(0, std::memory_order_relaxed);
    // Registered first, so it runs last (S5): tells check() that a dispatch has finished.
    sentinel_ = token_.register_callback([this] { done_.store(1, std::memory_order_release); });
    pre_ran_.resize(pre_regs);
    for (unsigned i = 0; i < pre_regs; ++i) {
      pre_[i] = token_.register_callback([this, i] {
        if (pre_ran_[i].fetch_add(1, std::memory_order_relaxed) != 0) {
          STRESS_EXPECT(false, "callback ran twice (S4)");
        }
      });
    }
    source_.cancel_after(delay_);
    rearm_ = g.percent(40);
    rearm_delay_ = g.percent(50) ? delay_ : 2 * delay_;
    second_advance_ = g.percent(50);
    with_canceller_ = threads_ >= 3 && g.percent(40);
    reset_won_ = false;
    cancel_won_ = false;
    obs_ran_.resize(threads_ * regs_per_observer);
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    std::uint64_t ops = 0;
    if (tid == 0) {  // the armer/resetter
      jitter(g, 512);
      if (rearm_) {
        source_.cancel_after(rearm_delay_);  // replaces the timer (S17)
        ++ops;
        jitter(g, 128);
      }
      reset_won_ = source_.try_reset();
      ++ops;
      if (reset_won_ && token_.is_cancellation_requested()) {
        // Only a concurrent cancel() may have requested it since: never the timer (S18).
        STRESS_EXPECT(!is_deadline(token_.cancellation_reason()),
                      "the timer cancelled the source right after a successful try_reset() (S18)");
      }
      return ops;
    }
    if (tid == 1 && !system_) {  // the clock
      jitter(g, 512);
      timers_->advance(delay_);
      ++ops;
      if (second_advance_) {
        jitter(g, 128);
        timers_->advance(delay_);
        ++ops;
      }
      return ops;
    }
    if (tid == 2 && with_canceller_) {
      jitter(g, 1024);
      cancel_won_ = source_.cancel({.reason = user_reason_});
      return 1;
    }
    // Observers: register (these may be dropped by a reset) and check monotonic facts.
    bool seen_requested = false;
    for (unsigned k = 0; k < regs_per_observer; ++k) {
      jitter(g, 128);
      const unsigned idx = tid * regs_per_observer + k;
      obs_regs_[idx] = token_.register_callback([this, idx] {
        if (obs_ran_[idx].fetch_add(1, std::memory_order_relaxed) != 0) {
          STRESS_EXPECT(false, "callback ran twice (S4)");
        }
      });
      const bool req = token_.is_cancellation_requested();
      STRESS_EXPECT(!seen_requested || req, "requested went back to false (S1)");
      seen_requested = req;
      ops += 2;
    }
    return ops;
  }

  void check(const round_info&) override {
    if (system_ && !reset_won_) {
      // The system timer fires on its own thread: wait for its dispatch to finish.
      STRESS_EXPECT(token_.wait_for(std::chrono::seconds(20)), "armed timer never fired (S17)");
      STRESS_EXPECT(spin_until([this] { return done_.load(std::memory_order_acquire) != 0; },
                               std::chrono::seconds(20)),
                    "timer-triggered dispatch did not finish");
    }
    if (system_ && reset_won_) {
      // A timer that fired after the reset would cancel within the next few delays; the state
      // is read below either way.
      static_cast<void>(token_.wait_for(delay_ * 3 + std::chrono::microseconds(200)));
    }
    const bool requested = token_.is_cancellation_requested();
    const std::exception_ptr reason = token_.cancellation_reason();
    const bool by_timer = requested && is_deadline(reason);
    if (reset_won_) {
      STRESS_EXPECT(!by_timer, "the timer cancelled the source after a successful try_reset() "
                               "(S18, dotnet/runtime#60182)");
      for (unsigned i = 0; i < pre_regs; ++i) {
        STRESS_EXPECT(pre_ran_.get(i) == 0, "a registration dropped by try_reset() ran (S18)");
        STRESS_EXPECT(!pre_[i].unregister(), "unregister() true after try_reset() (S8/S18)");
      }
      if (cancel_won_) STRESS_EXPECT(requested, "cancel() returned true but not requested");
    } else {
      STRESS_EXPECT(requested, "try_reset() failed but the source was never cancelled (S18)");
      for (unsigned i = 0; i < pre_regs; ++i) {
        STRESS_EXPECT(pre_ran_.get(i) == 1, "registration ", i, " ran ", pre_ran_.get(i),
                      " times (S5)");
      }
    }
    if (requested) {
      STRESS_EXPECT(by_timer != cancel_won_, "requested by timer=", by_timer,
                    " and cancel() won=", cancel_won_, ": exactly one cause (S2/S16/S17)");
      if (cancel_won_) STRESS_EXPECT(reason == user_reason_, "cancel()'s reason lost (S16)");
    } else {
      STRESS_EXPECT(!cancel_won_, "cancel() returned true but not requested");
    }
    for (unsigned i = 0; i < threads_ * regs_per_observer; ++i) {
      STRESS_EXPECT(obs_ran_.get(i) <= 1, "observer registration ran twice (S4)");
      obs_regs_[i] = {};
    }
    for (auto& p : pre_) p = {};
    sentinel_ = {};
    token_ = {};
    source_ = {};
    timers_.reset();
  }

 private:
  const unsigned threads_;
  std::unique_ptr<cancelkit::manual_timer_service> timers_;
  cancelkit::cancellation_source source_;
  cancelkit::cancellation_token token_;
  cancelkit::cancellation_registration sentinel_;
  std::vector<cancelkit::cancellation_registration> pre_;
  counters pre_ran_;
  std::vector<cancelkit::cancellation_registration> obs_regs_;
  counters obs_ran_;
  std::exception_ptr user_reason_;
  std::atomic<int> done_{0};
  ns delay_{0}, rearm_delay_{0};
  bool system_ = false, rearm_ = false, second_advance_ = false, with_canceller_ = false;
  bool reset_won_ = false;   // written by worker 0
  bool cancel_won_ = false;  // written by worker 2
};

}  // namespace

STRESS_SCENARIO(timer_reset_race, "timer_reset_race", 100, "S16 S17 S18",
                "dotnet/runtime#60182 (TryReset racing the timer callback)",
                "cancel_after firing vs try_reset vs cancel, manual and system timers", 2);

}  // namespace stress
