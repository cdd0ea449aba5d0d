// Family "crossthread": cancellation seen from another thread. Two threads pinned to two
// different CPUs (when the process may use two); manual time.
//
//   roundtrip/<impl>   thread A cancels source i, thread B spins on token i and acknowledges
//                      through a separate cache line, A spins on the acknowledgement: one round
//                      trip. One iteration = a batch of K rounds on K fresh sources (built
//                      untimed); the time column is per batch; counter ns/roundtrip is the
//                      median round of each batch (robust to preemption; includes one clock
//                      read per round in every variant).
//                      cancelkit: cancel() / is_cancellation_requested(); std: request_stop() /
//                      stop_requested(); raw: atomic<bool> store(release) / load(acquire) — the
//                      physical floor (two cache-line transfers).
//   wakeup/<impl>      B blocks; A sleeps 50 us (so B is really asleep), stamps the clock and
//                      cancels; B stamps the clock when it wakes. Time = wake stamp - cancel
//                      stamp, one round per iteration; counter us/wakeup = the median round.
//                      cancelkit: token.wait() (futex); condvar: std::mutex +
//                      std::condition_variable + bool, notify_one after unlocking; std:
//                      std::condition_variable_any::wait(lock, stop_token, pred) woken by
//                      request_stop(); raw: std::atomic<bool>::wait / notify_all.
#include "common.hpp"

#include <cancelkit/cancelkit.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>
#include <vector>

#include <time.h>

namespace {

using clock_type = std::chrono::steady_clock;

constexpr std::size_t round_trips_per_batch = 128;
constexpr std::uint64_t stop_signal = ~std::uint64_t{0};

struct alignas(64) padded_flag {
  std::atomic<bool> value{false};
};

struct alignas(64) padded_counter {
  std::atomic<std::uint64_t> value{0};
};

// Spins on `pred`, politely: pause first, then yield (a partner without a CPU of its own must
// still make progress).
template <class Pred>
void spin_until(Pred&& pred) {
  for (unsigned spins = 0; !pred(); ++spins) {
    if (spins < 4096) {
      bench::spin_pause();
    } else {
      std::this_thread::yield();
    }
  }
}

// ---- round trip --------------------------------------------------------------------------------

struct ck_rt {
  std::vector<cancelkit::cancellation_source> sources;
  std::vector<cancelkit::cancellation_token> tokens;
  void build(std::size_t k) {
    tokens.clear();
    sources.clear();
    sources.resize(k);
    for (auto& s : sources) tokens.push_back(s.token());
  }
  void fire(std::size_t i) { sources[i].cancel(); }
  bool seen(std::size_t i) const { return tokens[i].is_cancellation_requested(); }
};

struct std_rt {
  std::vector<std::stop_source> sources;
  std::vector<std::stop_token> tokens;
  void build(std::size_t k) {
    tokens.clear();
    sources.clear();
    sources.resize(k);
    for (auto& s : sources) tokens.push_back(s.get_token());
  }
  void fire(std::size_t i) { sources[i].request_stop(); }
  bool seen(std::size_t i) const { return tokens[i].stop_requested(); }
};

struct raw_rt {
  // Heap-allocated like the other two states; one cache line each.
  std::vector<std::unique_ptr<padded_flag>> flags;
  void build(std::size_t k) {
    flags.clear();
    for (std::size_t i = 0; i < k; ++i) flags.push_back(std::make_unique<padded_flag>());
  }
  void fire(std::size_t i) { flags[i]->value.store(true, std::memory_order_release); }
  bool seen(std::size_t i) const { return flags[i]->value.load(std::memory_order_acquire); }
};

template <class Impl>
void roundtrip(benchmark::State& state) {
  const std::size_t k = round_trips_per_batch;
  Impl impl;
  padded_counter go;   // batch number, or stop_signal
  padded_counter ack;  // rounds acknowledged so far (all batches)
  const bool pinned = bench::pin_this_thread(0);

  std::thread partner([&] {
    bench::pin_this_thread(1);
    std::uint64_t batch = 0;
    std::uint64_t acked = 0;
    for (;;) {
      std::uint64_t g = 0;
      // acquire: the batch's tokens were built before go was released.
      spin_until([&] { return (g = go.value.load(std::memory_order_acquire)) != batch; });
      if (g == stop_signal) return;
      batch = g;
      for (std::size_t i = 0; i < k; ++i) {
        spin_until([&] { return impl.seen(i); });
        ack.value.store(++acked, std::memory_order_release);
      }
    }
  });

  std::uint64_t batch = 0;
  std::uint64_t acked = 0;
  double median_sum = 0;
  std::vector<double> rounds(k);
  for (auto _ : state) {
    impl.build(k);
    go.value.store(++batch, std::memory_order_release);
    const auto t0 = clock_type::now();
    auto before = t0;
    for (std::size_t i = 0; i < k; ++i) {
      impl.fire(i);
      ++acked;
      spin_until([&] { return ack.value.load(std::memory_order_acquire) == acked; });
      const auto after = clock_type::now();
      rounds[i] = bench::to_ns(after - before);
      before = after;
    }
    state.SetIterationTime(bench::to_ns(before - t0) * 1e-9);
    // The median round of the batch: a round in which the shared machine preempted one of the
    // two threads costs microseconds and would dominate a mean.
    std::nth_element(rounds.begin(), rounds.begin() + static_cast<std::ptrdiff_t>(k / 2),
                     rounds.end());
    median_sum += rounds[k / 2];
  }
  go.value.store(stop_signal, std::memory_order_release);
  partner.join();
  if (pinned) bench::unpin_this_thread();
  state.counters["ns/roundtrip"] = benchmark::Counter(median_sum, benchmark::Counter::kAvgIterations);
  state.counters["pinned"] = pinned ? 1 : 0;
}

// ---- blocking wake-up --------------------------------------------------------------------------

struct ck_wait {
  std::unique_ptr<cancelkit::cancellation_source> source;
  cancelkit::cancellation_token token;
  void build() {
    source = std::make_unique<cancelkit::cancellation_source>();
    token = source->token();
  }
  void block() { token.wait(); }
  void fire() { source->cancel(); }
};

struct condvar_wait {
  std::mutex m;
  std::condition_variable cv;
  bool flag = false;
  void build() {
    std::lock_guard<std::mutex> lock(m);
    flag = false;
  }
  void block() {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [this] { return flag; });
  }
  void fire() {
    {
      std::lock_guard<std::mutex> lock(m);
      flag = true;
    }
    cv.notify_one();
  }
};

