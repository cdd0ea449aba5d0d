// timeout_registration_churn — the request-scoped shape: a source with a timeout (the system
// timer, or a manual timer that another worker advances in small steps) and handlers that come
// and go on its token while the deadline passes. Two kinds of workers:
//   - churners on one shared timed source: register_callback, unregister (and register again),
//     dispose, a brief cancellation_callback, before, across and after the timer fires;
//   - cyclers, each with a source of its own: cancel_after (re-arm), register a few callbacks,
//     unregister some, then try_reset() racing the timer; a successful reset starts the next
//     cycle on the same source, a failed one waits for the timer's cancel and starts afresh.
//
// Defends S5/S8/S11 (every registration on a cancelled source ran exactly once or some
// unregister() returned true, never both; a registration made after the request was visible
// ran inline, S6), S9 (a disposed callback never runs after dispose() returns), S16 (a timer's
// cancel carries deadline_exceeded, visible in the callbacks), S17 (the timer fires: a cycle
// waits for it, bounded) and S18 (a successful try_reset() dropped every registration: none ran,
// none unregisters; the timer never cancels the reset source).
// Peer bugs: coreclr#20145 class (a disposed callback still ran), dotnet/runtime#60182 (TryReset
// racing the timer).
#include "common.hpp"

#include <chrono>
#include <memory>

namespace stress {
namespace {

using ns = std::chrono::nanoseconds;

constexpr unsigned churn_actions = 160;  // a churner's actions before it waits for the timer
constexpr unsigned churn_after = 8;      // and after the timer fired
constexpr unsigned slots_per_churner = churn_actions + churn_after + 1;
constexpr unsigned cycles_per_cycler = 6;
constexpr unsigned regs_per_cycle = 4;
constexpr std::chrono::seconds fire_bound{10};  // real time for a timer to fire, any clock

struct slot {
  cancelkit::cancellation_registration reg;
  std::atomic<int> ran{0};
  bool unregistered = false;  // some unregister() returned true
  bool disposed = false;      // disposed mid-round: ran must not change afterwards
  int ran_at_dispose = 0;
};

class timeout_registration_churn final : public scenario {
 public:
  explicit timeout_registration_churn(unsigned threads)
      : threads_(threads),
        slots_(std::make_unique<slot[]>(threads * slots_per_churner)),
        used_(threads, 0),
        cycle_slots_(std::make_unique<slot[]>(threads * regs_per_cycle)) {}

  void setup(const round_info&, rng& g) override {
    system_ = g.percent(50);
    if (!system_) {
      timers_ = std::make_unique<cancelkit::manual_timer_service>();
      timers_->set_error_handler([](std::exception_ptr) {});
    }
    const ns delay = system_ ? ns(100000 + g.below(900000)) : ns(50000 + g.below(450000));
    shared_ = system_ ? cancelkit::cancellation_source(delay)
                      : cancelkit::cancellation_source(delay, *timers_);
    token_ = shared_.token();
    const unsigned workers = system_ ? threads_ : threads_ - 1;
    churners_ = 1 + g.below(workers - 1);  // at least one churner and one cycler
    for (unsigned t = 0; t < threads_; ++t) used_[t] = 0;
    done_.store(0, std::memory_order_relaxed);
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    if (!system_ && tid == 0) return run_clock(g);
    const unsigned role = system_ ? tid : tid - 1;
    const std::uint64_t ops = role < churners_ ? churn(tid, g) : cycle(tid, g);
    done_.fetch_add(1, std::memory_order_release);  // release: ends run_clock's loop
    return ops;
  }

  void check(const round_info&) override {
    STRESS_EXPECT(token_.is_cancellation_requested(), "the shared timed source never fired");
    for (unsigned t = 0; t < threads_; ++t) {
      for (unsigned k = 0; k < used_[t]; ++k) {
        slot& s = slots_[t * slots_per_churner + k];
        const int ran = s.ran.load(std::memory_order_relaxed);
        if (s.disposed) {
          STRESS_EXPECT(ran == s.ran_at_dispose, "a callback ran after dispose() returned (S9)");
        } else {
          STRESS_EXPECT(ran + (s.unregistered ? 1 : 0) == 1, "a registration on a timed-out "
                        "source ran ", ran, " times, unregister() true: ", s.unregistered,
                        " (exactly one, S5 S8 S11)");
        }
        s.reg = {};
      }
    }
    token_ = {};
    shared_ = {};
    timers_.reset();
  }

