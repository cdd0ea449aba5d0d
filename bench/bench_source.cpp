// Family "source": the life of a source.
//
//   create_destroy/<impl>     construct + destroy a source (one allocation each)
//   lifecycle/<impl>          construct, take a token, cancel (no callbacks), destroy both
//   create_token_destroy/<impl>  construct, copy one token out of the source (as users do),
//                             destroy both. raw_heap: bench::raw_heap_source, the heap floor
//                             (one allocation of a state-sized block, plain-store
//                             initialisation, a token that is a pointer copy, one delete)
//   linked/<impl>/P           P in {1, 2, 8} live parents: build a linked child and destroy it.
//                             cancelkit: cancellation_source::linked(span of P tokens).
//                             std has no linked sources; "std" is what a std user writes: a
//                             child std::stop_source plus one std::stop_callback per parent that
//                             forwards request_stop() to it.
//   cancel_after/cancelkit_manual   cancel_after(1 h) then cancel_after(nanoseconds::max())
//                             (arm + disarm) on a manual_timer_service (no thread to wake)
//   cancel_after/cancelkit_system   the same on system_timer_service() (its thread is woken
//                             on every arm; the source's timer is the only one armed)
//   timeout_lifecycle/cancelkit     cancellation_source(1 h) + destroy: the per-request
//                             "operation with a deadline" pattern on system_timer_service()
#include "common.hpp"

#include <cancelkit/cancelkit.hpp>

#include <array>
#include <chrono>
#include <optional>
#include <stop_token>
#include <vector>

namespace {

void create_destroy_cancelkit(benchmark::State& state) {
  bench::alloc_meter meter;
  for (auto _ : state) {
    cancelkit::cancellation_source s;
    benchmark::DoNotOptimize(s);
  }
  meter.report(state);
}

void create_destroy_std(benchmark::State& state) {
  bench::alloc_meter meter;
  for (auto _ : state) {
    std::stop_source s;
    benchmark::DoNotOptimize(s);
  }
  meter.report(state);
}

void lifecycle_cancelkit(benchmark::State& state) {
  bench::alloc_meter meter;
  for (auto _ : state) {
    cancelkit::cancellation_source s;
    cancelkit::cancellation_token t = s.token();
    bool r = s.cancel();
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(t);
  }
  meter.report(state);
}

void lifecycle_std(benchmark::State& state) {
  bench::alloc_meter meter;
  for (auto _ : state) {
    std::stop_source s;
    std::stop_token t = s.get_token();
    bool r = s.request_stop();
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(t);
  }
  meter.report(state);
}

void create_token_destroy_cancelkit(benchmark::State& state) {
  bench::alloc_meter meter;
  for (auto _ : state) {
    cancelkit::cancellation_source s;
    cancelkit::cancellation_token t = s.token();
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(t);
  }
  meter.report(state);
}

void create_token_destroy_std(benchmark::State& state) {
  bench::alloc_meter meter;
  for (auto _ : state) {
    std::stop_source s;
    std::stop_token t = s.get_token();
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(t);
  }
  meter.report(state);
}

void create_token_destroy_raw_heap(benchmark::State& state) {
  bench::alloc_meter meter;
  for (auto _ : state) {
    bench::raw_heap_source s;
    bench::raw_heap_token t = s.token();
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(t);
  }
  meter.report(state);
}

void linked_cancelkit(benchmark::State& state) {
  const auto p = static_cast<std::size_t>(state.range(0));
  std::vector<cancelkit::cancellation_source> parents(p);
  std::vector<cancelkit::cancellation_token> tokens;
  for (auto& s : parents) tokens.push_back(s.token());
  bench::alloc_meter meter;
  for (auto _ : state) {
    cancelkit::cancellation_source child = cancelkit::cancellation_source::linked(tokens);
    benchmark::DoNotOptimize(child);
  }
  meter.report(state);
}

struct forward_stop {
  std::stop_source* child;
  void operator()() const noexcept { child->request_stop(); }
};

void linked_std(benchmark::State& state) {
  const auto p = static_cast<std::size_t>(state.range(0));
  std::vector<std::stop_source> parents(p);
  std::vector<std::stop_token> tokens;
  for (auto& s : parents) tokens.push_back(s.get_token());
  bench::alloc_meter meter;
  for (auto _ : state) {
    std::stop_source child;
    std::array<std::optional<std::stop_callback<forward_stop>>, 8> links;
    for (std::size_t i = 0; i < p; ++i) links[i].emplace(tokens[i], forward_stop{&child});
    benchmark::DoNotOptimize(child);
    benchmark::DoNotOptimize(links);
  }
  meter.report(state);
}

void cancel_after_arm_disarm(benchmark::State& state, cancelkit::timer_service& timers) {
  cancelkit::cancellation_source s(timers);
  s.cancel_after(std::chrono::hours(1));  // first use installs the source's timer extension
  s.cancel_after(std::chrono::nanoseconds::max());
  bench::alloc_meter meter;
  for (auto _ : state) {
    s.cancel_after(std::chrono::hours(1));
    s.cancel_after(std::chrono::nanoseconds::max());
  }
  meter.report(state);
}

void cancel_after_manual(benchmark::State& state) {
  cancelkit::manual_timer_service timers;
  cancel_after_arm_disarm(state, timers);
}

void cancel_after_system(benchmark::State& state) {
  cancel_after_arm_disarm(state, cancelkit::system_timer_service());
}

void timeout_lifecycle_cancelkit(benchmark::State& state) {
  bench::alloc_meter meter;
  for (auto _ : state) {
    cancelkit::cancellation_source s(std::chrono::hours(1));
    benchmark::DoNotOptimize(s);
  }
  meter.report(state);
}

const bool registered = [] {
  bench::add("source", "create_destroy", "cancelkit", create_destroy_cancelkit);
  bench::add("source", "create_destroy", "std", create_destroy_std);
  bench::add("source", "lifecycle", "cancelkit", lifecycle_cancelkit);
  bench::add("source", "lifecycle", "std", lifecycle_std);
  bench::add("source", "create_token_destroy", "cancelkit", create_token_destroy_cancelkit);
  bench::add("source", "create_token_destroy", "std", create_token_destroy_std);
  bench::add("source", "create_token_destroy", "raw_heap", create_token_destroy_raw_heap);
  bench::add("source", "linked", "cancelkit", linked_cancelkit)->Arg(1)->Arg(2)->Arg(8);
  bench::add("source", "linked", "std", linked_std)->Arg(1)->Arg(2)->Arg(8);
  bench::add("source", "cancel_after", "cancelkit_manual", cancel_after_manual);
  bench::add("source", "cancel_after", "cancelkit_system", cancel_after_system);
  bench::add("source", "timeout_lifecycle", "cancelkit", timeout_lifecycle_cancelkit);
  return true;
}();

}  // namespace
