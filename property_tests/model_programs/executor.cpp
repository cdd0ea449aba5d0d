// property_tests/model_programs/executor.cpp — one generated program under Relacy's scheduler.
//
// What linearizability/execute.cpp does on real threads, as a Relacy test: before() builds the
// sources, the linked child, S0's timer on a manual_timer_service and the pre-registrations;
// thread(i) runs program thread i's operations; after() records the final state, tears
// everything down and judges the history with the linearizability checker (check()). The
// library is the real one (impl/src through the model's detail/sync.hpp, no copy), so Relacy
// also reports data races, accesses to freed memory, leaks, deadlocks and livelocks.
//
// Relacy's constraints, and how they are met:
//  - Timestamps come from one counter, as in execute.cpp, and like there it is an atomic whose
//    every tick is a seq_cst fetch_add. Atomicity alone would not need it (fibers run one at a
//    time), but the checker's real-time order does: "A returned before B was called" may only
//    constrain B's results if A's return happens-before B's call. On real threads the counter's
//    RMW chain provides exactly that edge; a plain counter would not, and Relacy's memory model
//    would then let B read values older than A's effects (an is_cancellation_requested() after a
//    cancel() returned true on another thread reading false), which the checker would reject
//    though no real run of the program can show it.
//  - A callback yields to the scheduler a few times instead of spinning, and so does `pause`.
//  - Memory from Relacy's operator new during a simulation must be freed before the iteration
//    ends (else MEMORY LEAK) and must never outlive it: the history is kept in fixed-capacity
//    arrays of the test object; check() runs inside after() on vectors built and freed there;
//    a rejected history is copied into `failure`, a static POD snapshot outside the simulation's
//    heap, then RL_ASSERT(false) makes Relacy report the schedule (and rerun it with history).
//  - Nothing may throw across a fiber: every operation catches inside itself and records it.
#include "executor.hpp"

#include <cancelkit/detail/sync.hpp>  // relacy.hpp first, with its macros undone

#include "linearizability/awaits.hpp"
#include "linearizability/checker.hpp"
#include "linearizability/reasons.hpp"
#include "model_registry.hpp"  // stress/model_check: system_timers, the kept allocation functions

#include <cancelkit/cancelkit.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <exception>
#include <iostream>
#include <optional>
#include <span>
#include <stdexcept>

namespace ckmodel_programs {
namespace {

using namespace cancelkit;
using cklin::op;
using cklin::op_kind;

// The generator's bounds (program.cpp): 1-2 roots and a child, at most 4 pre-registrations, 2-3
// threads of at most 4 operations, one registration per register op.
constexpr std::size_t max_threads = 3;
constexpr std::size_t max_ops = max_threads * 4;
constexpr std::size_t max_sources = 3;
constexpr std::size_t max_regs = 4 + max_ops;
constexpr std::size_t max_callbacks = 2 * max_regs + 4;  // as execute.cpp: overflow is recorded
constexpr int callback_yields = 3;  // a running callback lets other threads in, as a spin would
constexpr int pause_yields = 3;

// What one schedule left: POD, no allocation.
struct pod_history {
  cklin::op_record ops[max_ops];
  std::size_t nops = 0;
  cklin::callback_record callbacks[max_callbacks];
  std::size_t ncallbacks = 0;
  bool overflow = false;  // more callback runs than slots (execute.cpp records a {-1, ...} marker)
  cklin::final_state end[max_sources];
  std::size_t nend = 0;
  int threw = -1;  // the id of an operation that threw (none may), or -1
};

// The snapshot of a rejected schedule, outside the simulation (static storage: written in after()
// without allocating, read by run_schedules() after simulate() returned).
struct failure_snapshot {
  bool failed = false;
  pod_history h;
  char why[16384] = {};
};
failure_snapshot failure;

const cklin::program* current = nullptr;  // the program under test (set by run_schedules)

void copy_text(char (&to)[sizeof(failure_snapshot::why)], const std::string& from) {
  const std::size_t n = std::min(from.size(), sizeof(to) - 1);
  std::memcpy(to, from.data(), n);
  to[n] = '\0';
}

cklin::history to_history(const pod_history& h) {
  cklin::history out;
  out.ops.assign(h.ops, h.ops + h.nops);
  out.callbacks.assign(h.callbacks, h.callbacks + h.ncallbacks);
  if (h.overflow) out.callbacks.push_back(cklin::callback_record{-1, -1, 0, 0});
  out.end.assign(h.end, h.end + h.nend);
  return out;
}

// The body of the test, shared by the 2- and 3-thread instantiations below.
struct program_run {
  manual_timer_service* timer = nullptr;
  std::optional<cancellation_source> sources[max_sources];
  cancellation_token tokens[max_sources];
  cancellation_registration regs[max_regs];
  cklin::await_task tasks[max_ops];  // the await ops' coroutines (frames on Relacy's heap)
  std::exception_ptr reasons[max_ops];  // the object each cancel-with-reason op passes
  std::size_t first_record[max_threads] = {};
  pod_history h;
  rl::atomic<std::uint64_t> clock;  // the global clock (see the top of this file)

