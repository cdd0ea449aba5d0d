// bridge_request_race — cancel() of a source whose std bridge has std-linked children, while
// other workers call to_stop_token() on it the moment they see the request: the window between
// REQUESTED being published and the canceller reaching its bridge (on_requested). A
// to_stop_token() in that window requests the bridge itself (it cannot know whether the
// canceller saw the bridge) and so runs the children's triggers on its own thread.
//
// Defends S20 (when cancel() returns, every source linked below it is cancelled and its
// callbacks have run) through [B6] of impl/src/source_extension.hpp: std::stop_source's
// request_stop() returns false at once to the loser without waiting for the winner's
// callbacks, so a canceller that lost must wait for the to_stop_token() that won. Found by
// std_linked_chains (issue 17); this scenario aims at that window alone, so the bug (mutant
// 42) shows in the first rounds instead of once in thousands.
#include "common.hpp"

#include <chrono>
#include <optional>
#include <stop_token>
#include <vector>

namespace stress {
namespace {

constexpr unsigned children = 4;

class bridge_request_race final : public scenario {
 public:
  explicit bridge_request_race(unsigned) : ran_(children) {}

  void setup(const round_info&, rng&) override {
    root_.emplace();
    token_ = root_->token();
    const std::stop_token bridge = token_.to_stop_token();  // the bridge exists before cancel()
    kids_.clear();
    regs_.clear();
    ran_.resize(children);
    for (unsigned i = 0; i < children; ++i) {
      kids_.push_back(cancelkit::cancellation_source::linked(bridge));
      regs_.push_back(kids_.back().token().register_callback([this, i] {
        // A callback that takes a moment: the loser of the bridge request would return first.
        for (int spin = 0; spin < 200; ++spin) std::atomic_signal_fence(std::memory_order_seq_cst);
        ran_[i].fetch_add(1, std::memory_order_relaxed);
      }));
    }
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    if (tid == 0) {
      jitter(g, 256);
      STRESS_EXPECT(root_->cancel(), "the only cancel() returned false (S2)");
      // S20: every std-linked child is cancelled and its callback has run, whichever thread
      // requested the bridge.
      for (unsigned i = 0; i < children; ++i) {
        STRESS_EXPECT(kids_[i].is_cancellation_requested(),
                      "a std-linked child is not cancelled when cancel() returns (S20)");
        STRESS_EXPECT(ran_.get(i) == 1, "a std-linked child's callback has not run (", ran_.get(i),
                      " runs) when cancel() returns (S20, [B6])");
      }
      return 1 + children;
    }
    // Wait for the request, then ask for the bridge at once: inside the canceller's window.
    std::uint64_t ops = 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!token_.is_cancellation_requested() && std::chrono::steady_clock::now() < until) ++ops;
    const std::stop_token st = token_.to_stop_token();
    STRESS_EXPECT(st.stop_requested(), "to_stop_token() of a cancelled token is not requested (S22)");
    return ops + 1;
  }

  void check(const round_info&) override {
    for (unsigned i = 0; i < children; ++i)
      STRESS_EXPECT(ran_.get(i) == 1, "a std-linked child's callback ran ", ran_.get(i), " times (S4)");
    regs_.clear();
    kids_.clear();
    token_ = {};
    root_.reset();
  }

 private:
  std::optional<cancelkit::cancellation_source> root_;
  cancelkit::cancellation_token token_;
  std::vector<cancelkit::cancellation_source> kids_;
  std::vector<cancelkit::cancellation_registration> regs_;
  counters ran_;
};

}  // namespace

STRESS_SCENARIO(bridge_request_race, "bridge_request_race", 175, "S4 S20 S22",
                "issue 17 (found by std_linked_chains: cancel() returned before std-linked children)",
                "cancel() vs to_stop_token() in the window before the canceller reaches its bridge", 2);

}  // namespace stress
