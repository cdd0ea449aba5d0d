// concurrent_cancel — every worker calls cancel() on its own copy of one source at once.
//
// Defends S1/S2 (exactly one call returns true; the others return false at once, without waiting
// for callbacks), S4/S5 (each callback runs exactly once, latest registered first, on the
// winning thread, before its cancel() returns), S3/S16 (a loser reads the winner's reason object,
// written with plain stores before its cancel(): TSan checks the happens-before) and S20 (a
// linked child is cancelled, its callback run, before the winner's cancel() returns).
// Peer bug: stdexec#2169 (request_stop returned the inverted result) and microsoft/STL#1196
// (a relaxed completion flag let an observer miss the canceller's writes).
#include "common.hpp"

#include <array>
#include <chrono>

namespace stress {
namespace {

constexpr unsigned max_callbacks = 8;

class concurrent_cancel final : public scenario {
 public:
  explicit concurrent_cancel(unsigned threads)
      : threads_(threads), sources_(threads), results_(threads), seen_winner_(threads), ids_(threads) {}

  void setup(const round_info& r, rng& g) override {
    cancelkit::cancellation_source src;
    token_ = src.token();
    for (auto& s : sources_) s = src;  // every worker holds a handle; `src` goes at scope end
    stamp_ = r.seed;
    ncb_ = g.below(max_callbacks + 1);
    run_count_ = 0;
    ran_.resize(ncb_);
    for (unsigned i = 0; i < ncb_; ++i) {
      regs_[i] = token_.register_callback([this, i] {
        if (ran_[i].fetch_add(1, std::memory_order_relaxed) != 0) {
          STRESS_EXPECT(false, "callback ", i, " ran twice (S4)");
        }
        order_[run_count_++] = i;  // plain: only the dispatching thread runs these
        ran_on_[i] = std::this_thread::get_id();
        if (hold_first_ && i + 1 == ncb_) {
          // S2: losers return at once, without waiting for callbacks to finish. The first
          // callback (latest registered) waits until every loser has returned.
          const bool all_back = spin_until(
              [this] { return losers_back_.load(std::memory_order_acquire) + 1 >= threads_; },
              std::chrono::seconds(20));
          STRESS_EXPECT(all_back, "losers did not return while a callback was running (S2)");
        }
      });
    }
    hold_first_ = ncb_ > 0 && g.percent(25);
    losers_back_.store(0, std::memory_order_relaxed);
    with_child_ = g.percent(50);
    child_ran_.store(0, std::memory_order_relaxed);
    if (with_child_) {
      child_ = cancelkit::cancellation_source::linked({token_});
      child_reg_ = child_.token().register_callback(
          [this] { child_ran_.fetch_add(1, std::memory_order_relaxed); });
    }
    for (unsigned t = 0; t < threads_; ++t) {
      results_[t] = -1;
      seen_winner_[t] = ~0u;
    }
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    std::uint64_t ops = 0;
    ids_[tid] = std::this_thread::get_id();
    // Created before cancel() with plain writes; S3/S16 publish them to every observer.
    const std::exception_ptr mine = std::make_exception_ptr(stamped_reason(tid, stamp_));
    jitter(g, 256);
    for (unsigned k = g.below(4); k > 0; --k, ++ops) {
      if (sources_[tid].is_cancellation_requested()) break;
    }
    const bool won = sources_[tid].cancel({.reason = mine});
    ++ops;
    results_[tid] = won ? 1 : 0;
    if (won) {
      for (unsigned i = 0; i < ncb_; ++i) {
        STRESS_EXPECT(ran_.get(i) == 1, "callback ", i, " had not run when cancel() returned (S5)");
      }
      if (with_child_) {
        STRESS_EXPECT(child_.is_cancellation_requested(), "linked child not cancelled (S20)");
        STRESS_EXPECT(child_ran_.load(std::memory_order_relaxed) == 1,
                      "child callback had not run when the parent's cancel() returned (S20)");
      }
      seen_winner_[tid] = tid;
    } else {
      losers_back_.fetch_add(1, std::memory_order_release);
      STRESS_EXPECT(token_.is_cancellation_requested(),
                    "cancel() returned false but the source is not cancelled (S1/S2)");
      const std::exception_ptr reason = token_.cancellation_reason();
      const stamped_reason* r = as_stamped(reason);
      STRESS_EXPECT(r != nullptr, "loser sees no reason (S16)");
      if (r != nullptr) {
        STRESS_EXPECT(r->stamp == stamp_, "reason from another round (S16)");
        STRESS_EXPECT(r->tid != tid, "loser sees its own reason (S2/S16)");
        seen_winner_[tid] = r->tid;
      }
      ++ops;
    }
    STRESS_EXPECT(sources_[tid].is_cancellation_requested(), "not requested after cancel() (S1)");
    return ops;
  }