  // seq_cst, as execute.cpp's tick(): the RMW chain orders every earlier tick before every later
  // one (release sequence), which is what the checker's real-time order assumes.
  std::uint64_t tick() { return clock($).fetch_add(1, rl::mo_seq_cst); }

  struct recording_callback {
    program_run* run;
    int reg;
    void operator()() const {
      cklin::callback_record r;
      r.reg = reg;
      r.thread = static_cast<int>(rl::thread_index());
      r.start = run->tick();
      for (int i = 0; i < callback_yields; ++i) rl::yield(1, $);
      r.end = run->tick();
      pod_history& hist = run->h;
      if (hist.ncallbacks < max_callbacks) hist.callbacks[hist.ncallbacks++] = r;
      else hist.overflow = true;
    }
  };

  // A coroutine resumed (linearizability/awaits.hpp), on the thread that resumed it.
  void resumed(int reg, int how) {
    cklin::callback_record r;
    r.reg = reg;
    r.thread = static_cast<int>(rl::thread_index());
    r.start = tick();
    r.end = tick();
    r.how = how;
    if (h.ncallbacks < max_callbacks) h.callbacks[h.ncallbacks++] = r;
    else h.overflow = true;
  }

  void before() {
    const cklin::program& p = *current;
    // Relaxed: before() runs before any thread starts (Relacy orders it before all of them with
    // a global fence). From 0 in every schedule, so that each one replays exactly.
    clock($).store(0, rl::mo_relaxed);
    timer = new manual_timer_service();  // outlives the sources (timer_service.hpp)
    cancelkit_model::system_timers = timer;  // a fallback, should any path want the system one
    for (int s = 0; s < p.roots; ++s) {
      const auto i = static_cast<std::size_t>(s);
      if (s == cklin::timed_source && p.timer) {
        sources[i].emplace(*timer);
        sources[i]->cancel_after(cklin::timer_delay);
      } else {
        sources[i].emplace();
      }
      tokens[i] = sources[i]->token();
    }
    if (p.child_parents > 0) {
      const auto child = static_cast<std::size_t>(p.roots);
      sources[child].emplace(cancellation_source::linked(std::span<const cancellation_token>(
          tokens, static_cast<std::size_t>(p.child_parents))));
      tokens[child] = sources[child]->token();
    }
    for (std::size_t t = 0; t < p.threads.size(); ++t) {
      first_record[t] = h.nops;
      for (std::size_t i = 0; i < p.threads[t].size(); ++i) {
        cklin::op_record& r = h.ops[h.nops];
        r.thread = static_cast<int>(t);
        r.index = static_cast<int>(i);
        r.id = static_cast<int>(h.nops);
        const op& o = p.threads[t][i];
        if (o.kind == op_kind::cancel && o.with_reason)
          reasons[h.nops] = std::make_exception_ptr(cklin::reason_tag{r.id});
        ++h.nops;
      }
    }
    for (std::size_t i = 0; i < p.pre.size(); ++i)
      regs[i] = tokens[static_cast<std::size_t>(p.pre[i])].register_callback(
          recording_callback{this, static_cast<int>(i)});
  }

  // One operation; whatever it throws is caught here (never across a fiber) and recorded.
  void run_op(const op& o, cklin::op_record& r) noexcept {
    try {
      const auto s = static_cast<std::size_t>(o.source);
      switch (o.kind) {
        case op_kind::cancel: {
          cancel_options opts;
          opts.reason = reasons[static_cast<std::size_t>(r.id)];
          r.result = sources[s]->cancel(opts) ? 1 : 0;
          break;
        }
        case op_kind::register_cb:
          regs[static_cast<std::size_t>(o.reg)] =
              tokens[s].register_callback(recording_callback{this, o.reg});
          break;
        case op_kind::unregister:
          r.result = regs[static_cast<std::size_t>(o.reg)].unregister() ? 1 : 0;
          break;
        case op_kind::dispose:
          regs[static_cast<std::size_t>(o.reg)].dispose();
          break;
        case op_kind::try_reset:
          r.result = sources[s]->try_reset() ? 1 : 0;
          break;
        case op_kind::is_requested:
          r.result = tokens[s].is_cancellation_requested() ? 1 : 0;
          break;
        case op_kind::reason:
          r.result = cklin::reason_result(tokens[s].cancellation_reason(), reasons);
          break;
        case op_kind::advance:
          timer->advance(cklin::timer_delay);
          break;
        case op_kind::pause:
          for (int i = 0; i < pause_yields; ++i) rl::yield(1, $);
          break;
        case op_kind::await_cancelled:
          tasks[static_cast<std::size_t>(o.await)] =
              cklin::await_cancelled_body(this, o.reg, tokens[s]);
          break;
        case op_kind::await_delay:
          tasks[static_cast<std::size_t>(o.await)] =
              cklin::await_delay_body(this, o.reg, tokens[s], *timer);
          break;
        case op_kind::destroy_await:
          tasks[static_cast<std::size_t>(o.await)].destroy();
          break;
      }
    } catch (...) {
      if (h.threw < 0) h.threw = r.id;
    }
  }

