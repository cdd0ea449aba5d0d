// stress/runner/perturbation.cpp — the seeded schedule perturbation behind the core's
// `sync::perturb(site)` points (detail/sync.hpp).
//
// The stress runner links a copy of the library compiled with CANCELKIT_PERTURBATION, whose core
// calls `cancelkit::detail::perturbation_point(site)` at the steps where races are decided (lock
// acquisition, REQUESTED published, before/after a callback, a disposer about to wait, a
// reference about to drop, orphaning). Here each call may yield the CPU or spin a little, which
// widens the window between two steps so that another thread lands inside it.
//
// Each worker derives its stream from the round seed and its thread index, and each round draws
// its own profile (which sites are active, how often, how long), so different rounds stress
// different windows. Threads outside a round (the system timer thread, the main thread) use a
// light fixed profile.
#include "harness.hpp"

#include <cancelkit/detail/sync.hpp>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace cancelkit::detail {
void perturbation_point(unsigned site) noexcept;  // declared by detail/sync.hpp in stress builds
}

namespace stress::perturbation {
namespace {

constexpr unsigned site_count = 7;  // cancelkit::detail::sync::site has 7 enumerators

struct profile {
  bool active = false;
  unsigned site_mask = 0;     // which sites perturb
  unsigned yield_permille = 0;
  unsigned spin_permille = 0;
  unsigned max_spin = 0;
};

struct thread_stream {
  rng g{0x5eed};
  profile p{};
  bool in_round = false;
  std::uint64_t points = 0;  // flushed into g_points at the end of each round
};

std::atomic<mode> g_mode{mode::mixed};
std::atomic<std::uint64_t> g_points{0};
thread_local thread_stream t_stream;

profile draw(rng& g, mode m) noexcept {
  profile p;
  switch (m) {
    case mode::none:
      return p;
    case mode::light:
      p = {true, (1u << site_count) - 1, 5, 20, 64};
      return p;
    case mode::heavy:
      p = {true, (1u << site_count) - 1, 60, 200, 2000};
      return p;
    case mode::mixed:
      break;
  }
  switch (g.below(4)) {
    case 0:  // a round without perturbation: the natural schedule
      return p;
    case 1:  // light everywhere
      p = {true, (1u << site_count) - 1, 5, 20, 64};
      return p;
    case 2:  // heavy on a random subset of sites
      p = {true, static_cast<unsigned>(g.below(1u << site_count)) | 1u << g.below(site_count), 60,
           250, 2000};
      return p;
    default:  // one site only, very often
      p = {true, 1u << g.below(site_count), 150, 500, 4000};
      return p;
  }
}

void spin(unsigned n) noexcept {
  for (unsigned i = 0; i < n; ++i) {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#else
    std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
  }
}

}  // namespace

void set_mode(mode m) noexcept { g_mode.store(m, std::memory_order_relaxed); }

void begin_thread_round(std::uint64_t round_seed, unsigned tid) noexcept {
  thread_stream& t = t_stream;
  t.g = rng(mix(round_seed ^ mix(0x7065727475726200ULL + tid)));
  rng shared(mix(round_seed ^ 0x70726f66696c65ULL));  // same profile for every thread of a round
  t.p = draw(shared, g_mode.load(std::memory_order_relaxed));
  t.in_round = true;
}

void end_thread_round() noexcept {
  thread_stream& t = t_stream;
  t.in_round = false;
  g_points.fetch_add(t.points, std::memory_order_relaxed);
  t.points = 0;
}

std::uint64_t points_hit() noexcept { return g_points.load(std::memory_order_relaxed); }

}  // namespace stress::perturbation

void cancelkit::detail::perturbation_point(unsigned site) noexcept {
  using namespace stress::perturbation;
  thread_stream& t = t_stream;
  profile p = t.p;
  if (!t.in_round) {
    if (g_mode.load(std::memory_order_relaxed) == mode::none) return;
    p = {true, (1u << site_count) - 1, 5, 20, 64};  // timer thread and the like: light
  }
  if (!p.active || site >= site_count || !(p.site_mask & (1u << site))) return;
  ++t.points;
  const std::uint32_t r = t.g.below(1000);
  if (r < p.yield_permille) {
    std::this_thread::yield();
  } else if (r < p.yield_permille + p.spin_permille) {
    spin(t.g.below(p.max_spin + 1));
  }
}
