// timeout_dropped_near_deadline — the most common lifecycle of all: an operation creates a
// source with a timeout, works for about as long, and drops the source near its deadline, while
// the timer fires. Two shapes: the system timer (its own thread fires), and a manual timer
// advanced by another worker while the others drop their sources.
//
// Defends S17 (an armed timer keeps nothing alive that nobody can observe: once the last handle
// is gone the timer is disarmed and the state freed) and the timer protocol [T2] of
// impl/src/timer_service.cpp: the timer holds no reference, so it may touch the entry and its
// state only while the state's destructor (forget) waits for it. Issue 16, defect 1: run_due
// cleared `armed` before it was done with the entry and forget() trusted a relaxed `false`
// without the mutex; TSan reported the free in ~source_extension racing the timer thread's
// `armed` store and try_add_ref, ASan a heap-use-after-free once the window was widened.
// Also checks that a source the timer did cancel carries deadline_exceeded (S16) and that no
// callback ran twice (S4).
#include "common.hpp"

#include <chrono>
#include <memory>

namespace stress {
namespace {

constexpr unsigned ops_per_worker = 24;

class timeout_dropped_near_deadline final : public scenario {
  using ns = std::chrono::nanoseconds;

 public:
  explicit timeout_dropped_near_deadline(unsigned threads) : threads_(threads) {}

  void setup(const round_info&, rng& g) override {
    system_ = g.percent(50);
    if (!system_) {
      timers_ = std::make_unique<cancelkit::manual_timer_service>();
      timers_->set_error_handler([](std::exception_ptr) {});
    }
    droppers_done_.store(0, std::memory_order_relaxed);
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    if (!system_ && tid == 0) return run_clock(g);
    std::uint64_t ops = 0;
    for (unsigned i = 0; i < ops_per_worker; ++i) ops += one_operation(g, i);
    droppers_done_.fetch_add(1, std::memory_order_release);  // release: ends run_clock's loop
    return ops;
  }

  void check(const round_info&) override { timers_.reset(); }

 private:
  // The manual clock: advances in small steps until every dropper is done, so that firings
  // land all along the droppers' lifecycles.
  std::uint64_t run_clock(rng& g) {
    std::uint64_t ops = 0;
    // acquire: pairs with the droppers' release; nothing else is read after it.
    while (droppers_done_.load(std::memory_order_acquire) < threads_ - 1) {
      timers_->advance(ns(g.below(3) * 1000));  // 0..2 us: sometimes exactly on a deadline
      ++ops;
      jitter(g, 64);
    }
    return ops;
  }

  // One operation: a source with a timeout, an optional callback, work until about the
  // deadline, then every handle goes (sometimes the token first, sometimes the source).
  std::uint64_t one_operation(rng& g, unsigned i) {
    const ns delay = system_ ? ns(50000 + (i % 50) * 1000)  // 50..99 us, as users do
                             : ns(1000 + g.below(3) * 1000);
    const auto began = std::chrono::steady_clock::now();
    std::uint64_t ops = 1;
    auto ran = std::make_shared<std::atomic<int>>(0);
    {
      cancelkit::cancellation_source op =
          system_ ? cancelkit::cancellation_source(delay) : cancelkit::cancellation_source(delay, *timers_);
      cancelkit::cancellation_token token = op.token();
      cancelkit::cancellation_registration reg;
      if (g.percent(50)) {
        reg = token.register_callback([ran] { ran->fetch_add(1, std::memory_order_relaxed); });
        ++ops;
      }
      if (system_) {
        // Busy until about the deadline: a little before, on it, or a little after.
        const auto until = began + delay - ns(5000) + ns(g.below(10000));
        while (std::chrono::steady_clock::now() < until) jitter(g, 16);
      } else {
        jitter(g, 256);
      }
      if (token.is_cancellation_requested()) {
        STRESS_EXPECT(is_deadline(token.cancellation_reason()),
                      "a timer-cancelled source lacks deadline_exceeded (S16)");
      }
      ++ops;
      if (g.percent(50)) {
        // The source handle goes first: the token and registration are the last owners.
        const cancelkit::cancellation_source gone = std::move(op);
      }
      // The rest goes here, in reverse order of declaration: registration (its dispose waits
      // for a running callback, S9), token, then the source handle if still held.
    }
    STRESS_EXPECT(ran->load(std::memory_order_relaxed) <= 1, "a callback ran twice (S4)");
    return ops;
  }

  const unsigned threads_;
  std::unique_ptr<cancelkit::manual_timer_service> timers_;
  std::atomic<unsigned> droppers_done_{0};
  bool system_ = false;
};

}  // namespace

STRESS_SCENARIO(timeout_dropped_near_deadline, "timeout_dropped_near_deadline", 150, "S4 S16 S17",
                "issue 16 defect 1 (timer firing vs the last handle: use-after-free)",
                "sources with timeouts dropped near their deadline; system and manual timers", 2);

}  // namespace stress
