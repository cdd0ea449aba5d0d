// cancelkit-bench entry point: Google Benchmark's main plus two things every family relies on.
//
// 1. One thread is started and joined before any benchmark runs. libstdc++ asks
//    __gnu_cxx::__is_single_threaded() (glibc's __libc_single_threaded) on some paths — notably
//    std::stop_source::request_stop() skips the per-callback semaphore release (a futex wake)
//    while the process has never started a thread. A real program that cancels anything has
//    threads, so the comparison would lie without this.
// 2. Context keys (compiler, library flavour) are added to the JSON output; the scripts add the
//    commit with --benchmark_context.
#include "common.hpp"

#include <pthread.h>
#include <sched.h>

#include <thread>
#include <vector>

namespace bench {
namespace {

std::vector<std::size_t> allowed_cpus() {
  std::vector<std::size_t> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (std::size_t c = 0; c < static_cast<std::size_t>(CPU_SETSIZE); ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

// The process's CPU set at start-up (before any pinning).
const std::vector<std::size_t>& startup_cpus() {
  static const std::vector<std::size_t> cpus = allowed_cpus();
  return cpus;
}

}  // namespace

bool pin_this_thread(unsigned slot) noexcept {
  const std::vector<std::size_t>& cpus = startup_cpus();
  if (cpus.size() < 2) return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpus[slot % cpus.size()], &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

void unpin_this_thread() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (std::size_t c : startup_cpus()) CPU_SET(c, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

}  // namespace bench

int main(int argc, char** argv) {
  static_cast<void>(bench::startup_cpus());
  std::thread([] {}).join();  // see 1. above

#if defined(__clang__)
  benchmark::AddCustomContext("compiler", "clang++ " __clang_version__);
#elif defined(__GNUC__)
  benchmark::AddCustomContext("compiler", "g++ " __VERSION__);
#endif
#if defined(NDEBUG)
  benchmark::AddCustomContext("ndebug", "1");
#endif
  benchmark::AddCustomContext("cpus_allowed", std::to_string(bench::startup_cpus().size()));

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
