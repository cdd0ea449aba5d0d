// unregister_vs_cancel — workers unregister() (then dispose()) random registrations, several
// threads on the same registration at once, while one worker cancels.
//
// Defends S11: for every registration of a cancelled source exactly one of "the callback ran"
// and "some unregister() returned true" holds; S8: unregister() is true at most once and, once
// true, the callback never runs; concurrent unregister()/dispose() on one registration is safe.
// Peer bug: coreclr#20145 (cancel detached the whole list at once; a concurrent dispose could
// neither remove the callback nor wait for it, so it ran after dispose returned).
#include "common.hpp"

#include <memory>

namespace stress {
namespace {

constexpr unsigned per_thread = 6;

class unregister_vs_cancel final : public scenario {
  struct fn {
    unregister_vs_cancel* self;
    unsigned idx;
    void operator()() const { self->on_run(idx); }
  };
  using raii_t = cancelkit::cancellation_callback<fn>;

 public:
  explicit unregister_vs_cancel(unsigned threads)
      : threads_(threads),
        n_(threads * per_thread),
        regs_(n_),
        raii_(std::make_unique<std::optional<raii_t>[]>(n_)),
        is_raii_(n_),
        ran_(n_),
        removed_(n_) {}

  void setup(const round_info& r, rng& g) override {
    source_ = cancelkit::cancellation_source();
    const cancelkit::cancellation_token token = source_.token();
    canceller_ = static_cast<unsigned>(r.seed % threads_);
    ran_.resize(n_);
    removed_.resize(n_);
    for (unsigned i = 0; i < n_; ++i) {
      is_raii_[i] = g.percent(30);
      if (is_raii_[i]) {
        raii_[i].emplace(token, fn{this, i});
      } else {
        regs_[i] = token.register_callback(fn{this, i});
      }
    }
  }

  void on_run(unsigned idx) {
    STRESS_EXPECT(removed_.get(idx) == 0, "callback ", idx,
                  " runs after an unregister() returned true (S8)");
    if (ran_[idx].fetch_add(1, std::memory_order_relaxed) != 0) {
      STRESS_EXPECT(false, "callback ", idx, " ran twice (S4)");
    }
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    std::uint64_t ops = 0;
    const unsigned attempts = 2 * per_thread;
    const unsigned cancel_at = tid == canceller_ ? g.below(attempts + 1) : attempts + 1;
    for (unsigned k = 0; k <= attempts; ++k) {
      if (k == cancel_at) {
        STRESS_EXPECT(source_.cancel(), "the only canceller's cancel() returned false (S2)");
        ++ops;
      }
      if (k == attempts) break;
      jitter(g, 48);
      const unsigned i = g.below(n_);
      const bool r = is_raii_[i] ? raii_[i]->unregister() : regs_[i].unregister();
      ++ops;
      if (r) removed_[i].fetch_add(1, std::memory_order_relaxed);
      if (!is_raii_[i] && g.percent(30)) {
        // After this thread's unregister() attempt: removes nothing more, may wait (S9/S11).
        regs_[i].dispose();
        ++ops;
        STRESS_EXPECT(!regs_[i].unregister(), "unregister() true after dispose() (S8)");
      }
    }
    return ops;
  }

  void check(const round_info&) override {
    for (unsigned i = 0; i < n_; ++i) {
      const int ran = ran_.get(i), removed = removed_.get(i);
      STRESS_EXPECT(removed <= 1, "unregister() returned true ", removed, " times (S8)");
      STRESS_EXPECT(ran + removed == 1, "registration ", i, ": ran ", ran,
                    " times, unregister() true ", removed, " times (S11: exactly one)");
      regs_[i] = {};
      raii_[i].reset();
    }
    source_ = {};
  }

 private:
  const unsigned threads_;
  const unsigned n_;
  cancelkit::cancellation_source source_;
  std::vector<cancelkit::cancellation_registration> regs_;
  std::unique_ptr<std::optional<raii_t>[]> raii_;
  std::vector<bool> is_raii_;  // written in setup only
  counters ran_;
  counters removed_;
  unsigned canceller_ = 0;
};

}  // namespace

STRESS_SCENARIO(unregister_vs_cancel, "unregister_vs_cancel", 30, "S8 S11",
                "coreclr#20145 (bulk detach: a disposed callback still ran)",
                "workers unregister/dispose shared registrations while one cancels", 2);

}  // namespace stress