 private:
  // The manual clock: small steps until every other worker is done.
  std::uint64_t run_clock(rng& g) {
    std::uint64_t ops = 0;
    // acquire: pairs with the workers' release; nothing else is read after it.
    while (done_.load(std::memory_order_acquire) < threads_ - 1) {
      timers_->advance(ns(g.below(11) * 1000));  // 0..10 us
      ++ops;
      jitter(g, 128);
    }
    return ops;
  }

  // A callback that counts its runs and checks the reason the timer gave (S16).
  auto counting(slot& s, const cancelkit::cancellation_token& t) {
    slot* const sp = &s;
    return [sp, t] {
      if (sp->ran.fetch_add(1, std::memory_order_relaxed) != 0) {
        STRESS_EXPECT(false, "a callback ran twice (S4)");
      }
      STRESS_EXPECT(is_deadline(t.cancellation_reason()),
                    "a timer-cancelled source's callback sees no deadline_exceeded (S16)");
    };
  }

  slot& fresh(unsigned tid) {
    slot& s = slots_[tid * slots_per_churner + used_[tid]++];
    s.ran.store(0, std::memory_order_relaxed);
    s.unregistered = s.disposed = false;
    s.ran_at_dispose = 0;
    return s;
  }

  void register_on_shared(unsigned tid) {
    const bool known = token_.is_cancellation_requested();
    slot& s = fresh(tid);
    s.reg = token_.register_callback(counting(s, token_));
    if (known) {
      STRESS_EXPECT(s.ran.load(std::memory_order_relaxed) == 1,
                    "a registration after the timer's cancel was visible did not run inline (S6)");
    }
  }

