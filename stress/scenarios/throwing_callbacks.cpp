// throwing_callbacks — some callbacks (of the source and of a linked child) throw while several
// workers race to cancel, with or without throw_on_first_exception, and other workers
// unregister registrations concurrently.
//
// Defends S12 (default: every callback runs; the winning cancel() throws aggregate_exception
// holding exactly the thrown exceptions in the order the callbacks ran; the source is cancelled
// regardless), S13 (throw_on_first_exception: the first exception propagates unchanged; the
// callbacks not yet run never run and unregister() on them returns true), S20 (propagation to a
// linked child is not skipped by throw_on_first; the child's callbacks' exceptions are reported
// too) and S2 (losers return false and throw nothing).
// Peer bug: none listed exactly (.NET AggregateException ordering / ThrowOnFirstException).
#include "common.hpp"

#include <memory>

namespace stress {
namespace {

constexpr unsigned max_callbacks = 10;
constexpr unsigned max_child = 3;

class throwing_callbacks final : public scenario {
 public:
  explicit throwing_callbacks(unsigned threads)
      : threads_(threads), sources_(threads), won_(threads), ran_(max_callbacks + max_child),
        removed_(max_callbacks + max_child) {}

  void setup(const round_info&, rng& g) override {
    cancelkit::cancellation_source src;
    token_ = src.token();
    for (auto& s : sources_) s = src;
    throw_on_first_ = g.percent(50);
    ncb_ = 1 + g.below(max_callbacks);
    nchild_ = g.percent(50) ? g.below(max_child + 1) : 0;
    unregisterers_ = threads_ > 2 ? g.below(2) : 0;  // the last workers unregister, not cancel
    ran_.resize(ncb_ + nchild_);
    removed_.resize(ncb_ + nchild_);
    nlog_ = 0;
    for (unsigned i = 0; i < ncb_ + nchild_; ++i) throws_[i] = g.percent(40);
    for (unsigned i = 0; i < ncb_; ++i) {
      regs_[i] = token_.register_callback([this, i] { on_run(i); });
    }
    if (nchild_ > 0) {
      child_ = cancelkit::cancellation_source::linked({token_});
      for (unsigned k = 0; k < nchild_; ++k) {
        const unsigned id = ncb_ + k;
        regs_[id] = child_.token().register_callback([this, id] { on_run(id); });
      }
    }
    for (unsigned t = 0; t < threads_; ++t) won_[t] = 0;
  }

  void on_run(unsigned id) {
    STRESS_EXPECT(removed_.get(id) == 0, "callback runs after unregister() returned true (S8)");
    if (ran_[id].fetch_add(1, std::memory_order_relaxed) != 0) {
      STRESS_EXPECT(false, "callback ran twice (S4)");
    }
    log_[nlog_++] = id;  // plain: callbacks of one dispatch run on one thread
    if (throws_[id]) throw static_cast<int>(id);
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    const unsigned cancellers = threads_ - unregisterers_;
    if (tid >= cancellers) {
      std::uint64_t ops = 0;
      for (unsigned k = 0; k < 4; ++k) {
        jitter(g, 256);
        const unsigned id = g.below(ncb_ + nchild_);
        if (regs_[id].unregister()) removed_[id].fetch_add(1, std::memory_order_relaxed);
        ++ops;
      }
      return ops;
    }
    jitter(g, 128);
    cancelkit::cancel_options opt;
    opt.throw_on_first_exception = throw_on_first_;
    try {
      const bool won = sources_[tid].cancel(opt);
      won_[tid] = won ? 1 : 0;
      if (won) outcome_ = outcome::none;
    } catch (const cancelkit::aggregate_exception& e) {
      won_[tid] = 2;
      outcome_ = outcome::aggregate;
      got_.clear();
      for (const std::exception_ptr& p : e.exceptions()) {
        try {
          std::rethrow_exception(p);
        } catch (int id) {
          got_.push_back(static_cast<unsigned>(id));
        } catch (...) {
          got_.push_back(~0u);
        }
      }
    } catch (int id) {
      won_[tid] = 2;
      outcome_ = outcome::first;
      got_.assign(1, static_cast<unsigned>(id));
    } catch (...) {
      won_[tid] = 3;
    }
    STRESS_EXPECT(token_.is_cancellation_requested(), "not requested after cancel() (S12/S13)");
    if (won_[tid] != 0 && nchild_ > 0) {
      STRESS_EXPECT(child_.is_cancellation_requested(),
                    "child not cancelled when the parent's cancel() returned/threw (S20)");
    }
    return 1;
  }

