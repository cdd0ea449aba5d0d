// linked_churn — workers create linked sources below 2-3 shared parents (and grandchildren below
// those), register on them, keep or drop them, while one worker cancels one parent.
//
// Defends S19 (a child linked below an already-cancelled parent is born cancelled, with that
// parent's reason), S20 (when the parent's cancel() returns, every source linked below it —
// transitively — is cancelled and its callbacks have run; checked by the canceller right after
// its cancel() returns, over every child published so far) and S21 (children dropped while the
// parent lives detach from it: ASan's leak check and the parent's later cancel see no dead child).
// Peer bug: none of the listed ones exactly; mirrors .NET linked-token registration/disposal
// races (the child's registration on each parent racing the parent's cancel).
#include "common.hpp"

#include <memory>

namespace stress {
namespace {

constexpr unsigned max_parents = 3;
constexpr unsigned children_per_thread = 10;

class linked_churn final : public scenario {
  struct child {
    cancelkit::cancellation_source source;
    cancelkit::cancellation_token grand;  // a linked grandchild's token (may be none)
    cancelkit::cancellation_registration reg, grand_reg;
    unsigned mask = 0;  // which parents it is (transitively) linked below
    std::atomic<int> ran{0}, grand_ran{0};
  };

 public:
  explicit linked_churn(unsigned threads)
      : threads_(threads),
        kids_(std::make_unique<child[]>(threads * children_per_thread)),
        published_(std::make_unique<std::atomic<unsigned>[]>(threads)) {}

  void setup(const round_info& r, rng& g) override {
    nparents_ = 2 + g.below(max_parents - 1);
    for (unsigned p = 0; p < nparents_; ++p) {
      parents_[p] = cancelkit::cancellation_source();
      ptokens_[p] = parents_[p].token();
      reasons_[p] = std::make_exception_ptr(stamped_reason(p, r.seed));
    }
    target_ = g.below(nparents_);
    canceller_ = static_cast<unsigned>(r.seed % threads_);
    for (unsigned t = 0; t < threads_; ++t) published_[t].store(0, std::memory_order_relaxed);
  }

  // Checks every child published so far that lies below the cancelled parent (S20).
  void check_published_below_target(unsigned& checked) {
    for (unsigned t = 0; t < threads_; ++t) {
      const unsigned n = published_[t].load(std::memory_order_acquire);
      for (unsigned k = 0; k < n; ++k) {
        child& c = kids_[t * children_per_thread + k];
        if (!(c.mask & (1u << target_))) continue;
        ++checked;
        STRESS_EXPECT(c.source.is_cancellation_requested(),
                      "child below the cancelled parent not cancelled when cancel() returned (S20)");
        STRESS_EXPECT(c.source.token().cancellation_reason() == reasons_[target_],
                      "child's reason is not its parent's (S16/S19)");
        STRESS_EXPECT(c.ran.load(std::memory_order_relaxed) == 1,
                      "child's callback had not run when the parent's cancel() returned (S20)");
        if (c.grand != cancelkit::cancellation_token()) {
          STRESS_EXPECT(c.grand.is_cancellation_requested(), "grandchild not cancelled (S20)");
          STRESS_EXPECT(c.grand_ran.load(std::memory_order_relaxed) == 1,
                        "grandchild's callback had not run (S20)");
        }
      }
    }
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    std::uint64_t ops = 0;
    const unsigned cancel_at = tid == canceller_ ? g.below(children_per_thread) : ~0u;
    unsigned kept = 0;
    for (unsigned k = 0; k < children_per_thread; ++k) {
      if (k == cancel_at) {
        jitter(g, 64);
        STRESS_EXPECT(parents_[target_].cancel({.reason = reasons_[target_]}),
                      "the only canceller's cancel() returned false (S2)");
        unsigned checked = 0;
        check_published_below_target(checked);
        ops += 1 + checked;
      }
      jitter(g, 32);
      // Pick 1..3 parent tokens, possibly a duplicate and a none token (S19: ignored).
      cancelkit::cancellation_token picks[4];
      unsigned npicks = 1 + g.below(3), mask = 0;
      for (unsigned i = 0; i < npicks; ++i) {
        const unsigned p = g.below(nparents_);
        picks[i] = ptokens_[p];
        mask |= 1u << p;
      }
      if (g.percent(20)) picks[npicks++] = cancelkit::cancellation_token::none();
      bool pre = false;  // a parent already cancelled before linking: born cancelled
      for (unsigned i = 0; i < npicks; ++i) pre = pre || picks[i].is_cancellation_requested();
      cancelkit::cancellation_source src = cancelkit::cancellation_source::linked(
          std::span<const cancelkit::cancellation_token>(picks, npicks));
      ops += 2;
      if (pre) {
        STRESS_EXPECT(src.is_cancellation_requested(),
                      "child of an already-cancelled parent not born cancelled (S19)");
      }
      if (!g.percent(60)) {
        // Dropped at once: must detach from its parents (S21). Register first sometimes.
        if (g.percent(50)) {
          auto reg = src.token().register_callback([] {});
          ++ops;
        }
        continue;
      }
      child& c = kids_[tid * children_per_thread + kept];
      c.source = std::move(src);
      c.mask = mask;
      c.ran.store(0, std::memory_order_relaxed);
      c.grand_ran.store(0, std::memory_order_relaxed);
      c.reg = c.source.token().register_callback([&c] { c.ran.fetch_add(1, std::memory_order_relaxed); });
      c.grand = {};
      if (g.percent(40)) {
        // A grandchild held only by its token: its only canceller is the child (S21/S23).
        const cancelkit::cancellation_source grand =
            cancelkit::cancellation_source::linked({c.source.token()});
        c.grand = grand.token();
        c.grand_reg = c.grand.register_callback(
            [&c] { c.grand_ran.fetch_add(1, std::memory_order_relaxed); });
        ops += 2;
      }
      ops += 1;
      ++kept;
      published_[tid].store(kept, std::memory_order_release);  // after its registrations
    }
    return ops;
  }