  // One churning action on the shared token.
  void churn_once(unsigned tid, rng& g) {
    slot* const mine = &slots_[tid * slots_per_churner];
    const unsigned used = used_[tid];
    const unsigned r = g.below(100);
    if (r < 40 || used == 0) {
      register_on_shared(tid);
    } else if (r < 65) {  // unregister one; if it was removed, register again
      slot& s = mine[g.below(used)];
      if (s.disposed || s.unregistered) return;
      if (s.reg.unregister()) {
        s.unregistered = true;
        STRESS_EXPECT(s.ran.load(std::memory_order_relaxed) == 0,
                      "unregister() returned true for a callback that had run (S8)");
        if (used_[tid] < slots_per_churner) register_on_shared(tid);
      }
    } else if (r < 85) {  // dispose one
      slot& s = mine[g.below(used)];
      if (s.disposed) return;
      s.reg.dispose();
      s.disposed = true;
      s.ran_at_dispose = s.ran.load(std::memory_order_relaxed);
    } else {  // a RAII callback, briefly
      const bool known = token_.is_cancellation_requested();
      std::atomic<int> ran{0};
      {
        cancelkit::cancellation_callback cb(token_, [&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
        if (known) {
          STRESS_EXPECT(ran.load(std::memory_order_relaxed) == 1,
                        "a cancellation_callback after the cancel did not run inline (S6)");
        }
        jitter(g, 512);
      }
      STRESS_EXPECT(ran.load(std::memory_order_relaxed) <= 1, "a RAII callback ran twice (S4)");
    }
  }

  std::uint64_t churn(unsigned tid, rng& g) {
    std::uint64_t ops = 0;
    for (unsigned a = 0; a < churn_actions && !token_.is_cancellation_requested(); ++a) {
      churn_once(tid, g);
      jitter(g, 256);
      ++ops;
    }
    STRESS_EXPECT(token_.wait_for(fire_bound), "a timed source did not fire within ",
                  fire_bound.count(), " s (S17)");
    for (unsigned a = 0; a < churn_after && used_[tid] < slots_per_churner; ++a) {
      churn_once(tid, g);
      ++ops;
    }
    // The rest: unregister (true only if the dispatch has not reached it yet), then dispose,
    // which waits for it if it is running (S9): afterwards it ran or was removed.
    slot* const mine = &slots_[tid * slots_per_churner];
    for (unsigned k = 0; k < used_[tid]; ++k) {
      slot& s = mine[k];
      if (s.disposed || s.unregistered) continue;
      if (s.reg.unregister()) s.unregistered = true;
      s.reg.dispose();
      ops += 2;
    }
    return ops;
  }

  // A cycler: arm, register, maybe unregister, try_reset racing the timer; repeat.
  std::uint64_t cycle(unsigned tid, rng& g) {
    std::uint64_t ops = 0;
    slot* const regs = &cycle_slots_[tid * regs_per_cycle];
    cancelkit::cancellation_source own =
        system_ ? cancelkit::cancellation_source() : cancelkit::cancellation_source(*timers_);
    for (unsigned c = 0; c < cycles_per_cycler; ++c) {
      const ns delay = system_ ? ns(20000 + g.below(180000)) : ns(1000 + g.below(20000));
      own.cancel_after(delay);
      const cancelkit::cancellation_token t = own.token();
      const unsigned n = 1 + g.below(regs_per_cycle);
      for (unsigned k = 0; k < n; ++k) {
        slot& s = regs[k];
        s.ran.store(0, std::memory_order_relaxed);
        s.unregistered = false;
        s.reg = t.register_callback(counting(s, t));
        if (g.percent(25) && s.reg.unregister()) s.unregistered = true;
        jitter(g, 256);
      }
      ops += 1 + n;
      if (system_) {
        // Sometimes right away, sometimes about when the timer is due.
        if (g.percent(50)) std::this_thread::sleep_for(ns(g.below(static_cast<unsigned>(delay.count()))));
      } else {
        jitter(g, 1024);
      }
      if (own.try_reset()) {
        // S18: the registrations were dropped: none ran, none can be unregistered; the timer
        // is disarmed (re-armed by the next cycle).
        for (unsigned k = 0; k < n; ++k) {
          slot& s = regs[k];
          STRESS_EXPECT(s.ran.load(std::memory_order_relaxed) == 0,
                        "a callback ran although try_reset() succeeded (S18)");
          STRESS_EXPECT(!s.reg.unregister(), "unregister() true after a successful try_reset() "
                                             "(S8, S18)");
          s.reg = {};
        }
        STRESS_EXPECT(!t.is_cancellation_requested() ||
                          !is_deadline(t.cancellation_reason()),
                      "the timer cancelled the source after a successful try_reset() (S18)");
      } else {
        // The timer has started firing (or fired): the cancel completes, with its reason.
        STRESS_EXPECT(t.wait_for(fire_bound), "try_reset() failed but the source was not "
                      "cancelled within ", fire_bound.count(), " s (S18)");
        STRESS_EXPECT(is_deadline(t.cancellation_reason()),
                      "a timer-cancelled source lacks deadline_exceeded (S16)");
        for (unsigned k = 0; k < n; ++k) {
          slot& s = regs[k];
          if (s.reg.unregister()) s.unregistered = true;
          s.reg.dispose();  // waits for a running callback (S9)
          const int ran = s.ran.load(std::memory_order_relaxed);
          STRESS_EXPECT(ran + (s.unregistered ? 1 : 0) == 1, "a registration on a timed-out "
                        "source ran ", ran, " times, unregister() true: ", s.unregistered,
                        " (exactly one, S5 S8 S11)");
        }
        own = system_ ? cancelkit::cancellation_source()
                      : cancelkit::cancellation_source(*timers_);
      }
      ops += 1 + n;
    }
    return ops;
  }

  const unsigned threads_;
  std::unique_ptr<cancelkit::manual_timer_service> timers_;
  cancelkit::cancellation_source shared_;
  cancelkit::cancellation_token token_;
  std::unique_ptr<slot[]> slots_;
  std::vector<unsigned> used_;  // slots used per churner (each writes its own)
  std::unique_ptr<slot[]> cycle_slots_;
  std::atomic<unsigned> done_{0};
  unsigned churners_ = 1;
  bool system_ = false;
};

}  // namespace

STRESS_SCENARIO(timeout_registration_churn, "timeout_registration_churn", 190,
                "S5 S6 S8 S9 S11 S16 S17 S18",
                "coreclr#20145 class; dotnet/runtime#60182 (TryReset racing the timer)",
                "register/unregister/dispose churn and try_reset cycles on timed-out tokens, "
                "system and manual timers",
                3);

}  // namespace stress
