// Family "dispatch": what cancel() costs with N registered callbacks, and how long it takes from
// entering cancel() to the first callback running. Manual time around the cancel calls only:
// sources and callbacks are built (untimed) before each batch.
//
//   cancel/<impl>/N          N in {0, 1, 8, 64, 1024}. One iteration = one batch of B sources
//                            (B depends on N only, see batch_for), each cancelled once: the time
//                            column is per batch; counters ns/cancel and ns/callback are the
//                            figures to read (ns/callback = ns/cancel / N, absent for N = 0).
//   first_callback/<impl>/N  N in {1, 64}: cancel() entry to the first (latest registered, LIFO)
//                            callback, both stamped with steady_clock::now(); the time column is
//                            the sum over the batch, counter ns/first the mean. The clock reads
//                            are in every variant, so compare against raw, not against zero.
//                            Fixed at 16 iterations (batches) whatever --benchmark_min_time says.
//
//   cancelkit  cancellation_source::cancel() with cancellation_callbacks
//   std        std::stop_source::request_stop() with std::stop_callbacks (libstdc++ releases a
//              semaphore — a futex wake syscall — after every callback once the process has
//              started a thread; main.cpp makes sure it has)
//   raw        bench::raw_list (flag + intrusive list, no semaphore, no lifetime management):
//              one lock round trip per callback
//   raw_detach bench::raw_detach_list (cancel/ only): the list detached under one lock round
//              trip, then each node run and its completion signalled with one release store —
//              the per-callback floor of a design without a lock per callback (issue 20)
//   raw_claim  bench::raw_claim_list (cancel/ only): raw_detach plus what taking a popped node
//              back needs (S8): a slot per node and one fetch_add per callback on a list-owned
//              word — the per-callback floor of a dispatch that keeps S8
#include "common.hpp"

#include <cancelkit/cancelkit.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stop_token>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

std::size_t batch_for(std::int64_t n) {
  const std::int64_t b = 4096 / (n + 1);
  return static_cast<std::size_t>(b < 8 ? 8 : (b > 512 ? 512 : b));
}

// The callback every variant registers. With a stamp target it records when it ran (only the
// one registered last per source gets a target: it is the first to run).
struct tick {
  std::int64_t* count;
  clock_type::time_point* stamp;
  void operator()() const noexcept {
    ++*count;
    if (stamp != nullptr) *stamp = clock_type::now();
  }
};

std::int64_t ticks = 0;

// ---- the implementations behind one interface --------------------------------------

struct ck_impl {
  std::vector<cancelkit::cancellation_source> sources;
  std::unique_ptr<std::optional<cancelkit::cancellation_callback<tick>>[]> cbs;

  void build(std::size_t b, std::size_t n, clock_type::time_point* stamps) {
    if (!cbs) cbs = std::make_unique<std::optional<cancelkit::cancellation_callback<tick>>[]>(b * n);
    sources.clear();
    sources.resize(b);
    for (std::size_t i = 0; i < b; ++i) {
      const cancelkit::cancellation_token t = sources[i].token();
      for (std::size_t k = 0; k < n; ++k) {
        cbs[i * n + k].emplace(t, tick{&ticks, (stamps && k + 1 == n) ? &stamps[i] : nullptr});
      }
    }
  }
  void cancel(std::size_t i) { sources[i].cancel(); }
  void clear(std::size_t b, std::size_t n) {
    for (std::size_t i = 0; i < b * n; ++i) cbs[i].reset();
  }
};

struct std_impl {
  std::vector<std::stop_source> sources;
  std::unique_ptr<std::optional<std::stop_callback<tick>>[]> cbs;

  void build(std::size_t b, std::size_t n, clock_type::time_point* stamps) {
    if (!cbs) cbs = std::make_unique<std::optional<std::stop_callback<tick>>[]>(b * n);
    sources.clear();
    sources.resize(b);
    for (std::size_t i = 0; i < b; ++i) {
      const std::stop_token t = sources[i].get_token();
      for (std::size_t k = 0; k < n; ++k) {
        cbs[i * n + k].emplace(t, tick{&ticks, (stamps && k + 1 == n) ? &stamps[i] : nullptr});
      }
    }
  }
  void cancel(std::size_t i) { sources[i].request_stop(); }
  void clear(std::size_t b, std::size_t n) {
    for (std::size_t i = 0; i < b * n; ++i) cbs[i].reset();
  }
};

// A floor of raw_floor.hpp: `List` with nodes derived from `NodeBase` (raw_list / raw_node and
// the like: add(), request(), a `fn` member to call).
template <class List, class NodeBase>
struct floor_impl {
  struct node : NodeBase {
    tick fn;
  };
  std::unique_ptr<List[]> lists;
  std::unique_ptr<node[]> nodes;

