// last_handle_drop — every worker holds a handle of one source and, at random, cancels through
// it, drops it, self-assigns, copy/move-assigns and swaps it, re-copies it from a shared
// read-only handle, replaces it with an unrelated source, and registers callbacks that drop the
// canceller's own handle while its cancel() is running. Sometimes the last handle goes while a
// cancel is in progress, sometimes without any cancel at all.
//
// Defends S10 (dropping the last handle inside a callback: the state stays alive until the
// cancelling call returns), S23/S24 (once nothing can cancel it: not cancellable, pending
// callbacks never run and their unregister() is false), S2 (at most one cancel() true), and the
// reference counting of copy/move/self assignment (ASan: no double free, no leak).
// Peer bug: josuttis/jthread#42 (stop_source assignment deleted the shared state twice).
#include "common.hpp"

#include <memory>

namespace stress {
namespace {

constexpr unsigned ops_per_thread = 24;
constexpr unsigned max_regs = 8;

class last_handle_drop final : public scenario {
 public:
  explicit last_handle_drop(unsigned threads)
      : threads_(threads),
        slots_(threads),
        ids_(std::make_unique<thread_tag[]>(threads)),
        wins_(threads),
        regs_(threads * max_regs),
        nregs_(threads),
        ran_(threads * max_regs) {}

  void setup(const round_info&, rng& g) override {
    cancelkit::cancellation_source origin;
    token_ = origin.token();
    for (auto& s : slots_) s = origin;
    keep_shared_ = g.percent(25);
    if (keep_shared_) shared_ = origin;
    ran_.resize(threads_ * max_regs);
    for (unsigned t = 0; t < threads_; ++t) {
      wins_[t] = 0;
      nregs_[t] = 0;
    }
  }

  bool holds_origin(unsigned t) const { return slots_[t].token() == token_; }

  std::uint64_t work(unsigned tid, rng& g) override {
    ids_[tid].store(std::this_thread::get_id(), std::memory_order_relaxed);
    cancelkit::cancellation_source& mine = slots_[tid];
    std::uint64_t ops = 0;
    for (unsigned k = 0; k < ops_per_thread; ++k) {
      jitter(g, 64);
      ++ops;
      switch (g.below(10)) {
        case 0:
        case 1: {
          const bool origin = holds_origin(tid);
          const bool won = mine.cancel();
          if (won && origin) {  // (an unrelated source of case 7 may win its own cancel)
            ++wins_[tid];
            // S5: every registration stored before the request ran before cancel() returned.
            STRESS_EXPECT(token_.is_cancellation_requested(), "not requested after cancel()");
          }
          break;
        }
        case 2:
          mine = {};
          break;
        case 3: {
          cancelkit::cancellation_source& self = mine;
          mine = self;  // self copy-assignment
          break;
        }
        case 4: {
          cancelkit::cancellation_source tmp = mine;
          mine = std::move(tmp);
          break;
        }
        case 5: {
          cancelkit::cancellation_source tmp = mine;
          tmp.swap(mine);
          mine = {};
          mine = std::move(tmp);
          break;
        }
        case 6:
          if (keep_shared_) mine = shared_;  // copy from a handle other threads copy too
          break;
        case 7:
          if (g.percent(30)) mine = cancelkit::cancellation_source();  // an unrelated source
          break;
        default: {
          if (nregs_[tid] == max_regs) break;
          const unsigned idx = tid * max_regs + nregs_[tid]++;
          regs_[idx] = token_.register_callback([this, tid, idx] {
            if (ran_[idx].fetch_add(1, std::memory_order_relaxed) != 0) {
              STRESS_EXPECT(false, "callback ran twice (S4)");
            }
            // Only on its registering thread (in its own cancel() or inline): drop that
            // thread's handle, possibly the last one, while the cancel is still running (S10).
            if (ids_[tid].load(std::memory_order_relaxed) == std::this_thread::get_id()) {
              slots_[tid] = {};
            }
          });
          break;
        }
      }
      const cancelkit::cancellation_token t = mine.token();
      if (t == token_) {
        STRESS_EXPECT(t.can_be_canceled(), "a live handle's token cannot be canceled (S23/S24)");
      }
    }
    return ops;
  }

  void check(const round_info&) override {
    unsigned wins = 0;
    bool held = keep_shared_;
    for (unsigned t = 0; t < threads_; ++t) {
      wins += wins_[t];
      held = held || holds_origin(t);
    }
    STRESS_EXPECT(wins <= 1, wins, " cancel() calls returned true (S2)");
    const bool requested = token_.is_cancellation_requested();
    STRESS_EXPECT(requested == (wins == 1), "requested ", requested, " but ", wins, " wins (S1/S2)");
    if (!requested) {
      STRESS_EXPECT(token_.can_be_canceled() == held, "can_be_canceled() ",
                    token_.can_be_canceled(), " with a handle held: ", held, " (S23/S24)");
      if (!held) {
        STRESS_EXPECT(!token_.wait_for(std::chrono::hours(1)),
                      "wait_for on an orphaned token returned true (S23)");
      }
    } else {
      STRESS_EXPECT(token_.can_be_canceled(), "cancelled token cannot be canceled (S24)");
    }
    for (unsigned t = 0; t < threads_; ++t) {
      for (unsigned k = 0; k < nregs_[t]; ++k) {
        const unsigned idx = t * max_regs + k;
        const int ran = ran_.get(idx);
        if (requested) {
          STRESS_EXPECT(ran == 1, "registration ", idx, " ran ", ran, " times (S5/S6)");
        } else {
          STRESS_EXPECT(ran == 0, "callback ran without a cancel (S23)");
          if (!held) {
            STRESS_EXPECT(!regs_[idx].unregister(),
                          "unregister() true after the last canceller went (S8/S23)");
          }
        }
        regs_[idx] = {};
      }
    }
    for (auto& s : slots_) s = {};
    shared_ = {};
    token_ = {};
  }

 private:
  const unsigned threads_;
  std::vector<cancelkit::cancellation_source> slots_;  // slot t: worker t only
  std::unique_ptr<thread_tag[]> ids_;
  std::vector<unsigned> wins_;
  std::vector<cancelkit::cancellation_registration> regs_;
  std::vector<unsigned> nregs_;
  counters ran_;
  cancelkit::cancellation_token token_;
  cancelkit::cancellation_source shared_;  // read-only during work
  bool keep_shared_ = false;
};

}  // namespace

STRESS_SCENARIO(last_handle_drop, "last_handle_drop", 60, "S2 S10 S23 S24",
                "josuttis/jthread#42 (double delete on stop_source assignment)",
                "handles copied, moved, self-assigned and dropped while cancelling", 2);

}  // namespace stress
