// Family "check": is the token cancelled? Live and cancelled, read by 1 and 2 threads, plus the
// cost of copying a token (reference counting, must not allocate).
//
//   cancelkit  cancellation_token::is_cancellation_requested()
//   std        std::stop_token::stop_requested()
//   raw        std::atomic<bool>::load(acquire) through a pointer to heap memory (the floor:
//              one acquire load, which is what the other two must compile to)
#include "common.hpp"

#include <cancelkit/cancelkit.hpp>

#include <memory>
#include <stop_token>

namespace {

struct check_fixture {
  cancelkit::cancellation_source ck;
  std::stop_source st;
  std::unique_ptr<std::atomic<bool>> raw = std::make_unique<std::atomic<bool>>(false);

  explicit check_fixture(bool cancelled) {
    if (cancelled) {
      ck.cancel();
      st.request_stop();
      raw->store(true);
    }
  }
};

// The fixture lives for one benchmark run (all its threads): Setup creates it before the
// threads start, Teardown destroys it after they all finished.
std::unique_ptr<check_fixture> fixture;

// Setup and Teardown run once per benchmark run, not once per thread.
void setup(bool cancelled) { fixture = std::make_unique<check_fixture>(cancelled); }
void teardown(const benchmark::State&) { fixture.reset(); }

void check_cancelkit(benchmark::State& state) {
  // Each thread reads its own token copy, as real code does.
  const cancelkit::cancellation_token token = fixture->ck.token();
  bench::alloc_meter meter;
  for (auto _ : state) {
    bool r = token.is_cancellation_requested();
    benchmark::DoNotOptimize(r);
  }
  meter.report(state);
}

void check_std(benchmark::State& state) {
  const std::stop_token token = fixture->st.get_token();
  bench::alloc_meter meter;
  for (auto _ : state) {
    bool r = token.stop_requested();
    benchmark::DoNotOptimize(r);
  }
  meter.report(state);
}

void check_raw(benchmark::State& state) {
  const std::atomic<bool>* flag = fixture->raw.get();
  benchmark::DoNotOptimize(flag);
  bench::alloc_meter meter;
  for (auto _ : state) {
    bool r = flag->load(std::memory_order_acquire);
    benchmark::DoNotOptimize(r);
  }
  meter.report(state);
}

void copy_cancelkit(benchmark::State& state) {
  const cancelkit::cancellation_token token = fixture->ck.token();
  bench::alloc_meter meter;
  for (auto _ : state) {
    cancelkit::cancellation_token copy(token);
    benchmark::DoNotOptimize(copy);
  }
  meter.report(state);
}

void copy_std(benchmark::State& state) {
  const std::stop_token token = fixture->st.get_token();
  bench::alloc_meter meter;
  for (auto _ : state) {
    std::stop_token copy(token);
    benchmark::DoNotOptimize(copy);
  }
  meter.report(state);
}

const bool registered = [] {
  for (const bool cancelled : {false, true}) {
    const char* scenario = cancelled ? "cancelled" : "live";
    auto setup_fn = cancelled ? +[](const benchmark::State&) { setup(true); }
                              : +[](const benchmark::State&) { setup(false); };
    bench::add("check", scenario, "cancelkit", check_cancelkit)
        ->Setup(setup_fn)->Teardown(teardown)->Threads(1)->Threads(2);
    bench::add("check", scenario, "std", check_std)
        ->Setup(setup_fn)->Teardown(teardown)->Threads(1)->Threads(2);
    bench::add("check", scenario, "raw", check_raw)
        ->Setup(setup_fn)->Teardown(teardown)->Threads(1)->Threads(2);
  }
  auto live = +[](const benchmark::State&) { setup(false); };
  bench::add("check", "copy", "cancelkit", copy_cancelkit)->Setup(live)->Teardown(teardown);
  bench::add("check", "copy", "std", copy_std)->Setup(live)->Teardown(teardown);
  return true;
}();

}  // namespace
