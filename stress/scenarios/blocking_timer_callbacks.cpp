// blocking_timer_callbacks — callbacks of system-timer cancellations that block, as users'
// callbacks do (a blocking close, a log flush, a join): some sleep 20..50 ms; one waits, bounded,
// for another timer-driven token (armed beforehand, or created inside the callback); meanwhile
// other workers arm 5 ms timeouts that fall due while those callbacks block, and wait for them.
//
// Defends S17 with punctuality as an invariant (timer_service.hpp: the timer thread runs no
// user code, so a blocking callback delays no other timer while fewer than 8 block at once):
// a 5 ms timeout is observed within 5 ms + timer_slack (200 ms, 400 ms under a sanitizer) and
// carries deadline_exceeded (S16); a callback waiting for another timer-driven token gets it.
// Issue 16, defect 7: run_due fired every timer on the one timer thread, so a callback that
// blocked delayed every other timeout and one that waited for another timer deadlocked until
// its own bound (mutants/35-timer-callbacks-inline.patch).
// At most 4 callbacks block at once (3 sleepers and the waiter), below the pool's 8 workers.
#include "common.hpp"
#include "timing.hpp"

#include <chrono>
#include <memory>

namespace stress {
namespace {

using clock_type = std::chrono::steady_clock;
using std::chrono::microseconds;
using std::chrono::milliseconds;

constexpr unsigned max_sleepers = 3;
constexpr unsigned probes_per_worker = 2;
constexpr milliseconds probe_timeout{5};

// Polls `flag` (acquire) every 200 us for up to `limit`; true once it is set.
bool wait_flag(const std::atomic<int>& flag, std::chrono::milliseconds limit) {
  const auto until = clock_type::now() + limit;
  while (flag.load(std::memory_order_acquire) == 0) {
    if (clock_type::now() > until) return false;
    std::this_thread::sleep_for(microseconds(200));
  }
  return true;
}

struct blocker {
  cancelkit::cancellation_source source;
  cancelkit::cancellation_registration reg;
  microseconds delay{0};
  milliseconds sleep{0};
  std::atomic<int> finished{0};
};

class blocking_timer_callbacks final : public scenario {
 public:
  explicit blocking_timer_callbacks(unsigned threads)
      : sleepers_(threads >= 5 ? max_sleepers : threads - 2),
        blockers_(std::make_unique<blocker[]>(sleepers_)) {}

  void setup(const round_info&, rng& g) override {
    for (unsigned i = 0; i < sleepers_; ++i) {
      blocker& b = blockers_[i];
      b.delay = microseconds(500 + g.below(2500));  // due in 0.5..3 ms
      b.sleep = milliseconds(20 + g.below(31));       // then blocks a pool worker 20..50 ms
      b.finished.store(0, std::memory_order_relaxed);
    }
    inner_timer_ = g.percent(50);  // the waiter's token: armed in its callback, or beforehand
    waiter_delay_ = microseconds(500 + g.below(2500));
    other_delay_ = waiter_delay_ + microseconds(2000 + g.below(6000));
    waiter_got_.store(-1, std::memory_order_relaxed);
    waiter_done_.store(0, std::memory_order_relaxed);
    probe_start_ = microseconds(2000 + g.below(8000));  // the first probe: while they block
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    if (tid == 0) return run_waiter();
    if (tid <= sleepers_) return run_sleeper(blockers_[tid - 1]);
    return run_probes(g);
  }

  void check(const round_info&) override {
    const int got = waiter_got_.load(std::memory_order_relaxed);
    STRESS_EXPECT(got == 1, got < 0 ? "the waiting callback never ran"
                                    : "a callback waiting (bounded) for another timer-driven "
                                      "token did not get it: timers fire behind blocking "
                                      "callbacks (S17, issue 16 defect 7)");
    for (unsigned i = 0; i < sleepers_; ++i) {
      blockers_[i].reg = {};
      blockers_[i].source = {};
    }
    waiter_ = {};
    other_ = {};
  }

