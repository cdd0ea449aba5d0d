// signals_vs_waits — a process that uses signals (a profiler's SIGPROF, a runtime's SIGUSR1,
// a handler installed without SA_RESTART, as most are) while threads block in cancelkit: one
// worker sends SIGUSR1 to the waiting workers every few hundred microseconds, so their futex
// sleeps keep ending in EINTR, while they block in
//   - wait_for / wait_until (steady clock and system clock) that time out (nobody cancels),
//   - wait_for / wait_until / wait() that a canceller ends with cancel() after a few ms,
//   - dispose() of a registration whose callback is running (and blocking) on the canceller.
//
// Defends the wait API ("wait at most timeout": a timed wait returns false no earlier than its
// deadline and no later than deadline + slack, however many signals cut its sleeps short; it
// returns true, promptly, once cancelled) and S9 (dispose() returns only after the running
// callback has returned, EINTR or not). Issue 16, defect 3: state::wait() gave every futex
// sleep the whole timeout again, so each EINTR restarted the clock and a wait_for(10ms) under a
// signal storm never returned (mutants/31-wait-restarts-timeout.patch; peer bug
// capnproto/capnproto#580, poll restarted with the full timeout after EINTR).
//
// The handler is installed once, process-wide, when the scenario is first constructed, and
// never uninstalled (a late signal then still has a handler). Signals go only to this
// scenario's waiting workers, by pthread_kill on the native handles they publish; the runner's
// workers live until the scenario ends, so a handle read by the signaller is never stale.
// The signaller stops when every waiter is done, or after hard_stop at the latest: a wait
// that signals keep restarting then ends late, which is the violation, not a hang.
#include "common.hpp"
#include "timing.hpp"

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>

namespace stress {
namespace {

using clock_type = std::chrono::steady_clock;
using std::chrono::microseconds;

// Signals received by the handler (all threads). Lock-free, so the handler may touch it.
std::atomic<std::uint64_t> signals_received{0};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

void on_sigusr1(int) {
  // relaxed: a statistic; the handler's only job is to exist, so that the signal interrupts.
  signals_received.fetch_add(1, std::memory_order_relaxed);
}

void install_handler_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = &on_sigusr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: interrupted sleeps return EINTR to the library
    if (sigaction(SIGUSR1, &sa, nullptr) != 0) {
      std::perror("signals_vs_waits: sigaction(SIGUSR1)");
      std::abort();
    }
  });
}

enum class kind : unsigned {
  timeout_wait_for,      // wait_for(d) on a live, never-cancelled token: false after d
  timeout_until_steady,  // wait_until(steady now + d): likewise
  timeout_until_system,  // wait_until(system_clock now + d): likewise (upper bound only)
  cancelled_wait_for,    // wait_for(10 s), cancelled after d: true, promptly
  cancelled_until,       // wait_until(steady now + 10 s), cancelled after d
  cancelled_wait,        // wait(), cancelled after d
  dispose_running,       // dispose() while the callback blocks for d on the canceller
  count
};

bool is_timeout(kind k) { return k <= kind::timeout_until_system; }
bool is_dispose(kind k) { return k == kind::dispose_running; }

constexpr unsigned max_ops_per_waiter = 3;
constexpr std::chrono::seconds long_wait{10};         // a cancelled wait's own timeout
constexpr std::chrono::milliseconds hard_stop{1000};  // the signaller's limit per round

struct op {
  kind k = kind::timeout_wait_for;
  microseconds d{0};
  cancelkit::cancellation_source source;
  cancelkit::cancellation_token token;
  cancelkit::cancellation_registration reg;  // dispose_running
  // Written by the canceller before cancel(), read by the waiter after it observed the
  // request: S3 orders them (TSan checks it).
  clock_type::time_point cancel_at{};
  // Written by the callback before `finished` (release), read after it (acquire).
  clock_type::time_point finished_at{};
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
};

class signals_vs_waits final : public scenario {
 public:
  explicit signals_vs_waits(unsigned threads)
      : waiters_(threads - 2),
        ops_(std::make_unique<op[]>(waiters_ * max_ops_per_waiter)),
        op_count_(waiters_),
        handles_(std::make_unique<std::atomic<pthread_t>[]>(waiters_)),
        active_(std::make_unique<std::atomic<bool>[]>(waiters_)),
        request_(std::make_unique<std::atomic<op*>[]>(waiters_)) {
    install_handler_once();
  }

