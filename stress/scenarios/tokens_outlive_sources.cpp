// tokens_outlive_sources — owners cancel or drop their sources at random moments while every
// worker keeps copying the sources' tokens, querying them, registering on them, waiting with a
// zero timeout and bridging them to std::stop_token; tokens (and registrations) outlive the
// sources and are checked after the round.
//
// Defends S23/S24 (a token never dangles; once nothing can cancel the source it reports
// can_be_canceled() == false, never becomes requested, pending callbacks never run and their
// unregister() is false; a requested token stays requested and cancellable), S7 (registering on
// a token that can no longer be canceled stores nothing) and S22 (to_stop_token mirrors both).
// Peer bug: josuttis/jthread#42 class (shared state freed while tokens still referred to it).
#include "common.hpp"

#include <chrono>
#include <memory>
#include <stop_token>

namespace stress {
namespace {

constexpr unsigned sources_per_thread = 2;
constexpr unsigned regs_per_thread = 12;

class tokens_outlive_sources final : public scenario {
 public:
  explicit tokens_outlive_sources(unsigned threads)
      : threads_(threads),
        m_(threads * sources_per_thread),
        owned_(m_),
        tokens_(m_),
        cancel_fate_(m_),
        regs_(threads * regs_per_thread),
        reg_source_(threads * regs_per_thread),
        nregs_(threads),
        ran_(threads * regs_per_thread),
        kept_(threads) {}

  void setup(const round_info&, rng& g) override {
    for (unsigned i = 0; i < m_; ++i) {
      owned_[i] = cancelkit::cancellation_source();
      tokens_[i] = owned_[i].token();
      cancel_fate_[i] = g.percent(50);
    }
    ran_.resize(threads_ * regs_per_thread);
    for (unsigned t = 0; t < threads_; ++t) nregs_[t] = 0;
  }

  void observe(unsigned tid, unsigned j, rng& g, std::uint64_t& ops) {
    const cancelkit::cancellation_token tok = tokens_[j];  // a copy: may outlive the source
    const bool can = tok.can_be_canceled();
    const bool req = tok.is_cancellation_requested();
    ops += 3;
    if (req) {
      STRESS_EXPECT(cancel_fate_[j], "a dropped source's token is requested (S23)");
      STRESS_EXPECT(tok.can_be_canceled(), "requested token cannot be canceled (S24)");
    }
    if (!can) {
      STRESS_EXPECT(!cancel_fate_[j], "a cancelled source's token cannot be canceled (S24)");
      STRESS_EXPECT(!tok.is_cancellation_requested(), "orphaned token became requested (S23)");
      STRESS_EXPECT(!tok.wait_for(std::chrono::seconds(30)),
                    "wait_for on an orphaned token returned true (S23)");
    }
    switch (g.below(4)) {
      case 0:
        if (nregs_[tid] < regs_per_thread) {
          const unsigned idx = tid * regs_per_thread + nregs_[tid]++;
          reg_source_[idx] = j;
          regs_[idx] = tok.register_callback([this, idx, j] {
            STRESS_EXPECT(cancel_fate_[j], "callback of a never-cancelled source ran (S23)");
            if (ran_[idx].fetch_add(1, std::memory_order_relaxed) != 0) {
              STRESS_EXPECT(false, "callback ran twice (S4)");
            }
          });
          if (!can) {
            STRESS_EXPECT(!regs_[idx].unregister(),
                          "registration on an orphaned token was stored (S7)");
          }
          ++ops;
        }
        break;
      case 1: {
        const std::stop_token st = tok.to_stop_token();
        if (!can) STRESS_EXPECT(!st.stop_possible(), "orphaned token bridged to a live stop_token (S22/S23)");
        if (req) STRESS_EXPECT(st.stop_requested(), "requested token bridged to an unrequested stop_token (S22)");
        ++ops;
        break;
      }
      case 2:
        STRESS_EXPECT(tok.wait_for(std::chrono::nanoseconds(0)) == tok.is_cancellation_requested() ||
                          cancel_fate_[j],
                      "wait_for(0) disagrees with is_cancellation_requested()");
        ++ops;
        break;
      default:
        if (kept_[tid].size() < 8) kept_[tid].push_back(tok);  // outlives the round's sources
        break;
    }
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    std::uint64_t ops = 0;
    for (unsigned k = 0; k < sources_per_thread; ++k) {
      const unsigned i = tid + k * threads_;  // this worker's sources
      for (unsigned n = g.below(6); n > 0; --n) observe(tid, g.below(m_), g, ops);
      jitter(g, 128);
      if (cancel_fate_[i]) {
        STRESS_EXPECT(owned_[i].cancel(), "owner's cancel() returned false (S2)");
        if (g.percent(50)) owned_[i] = {};  // a cancelled source's tokens stay cancelled
      } else {
        owned_[i] = {};  // the last handle: orphans the state (S23)
        STRESS_EXPECT(!tokens_[i].can_be_canceled(), "token still cancellable after its last "
                                                     "source handle went (S23)");
      }
      ++ops;
    }
    for (unsigned n = g.below(6); n > 0; --n) observe(tid, g.below(m_), g, ops);
    return ops;
  }

