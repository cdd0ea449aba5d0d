// delay_vs_cancel_vs_destroy — coroutines suspended in <cancelkit/coroutine.hpp>'s awaiters
// while the timer, cancellations and destructions run on other threads (issue 18).
//
// Per round, on one manual_timer_service (ties and heap moves included):
//  - racers: coroutines in delay(d, token, timers), started by a starter thread while the clock
//    thread advances past their deadlines and the canceller cancels their sources: each must be
//    resumed exactly once, by the timer (returns) or the cancel (operation_canceled) (S27, [C1]);
//    a start that meets a due timer or a cancel while it is still registering takes the early
//    path ([C2]);
//  - watchers: coroutines in cancelled(token) whose only source handle the canceller either
//    cancels and drops or just drops: exactly one resumption, normal or std::logic_error
//    matching what it did (S26, S23);
//  - victims: coroutines in delay() with a deadline the clock never reaches this round, on
//    sources nobody cancels while they are destroyed by the destroyer threads, concurrently
//    with the clock (run_due reading the heap they are taken off) and the other parties. After
//    the round their sources are cancelled and the clock jumps past every deadline: nothing may
//    resume a destroyed coroutine (S28, [C4]).
// Every frame must be destroyed exactly once (a local of each coroutine counts it) and ASan
// reports a frame that leaks or an entry or node touched after its frame went; TSan a handshake
// that does not order the resumer's accesses. (Destruction never races a party that could
// claim the coroutine: that is the caller's bug, S28.)
#include "common.hpp"

#include <cancelkit/coroutine.hpp>

#include "coro_task.hpp"

#include <chrono>
#include <memory>
#include <stdexcept>
#include <vector>

namespace stress {
namespace {

using ns = std::chrono::nanoseconds;

constexpr std::size_t racers_per_round = 48;
constexpr std::size_t watchers_per_round = 16;
constexpr std::size_t victims_per_round = 32;

// outcome codes
constexpr int resumed_normally = 1;
constexpr int resumed_canceled = 2;
constexpr int resumed_unable = 3;

struct frame_probe {
  std::atomic<int>* destroyed;
  ~frame_probe() { destroyed->fetch_add(1, std::memory_order_relaxed); }
};

struct slot {
  std::atomic<int> resumptions{0};
  std::atomic<int> outcome{0};
  std::atomic<int> destroyed{0};
};

cktest::task delay_coroutine(ns d, cancelkit::cancellation_token token,
                             cancelkit::timer_service& timers, slot& s) {
  frame_probe probe{&s.destroyed};
  int result = resumed_normally;
  try {
    co_await cancelkit::delay(d, token, timers);
  } catch (const cancelkit::operation_canceled&) {
    result = resumed_canceled;
  }
  s.outcome.store(result, std::memory_order_relaxed);
  s.resumptions.fetch_add(1, std::memory_order_relaxed);
}

cktest::task cancelled_coroutine(cancelkit::cancellation_token token, slot& s) {
  frame_probe probe{&s.destroyed};
  int result = resumed_normally;
  try {
    co_await cancelkit::cancelled(token);
  } catch (const std::logic_error&) {
    result = resumed_unable;
  }
  s.outcome.store(result, std::memory_order_relaxed);
  s.resumptions.fetch_add(1, std::memory_order_relaxed);
}

class delay_vs_cancel_vs_destroy final : public scenario {
 public:
  explicit delay_vs_cancel_vs_destroy(unsigned threads) : threads_(threads) {}

