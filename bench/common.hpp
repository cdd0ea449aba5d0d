// Shared helpers for cancelkit-bench: the allocation counter, thread pinning and naming (the raw
// floors are in raw_floor.hpp, shared with the callgrind driver).
//
// Naming: every benchmark is called "<family>/<case>/<impl>" with <impl> one of cancelkit, std,
// raw (or a named baseline such as condvar); Google Benchmark appends its own parts (arguments,
// "threads:2", "manual_time", "real_time"). scripts/bench-compare and scripts/bench-history pair
// rows that differ only in <impl>.
#pragma once

#include "raw_floor.hpp"

#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>


namespace bench {

// ---- allocation counting (alloc_counter.cpp replaces the global operator new) ----------------

// Allocations made so far by the calling thread through any form of operator new.
std::int64_t allocations_by_this_thread() noexcept;

// Counts the calling thread's allocations from construction to report(); the counter
// "allocs/op" is the per-iteration average over all threads of a threaded benchmark.
class alloc_meter {
 public:
  alloc_meter() noexcept : start_(allocations_by_this_thread()) {}
  void report(benchmark::State& state) const {
    const std::int64_t made = allocations_by_this_thread() - start_;
    state.counters["allocs/op"] =
        benchmark::Counter(static_cast<double>(made), benchmark::Counter::kAvgIterations);
  }

 private:
  std::int64_t start_;
};

// Adds `made` allocations to the "allocs/op" counter (for benchmarks that count only inside a
// timed region of each iteration).
inline void report_allocs(benchmark::State& state, std::int64_t made) {
  state.counters["allocs/op"] =
      benchmark::Counter(static_cast<double>(made), benchmark::Counter::kAvgIterations);
}

// ---- threads ---------------------------------------------------------------------------------

// Pins the calling thread to the `slot`th CPU this process may run on (wrapping around).
// Returns false (and stays unpinned) when that is not possible.
bool pin_this_thread(unsigned slot) noexcept;

// Undoes pin_this_thread: the calling thread may run on every CPU the process may use.
void unpin_this_thread() noexcept;

// Nanoseconds of a steady clock interval.
template <class D>
double to_ns(D d) noexcept {
  return std::chrono::duration<double, std::nano>(d).count();
}

// ---- registration ----------------------------------------------------------------------------

// Registers `fn` as "<family>/<case>/<impl>".
template <class Fn>
benchmark::internal::Benchmark* add(const std::string& family, const std::string& scenario,
                                    const std::string& impl, Fn&& fn) {
  return benchmark::RegisterBenchmark((family + "/" + scenario + "/" + impl).c_str(),
                                      std::forward<Fn>(fn));
}

}  // namespace bench