  void check(const round_info&) override {
    for (unsigned i = 0; i < m_; ++i) {
      owned_[i] = {};
      const cancelkit::cancellation_token& tok = tokens_[i];
      if (cancel_fate_[i]) {
        STRESS_EXPECT(tok.is_cancellation_requested() && tok.can_be_canceled(),
                      "cancelled source's token not requested/cancellable (S1/S24)");
      } else {
        STRESS_EXPECT(!tok.is_cancellation_requested() && !tok.can_be_canceled(),
                      "dropped source's token requested or still cancellable (S23)");
        const auto t0 = std::chrono::steady_clock::now();
        STRESS_EXPECT(!tok.wait_for(std::chrono::hours(1)), "wait_for true on an orphaned token");
        STRESS_EXPECT(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10),
                      "wait_for on an orphaned token slept (S23)");
        STRESS_EXPECT(!tok.to_stop_token().stop_possible(), "orphaned token's stop_token is live");
      }
    }
    for (unsigned t = 0; t < threads_; ++t) {
      for (unsigned k = 0; k < nregs_[t]; ++k) {
        const unsigned idx = t * regs_per_thread + k;
        const unsigned j = reg_source_[idx];
        if (cancel_fate_[j]) {
          STRESS_EXPECT(ran_.get(idx) == 1, "registration on a cancelled source ran ",
                        ran_.get(idx), " times (S5/S6)");
        } else {
          STRESS_EXPECT(ran_.get(idx) == 0, "registration on a dropped source ran (S23)");
          STRESS_EXPECT(!regs_[idx].unregister(), "unregister() true after orphaning (S8)");
        }
        regs_[idx] = {};
      }
      kept_[t].clear();
    }
    for (auto& t : tokens_) t = {};
  }

 private:
  const unsigned threads_;
  const unsigned m_;
  std::vector<cancelkit::cancellation_source> owned_;   // slot i: its owner only
  std::vector<cancelkit::cancellation_token> tokens_;   // read-only during work
  std::vector<unsigned char> cancel_fate_;              // read-only during work
  std::vector<cancelkit::cancellation_registration> regs_;
  std::vector<unsigned> reg_source_;
  std::vector<unsigned> nregs_;
  counters ran_;
  std::vector<std::vector<cancelkit::cancellation_token>> kept_;
};

}  // namespace

STRESS_SCENARIO(tokens_outlive_sources, "tokens_outlive_sources", 70, "S7 S22 S23 S24",
                "josuttis/jthread#42 class (shared state freed under live tokens)",
                "tokens used, registered on and bridged while their sources go away", 2);

}  // namespace stress
