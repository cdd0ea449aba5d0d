// property_tests/model_programs/executor.hpp — running one generated program (program.hpp)
// under Relacy's scheduler: the model checker's executor of the linearizability programs.
//
// No Relacy or cancelkit header here: the driver (main.cpp) only sees programs, histories and
// verdicts. executor.cpp compiles the library's public API through the model's detail/sync.hpp
// (CANCELKIT_SYNC_RELACY), so every atomic, mutex and futex wait of the library, its timer
// service and its extension is a scheduling point of Relacy's random scheduler.
#pragma once

#include "linearizability/program.hpp"

#include <cstdint>
#include <string>

namespace ckmodel_programs {

struct schedule_options {
  std::uint64_t schedules = 2000;  // Relacy random-scheduler iterations 1 .. schedules
  // A replay: run only this schedule (Relacy's final_state of a failure), with output.
  bool only_one = false;
  std::uint64_t only = 0;
  // Relacy's report (test, error, the failing schedule's execution history: thread, atomic step,
  // source line) to std::cout; otherwise to a null stream (the search while shrinking).
  bool verbose = false;
};

struct schedule_result {
  bool ok = true;
  std::uint64_t schedules_run = 0;  // iterations Relacy ran, the failing one included
  // On failure:
  std::uint64_t failing_schedule = 0;  // Relacy's test_params::final_state: replays exactly
  std::string relacy_result;           // Relacy's verdict ("USER ASSERT FAILED", "DATA RACE", ...)
  bool have_history = false;  // the schedule ran to its end and the checker judged its history
  cklin::history history;     // what that schedule left (valid if have_history)
  std::string why;            // the checker's verdict.why, or which operation threw
};

// Runs `p` (at most 3 threads) under `o.schedules` random schedules, or the single schedule
// `o.only`; stops at the first schedule whose history the checker rejects (check(), WGL against
// the sequential model) or in which Relacy finds a data race, an access to freed memory, a leak,
// a deadlock or a livelock. Call outside any simulation; not reentrant.
schedule_result run_schedules(const cklin::program& p, const schedule_options& o);

}  // namespace ckmodel_programs