struct std_wait {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_ptr<std::stop_source> source;
  std::stop_token token;
  void build() {
    source = std::make_unique<std::stop_source>();
    token = source->get_token();
  }
  void block() {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, token, [] { return false; });
  }
  void fire() { source->request_stop(); }
};

struct raw_wait {
  std::atomic<bool> flag{false};
  void build() { flag.store(false); }
  void block() { flag.wait(false, std::memory_order_acquire); }
  void fire() {
    flag.store(true, std::memory_order_release);
    flag.notify_all();
  }
};

void sleep_us(long us) {
  timespec ts{0, us * 1000};
  nanosleep(&ts, nullptr);
}

template <class Impl>
void wakeup(benchmark::State& state) {
  Impl impl;
  padded_counter go;     // round number, or stop_signal
  padded_counter ready;  // round the partner is about to block in
  padded_counter done;   // round the partner woke from
  clock_type::time_point woke{};
  const bool pinned = bench::pin_this_thread(0);

  std::thread partner([&] {
    bench::pin_this_thread(1);
    std::uint64_t round = 0;
    for (;;) {
      std::uint64_t g = 0;
      spin_until([&] { return (g = go.value.load(std::memory_order_acquire)) != round; });
      if (g == stop_signal) return;
      round = g;
      ready.value.store(round, std::memory_order_release);
      impl.block();
      woke = clock_type::now();
      done.value.store(round, std::memory_order_release);
    }
  });

  std::uint64_t round = 0;
  std::vector<double> wakeups;
  for (auto _ : state) {
    impl.build();
    go.value.store(++round, std::memory_order_release);
    spin_until([&] { return ready.value.load(std::memory_order_acquire) == round; });
    sleep_us(50);  // let the partner get into its blocking wait
    const auto t0 = clock_type::now();
    impl.fire();
    spin_until([&] { return done.value.load(std::memory_order_acquire) == round; });
    const double ns = bench::to_ns(woke - t0);
    state.SetIterationTime(ns * 1e-9);
    wakeups.push_back(ns * 1e-3);
  }
  go.value.store(stop_signal, std::memory_order_release);
  partner.join();
  if (pinned) bench::unpin_this_thread();
  // The median wake-up (the time column is the mean, which preemption on a shared machine skews).
  if (!wakeups.empty()) {
    const auto middle = wakeups.begin() + static_cast<std::ptrdiff_t>(wakeups.size() / 2);
    std::nth_element(wakeups.begin(), middle, wakeups.end());
    state.counters["us/wakeup"] = *middle;
  }
  state.counters["pinned"] = pinned ? 1 : 0;
}

const bool registered = [] {
  bench::add("crossthread", "roundtrip", "cancelkit", roundtrip<ck_rt>)->UseManualTime();
  bench::add("crossthread", "roundtrip", "std", roundtrip<std_rt>)->UseManualTime();
  bench::add("crossthread", "roundtrip", "raw", roundtrip<raw_rt>)->UseManualTime();
  bench::add("crossthread", "wakeup", "cancelkit", wakeup<ck_wait>)->UseManualTime();
  bench::add("crossthread", "wakeup", "condvar", wakeup<condvar_wait>)->UseManualTime();
  bench::add("crossthread", "wakeup", "std", wakeup<std_wait>)->UseManualTime();
  bench::add("crossthread", "wakeup", "raw", wakeup<raw_wait>)->UseManualTime();
  return true;
}();

}  // namespace