  void check(const round_info&) override {
    for (unsigned t = 0; t < threads_; ++t) {
      const unsigned n = published_[t].load(std::memory_order_relaxed);
      for (unsigned k = 0; k < n; ++k) {
        child& c = kids_[t * children_per_thread + k];
        const bool below = (c.mask & (1u << target_)) != 0;
        STRESS_EXPECT(c.source.is_cancellation_requested() == below, "child below parents mask ",
                      c.mask, " requested=", c.source.is_cancellation_requested(),
                      " but target ", target_, " (S19/S20)");
        STRESS_EXPECT(c.ran.load(std::memory_order_relaxed) == (below ? 1 : 0),
                      "child callback ran ", c.ran.load(std::memory_order_relaxed), " times");
        if (c.grand != cancelkit::cancellation_token()) {
          STRESS_EXPECT(c.grand.is_cancellation_requested() == below, "grandchild state wrong (S20)");
          STRESS_EXPECT(c.grand_ran.load(std::memory_order_relaxed) == (below ? 1 : 0),
                        "grandchild callback ran wrong number of times");
        }
        if (below) {
          STRESS_EXPECT(c.source.token().cancellation_reason() == reasons_[target_],
                        "child's reason is not the parent's (S16/S19)");
        }
        c.reg = {};
        c.grand_reg = {};
        c.grand = {};
        c.source = {};
      }
    }
    // The children went first; now the parents (S21: nothing is left attached to them).
    for (unsigned p = 0; p < nparents_; ++p) {
      parents_[p] = {};
      ptokens_[p] = {};
      reasons_[p] = nullptr;
    }
  }

 private:
  const unsigned threads_;
  unsigned nparents_ = 2;
  cancelkit::cancellation_source parents_[max_parents];   // read-only in work but for the canceller
  cancelkit::cancellation_token ptokens_[max_parents];
  std::exception_ptr reasons_[max_parents];
  unsigned target_ = 0;
  unsigned canceller_ = 0;
  std::unique_ptr<child[]> kids_;  // thread t owns [t*children_per_thread, ...)
  std::unique_ptr<std::atomic<unsigned>[]> published_;
};

}  // namespace

STRESS_SCENARIO(linked_churn, "linked_churn", 80, "S16 S19 S20 S21",
                "none listed exactly (.NET linked-token registration racing the parent's cancel)",
                "children/grandchildren linked and dropped while a parent cancels", 2);

}  // namespace stress
