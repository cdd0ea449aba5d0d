// stress/runner/harness.cpp — registry, violation report, jitter.
#include "harness.hpp"

#include <cstdio>
#include <mutex>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace stress {

namespace {
constexpr std::uint64_t max_printed_violations = 20;
std::mutex print_mutex;
report the_report;
}  // namespace

std::vector<scenario_def>& registry() {
  static std::vector<scenario_def> defs;
  return defs;
}

report& current_report() noexcept { return the_report; }

void report::begin_round(const char* scenario, const round_info& r,
                         std::uint64_t base_seed) noexcept {
  scenario_ = scenario;
  round_ = r;
  base_seed_ = base_seed;
}

violation_record report::first() const {
  std::lock_guard<std::mutex> lock(print_mutex);
  return first_;
}

void report::reset_first() {
  std::lock_guard<std::mutex> lock(print_mutex);
  first_ = violation_record{};
}

void report::violation(const char* file, int line, const char* expr, const std::string& detail) {
  // Relaxed: a plain event counter; the runner reads it after the round's barrier, which orders
  // every worker's increment before the read.
  const std::uint64_t n = count_.fetch_add(1, std::memory_order_relaxed) + 1;
  // Always locked, also past the printed ones: the first violation of each scenario is kept for
  // --json (violations are rare; a run that has many is failing anyway).
  std::lock_guard<std::mutex> lock(print_mutex);
  if (!first_.set) {
    first_.set = true;
    first_.round = round_;
    first_.where = std::string(file) + ":" + std::to_string(line);
    first_.expression = expr;
    first_.detail = detail;
  }
  if (n > max_printed_violations) return;
  std::fprintf(stderr,
               "\nVIOLATION #%llu in %s (round %llu, round seed 0x%016llx, --seed 0x%llx, "
               "threads %u)\n  %s:%d: %s\n  %s\n  reproduce: cancelkit-stress --scenario %s "
               "--seed 0x%llx --start-round %llu --iterations 1 --threads %u\n",
               static_cast<unsigned long long>(n), scenario_,
               static_cast<unsigned long long>(round_.index),
               static_cast<unsigned long long>(round_.seed),
               static_cast<unsigned long long>(base_seed_), round_.threads, file, line, expr,
               detail.c_str(), scenario_, static_cast<unsigned long long>(base_seed_),
               static_cast<unsigned long long>(round_.index), round_.threads);
  if (n == max_printed_violations) std::fprintf(stderr, "  (further violations not printed)\n");
  std::fflush(stderr);
}

void jitter(rng& g, unsigned max_spins) noexcept {
  if (max_spins == 0) return;
  const std::uint32_t r = g.below(max_spins + max_spins / 8 + 1);
  if (r > max_spins) {  // about one in nine: give the CPU away instead
    std::this_thread::yield();
    return;
  }
  for (std::uint32_t i = 0; i < r; ++i) {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#else
    std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
  }
}

}  // namespace stress
