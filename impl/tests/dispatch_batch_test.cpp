// S5, S8–S11, S13 where dispatch batches meet them: cancel() runs the callbacks in batches
// ([I6] in detail/state.hpp: the first callback alone, then detail::state::BATCH at a time), one
// lock round trip per batch and one fetch_add per callback. These tests put registrations on both
// sides of a batch end, in the slot that starts under the lock (the first of a batch), in a
// pending one, and in the list beyond the batch, and check that what a user sees does not depend
// on where a callback falls.
#include <cancelkit/cancelkit.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace cancelkit;
using namespace std::chrono_literals;
using cktest::bounded_thread;
using cktest::eventually;

namespace {

constexpr int kBatch = static_cast<int>(detail::state::BATCH);
static_assert(kBatch >= 4, "the tests place registrations at distinct slots of a batch");

// Run positions (0-based, in run order) of the batches: batch 0 is position 0 alone, batch b >= 1
// holds positions first_of(b) .. last_of(b).
constexpr int first_of(int b) { return b == 0 ? 0 : 1 + (b - 1) * kBatch; }
constexpr int last_of(int b) { return b == 0 ? 0 : b * kBatch; }

// Registrations 0..n-1, registered in that order, so that registration n-1 runs first: run
// position p is registration n-1-p.
struct numbered {
  std::vector<std::optional<cancellation_registration>> regs;
  std::vector<int> order;  // ids in the order they ran
  int count() const { return static_cast<int>(regs.size()); }
  int at_position(int p) const { return count() - 1 - p; }
  cancellation_registration& reg(int id) { return *regs[static_cast<std::size_t>(id)]; }
  int ran_at(int p) const { return order[static_cast<std::size_t>(p)]; }
};

// Registrations 0..n-1 on `s`, in that order; registration `id` runs make(id).
template <class Make>
std::vector<cancellation_registration> register_numbered(cancellation_source& s, int n,
                                                         Make make) {
  std::vector<cancellation_registration> regs;
  for (int id = 0; id < n; ++id) regs.push_back(s.token().register_callback(make(id)));
  return regs;
}

// cancel() on one thread; once `started`, dispose() of `r` on another, then `after_dispose` there.
template <class After>
void dispose_while_running(cancellation_source& s, const std::atomic<bool>& started,
                           cancellation_registration& r, int position, After after_dispose) {
  bounded_thread canceller([&] { s.cancel(); });
  ASSERT_TRUE(eventually([&] { return started.load(); })) << "position " << position;
  bounded_thread disposer([&] {
    r.dispose();
    after_dispose();
  });
  disposer.join();
  canceller.join();
}

}  // namespace

TEST(DispatchBatches, ManyCallbacks_RunLatestFirstAcrossBatchEnds) {  // S5
  cancellation_source s;
  numbered r;
  const int n = 3 * kBatch + 5;
  for (int id = 0; id < n; ++id)
    r.regs.emplace_back(s.token().register_callback([&r, id] { r.order.push_back(id); }));
  EXPECT_TRUE(s.cancel());
  ASSERT_EQ(r.order.size(), static_cast<std::size_t>(n));
  for (int p = 0; p < n; ++p) EXPECT_EQ(r.ran_at(p), r.at_position(p)) << "position " << p;
}

// From inside the first callback of batch 1: one registration pending in the same batch, one
// still in the list beyond it. Both are removed (true) and never run; the others still run, in
// order.
TEST(DispatchBatches, UnregisterFromACallback_RemovesPendingAndListedOnes) {  // S8, S10, S5
  cancellation_source s;
  numbered r;
  const int n = last_of(2) + 1;
  const int acting = n - 1 - first_of(1);            // batch 1, slot 0
  const int same_batch = n - 1 - last_of(1);       // batch 1, last slot: pending
  const int next_batch = n - 1 - (first_of(2) + 1);  // batch 2, slot 1: still in the list
  bool removed_same = false;
  bool removed_next = false;
  for (int id = 0; id < n; ++id) {
    r.regs.emplace_back(s.token().register_callback([&, id] {
      r.order.push_back(id);
      if (id != acting) return;
      removed_same = r.reg(same_batch).unregister();
      removed_next = r.reg(next_batch).unregister();
    }));
  }
  EXPECT_TRUE(s.cancel());
  EXPECT_TRUE(removed_same) << "pending in the running batch";
  EXPECT_TRUE(removed_next) << "still in the list";
  std::vector<int> expected;
  for (int id = n - 1; id >= 0; --id)
    if (id != same_batch && id != next_batch) expected.push_back(id);
  EXPECT_EQ(r.order, expected);
}

// From inside the first callback of batch 2: registrations that ran in earlier batches, at the
// same slot (batches 0 and 1) and at another, and the running one itself, are not removed.
TEST(DispatchBatches, UnregisterFromACallback_OfOnesThatRanInAnEarlierBatch_ReturnsFalse) {
  // S8, S10
  cancellation_source s;
  numbered r;
  const int n = last_of(2) + 1;
  std::vector<int> answers;  // 1: true, 0: false, in the order asked
  for (int id = 0; id < n; ++id) {
    r.regs.emplace_back(s.token().register_callback([&r, &answers, id] {
      const int total = r.count();  // every registration is in by the time any runs
      r.order.push_back(id);
      if (id != total - 1 - first_of(2)) return;  // batch 2, slot 0
      for (int ran : {first_of(0), first_of(1), last_of(1)})
        answers.push_back(r.reg(total - 1 - ran).unregister() ? 1 : 0);
      answers.push_back(r.reg(id).unregister() ? 1 : 0);  // itself: running
    }));
  }
  EXPECT_TRUE(s.cancel());
  EXPECT_EQ(answers, (std::vector<int>{0, 0, 0, 0}));
  EXPECT_EQ(r.order.size(), static_cast<std::size_t>(n));
}

