// property_tests/model_programs/main.cpp — cancelkit-model-programs: the linearizability
// programs (linearizability/program.hpp: RapidCheck generates them) under Relacy's scheduler.
//
// Every program runs K random schedules of Relacy (executor.cpp); each schedule's history must
// be explained by some sequential order of the model (linearizability/checker.hpp), and Relacy
// itself must find no data race, access to freed memory, leak, deadlock or livelock. A failing
// program is shrunk by RapidCheck (Relacy silenced meanwhile), then run again with output: the
// program, Relacy's report of the first failing schedule (its execution history: thread, atomic
// step, source line), the broken rule with the history, and a REPLAY line that reruns exactly that
// program (RapidCheck's reproduce string) and that schedule (Relacy's final_state).
//
//   cancelkit-model-programs [--programs N] [--schedules K] [--seed S]
//   cancelkit-model-programs --reproduce R [--schedule I] [--schedules K]
//
// Exit status 0 iff every program passed; the last line is a one-line summary.
#include "executor.hpp"

#include "linearizability/checker.hpp"
#include "linearizability/program.hpp"

#include <rapidcheck.h>
#include <rapidcheck/detail/TestListenerAdapter.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <unordered_map>

namespace rc::detail {
// RapidCheck's own (de)serialisation of RC_PARAMS="reproduce=..." (defined in librapidcheck,
// declared only in its uninstalled src/ headers): the REPLAY line prints the same string that
// RapidCheck's reproduce mode takes.
std::string reproduceMapToString(const std::unordered_map<std::string, Reproduce>& map);
std::unordered_map<std::string, Reproduce> stringToReproduceMap(const std::string& str);
}  // namespace rc::detail

namespace {

constexpr const char* property_id = "cancelkit-model-programs";

struct options {
  int programs = 100;
  std::uint64_t schedules = 2000;
  std::uint64_t seed = 0;
  bool seed_given = false;
  std::string reproduce;  // a replay: this program (RapidCheck's reproduce string) ...
  bool schedule_given = false;
  std::uint64_t schedule = 0;  // ... and only this schedule
};

// The property runs in one of two ways: the search (K schedules per program, quiet), or a walk
// down RapidCheck's reproduce path (no schedules at all: only the program at the end matters).
// Either way it keeps every failing program by its printed form, which is how RapidCheck's
// counterexample names it; the report then reruns that one program with output. (RapidCheck
// evaluates the property at every step of a reproduce path, so printing from inside the property
// would print every step.)
bool walking = false;
std::map<std::string, cklin::program> failing;  // by showValue(program): "\n" + show(p)
std::uint64_t programs_run = 0;   // property calls that ran schedules, shrinking included
std::uint64_t schedules_run = 0;  // Relacy iterations over all of them

void property(std::uint64_t schedules) {
  const cklin::program p = *cklin::programs();
  if (walking) {
    failing.emplace("\n" + cklin::show(p), p);
    RC_FAIL("walking the reproduce path");  // structural: the result does not change the path
  }
  ckmodel_programs::schedule_options o;
  o.schedules = schedules;
  const ckmodel_programs::schedule_result r = ckmodel_programs::run_schedules(p, o);
  ++programs_run;
  schedules_run += r.schedules_run;
  if (!r.ok) {
    failing.emplace("\n" + cklin::show(p), p);
    RC_FAIL("schedule " + std::to_string(r.failing_schedule) + ": " + r.relacy_result);
  }
  RC_TAG(std::to_string(p.threads.size()) + " threads",
         p.child_parents > 0 ? "linked child" : "no child", p.timer ? "timer" : "no timer",
         p.awaits() > 0 ? "coroutines" : "no coroutines");
}

// The report of one program: its text, Relacy's report of the first failing schedule (or of the
// one schedule asked for), the broken rule with the history, and the REPLAY line. True if it
// passed.
bool report(const cklin::program& p, const ckmodel_programs::schedule_options& o,
            const std::string& reproduce, const std::string& found_with) {
  std::cout << "program (" << p.threads.size() << " thread(s)):\n" << cklin::show(p) << "\n"
            << "Relacy's report:\n";
  std::cout.flush();
  const ckmodel_programs::schedule_result r = ckmodel_programs::run_schedules(p, o);
  ++programs_run;
  schedules_run += r.schedules_run;
  if (r.ok) {
    std::cout << "this program passed " << r.schedules_run << " schedule(s)\n";
    return true;
  }
  std::cout << "\nschedule " << r.failing_schedule << " of this program broke the contract ("
            << r.relacy_result << ")\n";
  if (r.have_history) {
    std::cout << r.why << "\nhistory (ticks of one global counter):\n" << cklin::show(p, r.history);
  } else {
    std::cout << "Relacy stopped the schedule before its end (the error and the execution "
                 "history above say where)\n";
  }
  std::cout << "REPLAY: cancelkit-model-programs --reproduce " << reproduce << " --schedule "
            << r.failing_schedule << found_with << "\n";
  std::cout.flush();
  return false;
}

[[noreturn]] void usage(int status, const std::string& msg) {
  std::FILE* to = status == 0 ? stdout : stderr;
  if (!msg.empty()) std::fprintf(to, "cancelkit-model-programs: %s\n", msg.c_str());
  std::fprintf(
      to,
      "usage: cancelkit-model-programs [--programs N] [--schedules K] [--seed S]\n"
      "       cancelkit-model-programs --reproduce R [--schedule I] [--schedules K]\n"
      "  RapidCheck generates N programs (default 100) of the linearizability test\n"
      "  (property_tests/linearizability); each runs K Relacy random schedules (default 2000)\n"
      "  of the library compiled through the model's sync seam, and every history must be\n"
      "  linearizable against the sequential model. A failing program is shrunk, then printed\n"
      "  with Relacy's execution history, the broken rule and a REPLAY line.\n"
      "  --seed S        RapidCheck seed (default: random; printed on the first line)\n"
      "  --reproduce R   replay one program: RapidCheck's reproduce string of a REPLAY line\n"
      "  --schedule I    with --reproduce: run only Relacy's schedule I (its final_state)\n"
      "  Exit status 0 iff every program passed; the last line is a summary.\n");
  std::exit(status);
}

std::uint64_t number(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v.c_str(), &end, 0);
  if (v.empty() || *end != '\0' || v[0] == '-') usage(2, flag + " wants a non-negative number");
  return n;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(2, a + " needs a value");
      return argv[++i];
    };
    if (a == "--programs") {
      const std::uint64_t n = number(a, value());
      if (n == 0 || n > 100000000) usage(2, "--programs wants 1 .. 100000000");
      o.programs = static_cast<int>(n);
    } else if (a == "--schedules") {
      o.schedules = number(a, value());
      if (o.schedules == 0) usage(2, "--schedules must be positive");
    } else if (a == "--seed") {
      o.seed = number(a, value());
      o.seed_given = true;
    } else if (a == "--reproduce") {
      o.reproduce = value();
    } else if (a == "--schedule") {
      o.schedule = number(a, value());
      if (o.schedule == 0) usage(2, "--schedule counts from 1 (Relacy's iteration number)");
      o.schedule_given = true;
    } else if (a == "-h" || a == "--help") {
      usage(0, "");
    } else {
      usage(2, "unknown argument " + a);
    }
  }
  if (o.schedule_given && o.reproduce.empty()) usage(2, "--schedule needs --reproduce");
  return o;
}