 private:
  // Worker 0: a timer whose callback waits for another timer-driven token.
  std::uint64_t run_waiter() {
    if (!inner_timer_) other_ = cancelkit::cancellation_source(other_delay_);
    waiter_ = cancelkit::cancellation_source(cancelkit::system_timer_service());
    reg_ = waiter_.token().register_callback([this] {
      bool got = false;
      if (inner_timer_) {
        const cancelkit::cancellation_source inner(other_delay_ - waiter_delay_);
        got = inner.token().wait_for(other_delay_ + timer_slack);
      } else {
        got = other_.token().wait_for(other_delay_ + timer_slack);
      }
      // relaxed: read by check() after this worker saw waiter_done_ (acquire) below.
      waiter_got_.store(got ? 1 : 0, std::memory_order_relaxed);
      waiter_done_.store(1, std::memory_order_release);  // release: waiter_got_ and the run
    });
    waiter_.cancel_after(waiter_delay_);
    // The callback must be done before check() frees what it uses: wait long (a lost timer is
    // reported, not hung on; a timer stuck behind the bounded wait comes out after it).
    STRESS_EXPECT(wait_flag(waiter_done_, milliseconds(30000)),
                  "the waiting callback's timer did not fire within 30 s");
    reg_ = {};
    return 2;
  }

  std::uint64_t run_sleeper(blocker& b) {
    b.source = cancelkit::cancellation_source(cancelkit::system_timer_service());
    blocker* const bp = &b;
    b.reg = b.source.token().register_callback([bp] {
      std::this_thread::sleep_for(bp->sleep);
      bp->finished.store(1, std::memory_order_release);  // release: the callback is done
    });
    b.source.cancel_after(b.delay);
    STRESS_EXPECT(wait_flag(b.finished, milliseconds(30000)),
                  "a sleeping callback's timer did not fire within 30 s");
    return 2;
  }

  // The others: 5 ms timeouts that fall due while the callbacks above block.
  std::uint64_t run_probes(rng& g) {
    std::uint64_t ops = 0;
    std::this_thread::sleep_for(probe_start_);
    for (unsigned k = 0; k < probes_per_worker; ++k) {
      const auto armed = clock_type::now();
      cancelkit::cancellation_source probe;
      if (g.percent(50)) {
        probe = cancelkit::cancellation_source(probe_timeout);
      } else {
        probe = cancelkit::cancellation_source(cancelkit::system_timer_service());
        probe.cancel_after(std::chrono::seconds(5));  // re-armed below: replaced (S17)
        probe.cancel_after(probe_timeout);
      }
      const cancelkit::cancellation_token t = probe.token();
      const bool fired = t.wait_for(probe_timeout + timer_slack);
      const auto seen = clock_type::now() - armed;
      STRESS_EXPECT(fired, "a ", probe_timeout.count(), " ms timeout was not observed within ",
                    timer_slack.count(), " ms of its deadline (",
                    std::chrono::duration_cast<microseconds>(seen).count(),
                    " us) while other timer callbacks block (S17, issue 16 defect 7)");
      if (fired) {
        STRESS_EXPECT(seen >= probe_timeout, "a timeout fired early: after ",
                      std::chrono::duration_cast<microseconds>(seen).count(), " us");
        STRESS_EXPECT(is_deadline(t.cancellation_reason()),
                      "a timer-cancelled source lacks deadline_exceeded (S16)");
      }
      ops += 2;
      std::this_thread::sleep_for(microseconds(g.below(5000)));
    }
    return ops;
  }

  const unsigned sleepers_;  // workers 1..sleepers_
  std::unique_ptr<blocker[]> blockers_;
  cancelkit::cancellation_source waiter_, other_;
  cancelkit::cancellation_registration reg_;
  bool inner_timer_ = false;
  microseconds waiter_delay_{0}, other_delay_{0}, probe_start_{0};
  std::atomic<int> waiter_got_{-1};
  std::atomic<int> waiter_done_{0};
};

}  // namespace

STRESS_SCENARIO(blocking_timer_callbacks, "blocking_timer_callbacks", 180, "S16 S17",
                "issue 16 defect 7 (timer callbacks ran inline on the timer thread)",
                "system-timer callbacks that sleep or wait for other timers while 5 ms "
                "timeouts fall due: punctuality as an invariant",
                3);

}  // namespace stress
