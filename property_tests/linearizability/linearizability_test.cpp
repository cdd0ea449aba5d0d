// property_tests/linearizability/linearizability_test.cpp — RapidCheck generates small concurrent
// programs; each runs many times behind a start barrier, and every run's history must be
// explained by some sequential order of the model (see checker.hpp). A failure prints the
// program, the rule, the history and (through RapidCheck) the seed / reproduce string.
//
// Environment: CKTEST_LIN_RUNS (runs per program, default 100), CKTEST_LIN_SPIN_NS (how long each
// callback spins, default 2000 ns).
#include "checker.hpp"
#include "program.hpp"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cstdlib>
#include <map>
#include <string>

namespace cklin {
namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::atoi(v) : fallback;
}

RC_GTEST_PROP(Linearizability, EveryHistoryHasALegalSequentialOrder, ()) {
  static const int runs = env_int("CKTEST_LIN_RUNS", 100);
  static const int spin_ns = env_int("CKTEST_LIN_SPIN_NS", 2000);
  // Failures depend on timing. RapidCheck replays the shrunk program once more to print it; a
  // program that failed before is reported with that failure even if this replay happens to pass.
  static std::map<std::string, std::string> failed_before;
  const program p = *programs();
  const std::string name = show(p);
  for (int run = 0; run < runs; ++run) {
    const history h = execute(p, spin_ns);
    const verdict v = check(p, h);
    if (!v.ok) {
      std::string report = "run " + std::to_string(run + 1) + " of " + std::to_string(runs) +
                           " of this program broke the contract:\n" + name + v.why +
                           "\nhistory (ticks of one global counter):\n" + show(p, h);
      failed_before[name] = report;
      RC_FAIL(report);
    }
  }
  if (auto it = failed_before.find(name); it != failed_before.end())
    RC_FAIL("(this replay passed; an earlier one failed:)\n" + it->second);
  RC_TAG(std::to_string(p.threads.size()) + " threads",
         p.child_parents > 0 ? "linked child" : "no child", p.timer ? "timer" : "no timer",
         p.awaits() > 0 ? "coroutines" : "no coroutines");
}

}  // namespace
}  // namespace cklin
