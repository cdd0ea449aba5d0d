// stress/runner/harness.hpp — what a stress scenario sees of the cancelkit-stress runner.
//
// A scenario is a class with three steps that the runner repeats round after round:
//   setup(round)      on the main thread, before the workers start (build the sources, register);
//   work(tid, rng)    on every worker thread at once, tid in [0, threads) (the race itself);
//   check(round)      on the main thread after every worker returned (invariants, then teardown).
// The runner's barriers order setup -> work -> check, so data that only setup writes or only
// check reads needs no atomics. Anything two workers touch during `work` must be atomic, or be
// ordered by a guarantee of the library under test (S3, S9): that is the point — TSan then
// reports a broken guarantee as a data race, ASan a use-after-free.
//
// Every scenario file registers itself with STRESS_SCENARIO and checks with STRESS_EXPECT, which
// counts a violation (the run then exits non-zero) and prints the first few with the round's seed.
#pragma once

#include "counting_new.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace stress {

// ---- randomness -------------------------------------------------------------------------------

// splitmix64 finaliser: a good 64-bit mix, used to derive round and thread seeds.
constexpr std::uint64_t mix(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

class rng {
 public:
  explicit rng(std::uint64_t seed) noexcept : s_(seed) {}
  std::uint64_t next() noexcept {
    s_ += 0x9e3779b97f4a7c15ULL;
    return mix(s_);
  }
  // Uniform in [0, n); n > 0.
  std::uint32_t below(std::uint32_t n) noexcept {
    return static_cast<std::uint32_t>((next() >> 32) * n >> 32);
  }
  // True with probability percent/100.
  bool percent(unsigned p) noexcept { return below(100) < p; }

 private:
  std::uint64_t s_;
};

// A short busy delay of up to `max_spins` pause iterations (sometimes a yield), to shift where in
// the other threads' critical steps this thread arrives.
void jitter(rng& g, unsigned max_spins) noexcept;

// ---- violations -------------------------------------------------------------------------------

struct round_info {
  std::uint64_t index = 0;  // round number (see --shard, --start-round)
  std::uint64_t seed = 0;   // this round's seed, derived from --seed and index
  unsigned threads = 0;     // worker threads
};

// The first violation seen since the last report::reset_first() (the runner's --json output).
struct violation_record {
  bool set = false;
  round_info round{};
  std::string where;  // file:line
  std::string expression;
  std::string detail;
};

// Thread-safe counter and printer of invariant violations for the running scenario.
class report {
 public:
  void violation(const char* file, int line, const char* expr, const std::string& detail);
  std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  // Set by the runner before each round starts (the barrier publishes it to the workers).
  void begin_round(const char* scenario, const round_info& r, std::uint64_t base_seed) noexcept;
  // The first violation since reset_first() (called by the runner when a scenario starts); both
  // take the report's print lock, so they may run while workers report.
  violation_record first() const;
  void reset_first();

 private:
  std::atomic<std::uint64_t> count_{0};
  violation_record first_;  // guarded by the print lock (harness.cpp)
  const char* scenario_ = "";
  round_info round_{};
  std::uint64_t base_seed_ = 0;
};

report& current_report() noexcept;

template <class... A>
std::string format(const A&... a) {
  std::ostringstream os;
  ((os << a), ...);
  return os.str();
}

#define STRESS_EXPECT(cond, ...)                                                     \
  do {                                                                               \
    if (!(cond)) [[unlikely]]                                                        \
      ::stress::current_report().violation(__FILE__, __LINE__, #cond,                \
                                           ::stress::format(__VA_ARGS__));           \
  } while (0)

// ---- scenarios --------------------------------------------------------------------------------

class scenario {
 public:
  virtual ~scenario() = default;
  virtual void setup(const round_info& r, rng& g) = 0;
  // Returns the number of library operations this thread performed (for ops/s).
  virtual std::uint64_t work(unsigned tid, rng& g) = 0;
  virtual void check(const round_info& r) = 0;
};

struct scenario_def {
  const char* name;       // command-line name
  int order;              // position in the catalog (--list, all)
  const char* rules;      // SEMANTICS.md rules it defends, e.g. "S2 S4 S5"
  const char* peer_bug;   // the peer bug it mirrors
  const char* summary;    // one line
  unsigned min_threads;   // runs with max(--threads, min_threads) workers
  std::unique_ptr<scenario> (*make)(unsigned threads);
};

std::vector<scenario_def>& registry();

struct registrar {
  explicit registrar(const scenario_def& d) { registry().push_back(d); }
};

#define STRESS_CONCAT2(a, b) a##b
#define STRESS_CONCAT(a, b) STRESS_CONCAT2(a, b)
// STRESS_SCENARIO(Class, "name", order, "rules", "peer bug", "summary", min_threads)
#define STRESS_SCENARIO(cls, name, order, rules, peer, summary, min_threads)             \
  static const ::stress::registrar STRESS_CONCAT(stress_registrar_, __LINE__){           \
      ::stress::scenario_def{name, order, rules, peer, summary, min_threads,             \
                             [](unsigned t) -> std::unique_ptr<::stress::scenario> {     \
                               return std::make_unique<cls>(t);                          \
                             }}}

// ---- small shared helpers -----------------------------------------------------------------------

// Spins (pause + occasional yield) until `pred()` or `limit` elapsed; returns pred().
template <class P>
bool spin_until(P pred, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (unsigned i = 0;; ++i) {
    if (pred()) return true;
    if ((i & 63) == 63) {
      if (std::chrono::steady_clock::now() > until) return pred();
      std::this_thread::yield();
    }
  }
}

// Schedule perturbation (runner/perturbation.cpp): each worker sets its own stream per round.
namespace perturbation {
enum class mode { none, light, heavy, mixed };
void set_mode(mode m) noexcept;
void begin_thread_round(std::uint64_t round_seed, unsigned tid) noexcept;
void end_thread_round() noexcept;
std::uint64_t points_hit() noexcept;  // how many perturbation points ran (all threads)
}  // namespace perturbation

// Allocation accounting and failure injection: the runner links test_support's replacement of
// the global operator new (counting_new.hpp).
namespace alloc = cktest::alloc;

}  // namespace stress