  void check(const round_info&) override {
    unsigned winners = 0;
    for (unsigned t = 0; t < threads_; ++t) {
      STRESS_EXPECT(won_[t] != 3, "cancel() threw an unexpected exception type");
      if (won_[t] != 0) ++winners;
    }
    STRESS_EXPECT(winners == 1, winners, " cancel() calls returned true or threw (S2)");
    // The throwing callbacks that ran, in the order they ran.
    std::vector<unsigned> thrown;
    for (unsigned k = 0; k < nlog_; ++k) {
      if (throws_[log_[k]]) thrown.push_back(log_[k]);
    }
    if (winners == 1) {
      if (thrown.empty()) {
        STRESS_EXPECT(outcome_ == outcome::none, "cancel() threw although no callback threw");
      } else if (!throw_on_first_) {
        STRESS_EXPECT(outcome_ == outcome::aggregate && got_ == thrown,
                      "aggregate_exception does not hold the thrown exceptions in run order (S12)");
      } else {
        STRESS_EXPECT(outcome_ == outcome::first && got_.size() == 1 && got_[0] == thrown[0],
                      "throw_on_first did not propagate the first exception unchanged (S13)");
      }
    }
    // With throw_on_first, callbacks after the first thrower never ran (S13); every other
    // callback ran or was removed by exactly one unregister() (S11).
    bool stopped = false;
    for (unsigned k = 0; k < nlog_ && throw_on_first_; ++k) stopped = stopped || throws_[log_[k]];
    for (unsigned i = 0; i < ncb_ + nchild_; ++i) {
      const int ran = ran_.get(i), removed = removed_.get(i);
      STRESS_EXPECT(ran <= 1 && removed <= 1, "ran ", ran, " removed ", removed);
      if (ran == 0 && removed == 0) {
        // Only S13 leaves a callback (of the source or of the child) in place: then
        // unregister() must still remove it.
        STRESS_EXPECT(throw_on_first_ && stopped,
                      "callback ", i, " neither ran nor was removed (S5/S11)");
        STRESS_EXPECT(regs_[i].unregister(), "skipped callback ", i,
                      " could not be unregistered (S13)");
      } else {
        STRESS_EXPECT(ran + removed == 1, "callback ", i, ": ran ", ran, " removed ", removed,
                      " (S11)");
      }
    }
    for (unsigned i = 0; i < ncb_ + nchild_; ++i) regs_[i] = {};
    child_ = {};
    for (auto& s : sources_) s = {};
    token_ = {};
  }

 private:
  enum class outcome { none, aggregate, first };
  const unsigned threads_;
  std::vector<cancelkit::cancellation_source> sources_;
  std::vector<int> won_;  // 0 lost, 1 returned true, 2 threw expected, 3 threw unexpected
  cancelkit::cancellation_token token_;
  cancelkit::cancellation_source child_;
  cancelkit::cancellation_registration regs_[max_callbacks + max_child];
  bool throws_[max_callbacks + max_child] = {};
  unsigned log_[max_callbacks + max_child] = {};
  unsigned nlog_ = 0;
  counters ran_, removed_;
  bool throw_on_first_ = false;
  unsigned ncb_ = 0, nchild_ = 0, unregisterers_ = 0;
  outcome outcome_ = outcome::none;   // written by the winner only
  std::vector<unsigned> got_;         // written by the winner only
};

}  // namespace

STRESS_SCENARIO(throwing_callbacks, "throwing_callbacks", 130, "S2 S12 S13 S20",
                "none listed exactly (.NET AggregateException order, ThrowOnFirstException)",
                "throwing callbacks with racing cancellers, with and without throw_on_first", 2);

}  // namespace stress
