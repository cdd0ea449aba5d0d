// The floors of raw_floor.hpp do what their comments claim, in the cases the benchmarks and the
// issue 20 argument rely on: a floor that is wrong measures nothing. raw_claim_list is the one
// with a protocol of its own (the take-back of S8), so it gets the threaded cases.
#include "raw_floor.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <utility>
#include <vector>

namespace {

struct claim_node : bench::raw_claim_node {
  explicit claim_node(void (*f)(bench::raw_claim_node*), int id_ = 0) : id(id_) { fn = f; }
  int id;
};

std::vector<int>* run_order = nullptr;

TEST(RawClaimList, RunsEveryCallbackLatestFirst) {
  std::vector<int> ran;
  run_order = &ran;
  std::vector<claim_node> nodes;
  for (int i = 0; i < 5; ++i) {
    nodes.emplace_back(
        [](bench::raw_claim_node* r) { run_order->push_back(static_cast<claim_node*>(r)->id); },
        i);
  }
  bench::raw_claim_list l;
  for (auto& n : nodes) ASSERT_TRUE(l.add(&n));
  l.request();
  EXPECT_EQ(ran, (std::vector<int>{4, 3, 2, 1, 0}));
}

TEST(RawClaimList, RemoveBeforeTheRequest_ReturnsTrueAndTheCallbackNeverRuns) {
  static int ran = 0;
  ran = 0;
  claim_node a([](bench::raw_claim_node*) { ++ran; });
  claim_node b([](bench::raw_claim_node*) { ran += 10; });
  bench::raw_claim_list l;
  l.add(&a);
  l.add(&b);
  EXPECT_TRUE(l.remove(&a));
  l.request();
  EXPECT_EQ(ran, 10);
  EXPECT_FALSE(l.remove(&b));  // ran
  EXPECT_FALSE(l.remove(&a));  // long gone
}

TEST(RawClaimList, AddAfterTheRequest_IsRefused) {
  claim_node a([](bench::raw_claim_node*) {});
  bench::raw_claim_list l;
  l.request();
  EXPECT_FALSE(l.add(&a));
}

// S10's shape: a callback removes a node of its own batch that has not started.
TEST(RawClaimList, CallbackRemovesAPendingNodeOfItsBatch_ItNeverRuns) {
  static bench::raw_claim_list* list = nullptr;
  static claim_node* victim = nullptr;
  static int victim_ran = 0;
  static bool removed = false;
  victim_ran = 0;
  claim_node v([](bench::raw_claim_node*) { ++victim_ran; });
  claim_node middle([](bench::raw_claim_node*) {});
  claim_node first([](bench::raw_claim_node*) { removed = list->remove(victim); });
  bench::raw_claim_list l;
  list = &l;
  victim = &v;
  l.add(&v);
  l.add(&middle);
  l.add(&first);  // runs first (LIFO): v is pending in the same batch
  l.request();
  EXPECT_TRUE(removed);
  EXPECT_EQ(victim_ran, 0);
}

TEST(RawClaimList, MoreNodesThanOneBatch_AllRunOnce) {
  static int ran = 0;
  ran = 0;
  std::vector<claim_node> nodes(3 * bench::raw_claim_list::batch + 5,
                                claim_node([](bench::raw_claim_node*) { ++ran; }));
  bench::raw_claim_list l;
  for (auto& n : nodes) l.add(&n);
  l.request();
  EXPECT_EQ(ran, static_cast<int>(nodes.size()));
  for (auto& n : nodes) EXPECT_FALSE(l.remove(&n));
}

// S8 from another thread, deterministically: while the first callback of the batch runs (and
// waits), a remover takes back the pending second one: true, and it never runs.
TEST(RawClaimListRace, RemoveWhileAnEarlierCallbackRuns_TakesThePendingNodeBack) {
  static std::atomic<int> ran{0};
  static std::atomic<int> started{0};
  static std::atomic<int> release{0};
  for (int i = 0; i < 100; ++i) {
    ran = 0;
    started = 0;
    release = 0;
    claim_node late([](bench::raw_claim_node*) { ran.fetch_add(1); });
    claim_node early([](bench::raw_claim_node*) {
      started = 1;
      while (release.load() == 0) std::this_thread::yield();
    });
    bench::raw_claim_list l;
    l.add(&late);
    l.add(&early);
    std::thread t([&] { l.request(); });
    while (started.load() == 0) std::this_thread::yield();
    EXPECT_TRUE(l.remove(&late)) << "iteration " << i;
    release = 1;
    t.join();
    ASSERT_EQ(ran.load(), 0) << "iteration " << i;
  }
}

// S8 under a race: once the dispatch has started (the batch is popped), a remover on another
// thread either takes the pending node back (true, it never runs) or finds it started (false,
// it ran): never both, never neither. Which one happens depends on the scheduling.
TEST(RawClaimListRace, RemoveRacingTheDispatch_RemovedXorRan) {
  static std::atomic<int> ran{0};
  static std::atomic<int> started{0};
  static int spins = 0;
  for (int i = 0; i < 500; ++i) {
    ran = 0;
    started = 0;
    spins = i % 64;
    claim_node late([](bench::raw_claim_node*) { ran.fetch_add(1); });
    claim_node early([](bench::raw_claim_node*) {
      started = 1;
      for (int k = 0; k < spins; ++k) bench::spin_pause();
    });
    bench::raw_claim_list l;
    l.add(&late);
    l.add(&early);
    std::thread t([&] { l.request(); });
    while (started.load() == 0) std::this_thread::yield();  // 2 cores, shared with CI
    const bool removed = l.remove(&late);
    t.join();
    ASSERT_EQ(int{removed} + ran.load(), 1) << "iteration " << i;
  }
}

// S9: removing a node whose callback runs on another thread waits until it has returned, in
// slot 0 (ended by the first fetch_add) and in a later slot (ended likewise, or by the batch end).
TEST(RawClaimListRace, RemoveWhileTheCallbackRuns_WaitsForItAndReturnsFalse) {
  static std::atomic<int> started{0};
  static std::atomic<int> finished{0};
  for (int slot = 0; slot < 3; ++slot) {
    for (int i = 0; i < 100; ++i) {
      started = 0;
      finished = 0;
      claim_node slow([](bench::raw_claim_node*) {
        started = 1;
        for (int k = 0; k < 2000; ++k) bench::spin_pause();
        finished = 1;
      });
      claim_node fast_a([](bench::raw_claim_node*) {});
      claim_node fast_b([](bench::raw_claim_node*) {});
      // Latest first: added third, second or first, `slow` runs in slot 0, 1 or 2.
      claim_node* added[3] = {&fast_a, &fast_b, &slow};
      if (slot == 1) std::swap(added[1], added[2]);
      if (slot == 2) std::swap(added[0], added[2]);
      bench::raw_claim_list l;
      for (claim_node* n : added) l.add(n);
      std::thread t([&] { l.request(); });
      while (started.load() == 0) std::this_thread::yield();
      EXPECT_FALSE(l.remove(&slow));
      EXPECT_EQ(finished.load(), 1) << "slot " << slot << ", iteration " << i;
      t.join();
    }
  }
}

TEST(RawDetachList, RunsEveryCallbackAndRemoveAfterwardsReturns) {
  static int ran = 0;
  ran = 0;
  bench::raw_detach_list l;
  {
    bench::raw_detach_callback a(l, [] { ++ran; });
    bench::raw_detach_callback b(l, [] { ++ran; });
    l.request();
  }  // the destructors' remove() find `done` set
  EXPECT_EQ(ran, 2);
}

}  // namespace
