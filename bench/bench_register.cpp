// Family "register": register a callback on a live token and remove it again, uncontended.
//
//   callback/cancelkit   cancellation_callback construct + destroy (RAII, callable stored inline)
//   callback/std         std::stop_callback construct + destroy
//   callback/raw         the two-RMW floor: intrusive list under a CAS-lock/store-unlock word
//   erased_small/...     cancelkit: token.register_callback(small lambda) + registration dispose
//                        std: std::stop_callback<std::function<void()>> (type-erased like ours)
//   erased_large/...     the same with a 256-byte capture (cancelkit and std::function allocate)
//   erased_unregister/cancelkit  register_callback + unregister() + destroy (the .NET pattern)
//
// Every row reports allocs/op (heap allocations per register+unregister, from the counting
// operator new): cancellation_callback and small register_callback must be 0 in the steady state.
#include "common.hpp"

#include <cancelkit/cancelkit.hpp>

#include <array>
#include <functional>
#include <stop_token>

namespace {

struct small_fn {
  int* target;
  void operator()() const noexcept { ++*target; }
};

struct large_fn {
  int* target;
  std::array<char, 256> payload{};
  void operator()() const noexcept { *target += payload[0]; }
};

int sink = 0;

void callback_cancelkit(benchmark::State& state) {
  cancelkit::cancellation_source source;
  const cancelkit::cancellation_token token = source.token();
  bench::alloc_meter meter;
  for (auto _ : state) {
    cancelkit::cancellation_callback cb(token, small_fn{&sink});
    benchmark::DoNotOptimize(cb);
  }
  meter.report(state);
}

void callback_std(benchmark::State& state) {
  std::stop_source source;
  const std::stop_token token = source.get_token();
  bench::alloc_meter meter;
  for (auto _ : state) {
    std::stop_callback cb(token, small_fn{&sink});
    benchmark::DoNotOptimize(cb);
  }
  meter.report(state);
}

void callback_raw(benchmark::State& state) {
  bench::raw_list list;
  bench::alloc_meter meter;
  for (auto _ : state) {
    bench::raw_callback<small_fn> cb(list, small_fn{&sink});
    benchmark::DoNotOptimize(cb);
  }
  meter.report(state);
}

template <class F>
void erased_cancelkit(benchmark::State& state) {
  cancelkit::cancellation_source source;
  const cancelkit::cancellation_token token = source.token();
  bench::alloc_meter meter;
  for (auto _ : state) {
    cancelkit::cancellation_registration r = token.register_callback(F{&sink});
    benchmark::DoNotOptimize(r);
  }
  meter.report(state);
}

template <class F>
void erased_std(benchmark::State& state) {
  std::stop_source source;
  const std::stop_token token = source.get_token();
  bench::alloc_meter meter;
  for (auto _ : state) {
    std::stop_callback<std::function<void()>> cb(token, std::function<void()>(F{&sink}));
    benchmark::DoNotOptimize(cb);
  }
  meter.report(state);
}

void erased_unregister_cancelkit(benchmark::State& state) {
  cancelkit::cancellation_source source;
  const cancelkit::cancellation_token token = source.token();
  bench::alloc_meter meter;
  for (auto _ : state) {
    cancelkit::cancellation_registration r = token.register_callback(small_fn{&sink});
    bool removed = r.unregister();
    benchmark::DoNotOptimize(removed);
  }
  meter.report(state);
}

const bool registered = [] {
  bench::add("register", "callback", "cancelkit", callback_cancelkit);
  bench::add("register", "callback", "std", callback_std);
  bench::add("register", "callback", "raw", callback_raw);
  bench::add("register", "erased_small", "cancelkit", erased_cancelkit<small_fn>);
  bench::add("register", "erased_small", "std", erased_std<small_fn>);
  bench::add("register", "erased_large", "cancelkit", erased_cancelkit<large_fn>);
  bench::add("register", "erased_large", "std", erased_std<large_fn>);
  bench::add("register", "erased_unregister", "cancelkit", erased_unregister_cancelkit);
  return true;
}();

}  // namespace
