// dispose_inside_callback — callbacks that, while the source is being cancelled, dispose,
// unregister or destroy their own registration, unregister or dispose other registrations of
// the same source, cancel the same source again, register on the same token, drop the
// canceller's source handle, and create/cancel/link other sources — while other workers
// unregister and dispose the same registrations.
//
// Defends S10 (all of that is allowed: no deadlock, a registration removed from inside another
// callback never runs, cancel() inside returns false, a registration inside runs inline), S9
// (self-dispose returns without waiting; a worker's dispose() of a running callback waits) and
// S11. A deadlock shows up as a hang (the runner's watchdog aborts with the round's seed).
// Peer bug: libstdc++ PR 92895 (deregistering another callback from inside request_stop
// deadlocked; a stop_callback destroying itself inside its callback).
#include "common.hpp"

#include <memory>

namespace stress {
namespace {

constexpr unsigned per_thread = 5;

enum class act : unsigned char {
  plain,            // just counts
  self_dispose,     // regs[i].dispose() inside: returns at once
  self_destroy,     // regs[i] = {} inside: the node is freed after the callback returns
  unregister_other, // regs[j].unregister() inside: true => j never runs
  dispose_other,    // regs[j].dispose() inside: j never runs afterwards
  cancel_same,      // source.cancel() inside: false, no deadlock
  register_same,    // token.register_callback() inside: runs inline
  drop_handle,      // drops the canceller's own source handle inside its cancel()
  other_sources,    // creates, links and cancels other sources inside
  count
};

class dispose_inside_callback final : public scenario {
 public:
  explicit dispose_inside_callback(unsigned threads)
      : threads_(threads),
        n_(threads * per_thread),
        regs_(n_),
        acts_(n_),
        target_(n_),
        ran_(n_),
        ran_seq_(n_, 0),
        removed_inside_(n_, 0),
        disposed_inside_at_(n_, 0),
        worker_removed_(n_),
        worker_disposed_(n_),
        touched_(n_) {}

  void setup(const round_info& r, rng& g) override {
    cancelkit::cancellation_source src;
    token_ = src.token();
    canceller_ = static_cast<unsigned>(r.seed % threads_);
    canceller_source_ = src;
    seq_ = 0;
    ran_.resize(n_);
    worker_removed_.resize(n_);
    worker_disposed_.resize(n_);
    touched_.resize(n_);
    for (unsigned i = 0; i < n_; ++i) {
      ran_seq_[i] = 0;
      removed_inside_[i] = 0;
      disposed_inside_at_[i] = 0;
      acts_[i] = static_cast<act>(g.below(static_cast<unsigned>(act::count)));
      target_[i] = g.below(n_);
    }
    for (unsigned i = 0; i < n_; ++i) {
      cancelkit::cancellation_source copy = acts_[i] == act::cancel_same ? src
                                                                         : cancelkit::cancellation_source();
      regs_[i] = token_.register_callback([this, i, copy]() mutable { on_run(i, copy); });
    }
  }

  // Workers never touch a registration that destroys itself (destroying a registration
  // concurrently with other calls on it is not allowed), nor one that does that to others.
  bool worker_may_touch(unsigned i) const { return acts_[i] != act::self_destroy; }

