// dispose_vs_running — workers dispose registrations (dispose(), destruction, RAII callbacks;
// sometimes two threads dispose one registration) while another worker is running them, and
// free the memory the callback writes right after dispose() returns.
//
// Defends S9 (after dispose() returns on another thread the callback is neither running nor
// will ever run, and its effects happen-before the return) and S11 (two threads may dispose one
// registration concurrently). A callback still running — or not ordered before the return — is
// a heap-use-after-free for ASan and a data race for TSan; the flags below also catch it without
// a sanitizer.
// Peer bugs: coreclr#20145 (a dispose returned early and the callback ran after dispose) and
// libstdc++ PR 92895 (a stop_callback destroyed on another thread returned while the callback
// still ran).
#include "common.hpp"

#include <memory>

namespace stress {
namespace {

constexpr unsigned per_thread = 4;
constexpr unsigned victim_words = 16;

struct victim {
  std::uint64_t words[victim_words] = {};
};

class dispose_vs_running final : public scenario {
  struct fn {
    dispose_vs_running* self;
    unsigned idx;
    victim* v;
    unsigned spins;
    void operator()() const { self->on_run(idx, v, spins); }
  };
  using raii_t = cancelkit::cancellation_callback<fn>;
  enum class how : unsigned char { dispose, destroy, raii };

 public:
  explicit dispose_vs_running(unsigned threads)
      : threads_(threads),
        n_(threads * per_thread),
        regs_(n_),
        raii_(n_),
        victims_(n_, nullptr),
        how_(n_),
        owner_(n_),
        co_(n_),
        running_(n_),
        disposed_(n_),
        ran_(n_),
        finished_(n_) {}

  void setup(const round_info& r, rng& g) override {
    source_ = cancelkit::cancellation_source();
    const cancelkit::cancellation_token token = source_.token();
    canceller_ = static_cast<unsigned>(r.seed % threads_);
    running_.resize(n_);
    disposed_.resize(n_);
    ran_.resize(n_);
    finished_.resize(n_);
    for (unsigned i = 0; i < n_; ++i) {
      // Owner: any worker but the canceller; sometimes a second worker disposes it too.
      owner_[i] = (canceller_ + 1 + g.below(threads_ - 1)) % threads_;
      how_[i] = static_cast<how>(g.below(3));
      co_[i] = threads_;  // none
      if (how_[i] == how::dispose && threads_ > 2 && g.percent(40)) {
        unsigned c = (canceller_ + 1 + g.below(threads_ - 1)) % threads_;
        if (c != owner_[i]) co_[i] = c;
      }
      victims_[i] = new victim();
      const fn f{this, i, victims_[i], g.below(400)};
      if (how_[i] == how::raii) {
        raii_[i] = std::make_unique<raii_t>(token, f);
      } else {
        regs_[i] = token.register_callback(f);
      }
    }
  }

  void on_run(unsigned idx, victim* v, unsigned spins) {
    running_[idx].store(1, std::memory_order_relaxed);
    STRESS_EXPECT(disposed_[idx].load(std::memory_order_acquire) == 0, "callback ", idx,
                  " started after its dispose() returned (S9)");
    for (unsigned k = 0; k < spins; ++k) {
      v->words[k % victim_words] += k;  // plain writes: the disposer frees this memory
    }
    ran_[idx].fetch_add(1, std::memory_order_relaxed);
    running_[idx].store(0, std::memory_order_relaxed);
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    std::uint64_t ops = 0;
    if (tid == canceller_) {
      jitter(g, 512);
      STRESS_EXPECT(source_.cancel(), "the only canceller's cancel() returned false (S2)");
      return 1;
    }
    // Dispose what this worker owns or co-disposes, in a random order with random gaps.
    std::vector<unsigned> mine;
    for (unsigned i = 0; i < n_; ++i) {
      if (owner_[i] == tid || co_[i] == tid) mine.push_back(i);
    }
    for (std::size_t k = mine.size(); k > 1; --k) {
      std::swap(mine[k - 1], mine[g.below(static_cast<std::uint32_t>(k))]);
    }
    for (const unsigned i : mine) {
      jitter(g, 256);
      switch (how_[i]) {
        case how::dispose: regs_[i].dispose(); break;
        case how::destroy: regs_[i] = {}; break;
        case how::raii: raii_[i].reset(); break;
      }
      ++ops;
      STRESS_EXPECT(running_[i].load(std::memory_order_relaxed) == 0, "callback ", i,
                    " still running after dispose() returned (S9)");
      disposed_[i].store(1, std::memory_order_release);
      const int disposers = co_[i] < threads_ ? 2 : 1;
      if (finished_[i].fetch_add(1, std::memory_order_acq_rel) + 1 == disposers) {
        // Every disposer has returned: the callback is done with the memory, free it now.
        std::uint64_t sum = 0;
        for (const std::uint64_t w : victims_[i]->words) sum += w;
        static_cast<void>(sum);
        delete victims_[i];
        victims_[i] = nullptr;
      }
    }
    return ops;
  }

  void check(const round_info&) override {
    for (unsigned i = 0; i < n_; ++i) {
      STRESS_EXPECT(ran_.get(i) <= 1, "callback ", i, " ran ", ran_.get(i), " times (S4)");
      STRESS_EXPECT(victims_[i] == nullptr, "registration ", i, " was not disposed");
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
  std::vector<std::unique_ptr<raii_t>> raii_;
  std::vector<victim*> victims_;  // slot i: written by setup and by the last disposer of i
  std::vector<how> how_;
  std::vector<unsigned> owner_, co_;
  counters running_, disposed_, ran_, finished_;
  unsigned canceller_ = 0;
};

}  // namespace

STRESS_SCENARIO(dispose_vs_running, "dispose_vs_running", 40, "S9 S11",
                "coreclr#20145 (callback ran after dispose); libstdc++ PR 92895 (dispose on "
                "another thread returned while the callback ran)",
                "dispose registrations while their callbacks run, then free their memory", 3);

}  // namespace stress