  void check(const round_info&) override {
    unsigned winners = 0, winner = ~0u;
    for (unsigned t = 0; t < threads_; ++t) {
      if (results_[t] == 1) {
        ++winners;
        winner = t;
      }
    }
    STRESS_EXPECT(winners == 1, winners, " cancel() calls returned true (S2)");
    for (unsigned t = 0; t < threads_ && winners == 1; ++t) {
      STRESS_EXPECT(seen_winner_[t] == winner, "thread ", t, " saw reason of thread ",
                    seen_winner_[t], ", winner was ", winner, " (S16)");
    }
    STRESS_EXPECT(run_count_ == ncb_, run_count_, " of ", ncb_, " callbacks ran (S5)");
    for (unsigned k = 0; k < run_count_ && k < ncb_; ++k) {
      STRESS_EXPECT(order_[k] == ncb_ - 1 - k, "callback order not LIFO at position ", k, " (S5)");
    }
    for (unsigned i = 0; i < ncb_; ++i) {
      STRESS_EXPECT(ran_.get(i) == 1, "callback ", i, " ran ", ran_.get(i), " times (S4/S5)");
      if (winners == 1) {
        STRESS_EXPECT(ran_on_[i] == ids_[winner], "callback ", i, " ran off the winning thread (S5)");
      }
      regs_[i] = {};
    }
    if (with_child_) {
      STRESS_EXPECT(child_ran_.load(std::memory_order_relaxed) == 1, "child callback ran ",
                    child_ran_.load(std::memory_order_relaxed), " times (S20)");
      child_reg_ = {};
      child_ = {};
    }
    for (auto& s : sources_) s = {};
    token_ = {};
  }

 private:
  const unsigned threads_;
  std::vector<cancelkit::cancellation_source> sources_;
  std::vector<int> results_;             // each worker writes its own slot
  std::vector<unsigned> seen_winner_;    // each worker writes its own slot
  std::vector<std::thread::id> ids_;     // each worker writes its own slot
  cancelkit::cancellation_token token_;
  std::array<cancelkit::cancellation_registration, max_callbacks> regs_;
  std::array<unsigned, max_callbacks> order_{};
  std::array<std::thread::id, max_callbacks> ran_on_{};
  unsigned run_count_ = 0;
  unsigned ncb_ = 0;
  counters ran_;
  std::uint64_t stamp_ = 0;
  bool hold_first_ = false;
  std::atomic<unsigned> losers_back_{0};
  bool with_child_ = false;
  cancelkit::cancellation_source child_;
  cancelkit::cancellation_registration child_reg_;
  std::atomic<int> child_ran_{0};
};

}  // namespace

STRESS_SCENARIO(concurrent_cancel, "concurrent_cancel", 10, "S1 S2 S3 S4 S5 S16 S20",
                "stdexec#2169 (inverted request_stop result); microsoft/STL#1196 (relaxed "
                "completion flag)",
                "all workers cancel one source at once: one true, callbacks once, LIFO", 2);

}  // namespace stress