using reproduce_map = std::unordered_map<std::string, rc::detail::Reproduce>;

rc::detail::TestResult check(const options& o, const reproduce_map& replay) {
  rc::detail::TestParams params;
  params.seed = o.seed;
  params.maxSuccess = o.programs;
  params.maxSize = 100;
  rc::detail::TestMetadata meta;
  meta.id = property_id;
  meta.description = property_id;
  rc::detail::TestListenerAdapter listener;
  const std::uint64_t schedules = o.schedules;
  return rc::detail::checkProperty(rc::detail::toProperty([schedules] { property(schedules); }),
                                   meta, params, listener, replay);
}

}  // namespace

int main(int argc, char** argv) {
  options o = parse(argc, argv);
  if (!o.seed_given) {
    std::random_device entropy;
    o.seed = entropy() | (std::uint64_t{entropy()} << 32);
  }
  const auto began = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  };
  bool passed = false;
  ckmodel_programs::schedule_options verbose;
  verbose.schedules = o.schedules;
  verbose.verbose = true;

  if (!o.reproduce.empty()) {
    reproduce_map replay;
    try {
      replay = rc::detail::stringToReproduceMap(o.reproduce);
    } catch (const std::exception& e) {
      usage(2, std::string("--reproduce: not a reproduce string: ") + e.what());
    }
    if (replay.count(property_id) == 0) usage(2, "--reproduce: no program of this executable");
    std::cout << "cancelkit-model-programs: replaying one program, "
              << (o.schedule_given ? "schedule " + std::to_string(o.schedule)
                                   : std::to_string(o.schedules) + " schedules")
              << std::endl;
    walking = true;
    const rc::detail::TestResult result = check(o, replay);
    walking = false;
    rc::detail::FailureResult end;
    if (!result.match(end) || end.counterExample.empty() ||
        failing.count(end.counterExample.front().second) == 0) {
      std::cout << "--reproduce: RapidCheck could not walk this reproduce string\n";
    } else {
      verbose.only_one = o.schedule_given;
      verbose.only = o.schedule;
      passed = report(failing.at(end.counterExample.front().second), verbose, o.reproduce, "");
    }
  } else {
    std::cout << "cancelkit-model-programs: seed " << o.seed << ", " << o.programs
              << " programs, " << o.schedules << " Relacy schedules each" << std::endl;
    const rc::detail::TestResult result = check(o, reproduce_map());
    rc::detail::FailureResult failure;
    rc::detail::GaveUpResult gave_up;
    rc::detail::Error error;
    if (result.match(failure)) {
      const auto found_at = static_cast<std::uint64_t>(failure.numSuccess) + 1;
      std::cout << "program " << found_at << " failed (" << failure.description << "); shrunk in "
                << programs_run - found_at << " more program(s). The smallest failing program:\n";
      const std::string r = rc::detail::reproduceMapToString({{property_id, failure.reproduce}});
      const std::string found_with = "   (found by --seed " + std::to_string(o.seed) +
                                     " --programs " + std::to_string(o.programs) +
                                     " --schedules " + std::to_string(o.schedules) + ")";
      if (failure.counterExample.empty() ||
          failing.count(failure.counterExample.front().second) == 0) {
        std::cout << "(the counterexample is not a recorded program)\n";
      } else if (report(failing.at(failure.counterExample.front().second), verbose, r,
                        found_with)) {
        std::cout << "(its rerun passed: Relacy's schedules are not deterministic here)\n";
      }
    } else if (result.match(gave_up)) {
      std::cout << "RapidCheck gave up: " << gave_up.description << "\n";
    } else if (result.match(error)) {
      std::cout << "RapidCheck error: " << error.description << "\n";
    } else {
      passed = true;
    }
  }
  std::printf("cancelkit-model-programs: %s, %llu programs, %llu schedules, %.1f s (seed %llu)\n",
              passed ? "PASS" : "FAIL", static_cast<unsigned long long>(programs_run),
              static_cast<unsigned long long>(schedules_run), seconds(),
              static_cast<unsigned long long>(o.seed));
  return passed ? 0 : 1;
}
