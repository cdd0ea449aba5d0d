// Family "contended": 2 and 4 threads register and unregister callbacks on ONE source at the
// same time (the lock word and list head bounce between cores). Real time per operation per
// thread (Google Benchmark's threaded mode; UseRealTime).
//
//   callback/cancelkit       cancellation_callback construct + destroy
//   callback/std             std::stop_callback construct + destroy
//   callback/raw             the two-RMW spin-lock list floor (bench::raw_list)
//   erased_small/cancelkit   token.register_callback(small) + dispose
//
// With 4 threads on a 2-CPU machine the spin locks are preempted while held; that row shows
// how each lock's back-off behaves under oversubscription, not raw speed.
#include "common.hpp"

#include <cancelkit/cancelkit.hpp>

#include <memory>
#include <stop_token>

namespace {

struct small_fn {
  int* target;
  void operator()() const noexcept { ++*target; }
};

thread_local int sink = 0;

struct contended_fixture {
  cancelkit::cancellation_source ck;
  std::stop_source st;
  bench::raw_list raw;
};

std::unique_ptr<contended_fixture> fixture;

void setup(const benchmark::State&) { fixture = std::make_unique<contended_fixture>(); }
void teardown(const benchmark::State&) { fixture.reset(); }

void callback_cancelkit(benchmark::State& state) {
  const cancelkit::cancellation_token token = fixture->ck.token();
  bench::alloc_meter meter;
  for (auto _ : state) {
    cancelkit::cancellation_callback cb(token, small_fn{&sink});
    benchmark::DoNotOptimize(cb);
  }
  meter.report(state);
}

void callback_std(benchmark::State& state) {
  const std::stop_token token = fixture->st.get_token();
  bench::alloc_meter meter;
  for (auto _ : state) {
    std::stop_callback cb(token, small_fn{&sink});
    benchmark::DoNotOptimize(cb);
  }
  meter.report(state);
}

void callback_raw(benchmark::State& state) {
  bench::raw_list& list = fixture->raw;
  bench::alloc_meter meter;
  for (auto _ : state) {
    bench::raw_callback<small_fn> cb(list, small_fn{&sink});
    benchmark::DoNotOptimize(cb);
  }
  meter.report(state);
}

void erased_cancelkit(benchmark::State& state) {
  const cancelkit::cancellation_token token = fixture->ck.token();
  bench::alloc_meter meter;
  for (auto _ : state) {
    cancelkit::cancellation_registration r = token.register_callback(small_fn{&sink});
    benchmark::DoNotOptimize(r);
  }
  meter.report(state);
}

const bool registered = [] {
  for (auto* bm : {bench::add("contended", "callback", "cancelkit", callback_cancelkit),
                   bench::add("contended", "callback", "std", callback_std),
                   bench::add("contended", "callback", "raw", callback_raw),
                   bench::add("contended", "erased_small", "cancelkit", erased_cancelkit)}) {
    bm->Setup(setup)->Teardown(teardown)->Threads(2)->Threads(4)->UseRealTime();
  }
  return true;
}();

}  // namespace