  void thread(unsigned t) {
    const cklin::program& p = *current;
    if (t >= p.threads.size()) return;  // a program of fewer threads than the instantiation
    std::size_t k = first_record[t];
    for (const op& o : p.threads[t]) {
      cklin::op_record& r = h.ops[k++];
      r.call = tick();
      run_op(o, r);
      r.ret = tick();
    }
  }

  void after() {
    const cklin::program& p = *current;
    const auto nsrc = static_cast<std::size_t>(p.sources());
    for (std::size_t s = 0; s < nsrc; ++s) {
      try {
        h.end[s] = {tokens[s].is_cancellation_requested(),
                    cklin::reason_result(tokens[s].cancellation_reason(), reasons)};
      } catch (...) {
        h.end[s] = {true, cklin::unknown_reason};
      }
    }
    h.nend = nsrc;
    // Tear down as execute() does when it returns: coroutines (a suspended one withdraws,
    // S28), registrations, then tokens, sources, the reasons, and the service last (it must
    // outlive every source and delay that uses it).
    for (cklin::await_task& t : tasks) t.destroy();
    for (cancellation_registration& r : regs) r = cancellation_registration();
    for (cancellation_token& t : tokens) t = cancellation_token();
    for (std::optional<cancellation_source>& s : sources) s.reset();
    for (std::exception_ptr& e : reasons) e = nullptr;
    cancelkit_model::system_timers = nullptr;
    delete timer;
    timer = nullptr;

    bool ok = true;
    {
      // Everything check() allocates comes from Relacy's heap and is freed at the end of this
      // block, before the iteration ends.
      std::string why;
      if (h.threw >= 0) {
        why = "op #" + std::to_string(h.threw) + " threw an exception (no operation may)\n";
      } else {
        const cklin::verdict v = cklin::check(p, to_history(h));
        if (!v.ok) why = v.why;
      }
      if (!why.empty()) {
        ok = false;
        failure.failed = true;
        failure.h = h;
        copy_text(failure.why, why);
      }
    }
    RL_ASSERT(ok);  // the history broke a rule: failure.why says which
  }
};

template <rl::thread_id_t N>
struct program_test : rl::test_suite<program_test<N>, N> {
  program_run run;
  void before() { run.before(); }
  void thread(unsigned t) { run.thread(t); }
  void after() { run.after(); }
};

}  // namespace

schedule_result run_schedules(const cklin::program& p, const schedule_options& o) {
  if (p.threads.size() > max_threads || p.pre.size() > 4 || p.sources() > int{max_sources})
    throw std::invalid_argument("run_schedules: the program is larger than the generator makes");
  for (const auto& t : p.threads)
    if (t.size() > 4) throw std::invalid_argument("run_schedules: more than 4 ops in a thread");
  current = &p;
  failure = failure_snapshot();

  rl::test_params params;
  params.search_type = rl::random_scheduler_type;
  params.execution_depth_limit = 20000;
  if (o.only_one) {
    // Relacy's random scheduler seeds each iteration with its number, so iteration `only` alone
    // replays exactly the schedule it was in the search.
    params.initial_state = std::to_string(o.only).c_str();
    params.iteration_count = static_cast<rl::iteration_t>(o.only);
  } else {
    params.iteration_count = static_cast<rl::iteration_t>(o.schedules);
  }
  // Relacy's report goes to an output stream that must not allocate while a simulation runs
  // (an ostringstream crashes its allocator): std::cout, or a stream with no buffer at all.
  std::ostream quiet(nullptr);
  params.output_stream = o.verbose ? &std::cout : &quiet;
  params.progress_stream = &quiet;

  const bool passed = p.threads.size() <= 2 ? rl::simulate<program_test<2>>(params)
                                            : rl::simulate<program_test<3>>(params);
  if (o.verbose) std::cout.flush();
  current = nullptr;

  schedule_result res;
  res.ok = passed;
  // Iterations are numbered from 1: stop_iteration is the last one run (the failing one).
  res.schedules_run = o.only_one ? 1 : static_cast<std::uint64_t>(params.stop_iteration);
  if (passed) return res;
  res.failing_schedule = static_cast<std::uint64_t>(params.stop_iteration);
  res.relacy_result = rl::test_result_str(params.test_result);
  if (failure.failed) {
    res.have_history = true;
    res.history = to_history(failure.h);
    res.why = failure.why;
  }
  return res;
}

}  // namespace ckmodel_programs