  void setup(const round_info&, rng& g) override {
    for (unsigned w = 0; w < waiters_; ++w) {
      op_count_[w] = 1 + g.below(max_ops_per_waiter);
      for (unsigned j = 0; j < op_count_[w]; ++j) {
        op& o = at(w, j);
        o.k = static_cast<kind>(g.below(static_cast<unsigned>(kind::count)));
        o.source = cancelkit::cancellation_source();
        o.token = o.source.token();
        o.started.store(0, std::memory_order_relaxed);
        o.finished.store(0, std::memory_order_relaxed);
        if (is_timeout(o.k)) {
          o.d = microseconds(2000 + g.below(10000));  // 2..12 ms: many signals per wait
        } else if (is_dispose(o.k)) {
          o.d = microseconds(2000 + g.below(6000));  // the callback blocks 2..8 ms
          op* const p = &o;
          o.reg = o.token.register_callback([p] {
            p->started.store(1, std::memory_order_release);  // release: publishes nothing; a flag
            std::this_thread::sleep_for(p->d);
            p->finished_at = clock_type::now();
            // release: finished_at and the callback's whole run happen-before a reader that
            // sees 1 (the disposer checks S9 with it).
            p->finished.store(1, std::memory_order_release);
          });
        } else {
          o.d = microseconds(1000 + g.below(5000));  // cancelled after 1..6 ms
        }
      }
      active_[w].store(false, std::memory_order_relaxed);
      request_[w].store(nullptr, std::memory_order_relaxed);
    }
    waiters_done_.store(0, std::memory_order_relaxed);
    round_start_ = clock_type::now();
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    if (tid == 0) return signal_waiters(g);
    if (tid == 1) return serve_cancels();
    const unsigned w = tid - 2;
    // relaxed: the release store of active_ below publishes it to the signaller.
    handles_[w].store(pthread_self(), std::memory_order_relaxed);
    active_[w].store(true, std::memory_order_release);  // release: the handle is set
    std::uint64_t ops = 0;
    for (unsigned j = 0; j < op_count_[w]; ++j) {
      jitter(g, 256);
      run_op(w, at(w, j));
      ++ops;
    }
    // relaxed: a stale `true` only sends a harmless signal to this (still running) thread.
    active_[w].store(false, std::memory_order_relaxed);
    // release: ends the signaller's and the canceller's loops after our last request.
    waiters_done_.fetch_add(1, std::memory_order_release);
    return ops;
  }

  void check(const round_info&) override {
    for (unsigned w = 0; w < waiters_; ++w) {
      for (unsigned j = 0; j < op_count_[w]; ++j) {
        op& o = at(w, j);
        o.reg = {};
        o.token = {};
        o.source = {};
      }
    }
  }

 private:
  op& at(unsigned w, unsigned j) { return ops_[w * max_ops_per_waiter + j]; }

  bool all_done() const {
    // acquire: pairs with the waiters' release; their last request is then visible.
    return waiters_done_.load(std::memory_order_acquire) == waiters_;
  }

  // Worker 0: a signal to every active waiter every 100..500 us, until all are done.
  std::uint64_t signal_waiters(rng& g) {
    std::uint64_t sent = 0;
    const auto stop_at = round_start_ + hard_stop;
    while (!all_done() && clock_type::now() < stop_at) {
      for (unsigned w = 0; w < waiters_; ++w) {
        // acquire: pairs with the waiter's release, so its handle is the one loaded below.
        if (!active_[w].load(std::memory_order_acquire)) continue;
        const int rc = pthread_kill(handles_[w].load(std::memory_order_relaxed), SIGUSR1);
        STRESS_EXPECT(rc == 0, "pthread_kill failed: ", rc);
        ++sent;
      }
      std::this_thread::sleep_for(microseconds(100 + g.below(400)));
    }
    return sent;
  }