  void setup(const round_info&, rng& g) override {
    timers_ = std::make_unique<cancelkit::manual_timer_service>();
    racers_ = std::vector<slot>(racers_per_round);
    watchers_ = std::vector<slot>(watchers_per_round);
    victims_ = std::vector<slot>(victims_per_round);
    racer_tasks_ = std::vector<cktest::task>(racers_per_round);
    watcher_tasks_ = std::vector<cktest::task>(watchers_per_round);
    victim_tasks_ = std::vector<cktest::task>(victims_per_round);
    racer_sources_.clear();
    watcher_sources_.clear();
    victim_sources_.clear();
    racer_delays_.clear();
    watcher_cancels_.clear();
    for (std::size_t i = 0; i < racers_per_round; ++i) {
      racer_sources_.emplace_back();
      racer_delays_.push_back(ns(1000 * (1 + g.below(8))));  // ties on purpose
    }
    watcher_tokens_.clear();
    for (std::size_t i = 0; i < watchers_per_round; ++i) {
      watcher_sources_.push_back(std::make_unique<cancelkit::cancellation_source>());
      watcher_tokens_.push_back(watcher_sources_.back()->token());
      watcher_cancels_.push_back(g.percent(50));
    }
    for (std::size_t i = 0; i < victims_per_round; ++i) {
      victim_sources_.emplace_back();
      // Far beyond what the clock reaches this round (it stops when the workers are done).
      victim_tasks_[i] = delay_coroutine(std::chrono::hours(1) + ns(g.below(4)),
                                         victim_sources_[i].token(), *timers_, victims_[i]);
    }
    // The watchers suspend before the round: their parties then race only each other.
    for (std::size_t i = 0; i < watchers_per_round; ++i)
      watcher_tasks_[i] = cancelled_coroutine(watcher_tokens_[i], watchers_[i]);
    done_.store(0, std::memory_order_relaxed);
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    std::uint64_t ops = 0;
    if (tid == 0) {
      // The clock: small steps until the others are done. acquire: pairs with their release.
      while (done_.load(std::memory_order_acquire) < threads_ - 1) {
        timers_->advance(ns(g.below(3) * 500));
        ++ops;
        jitter(g, 32);
      }
      timers_->advance(std::chrono::milliseconds(1));  // past every racer's deadline
      return ops + 1;
    }
    if (tid == 1) {
      for (std::size_t i = 0; i < racers_per_round; ++i) {
        jitter(g, 64);
        static_cast<void>(racer_sources_[i].cancel());
        ++ops;
        if (i < watchers_per_round) {
          if (watcher_cancels_[i]) static_cast<void>(watcher_sources_[i]->cancel());
          watcher_sources_[i].reset();  // the last handle: orphans an uncancelled source
          ops += 2;
        }
      }
    } else if (tid == 2) {
      for (std::size_t i = 0; i < racers_per_round; ++i) {
        racer_tasks_[i] = delay_coroutine(racer_delays_[i], racer_sources_[i].token(), *timers_,
                                          racers_[i]);
        ++ops;
        jitter(g, 16);
      }
    } else {
      // The destroyers share the victims.
      for (std::size_t i = tid - 3; i < victims_per_round; i += threads_ - 3) {
        jitter(g, 64);
        victim_tasks_[i].destroy();
        ++ops;
      }
    }
    done_.fetch_add(1, std::memory_order_release);  // release: ends the clock's loop
    return ops;
  }

  void check(const round_info&) override {
    // With fewer than 4 workers nobody destroyed the victims: do it now (still suspended).
    for (cktest::task& t : victim_tasks_) t.destroy();
    for (cancelkit::cancellation_source& s : victim_sources_) static_cast<void>(s.cancel());
    timers_->advance(std::chrono::hours(2));
    for (std::size_t i = 0; i < racers_per_round; ++i) {
      const slot& s = racers_[i];
      STRESS_EXPECT(s.resumptions.load() == 1, "racer ", i, " resumed ", s.resumptions.load(),
                    " times, not once (S27: timer vs cancel)");
      STRESS_EXPECT(s.outcome.load() == resumed_normally || s.outcome.load() == resumed_canceled,
                    "racer ", i, " ended with outcome ", s.outcome.load());
      STRESS_EXPECT(racer_tasks_[i].finished(), "racer ", i, " did not finish");
    }
    for (std::size_t i = 0; i < watchers_per_round; ++i) {
      const slot& s = watchers_[i];
      STRESS_EXPECT(s.resumptions.load() == 1, "watcher ", i, " resumed ", s.resumptions.load(),
                    " times, not once (S26)");
      const int want = watcher_cancels_[i] ? resumed_normally : resumed_unable;
      STRESS_EXPECT(s.outcome.load() == want, "watcher ", i, " ended with ", s.outcome.load(),
                    ", expected ", want, " (S26, S23)");
    }
    for (std::size_t i = 0; i < victims_per_round; ++i) {
      STRESS_EXPECT(victims_[i].resumptions.load() == 0,
                    "a destroyed coroutine was resumed (S28)");
      STRESS_EXPECT(victims_[i].destroyed.load() == 1, "victim frame destroyed ",
                    victims_[i].destroyed.load(), " times");
    }
    racer_tasks_.clear();
    watcher_tasks_.clear();
    victim_tasks_.clear();
    for (std::size_t i = 0; i < racers_per_round; ++i)
      STRESS_EXPECT(racers_[i].destroyed.load() == 1, "racer frame not destroyed once");
    for (std::size_t i = 0; i < watchers_per_round; ++i)
      STRESS_EXPECT(watchers_[i].destroyed.load() == 1, "watcher frame not destroyed once");
    watcher_tokens_.clear();
    racer_sources_.clear();
    victim_sources_.clear();
    timers_.reset();  // after every source of the round: it must outlive them
  }

 private:
  const unsigned threads_;
  std::unique_ptr<cancelkit::manual_timer_service> timers_;
  std::vector<slot> racers_, watchers_, victims_;
  std::vector<cktest::task> racer_tasks_, watcher_tasks_, victim_tasks_;
  std::vector<cancelkit::cancellation_source> racer_sources_, victim_sources_;
  std::vector<std::unique_ptr<cancelkit::cancellation_source>> watcher_sources_;
  std::vector<cancelkit::cancellation_token> watcher_tokens_;
  std::vector<ns> racer_delays_;
  std::vector<bool> watcher_cancels_;
  std::atomic<unsigned> done_{0};
};

}  // namespace

STRESS_SCENARIO(delay_vs_cancel_vs_destroy, "delay_vs_cancel_vs_destroy", 210, "S26 S27 S28",
                "exactly-once resumption of a cancellable await (timer vs cancel vs destroy)",
                "coroutines in delay()/cancelled() vs the clock, cancels, orphaning, destroys", 4);

}  // namespace stress
