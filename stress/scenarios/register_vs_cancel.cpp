// register_vs_cancel — workers register callbacks (cancellation_registration and the RAII
// cancellation_callback) while one of them cancels.
//
// Defends S6: a registration racing with cancel() is run either by the cancelling thread or
// inline by the registering thread before register_callback returns — never both, never
// neither; an inline registration is inert (unregister() returns false); after a cancel()
// returned, every new registration runs inline. Also S4 (at most once).
// Peer bug: microsoft/STL#1196 class (a registration deciding on a stale "requested" flag).
#include "common.hpp"

#include <memory>

namespace stress {
namespace {

constexpr unsigned per_thread = 12;  // registrations per worker and round

class register_vs_cancel final : public scenario {
  struct fn {
    register_vs_cancel* self;
    unsigned idx;
    void operator()() const { self->on_run(idx); }
  };
  using raii_t = cancelkit::cancellation_callback<fn>;

 public:
  explicit register_vs_cancel(unsigned threads)
      : threads_(threads),
        n_(threads * per_thread),
        regs_(n_),
        raii_(std::make_unique<std::optional<raii_t>[]>(n_)),
        ran_(n_),
        ran_on_(std::make_unique<thread_tag[]>(n_)),
        ids_(threads) {}

  void setup(const round_info& r, rng& g) override {
    source_ = cancelkit::cancellation_source();
    token_ = source_.token();
    canceller_ = static_cast<unsigned>(r.seed % threads_);
    cancel_at_ = g.below(per_thread + 1);
    ran_.resize(n_);
    for (unsigned i = 0; i < n_; ++i) ran_on_[i].store(std::thread::id(), std::memory_order_relaxed);
  }

  void on_run(unsigned idx) {
    if (ran_[idx].fetch_add(1, std::memory_order_relaxed) != 0) {
      STRESS_EXPECT(false, "registration ", idx, " ran twice (S4/S6)");
    }
    ran_on_[idx].store(std::this_thread::get_id(), std::memory_order_relaxed);
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    const std::thread::id me = std::this_thread::get_id();
    ids_[tid] = me;
    std::uint64_t ops = 0;
    bool cancelled_here = false;
    for (unsigned k = 0; k <= per_thread; ++k) {
      if (tid == canceller_ && k == cancel_at_) {
        jitter(g, 64);
        STRESS_EXPECT(source_.cancel(), "the only canceller's cancel() returned false (S2)");
        cancelled_here = true;
        ++ops;
      }
      if (k == per_thread) break;
      const unsigned idx = tid * per_thread + k;
      jitter(g, 32);
      const bool was_requested = token_.is_cancellation_requested();
      const bool raii = g.percent(35);
      if (raii) {
        raii_[idx].emplace(token_, fn{this, idx});
      } else {
        regs_[idx] = token_.register_callback(fn{this, idx});
      }
      ops += 2;
      // Right after the call, "ran on this thread" can only mean "ran inline": this thread's
      // stored callbacks run only in its own cancel(), which is not running now.
      const bool inline_run = ran_on_[idx].load(std::memory_order_relaxed) == me;
      if (was_requested || cancelled_here) {
        // Registered after the request was visible: must have run inline, right now (S6).
        STRESS_EXPECT(ran_.get(idx) == 1 && inline_run,
                      "registration after the request did not run inline (S6)");
      }
      if (inline_run) {
        STRESS_EXPECT(token_.is_cancellation_requested(),
                      "callback ran inline on an uncancelled token (S6)");
        const bool removed = raii ? raii_[idx]->unregister() : regs_[idx].unregister();
        STRESS_EXPECT(!removed, "unregister() of an inline registration returned true (S6/S8)");
        ++ops;
      }
    }
    return ops;
  }

  void check(const round_info&) override {
    const std::thread::id canceller_id = ids_[canceller_];
    for (unsigned i = 0; i < n_; ++i) {
      STRESS_EXPECT(ran_.get(i) == 1, "registration ", i, " of thread ", i / per_thread, " ran ",
                    ran_.get(i), " times: never both, never neither (S6)");
      const std::thread::id on = ran_on_[i].load(std::memory_order_relaxed);
      STRESS_EXPECT(on == ids_[i / per_thread] || on == canceller_id,
                    "registration ", i, " ran on a thread that neither registered nor cancelled");
      regs_[i] = {};
      raii_[i].reset();
    }
    token_ = {};
    source_ = {};
  }

 private:
  const unsigned threads_;
  const unsigned n_;
  cancelkit::cancellation_source source_;
  cancelkit::cancellation_token token_;
  std::vector<cancelkit::cancellation_registration> regs_;  // slot per registration
  std::unique_ptr<std::optional<raii_t>[]> raii_;
  counters ran_;
  std::unique_ptr<thread_tag[]> ran_on_;
  std::vector<std::thread::id> ids_;
  unsigned canceller_ = 0;
  unsigned cancel_at_ = 0;
};

}  // namespace

STRESS_SCENARIO(register_vs_cancel, "register_vs_cancel", 20, "S4 S6 S8",
                "microsoft/STL#1196 class (registration deciding on a stale requested flag)",
                "workers register (registration and RAII callback) while one cancels", 2);

}  // namespace stress