  // Worker 1: cancels what the waiters ask for; runs the dispose ops' blocking callbacks.
  std::uint64_t serve_cancels() {
    std::uint64_t ops = 0;
    for (;;) {
      const bool last_look = all_done();
      bool served = false;
      for (unsigned w = 0; w < waiters_; ++w) {
        // acquire: pairs with the waiter's release store of its request (the op's fields).
        op* const o = request_[w].exchange(nullptr, std::memory_order_acquire);
        if (o == nullptr) continue;
        served = true;
        if (!is_dispose(o->k)) std::this_thread::sleep_for(o->d);  // the waiter is blocked
        o->cancel_at = clock_type::now();
        STRESS_EXPECT(o->source.cancel(), "the only canceller's cancel() returned false (S2)");
        ++ops;
      }
      if (last_look && !served) return ops;
      if (!served) std::this_thread::yield();
    }
  }

  void request(unsigned w, op& o) {
    // release: the op's fields are ready for the canceller (acquire exchange).
    request_[w].store(&o, std::memory_order_release);
  }

  void run_op(unsigned w, op& o) {
    const auto slack = wait_slack;
    if (is_timeout(o.k)) {
      const auto began = clock_type::now();
      bool r = true;
      if (o.k == kind::timeout_wait_for) {
        r = o.token.wait_for(o.d);
      } else if (o.k == kind::timeout_until_steady) {
        r = o.token.wait_until(began + o.d);
      } else {
        r = o.token.wait_until(std::chrono::system_clock::now() + o.d);
      }
      const auto took = clock_type::now() - began;
      const auto took_us = std::chrono::duration_cast<microseconds>(took).count();
      STRESS_EXPECT(!r, "a timed wait on a token nobody cancels returned true");
      if (o.k != kind::timeout_until_system) {
        STRESS_EXPECT(took >= o.d, "a timed wait of ", o.d.count(), " us returned after ",
                      took_us, " us: before its deadline");
      }
      STRESS_EXPECT(took <= o.d + slack, "a timed wait of ", o.d.count(), " us returned after ",
                    took_us, " us, under signals (EINTR): the interruptions extended it "
                    "(issue 16, defect 3)");
      return;
    }
    request(w, o);
    if (is_dispose(o.k)) {
      STRESS_EXPECT(spin_until([&] { return o.started.load(std::memory_order_acquire) != 0; },
                               std::chrono::seconds(10)),
                    "the callback did not start within 10 s of cancel()");
      o.reg.dispose();
      const auto returned = clock_type::now();
      // acquire: pairs with the callback's release; finished_at is then readable.
      const bool finished = o.finished.load(std::memory_order_acquire) != 0;
      STRESS_EXPECT(finished, "dispose() returned under signals while its callback was still "
                              "running on another thread (S9)");
      if (finished) {
        STRESS_EXPECT(returned - o.finished_at <= slack, "dispose() returned ",
                      std::chrono::duration_cast<microseconds>(returned - o.finished_at).count(),
                      " us after its callback did");
      }
      return;
    }
    const auto began = clock_type::now();
    bool r = false;
    if (o.k == kind::cancelled_wait_for) {
      r = o.token.wait_for(long_wait);
    } else if (o.k == kind::cancelled_until) {
      r = o.token.wait_until(began + long_wait);
    } else {
      o.token.wait();  // a live source: returns once cancelled (or throws, a failure)
      r = true;
    }
    const auto returned = clock_type::now();
    STRESS_EXPECT(r, "a wait on a token that the canceller cancels returned false");
    if (r && o.token.is_cancellation_requested()) {
      const auto woken_by = o.cancel_at > began ? o.cancel_at : began;
      STRESS_EXPECT(returned - woken_by <= slack, "a wait returned ",
                    std::chrono::duration_cast<microseconds>(returned - woken_by).count(),
                    " us after the cancel() that should have woken it");
    }
  }

  const unsigned waiters_;  // workers 2..threads-1
  std::unique_ptr<op[]> ops_;
  std::vector<unsigned> op_count_;
  std::unique_ptr<std::atomic<pthread_t>[]> handles_;
  std::unique_ptr<std::atomic<bool>[]> active_;
  std::unique_ptr<std::atomic<op*>[]> request_;
  std::atomic<unsigned> waiters_done_{0};
  clock_type::time_point round_start_{};
};

}  // namespace

STRESS_SCENARIO(signals_vs_waits, "signals_vs_waits", 160, "S3 S9",
                "issue 16 defect 3 (EINTR restarted the timeout; capnproto/capnproto#580)",
                "SIGUSR1 without SA_RESTART hits wait_for/wait_until/wait and blocked disposers",
                3);

}  // namespace stress
