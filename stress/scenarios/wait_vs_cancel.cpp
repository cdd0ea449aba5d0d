// wait_vs_cancel — workers block in wait(), wait_for(), wait_until() (steady and system clock)
// and std::condition_variable_any::wait on to_stop_token(), on a source or on a linked child,
// while owners cancel it or drop its last handles; some rounds only time out.
//
// Defends the wait API and S23: a waiter is woken by the cancel (wait() returns, wait_for/until
// return true) or by the loss of the last canceller (wait() throws std::logic_error,
// wait_for/until return false at once instead of sleeping out their timeout) — no lost wake-up,
// no hang (the runner's watchdog aborts a hung round); S3 for waiters (the canceller's reason is
// readable on return); S22 (the std::stop_token bridge wakes std waiters).
// Peer bug: tokio#4497 (lost wake-up: a waiter registered while the token was being cancelled
// was never woken).
#include "common.hpp"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <stop_token>

namespace stress {
namespace {

enum class mode : unsigned { cancel, drop, linked_cancel, linked_drop, timeout, count };

class wait_vs_cancel final : public scenario {
  using clock = std::chrono::steady_clock;

 public:
  explicit wait_vs_cancel(unsigned threads) : threads_(threads), owned_(threads) {}

  void setup(const round_info& r, rng& g) override {
    mode_ = static_cast<mode>(g.below(static_cast<unsigned>(mode::count)));
    owners_ = 1 + g.below(threads_ > 2 ? 2 : 1);  // workers [0, owners_) hold handles
    cancelkit::cancellation_source src;
    for (unsigned t = 0; t < owners_; ++t) owned_[t] = src;
    parent_token_ = src.token();
    if (mode_ == mode::linked_cancel || mode_ == mode::linked_drop) {
      // The child's only canceller is its parent: waiters wait on the child.
      token_ = cancelkit::cancellation_source::linked({parent_token_}).token();
    } else {
      token_ = parent_token_;
    }
    reason_ = std::make_exception_ptr(stamped_reason(0, r.seed));
    stamp_ = r.seed;
    timeout_ = std::chrono::microseconds(50 + g.below(500));
  }

  bool cancels() const { return mode_ == mode::cancel || mode_ == mode::linked_cancel; }
  bool drops() const { return mode_ == mode::drop || mode_ == mode::linked_drop; }

  std::uint64_t work(unsigned tid, rng& g) override {
    if (tid < owners_) {
      jitter(g, 2048);
      if (g.percent(30)) std::this_thread::yield();
      if (cancels() && tid == 0) {
        STRESS_EXPECT(owned_[0].cancel({.reason = reason_}), "the only canceller lost (S2)");
      }
      if (mode_ != mode::timeout) owned_[tid] = {};  // in drop modes the last one orphans
      return 1;
    }
    std::uint64_t ops = 0;
    for (unsigned k = 0; k < 2; ++k) {
      jitter(g, 256);
      wait_once(g);
      ++ops;
    }
    return ops;
  }

  void wait_once(rng& g) {
    const cancelkit::cancellation_token& tok = token_;
    const auto long_wait = std::chrono::seconds(30);
    const auto t0 = clock::now();
    bool result = false;
    const char* kind = "";
    if (mode_ == mode::timeout) {
      kind = "wait_for(short)";
      result = tok.wait_for(timeout_);
      STRESS_EXPECT(!result, "wait_for returned true, nobody cancelled");
      STRESS_EXPECT(clock::now() - t0 >= timeout_, "wait_for returned before its timeout");
      return;
    }
    switch (g.below(cancels() ? 5 : 4)) {
      case 0:
        kind = "wait()";
        try {
          tok.wait();
          result = true;
        } catch (const std::logic_error&) {
          result = false;
        }
        break;
      case 1:
        kind = "wait_for";
        result = tok.wait_for(long_wait);
        break;
      case 2:
        kind = "wait_until(steady)";
        result = tok.wait_until(clock::now() + long_wait);
        break;
      case 3:
        kind = "wait_until(system)";
        result = tok.wait_until(std::chrono::system_clock::now() + long_wait);
        break;
      default: {
        // std interop: only when the token will be cancelled (an orphaned bridge never fires).
        kind = "condition_variable_any";
        const std::stop_token st = tok.to_stop_token();
        std::mutex m;
        std::condition_variable_any cv;
        std::unique_lock<std::mutex> lock(m);
        cv.wait(lock, st, [] { return false; });
        result = st.stop_requested();
        STRESS_EXPECT(result, "condition_variable_any woke without stop (S22)");
        break;
      }
    }
    const auto waited = clock::now() - t0;
    STRESS_EXPECT(waited < std::chrono::seconds(25), kind, " slept out its timeout: lost wake-up "
                                                           "(tokio#4497)");
    if (cancels()) {
      STRESS_EXPECT(result, kind, " did not report the cancellation");
      STRESS_EXPECT(tok.is_cancellation_requested(), kind, " returned before the request");
      const stamped_reason* r = as_stamped(tok.cancellation_reason());  // S3 for waiters
      STRESS_EXPECT(r != nullptr && r->stamp == stamp_, "waiter does not see the reason (S3/S16)");
    } else {
      STRESS_EXPECT(!result, kind, " reported cancellation of a dropped source");
      STRESS_EXPECT(!tok.can_be_canceled(), kind, " returned while still cancellable");
    }
  }

  void check(const round_info&) override {
    STRESS_EXPECT(token_.is_cancellation_requested() == cancels(), "final state wrong");
    if (drops()) STRESS_EXPECT(!token_.can_be_canceled(), "orphaned token cancellable (S23)");
    for (auto& s : owned_) s = {};
    token_ = {};
    parent_token_ = {};
  }

 private:
  const unsigned threads_;
  std::vector<cancelkit::cancellation_source> owned_;  // slot t: worker t
  cancelkit::cancellation_token token_, parent_token_;
  std::exception_ptr reason_;
  std::uint64_t stamp_ = 0;
  std::chrono::microseconds timeout_{100};
  mode mode_ = mode::cancel;
  unsigned owners_ = 1;
};

}  // namespace

STRESS_SCENARIO(wait_vs_cancel, "wait_vs_cancel", 110, "S3 S22 S23 (wait API)",
                "tokio#4497 (lost wake-up of a waiter racing the cancel)",
                "waiters block while the source is cancelled or its last handle dropped", 2);

}  // namespace stress
