// deep_chain — workers grow chains of linked sources (each node linked below the previous one,
// keeping only tokens or also the sources) under one shared root, while one worker either
// cancels the root or drops the root's last handle; then the chains are freed from the leaf or
// from the root.
//
// Defends S20 (when the root's cancel() returns, every node linked so far is cancelled and its
// callbacks have run; propagation and destruction do not recurse: a deep chain must not overflow
// the stack — ASan reports a stack overflow as an error) and S23 (dropping the root's last handle
// orphans every node whose only canceller was its parent: can_be_canceled() false once the drop
// returns, pending callbacks never run).
// Peer bug: none listed exactly; the class of recursive-propagation stack overflows.
#include "common.hpp"

#include <memory>

namespace stress {
namespace {

class deep_chain final : public scenario {
  struct node {
    cancelkit::cancellation_source source;  // empty when the chain keeps tokens only
    cancelkit::cancellation_token token;
    cancelkit::cancellation_registration reg;
    std::atomic<int> ran{0};
  };

 public:
  explicit deep_chain(unsigned threads)
      : threads_(threads),
        chains_(threads),
        published_(std::make_unique<std::atomic<unsigned>[]>(threads)),
        tokens_only_(threads) {}

  void setup(const round_info& r, rng& g) override {
    root_ = cancelkit::cancellation_source();
    root_token_ = root_.token();
    canceller_ = static_cast<unsigned>(r.seed % threads_);
    orphan_mode_ = g.percent(35);
    depth_ = 50 + g.below(g.percent(10) ? 3000 : 400);
    for (unsigned t = 0; t < threads_; ++t) {
      published_[t].store(0, std::memory_order_relaxed);
      // Orphaning only reaches nodes whose sole canceller is the parent: tokens-only chains.
      tokens_only_[t] = orphan_mode_ || g.percent(50);
      chains_[t] = std::make_unique<node[]>(depth_);
    }
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    if (tid == canceller_) {
      jitter(g, 4096);
      for (unsigned spins = g.below(200); spins > 0; --spins) std::this_thread::yield();
      if (orphan_mode_) {
        root_ = {};  // the last canceller: orphans the whole tree, synchronously (S23)
        check_published(true);
      } else {
        STRESS_EXPECT(root_.cancel(), "the only canceller's cancel() returned false (S2)");
        check_published(false);
      }
      return 1;
    }
    std::uint64_t ops = 0;
    node* chain = chains_[tid].get();
    cancelkit::cancellation_token parent = root_token_;
    for (unsigned k = 0; k < depth_; ++k) {
      node& n = chain[k];
      {
        cancelkit::cancellation_source s = cancelkit::cancellation_source::linked({parent});
        n.token = s.token();
        if (!tokens_only_[tid]) n.source = std::move(s);
      }  // tokens only: the parent is now the node's only canceller, before it is published
      if (k % 16 == 0) {
        n.reg = n.token.register_callback([&n] { n.ran.fetch_add(1, std::memory_order_relaxed); });
        ++ops;
      }
      parent = n.token;
      ops += 2;
      published_[tid].store(k + 1, std::memory_order_release);
    }
    return ops;
  }

  void check_published(bool orphaned) {
    for (unsigned t = 0; t < threads_; ++t) {
      if (t == canceller_) continue;
      const unsigned n = published_[t].load(std::memory_order_acquire);
      for (unsigned k = 0; k < n; ++k) {
        node& nd = chains_[t][k];
        if (orphaned) {
          STRESS_EXPECT(!nd.token.can_be_canceled() && !nd.token.is_cancellation_requested(),
                        "chain node ", k, " still cancellable after the root's last handle "
                        "went (S23)");
        } else {
          STRESS_EXPECT(nd.token.is_cancellation_requested(), "chain node ", k,
                        " not cancelled when the root's cancel() returned (S20)");
          if (k % 16 == 0) {
            STRESS_EXPECT(nd.ran.load(std::memory_order_relaxed) == 1, "chain node ", k,
                          " callback had not run when the root's cancel() returned (S20)");
          }
        }
        if (k > 64 && k + 64 < n) k += 7;  // sample the middle of long chains
      }
    }
  }

  void check(const round_info& r) override {
    for (unsigned t = 0; t < threads_; ++t) {
      if (t == canceller_) continue;
      node* chain = chains_[t].get();
      for (unsigned k = 0; k < depth_; ++k) {
        node& n = chain[k];
        if (orphan_mode_) {
          // Nodes linked after the orphaning had an orphaned parent: not cancellable either.
          STRESS_EXPECT(!n.token.can_be_canceled(), "chain node ", k, " cancellable (S23)");
          STRESS_EXPECT(n.ran.load(std::memory_order_relaxed) == 0, "orphaned node's callback ran");
        } else {
          STRESS_EXPECT(n.token.is_cancellation_requested(), "chain node ", k, " not cancelled (S20)");
          if (k % 16 == 0) {
            STRESS_EXPECT(n.ran.load(std::memory_order_relaxed) == 1, "chain node ", k,
                          " callback ran ", n.ran.load(std::memory_order_relaxed), " times");
          }
        }
      }
      // Free from the leaf (each node's link keeps its parent: iterative destruction, S20) or
      // from the root (each parent goes while children still refer to it).
      if ((r.seed >> t) & 1) {
        for (unsigned k = depth_; k-- > 0;) node_reset(chain[k]);
      } else {
        for (unsigned k = 0; k < depth_; ++k) node_reset(chain[k]);
      }
      chains_[t].reset();
    }
    root_ = {};
    root_token_ = {};
  }

 private:
  static void node_reset(node& n) {
    n.reg = {};
    n.source = {};
    n.token = {};
  }

  const unsigned threads_;
  cancelkit::cancellation_source root_;  // touched by the canceller only during work
  cancelkit::cancellation_token root_token_;
  std::vector<std::unique_ptr<node[]>> chains_;
  std::unique_ptr<std::atomic<unsigned>[]> published_;
  std::vector<unsigned char> tokens_only_;
  unsigned canceller_ = 0;
  unsigned depth_ = 0;
  bool orphan_mode_ = false;
};

}  // namespace

STRESS_SCENARIO(deep_chain, "deep_chain", 90, "S20 S23",
                "none listed exactly (recursive propagation/destruction overflowing the stack)",
                "long linked chains grown while the root is cancelled or orphaned, then freed", 2);

}  // namespace stress