// A registration that ran in an earlier batch, destroyed from inside a later batch's callback at
// the same slot, frees its callable there and then: it is not the running one (which only its
// own callback's registration could be), so nothing is left for the dispatcher to free.
TEST(DispatchBatches, RegistrationThatRanEarlier_DestroyedInALaterBatch_FreesItsCallableAtOnce) {
  // S9, S10
  struct counted {
    std::atomic<int>* live;
    explicit counted(std::atomic<int>* l) : live(l) { live->fetch_add(1); }
    counted(const counted& o) : live(o.live) { live->fetch_add(1); }
    ~counted() { live->fetch_sub(1); }
    void operator()() const {}
  };
  cancellation_source s;
  std::atomic<int> first_live{0};
  std::atomic<int> live_after_reset{-1};
  std::optional<cancellation_registration> first;  // position 0: batch 0, slot 0
  std::vector<cancellation_registration> others;
  for (int k = 0; k < kBatch; ++k) others.push_back(s.token().register_callback([] {}));
  // position 1: batch 1, slot 0 (the slot `first` had) destroys `first`
  others.push_back(s.token().register_callback([&] {
    first.reset();
    live_after_reset = first_live.load();
  }));
  first.emplace(s.token().register_callback(counted(&first_live)));
  ASSERT_EQ(first_live.load(), 1);
  EXPECT_TRUE(s.cancel());
  EXPECT_EQ(live_after_reset.load(), 0) << "the callable of a registration that ran must be "
                                           "freed by its destruction";
  EXPECT_EQ(first_live.load(), 0);
}

// throw_on_first_exception stops in the middle of the second batch: the callbacks not yet run,
// pending in that batch or still in the list, stay registered (unregister() returns true) and
// never run; those that ran answer false.
TEST(DispatchBatches, ThrowOnFirstInTheMiddleOfABatch_SkippedOnesStayRegistered) {  // S13
  cancellation_source s;
  numbered r;
  const int n = last_of(3) + 1;
  const int thrower_position = first_of(2) + kBatch / 2;  // the middle of batch 2
  for (int id = 0; id < n; ++id) {
    const bool throws = id == n - 1 - thrower_position;
    r.regs.emplace_back(s.token().register_callback([&r, id, throws] {
      r.order.push_back(id);
      if (throws) throw std::runtime_error("first");
    }));
  }
  EXPECT_THROW(s.cancel(cancel_options{.throw_on_first_exception = true}), std::runtime_error);
  ASSERT_EQ(r.order.size(), static_cast<std::size_t>(thrower_position + 1));
  for (int p = 0; p < n; ++p) {
    const int id = r.at_position(p);
    EXPECT_EQ(r.reg(id).unregister(), p > thrower_position) << "position " << p;
  }
  EXPECT_EQ(r.order.size(), static_cast<std::size_t>(thrower_position + 1));
}

// dispose() on another thread while the callback runs waits for it, wherever the callback is in
// its batch: the first slot of a batch (started under the lock), a middle one (its end reported
// by the fetch_add that claims the next slot) and the last (its end reported at the batch end, under the
// lock).
TEST(DispatchBatches, DisposeOnAnotherThread_WaitsForTheRunningCallbackInAnySlot) {  // S9, S11
  const int n = 2 * kBatch + 1;
  // Batch 0 (ended under the lock), batch 1's first slot (claimed under the lock, ended by the
  // claim of the next), a middle one (claimed and ended by fetch_adds), batch 1's last
  // (ended under the lock), and the very last.
  const std::vector<int> positions = {0, first_of(1), kBatch / 2, last_of(1), n - 1};
  for (int position : positions) {
    cancellation_source s;
    std::atomic<bool> started{false};
    std::atomic<bool> finished{false};
    const int target = n - 1 - position;
    std::vector<cancellation_registration> regs =
        register_numbered(s, n, [&](int id) -> std::function<void()> {
          if (id != target) return [] {};
          return [&] {
            started = true;
            std::this_thread::sleep_for(10ms);
            finished = true;
          };
        });
    dispose_while_running(s, started, regs[static_cast<std::size_t>(target)], position,
                          [&] { EXPECT_TRUE(finished.load()) << "position " << position; });
  }
}

// A disposer waiting for a callback in the middle of a batch is released when that callback
// returns, not when the batch ends [I18]: here the next callback of the same batch waits for the
// disposer to have returned, which a release deferred to the batch end would never allow (S9).
TEST(DispatchBatches, DisposeOnAnotherThread_ReturnsBeforeTheNextCallbackOfTheBatchEnds) {
  const int n = 2 * kBatch + 1;
  for (int position : {first_of(1), first_of(1) + kBatch / 2, last_of(1) - 1}) {
    cancellation_source s;
    std::atomic<bool> started{false};
    std::atomic<bool> disposed{false};
    std::atomic<bool> next_saw_dispose{false};
    const int target = n - 1 - position;
    std::vector<cancellation_registration> regs =
        register_numbered(s, n, [&](int id) -> std::function<void()> {
          if (id == target) {
            return [&] {
              started = true;
              std::this_thread::sleep_for(10ms);  // long enough for the disposer to start waiting
            };
          }
          if (id == target - 1)  // runs right after the target, in the same batch
            return [&] { next_saw_dispose = eventually([&] { return disposed.load(); }); };
          return [] {};
        });
    dispose_while_running(s, started, regs[static_cast<std::size_t>(target)], position,
                          [&] { disposed = true; });
    EXPECT_TRUE(next_saw_dispose.load()) << "position " << position;
  }
}