  void build(std::size_t b, std::size_t n, clock_type::time_point* stamps) {
    if (!nodes) nodes = std::make_unique<node[]>(b * n);
    lists = std::make_unique<List[]>(b);
    for (std::size_t i = 0; i < b; ++i) {
      for (std::size_t k = 0; k < n; ++k) {
        node& nd = nodes[i * n + k];
        nd.fn = tick{&ticks, (stamps && k + 1 == n) ? &stamps[i] : nullptr};
        nd.NodeBase::fn = [](NodeBase* r) { static_cast<node*>(r)->fn(); };
        lists[i].add(&nd);
      }
    }
  }
  void cancel(std::size_t i) { lists[i].request(); }
  void clear(std::size_t, std::size_t) {}
};

using raw_impl = floor_impl<bench::raw_list, bench::raw_node>;
using raw_detach_impl = floor_impl<bench::raw_detach_list, bench::raw_detach_node>;
using raw_claim_impl = floor_impl<bench::raw_claim_list, bench::raw_claim_node>;

template <class Impl>
void cancel_batch(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::size_t b = batch_for(state.range(0));
  Impl impl;
  double per_cancel_sum = 0;
  std::int64_t allocs = 0;
  for (auto _ : state) {
    impl.build(b, n, nullptr);
    const std::int64_t a0 = bench::allocations_by_this_thread();
    const auto t0 = clock_type::now();
    for (std::size_t i = 0; i < b; ++i) impl.cancel(i);
    const auto t1 = clock_type::now();
    allocs += bench::allocations_by_this_thread() - a0;
    const double ns = bench::to_ns(t1 - t0);
    state.SetIterationTime(ns * 1e-9);
    per_cancel_sum += ns / static_cast<double>(b);
    impl.clear(b, n);
  }
  // allocs/op here is per cancel() (allocations inside the timed region only).
  state.counters["allocs/op"] = benchmark::Counter(
      static_cast<double>(allocs) / static_cast<double>(b), benchmark::Counter::kAvgIterations);
  state.counters["ns/cancel"] = benchmark::Counter(per_cancel_sum, benchmark::Counter::kAvgIterations);
  if (n > 0) {
    state.counters["ns/callback"] = benchmark::Counter(per_cancel_sum / static_cast<double>(n),
                                                       benchmark::Counter::kAvgIterations);
  }
  state.counters["batch"] = static_cast<double>(b);
  benchmark::DoNotOptimize(ticks);
}

template <class Impl>
void first_callback(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::size_t b = batch_for(state.range(0));
  Impl impl;
  std::vector<clock_type::time_point> stamps(b);
  double mean_sum = 0;
  for (auto _ : state) {
    impl.build(b, n, stamps.data());
    double total = 0;
    for (std::size_t i = 0; i < b; ++i) {
      const auto t0 = clock_type::now();
      impl.cancel(i);
      total += bench::to_ns(stamps[i] - t0);
    }
    state.SetIterationTime(total * 1e-9);
    mean_sum += total / static_cast<double>(b);
    impl.clear(b, n);
  }
  state.counters["ns/first"] = benchmark::Counter(mean_sum, benchmark::Counter::kAvgIterations);
  state.counters["batch"] = static_cast<double>(b);
}

const bool registered = [] {
  for (auto* bm : {bench::add("dispatch", "cancel", "cancelkit", cancel_batch<ck_impl>),
                   bench::add("dispatch", "cancel", "std", cancel_batch<std_impl>),
                   bench::add("dispatch", "cancel", "raw", cancel_batch<raw_impl>),
                   bench::add("dispatch", "cancel", "raw_detach", cancel_batch<raw_detach_impl>),
                   bench::add("dispatch", "cancel", "raw_claim", cancel_batch<raw_claim_impl>)}) {
    bm->Arg(0)->Arg(1)->Arg(8)->Arg(64)->Arg(1024)->UseManualTime();
  }
  for (auto* bm : {bench::add("dispatch", "first_callback", "cancelkit", first_callback<ck_impl>),
                   bench::add("dispatch", "first_callback", "std", first_callback<std_impl>),
                   bench::add("dispatch", "first_callback", "raw", first_callback<raw_impl>)}) {
    // A fixed iteration count: the time column is only the latency, while each batch also runs
    // every remaining callback (for std 64 futex wakes per cancel), so letting Google Benchmark
    // grow the count until the latencies add up to --benchmark_min_time would take minutes.
    bm->Arg(1)->Arg(64)->UseManualTime()->Iterations(16);
  }
  return true;
}();

}  // namespace