  void on_run(unsigned i, cancelkit::cancellation_source& copy) {
    STRESS_EXPECT(worker_disposed_.get(i) == 0, "callback ", i,
                  " started after a worker's dispose() returned (S9)");
    STRESS_EXPECT(worker_removed_.get(i) == 0, "callback ", i,
                  " runs after a worker's unregister() returned true (S8)");
    STRESS_EXPECT(removed_inside_[i] == 0, "callback ", i,
                  " runs after another callback unregistered it (S10)");
    STRESS_EXPECT(disposed_inside_at_[i] == 0, "callback ", i,
                  " runs after another callback disposed it (S10)");
    if (ran_[i].fetch_add(1, std::memory_order_relaxed) != 0) {
      STRESS_EXPECT(false, "callback ", i, " ran twice (S4)");
    }
    ran_seq_[i] = ++seq_;  // plain: only the dispatching thread runs these callbacks
    const unsigned j = target_[i];
    switch (acts_[i]) {
      case act::plain:
        break;
      case act::self_dispose:
        STRESS_EXPECT(!regs_[i].unregister(), "a running callback unregistered itself (S8)");
        regs_[i].dispose();  // must not wait for itself (S9)
        break;
      case act::self_destroy:
        regs_[i] = {};  // the block must outlive this call: the dispatcher frees it afterwards
        break;
      case act::unregister_other:
        if (j != i && acts_[j] != act::self_destroy && regs_[j].unregister()) removed_inside_[j] = 1;
        break;
      case act::dispose_other:
        if (j != i && acts_[j] != act::self_destroy && ran_seq_[j] == 0) {
          regs_[j].dispose();  // not running (one dispatcher): removes it, never waits
          if (ran_seq_[j] == 0) disposed_inside_at_[j] = seq_;
        }
        break;
      case act::cancel_same:
        STRESS_EXPECT(!copy.cancel(), "cancel() inside a callback of the same source returned true (S10)");
        break;
      case act::register_same: {
        bool inner = false;
        cancelkit::cancellation_registration r = token_.register_callback([&inner] { inner = true; });
        STRESS_EXPECT(inner, "registration inside a callback did not run inline (S6/S10)");
        STRESS_EXPECT(!r.unregister(), "inline registration inside a callback is not inert (S6)");
        break;
      }
      case act::drop_handle:
        canceller_source_ = {};  // S10: the state stays alive until the cancelling call returns
        break;
      case act::other_sources: {
        cancelkit::cancellation_source other;
        int other_ran = 0;
        cancelkit::cancellation_registration r = other.token().register_callback([&] { ++other_ran; });
        cancelkit::cancellation_source child = cancelkit::cancellation_source::linked({token_});
        STRESS_EXPECT(child.is_cancellation_requested(), "child of a cancelled token not born cancelled (S19)");
        STRESS_EXPECT(other.cancel(), "nested cancel() of another source returned false");
        STRESS_EXPECT(other_ran == 1, "nested cancel() did not run its callback (S5)");
        break;
      }
      case act::count:
        break;
    }
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    if (tid == canceller_) {
      jitter(g, 256);
      cancelkit::cancellation_source& src = canceller_source_;
      STRESS_EXPECT(src.cancel(), "the only canceller's cancel() returned false (S2)");
      return 1;
    }
    std::uint64_t ops = 0;
    for (unsigned k = 0; k < per_thread; ++k) {
      jitter(g, 128);
      const unsigned i = g.below(n_);
      if (!worker_may_touch(i)) continue;
      touched_[i].store(1, std::memory_order_relaxed);
      if (g.percent(50)) {
        if (regs_[i].unregister()) worker_removed_[i].store(1, std::memory_order_relaxed);
      } else {
        regs_[i].dispose();
        worker_disposed_[i].store(1, std::memory_order_relaxed);
      }
      ++ops;
    }
    return ops;
  }

  void check(const round_info&) override {
    STRESS_EXPECT(token_.is_cancellation_requested(), "source not cancelled");
    for (unsigned i = 0; i < n_; ++i) {
      const int ran = ran_.get(i);
      STRESS_EXPECT(ran <= 1, "callback ", i, " ran ", ran, " times (S4)");
      if (worker_removed_.get(i) || removed_inside_[i]) {
        STRESS_EXPECT(ran == 0, "callback ", i, " ran although an unregister() returned true (S8)");
      }
      if (disposed_inside_at_[i] != 0 && ran) {
        STRESS_EXPECT(ran_seq_[i] < disposed_inside_at_[i], "callback ", i,
                      " ran after another callback disposed it (S10)");
      }
      const bool targeted = touched_.get(i) != 0 || removed_inside_[i] != 0 || disposed_inside_at_[i] != 0;
      if (!targeted) {
        STRESS_EXPECT(ran == 1, "untouched callback ", i, " ran ", ran, " times (S5)");
      }
      regs_[i] = {};
    }
    canceller_source_ = {};
    token_ = {};
  }

 private:
  const unsigned threads_;
  const unsigned n_;
  cancelkit::cancellation_token token_;
  cancelkit::cancellation_source canceller_source_;  // the canceller's handle (may drop inside)
  std::vector<cancelkit::cancellation_registration> regs_;
  std::vector<act> acts_;
  std::vector<unsigned> target_;
  counters ran_;
  // Written only by the dispatching thread (inside callbacks), read in check().
  std::vector<unsigned> ran_seq_, removed_inside_, disposed_inside_at_;
  unsigned seq_ = 0;
  counters worker_removed_, worker_disposed_, touched_;
  unsigned canceller_ = 0;
};

}  // namespace

STRESS_SCENARIO(dispose_inside_callback, "dispose_inside_callback", 50, "S4 S6 S8 S9 S10 S11",
                "libstdc++ PR 92895 (deregistering another callback inside request_stop "
                "deadlocked)",
                "callbacks dispose themselves and others, cancel/register inside; workers dispose", 2);

}  // namespace stress
