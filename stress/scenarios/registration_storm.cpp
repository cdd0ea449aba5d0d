// registration_storm — every worker registers, unregisters and disposes callbacks on one token
// as fast as it can (cancellation_registration and stack cancellation_callback churn), while one
// of them cancels somewhere in the middle.
//
// Defends S4 (at most once), S5 (every registration still in place at the request runs exactly
// once, latest first: a worker's own surviving registrations run in reverse registration
// order), S8 (unregister() true => never runs), S9 (never starts after dispose() returned) and
// the list's integrity under contention (ASan/TSan on the intrusive list and node recycling).
// Peer bug: coreclr#20145 class (registration list corruption under concurrent
// register/unregister during cancel).
#include "common.hpp"

#include <memory>

namespace stress {
namespace {

constexpr unsigned ops_per_thread = 160;
constexpr unsigned live_max = 12;

class registration_storm final : public scenario {
  struct record {
    std::atomic<int> ran{0};
    std::atomic<int> disposed{0};
    std::atomic<unsigned> seq{0};
    bool removed = false;   // unregister() returned true (owner thread only)
    bool touched = false;   // unregister()/dispose() attempted (owner thread only)
    bool inline_run = false;
  };
  struct fn {
    registration_storm* self;
    record* rec;
    void operator()() const { self->on_run(*rec); }
  };

 public:
  explicit registration_storm(unsigned threads)
      : threads_(threads),
        records_(std::make_unique<record[]>(threads * ops_per_thread)),
        counts_(threads),
        regs_(threads * ops_per_thread) {}

  void setup(const round_info& r, rng& g) override {
    source_ = cancelkit::cancellation_source();
    token_ = source_.token();
    canceller_ = static_cast<unsigned>(r.seed % threads_);
    cancel_at_ = g.below(ops_per_thread);
    seq_.store(0, std::memory_order_relaxed);
    for (unsigned i = 0; i < threads_ * ops_per_thread; ++i) {
      record& rec = records_[i];
      rec.ran.store(0, std::memory_order_relaxed);
      rec.disposed.store(0, std::memory_order_relaxed);
      rec.seq.store(0, std::memory_order_relaxed);
      rec.removed = rec.touched = rec.inline_run = false;
    }
    for (auto& c : counts_) c = 0;
  }

  void on_run(record& rec) {
    STRESS_EXPECT(rec.disposed.load(std::memory_order_acquire) == 0,
                  "callback started after dispose() returned (S9)");
    if (rec.ran.fetch_add(1, std::memory_order_relaxed) != 0) {
      STRESS_EXPECT(false, "callback ran twice (S4)");
    }
    rec.seq.store(seq_.fetch_add(1, std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    std::uint64_t ops = 0;
    const unsigned base = tid * ops_per_thread;
    unsigned live[live_max];
    unsigned nlive = 0;
    for (unsigned k = 0; k < ops_per_thread; ++k) {
      if (tid == canceller_ && k == cancel_at_) {
        STRESS_EXPECT(source_.cancel(), "the only canceller's cancel() returned false (S2)");
        ++ops;
      }
      const unsigned choice = g.below(10);
      if (choice < 5 || nlive == 0) {
        // Register, into a fresh record.
        const unsigned idx = base + counts_[tid]++;
        record& rec = records_[idx];
        regs_[idx] = token_.register_callback(fn{this, &rec});
        rec.inline_run = rec.ran.load(std::memory_order_relaxed) != 0 &&
                         token_.is_cancellation_requested();
        if (nlive < live_max) {
          live[nlive++] = idx;
        } else {
          const unsigned victim = g.below(live_max);
          live[victim] = idx;  // the old one just stays registered until the end
        }
        ++ops;
      } else if (choice < 7) {
        const unsigned pick = g.below(nlive);
        record& rec = records_[live[pick]];
        rec.touched = true;
        if (regs_[live[pick]].unregister()) rec.removed = true;
        live[pick] = live[--nlive];
        ++ops;
      } else if (choice < 9) {
        const unsigned pick = g.below(nlive);
        record& rec = records_[live[pick]];
        rec.touched = true;
        regs_[live[pick]].dispose();
        rec.disposed.store(1, std::memory_order_release);
        live[pick] = live[--nlive];
        ++ops;
      } else {
        // A stack cancellation_callback: registered, maybe unregistered, disposed at once.
        int hits = 0;
        {
          cancelkit::cancellation_callback cb(token_, [&hits] { ++hits; });
          if (g.percent(50)) static_cast<void>(cb.unregister());
        }
        STRESS_EXPECT(hits <= 1, "stack callback ran twice (S4)");
        ops += 2;
      }
      if ((k & 7) == 0) jitter(g, 16);
    }
    return ops;
  }

  void check(const round_info&) override {
    STRESS_EXPECT(token_.is_cancellation_requested(), "never cancelled");
    for (unsigned t = 0; t < threads_; ++t) {
      unsigned last_seq = ~0u;  // the thread's surviving, stored registrations run in reverse
      for (unsigned k = 0; k < counts_[t]; ++k) {
        const unsigned idx = t * ops_per_thread + k;
        record& rec = records_[idx];
        const int ran = rec.ran.load(std::memory_order_relaxed);
        STRESS_EXPECT(ran <= 1, "registration ran ", ran, " times (S4)");
        if (rec.removed) STRESS_EXPECT(ran == 0, "ran although unregister() returned true (S8)");
        if (!rec.touched) {
          STRESS_EXPECT(ran == 1, "untouched registration ", idx, " ran ", ran, " times (S5)");
          if (!rec.inline_run && ran == 1) {
            const unsigned s = rec.seq.load(std::memory_order_relaxed);
            STRESS_EXPECT(s < last_seq, "thread ", t, "'s registrations did not run latest "
                                        "first (S5 LIFO)");
            last_seq = s;
          }
        }
      }
    }
    for (auto& r : regs_) r = {};
    token_ = {};
    source_ = {};
  }

 private:
  const unsigned threads_;
  cancelkit::cancellation_source source_;
  cancelkit::cancellation_token token_;
  std::unique_ptr<record[]> records_;   // thread t owns [t*ops_per_thread, ...)
  std::vector<unsigned> counts_;
  std::vector<cancelkit::cancellation_registration> regs_;
  std::atomic<unsigned> seq_{0};
  unsigned canceller_ = 0;
  unsigned cancel_at_ = 0;
};

}  // namespace

STRESS_SCENARIO(registration_storm, "registration_storm", 120, "S4 S5 S8 S9",
                "coreclr#20145 class (list corruption under concurrent register/unregister "
                "during cancel)",
                "all workers register/unregister/dispose at full speed while one cancels", 2);

}  // namespace stress
