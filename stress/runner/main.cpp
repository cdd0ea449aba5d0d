// stress/runner/main.cpp — cancelkit-stress: runs the race scenarios of stress/scenarios.
//
//   cancelkit-stress [--scenario NAME|all]... [--threads T] [--duration S | --iterations N]
//                    [--seed X] [--shard i/n] [--start-round R] [--perturb MODE]
//                    [--hang-timeout S] [--json FILE] [--list] [NAME...]
//
// Each scenario runs in rounds (setup -> all workers race -> invariant check) until its duration
// or iteration budget is spent, then prints one summary line. Round k of a run uses round index
// start + i + k*n under --shard i/n, and round seed mix(seed, index): n machines given the same
// --seed and shards 0/n .. n-1/n explore disjoint rounds, and any round can be replayed alone
// with --start-round INDEX --iterations 1. Exit status: 0 clean, 1 violations, 2 usage error.
// A round that does not finish within --hang-timeout is reported as a hang and aborts the process.
// --json FILE writes the results as JSON (schema "cancelkit-stress/1", docs/ci.md): rewritten after
// every scenario, and on a hang or a sanitizer report before the process dies, so that a killed
// run still leaves what it finished and the replay command of the round that failed.
#include "harness.hpp"

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

// The sanitizers call a death callback before they end the process (halt_on_error): the runner
// uses it to name the round that was running and write --json.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define CANCELKIT_STRESS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define CANCELKIT_STRESS_SANITIZED 1
#endif
#endif
#if defined(CANCELKIT_STRESS_SANITIZED)
#include <sanitizer/common_interface_defs.h>
#endif

namespace {

using clock_type = std::chrono::steady_clock;
using stress::perturbation::mode;

struct options {
  std::vector<std::string> scenarios;
  unsigned threads = 4;
  double duration_s = 0;       // per scenario; 0: not set
  std::uint64_t iterations = 0;  // rounds per scenario; 0: not set
  std::uint64_t seed = 0;
  bool seed_given = false;
  std::uint64_t shard_i = 0, shard_n = 1;
  std::uint64_t start_round = 0;
  mode perturb = mode::mixed;
  double hang_timeout_s = 120;
  bool list = false;
  std::string json_path;  // --json FILE; empty: none
  std::string command;    // the command line, for the JSON output
};

const char* mode_name(mode m) {
  switch (m) {
    case mode::none: return "none";
    case mode::light: return "light";
    case mode::heavy: return "heavy";
    case mode::mixed: return "mixed";
  }
  return "?";
}

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "cancelkit-stress: %s (see --help)\n", msg.c_str());
  std::exit(2);
}

void print_help() {
  std::printf(
      "usage: cancelkit-stress [options] [SCENARIO...]\n"
      "  --scenario NAME|all   scenario to run (repeatable, comma lists allowed; default all)\n"
      "  --threads T           worker threads per scenario (default 4; scenarios needing more\n"
      "                        use their minimum)\n"
      "  --duration S          seconds per scenario (default 2 unless --iterations is given)\n"
      "  --iterations N        rounds per scenario (with --duration: whichever ends first)\n"
      "  --seed X              base seed, decimal or 0x-hex (default: random, printed)\n"
      "  --shard i/n           run only rounds i, i+n, i+2n, ... (split a campaign by seed)\n"
      "  --start-round R       first round index (replay: --start-round R --iterations 1)\n"
      "  --perturb MODE        schedule perturbation: none|light|heavy|mixed (default mixed)\n"
      "  --hang-timeout S      a round running longer is a hang: report and abort (default 120)\n"
      "  --json FILE           write the results as JSON (schema cancelkit-stress/1, docs/ci.md)\n"
      "  --list                list the scenarios with the rules and peer bugs they defend\n");
}

std::uint64_t parse_u64(const std::string& opt, const std::string& v) {
  try {
    std::size_t used = 0;
    const unsigned long long x = std::stoull(v, &used, 0);
    if (used != v.size()) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    usage_error(opt + ": not a number: '" + v + "'");
  }
}

double parse_double(const std::string& opt, const std::string& v) {
  try {
    std::size_t used = 0;
    const double x = std::stod(v, &used);
    if (used != v.size() || !(x > 0)) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    usage_error(opt + ": not a positive number: '" + v + "'");
  }
}

void add_scenarios(options& o, const std::string& list) {
  std::size_t start = 0;
  while (start <= list.size()) {
    const std::size_t comma = list.find(',', start);
    const std::string name = list.substr(start, comma == std::string::npos ? std::string::npos
                                                                           : comma - start);
    if (!name.empty()) o.scenarios.push_back(name);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string value;
    bool has_value = false;
    if (a.rfind("--", 0) == 0) {
      const std::size_t eq = a.find('=');
      if (eq != std::string::npos) {
        value = a.substr(eq + 1);
        a = a.substr(0, eq);
        has_value = true;
      }
    }
    auto need = [&]() -> std::string {
      if (has_value) return value;
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      print_help();
      std::exit(0);
    } else if (a == "--list") {
      o.list = true;
    } else if (a == "--scenario") {
      add_scenarios(o, need());
    } else if (a == "--threads") {
      const std::uint64_t t = parse_u64(a, need());
      if (t < 1 || t > 1024) usage_error("--threads must be in 1..1024");
      o.threads = static_cast<unsigned>(t);
    } else if (a == "--duration") {
      o.duration_s = parse_double(a, need());
    } else if (a == "--iterations") {
      o.iterations = parse_u64(a, need());
      if (o.iterations == 0) usage_error("--iterations must be positive");
    } else if (a == "--seed") {
      o.seed = parse_u64(a, need());
      o.seed_given = true;
    } else if (a == "--shard") {
      const std::string v = need();
      const std::size_t slash = v.find('/');
      if (slash == std::string::npos) usage_error("--shard wants i/n");
      o.shard_i = parse_u64(a, v.substr(0, slash));
      o.shard_n = parse_u64(a, v.substr(slash + 1));
      if (o.shard_n == 0 || o.shard_i >= o.shard_n) usage_error("--shard i/n needs 0 <= i < n");
    } else if (a == "--start-round") {
      o.start_round = parse_u64(a, need());
    } else if (a == "--perturb") {
      const std::string v = need();
      if (v == "none") o.perturb = mode::none;
      else if (v == "light") o.perturb = mode::light;
      else if (v == "heavy") o.perturb = mode::heavy;
      else if (v == "mixed") o.perturb = mode::mixed;
      else usage_error("--perturb wants none|light|heavy|mixed");
    } else if (a == "--hang-timeout") {
      o.hang_timeout_s = parse_double(a, need());
    } else if (a == "--json") {
      o.json_path = need();
      if (o.json_path.empty()) usage_error("--json needs a file name");
    } else if (a.rfind("-", 0) == 0) {
      usage_error("unknown option " + a);
    } else {
      add_scenarios(o, a);
    }
  }
  if (o.duration_s == 0 && o.iterations == 0) o.duration_s = 2;
  for (int i = 0; i < argc; ++i) o.command += (i ? " " : "") + std::string(argv[i]);
  if (!o.seed_given) o.seed = (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^
                              std::random_device{}();
  return o;
}

std::vector<stress::scenario_def> catalog() {
  std::vector<stress::scenario_def> defs = stress::registry();
  std::sort(defs.begin(), defs.end(),
            [](const auto& a, const auto& b) { return a.order < b.order; });
  return defs;
}

// ---- --json output -----------------------------------------------------------------------------

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";  // NaN and infinities are not JSON
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

// The command that replays one round alone (what the violation and hang messages print).
std::string replay_command(const std::string& scenario, const options& o,
                           const stress::round_info& r) {
  std::string cmd = "cancelkit-stress --scenario " + scenario + " --seed " + hex(o.seed) +
                    " --start-round " + std::to_string(r.index) + " --iterations 1 --threads " +
                    std::to_string(r.threads);
  if (o.perturb != mode::mixed) cmd += std::string(" --perturb ") + mode_name(o.perturb);
  return cmd;
}

struct scenario_result {
  std::string name;
  std::string rules;
  unsigned threads = 0;
  std::uint64_t rounds = 0;
  std::uint64_t ops = 0;
  std::uint64_t violations = 0;
  double seconds = 0;
  stress::violation_record first;  // set when violations > 0
};

// What ended the process early: a hang (the watchdog) or a sanitizer report.
struct fatal_info {
  const char* kind = "";  // "hang" | "sanitizer"
  std::string scenario;
  bool have_round = false;
  stress::round_info round{};
  std::string detail;
};

// The --json file: rewritten (write to FILE.tmp, then rename) after every scenario and at the
// end; on a hang or a sanitizer report once more, with what was running, before the process dies.
class json_output {
 public:
  explicit json_output(const options& o) : o_(o) {}

  void start(std::size_t scenarios) {
    std::lock_guard<std::mutex> lock(mutex_);
    planned_ = scenarios;
    write_locked("running", false, nullptr, 0);
  }
  void add(scenario_result r) {
    std::lock_guard<std::mutex> lock(mutex_);
    done_.push_back(std::move(r));
    write_locked("running", false, nullptr, 0);
  }
  void finish(std::uint64_t points_hit) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::uint64_t violations = 0;
    for (const scenario_result& r : done_) violations += r.violations;
    write_locked(violations == 0 ? "pass" : "fail", true, nullptr, points_hit);
  }
  // From the watchdog or the sanitizer's death callback: the main thread may hold the lock (it
  // is writing the file); wait for it a little, never forever (the process is about to end).
  void fatal(const fatal_info& f) {
    std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
    for (int i = 0; i < 200 && !lock.try_lock(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!lock.owns_lock()) return;
    write_locked(std::string(f.kind) == "hang" ? "hang" : "sanitizer_error", false, &f,
                 stress::perturbation::points_hit());
  }

 private:
  void write_locked(const char* status, bool complete, const fatal_info* fatal,
                    std::uint64_t points_hit) {
    if (o_.json_path.empty()) return;
    std::string j = "{\n";
    j += "  \"schema\": \"cancelkit-stress/1\",\n";
    j += "  \"status\": " + json_string(status) + ",\n";
    j += std::string("  \"complete\": ") + (complete ? "true" : "false") + ",\n";
    j += "  \"command\": " + json_string(o_.command) + ",\n";
    j += "  \"seed\": " + json_string(hex(o_.seed)) + ",\n";
    j += std::string("  \"seed_given\": ") + (o_.seed_given ? "true" : "false") + ",\n";
    j += "  \"shard\": {\"index\": " + std::to_string(o_.shard_i) +
         ", \"count\": " + std::to_string(o_.shard_n) + "},\n";
    j += "  \"start_round\": " + std::to_string(o_.start_round) + ",\n";
    j += "  \"threads\": " + std::to_string(o_.threads) + ",\n";
    j += "  \"duration_s\": " + (o_.duration_s > 0 ? json_number(o_.duration_s) : "null") + ",\n";
    j += "  \"iterations\": " + (o_.iterations ? std::to_string(o_.iterations) : "null") + ",\n";
    j += "  \"perturb\": " + json_string(mode_name(o_.perturb)) + ",\n";
#if defined(CANCELKIT_PERTURBATION)
    j += "  \"perturbation_build\": true,\n";
#else
    j += "  \"perturbation_build\": false,\n";
#endif
    j += "  \"perturbation_points_hit\": " + std::to_string(points_hit) + ",\n";
    j += "  \"scenarios_planned\": " + std::to_string(planned_) + ",\n";
    std::vector<std::string> replays;
    std::uint64_t rounds = 0, ops = 0, violations = 0;
    j += "  \"scenarios\": [";
    for (std::size_t i = 0; i < done_.size(); ++i) {
      const scenario_result& r = done_[i];
      rounds += r.rounds;
      ops += r.ops;
      violations += r.violations;
      j += i ? ",\n    {" : "\n    {";
      j += "\"name\": " + json_string(r.name) + ", \"rules\": " + json_string(r.rules) +
           ", \"threads\": " + std::to_string(r.threads) +
           ", \"rounds\": " + std::to_string(r.rounds) + ", \"ops\": " + std::to_string(r.ops) +
           ", \"ops_per_s\": " +
           json_number(static_cast<double>(r.ops) / std::max(r.seconds, 1e-9)) +
           ", \"violations\": " + std::to_string(r.violations) +
           ", \"seconds\": " + json_number(r.seconds) +
           ", \"result\": " + (r.violations == 0 ? "\"pass\"" : "\"fail\"") + ", \"failure\": ";
      if (r.violations != 0 && r.first.set) {
        const std::string replay = replay_command(r.name, o_, r.first.round);
        replays.push_back(replay);
        j += "{\"kind\": \"violation\", \"round\": " + std::to_string(r.first.round.index) +
             ", \"round_seed\": " + json_string(hex(r.first.round.seed)) +
             ", \"where\": " + json_string(r.first.where) +
             ", \"expression\": " + json_string(r.first.expression) +
             ", \"detail\": " + json_string(r.first.detail) +
             ", \"replay\": " + json_string(replay) + "}";
      } else {
        j += "null";
      }
      j += "}";
    }
    j += done_.empty() ? "],\n" : "\n  ],\n";
    j += "  \"totals\": {\"scenarios\": " + std::to_string(done_.size()) +
         ", \"rounds\": " + std::to_string(rounds) + ", \"ops\": " + std::to_string(ops) +
         ", \"violations\": " + std::to_string(violations) + "},\n";
    j += "  \"fatal\": ";
    if (fatal != nullptr) {
      j += "{\"kind\": " + json_string(fatal->kind) + ", \"scenario\": " +
           json_string(fatal->scenario) + ", \"detail\": " + json_string(fatal->detail);
      if (fatal->have_round) {
        const std::string replay = replay_command(fatal->scenario, o_, fatal->round);
        replays.insert(replays.begin(), replay);
        j += ", \"round\": " + std::to_string(fatal->round.index) +
             ", \"round_seed\": " + json_string(hex(fatal->round.seed)) +
             ", \"replay\": " + json_string(replay);
      }
      j += "},\n";
    } else {
      j += "null,\n";
    }
    j += "  \"replay\": [";
    for (std::size_t i = 0; i < replays.size(); ++i) j += (i ? ", " : "") + json_string(replays[i]);
    j += "]\n}\n";

    const std::string tmp = o_.json_path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << j;
      if (!out) {
        std::fprintf(stderr, "cancelkit-stress: cannot write %s\n", tmp.c_str());
        return;
      }
    }
    if (std::rename(tmp.c_str(), o_.json_path.c_str()) != 0) {
      std::fprintf(stderr, "cancelkit-stress: cannot rename %s to %s\n", tmp.c_str(),
                   o_.json_path.c_str());
    }
  }

  const options& o_;
  std::mutex mutex_;
  std::size_t planned_ = 0;
  std::vector<scenario_result> done_;
};

// Aborts the process when a round runs longer than the hang timeout (a lost wake-up, a
// deadlock): ctest and the sanitizer jobs then fail instead of timing out silently.
class watchdog {
 public:
  watchdog(double timeout_s, json_output* json)
      : timeout_(std::chrono::duration_cast<clock_type::duration>(
            std::chrono::duration<double>(timeout_s))),
        json_(json),
        thread_([this] { loop(); }) {}
  ~watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void arm(const char* scenario, const stress::round_info& r, std::uint64_t seed) {
    std::lock_guard<std::mutex> lock(mutex_);
    scenario_ = scenario;
    round_ = r;
    seed_ = seed;
    started_ = clock_type::now();
    armed_ = true;
  }
  void disarm() {
    std::lock_guard<std::mutex> lock(mutex_);
    armed_ = false;
  }
  // The round running now, for the sanitizer's death callback: try_lock, since the dying thread
  // may be the one that holds the lock; false when no round runs (or the lock stays taken).
  bool current(std::string& scenario, stress::round_info& r) {
    std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
    for (int i = 0; i < 100 && !lock.try_lock(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (!lock.owns_lock() || !armed_) return false;
    scenario = scenario_;
    r = round_;
    return true;
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(200));
      if (armed_ && clock_type::now() - started_ > timeout_) {
        std::fprintf(stderr,
                     "\nHANG: scenario %s round %llu (round seed 0x%016llx) did not finish "
                     "within %.0f s: lost wake-up or deadlock.\n  reproduce: cancelkit-stress "
                     "--scenario %s --seed 0x%llx --start-round %llu --iterations 1 --threads %u\n",
                     scenario_, static_cast<unsigned long long>(round_.index),
                     static_cast<unsigned long long>(round_.seed),
                     std::chrono::duration<double>(timeout_).count(), scenario_,
                     static_cast<unsigned long long>(seed_),
                     static_cast<unsigned long long>(round_.index), round_.threads);
        std::fflush(stderr);
        if (json_ != nullptr) {
          json_->fatal({"hang", scenario_, true, round_,
                        "the round did not finish within the hang timeout (lost wake-up or "
                        "deadlock)"});
        }
        std::abort();
      }
    }
  }

  clock_type::duration timeout_;
  json_output* json_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool armed_ = false;
  const char* scenario_ = "";
  stress::round_info round_{};
  std::uint64_t seed_ = 0;
  clock_type::time_point started_{};
  std::thread thread_;  // last: starts after the fields above exist
};

struct result {
  std::uint64_t rounds = 0;
  std::uint64_t ops = 0;
  std::uint64_t violations = 0;
  double seconds = 0;
  unsigned threads = 0;
};

result run_one(const stress::scenario_def& def, const options& o, watchdog& dog, bool tty) {
  stress::report& rep = stress::current_report();
  const std::uint64_t violations_before = rep.count();
  rep.reset_first();
  const unsigned threads = std::max(o.threads, def.min_threads);
  std::unique_ptr<stress::scenario> sc = def.make(threads);

  std::barrier<> start(static_cast<std::ptrdiff_t>(threads) + 1);
  std::barrier<> finish(static_cast<std::ptrdiff_t>(threads) + 1);
  std::atomic<bool> stop{false};
  std::vector<std::uint64_t> ops(threads, 0);  // each worker writes its own slot
  stress::round_info current{};                // written by main before `start`

  std::vector<std::thread> workers;
  workers.reserve(threads);
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (;;) {
        start.arrive_and_wait();
        if (stop.load(std::memory_order_relaxed)) return;
        const stress::round_info r = current;
        stress::perturbation::begin_thread_round(r.seed, t);
        stress::rng g(stress::mix(r.seed ^ stress::mix(t + 1)));
        ops[t] += sc->work(t, g);
        stress::perturbation::end_thread_round();
        finish.arrive_and_wait();
      }
    });
  }

  result res;
  res.threads = threads;
  const auto began = clock_type::now();
  const auto deadline = began + std::chrono::duration_cast<clock_type::duration>(
                                    std::chrono::duration<double>(o.duration_s));
  auto next_progress = began + std::chrono::milliseconds(tty ? 250 : 10000);
  for (std::uint64_t k = 0;; ++k) {
    if (o.iterations != 0 && k >= o.iterations) break;
    if (o.duration_s > 0 && k > 0 && clock_type::now() >= deadline) break;
    current.index = o.start_round + o.shard_i + k * o.shard_n;
    current.seed = stress::mix(o.seed ^ stress::mix(current.index));
    current.threads = threads;
    rep.begin_round(def.name, current, o.seed);
    dog.arm(def.name, current, o.seed);
    stress::rng g(stress::mix(current.seed ^ 0x6d61696eULL));
    sc->setup(current, g);
    start.arrive_and_wait();
    finish.arrive_and_wait();
    sc->check(current);
    dog.disarm();
    ++res.rounds;

    const auto now = clock_type::now();
    if (now >= next_progress) {
      std::uint64_t total = 0;
      for (std::uint64_t x : ops) total += x;
      const double secs = std::chrono::duration<double>(now - began).count();
      if (tty) {
        std::printf("\r\033[K  %-24s iterations %-9llu ops/s %-11.0f violations %-4llu %5.1f s",
                    def.name, static_cast<unsigned long long>(res.rounds), static_cast<double>(total) / secs,
                    static_cast<unsigned long long>(rep.count() - violations_before), secs);
      } else {
        std::printf("  %s: %llu iterations, %.0f ops/s, %llu violations, %.0f s\n", def.name,
                    static_cast<unsigned long long>(res.rounds), static_cast<double>(total) / secs,
                    static_cast<unsigned long long>(rep.count() - violations_before), secs);
      }
      std::fflush(stdout);
      next_progress = now + std::chrono::milliseconds(tty ? 250 : 10000);
    }
  }
  stop.store(true, std::memory_order_relaxed);
  start.arrive_and_wait();
  for (std::thread& w : workers) w.join();
  res.seconds = std::chrono::duration<double>(clock_type::now() - began).count();
  for (std::uint64_t x : ops) res.ops += x;
  res.violations = rep.count() - violations_before;
  if (tty) std::printf("\r\033[K");
  return res;
}

// The sanitizer's death callback (halt_on_error): names the round that was running, with the
// command that replays it, and writes --json once more.
watchdog* g_watchdog = nullptr;
json_output* g_json = nullptr;
const options* g_options = nullptr;

[[maybe_unused]] void on_sanitizer_death() {
  std::string scenario;
  stress::round_info r{};
  if (g_watchdog == nullptr || g_options == nullptr || !g_watchdog->current(scenario, r)) return;
  std::fprintf(stderr,
               "\nSANITIZER: the report above came from scenario %s, round %llu (round seed "
               "0x%016llx)\n  reproduce: %s\n",
               scenario.c_str(), static_cast<unsigned long long>(r.index),
               static_cast<unsigned long long>(r.seed), replay_command(scenario, *g_options, r).c_str());
  std::fflush(stderr);
  if (g_json != nullptr) {
    g_json->fatal({"sanitizer", scenario, true, r,
                   "a sanitizer report ended the process (see the log)"});
  }
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  const std::vector<stress::scenario_def> defs = catalog();

  if (o.list) {
    for (const auto& d : defs) {
      std::printf("%-26s %s\n  %-24s rules: %s\n  %-24s mirrors: %s\n", d.name, d.summary, "",
                  d.rules, "", d.peer_bug);
    }
    return 0;
  }

  std::vector<const stress::scenario_def*> chosen;
  if (o.scenarios.empty()) {
    for (const auto& d : defs) chosen.push_back(&d);
  }
  for (const std::string& name : o.scenarios) {
    if (name == "all") {
      for (const auto& d : defs) chosen.push_back(&d);
      continue;
    }
    auto it = std::find_if(defs.begin(), defs.end(), [&](const auto& d) { return name == d.name; });
    if (it == defs.end()) usage_error("unknown scenario '" + name + "' (see --list)");
    chosen.push_back(&*it);
  }

  const bool tty = isatty(STDOUT_FILENO) != 0;
  stress::perturbation::set_mode(o.perturb);
#if defined(CANCELKIT_PERTURBATION)
  const char* perturb_build = "on";
#else
  const char* perturb_build = "off (library built without CANCELKIT_PERTURBATION)";
#endif
  std::string budget;
  char secs[32];
  std::snprintf(secs, sizeof secs, "%g s", o.duration_s);
  if (o.iterations != 0 && o.duration_s > 0) {
    budget = "up to " + std::to_string(o.iterations) + " rounds / " + secs + " each";
  } else if (o.iterations != 0) {
    budget = std::to_string(o.iterations) + " rounds each";
  } else {
    budget = std::string(secs) + " each";
  }
  std::printf("cancelkit-stress: %zu scenario(s), threads %u, %s, seed 0x%llx, shard %llu/%llu, "
              "perturbation %s [%s]\n",
              chosen.size(), o.threads, budget.c_str(), static_cast<unsigned long long>(o.seed),
              static_cast<unsigned long long>(o.shard_i),
              static_cast<unsigned long long>(o.shard_n), mode_name(o.perturb), perturb_build);
  std::fflush(stdout);

  json_output json(o);
  json.start(chosen.size());
  watchdog dog(o.hang_timeout_s, &json);
  g_watchdog = &dog;
  g_json = &json;
  g_options = &o;
#if defined(CANCELKIT_STRESS_SANITIZED)
  __sanitizer_set_death_callback(on_sanitizer_death);
#endif
  std::uint64_t total_violations = 0;
  for (const stress::scenario_def* d : chosen) {
    const result r = run_one(*d, o, dog, tty);
    total_violations += r.violations;
    scenario_result sr;
    sr.name = d->name;
    sr.rules = d->rules;
    sr.threads = r.threads;
    sr.rounds = r.rounds;
    sr.ops = r.ops;
    sr.violations = r.violations;
    sr.seconds = r.seconds;
    if (r.violations != 0) sr.first = stress::current_report().first();
    json.add(std::move(sr));
    std::printf("%-26s threads %-3u iterations %-9llu ops %-11llu ops/s %-11.0f violations %-4llu "
                "seed 0x%llx shard %llu/%llu  %.2f s  %s\n",
                d->name, r.threads, static_cast<unsigned long long>(r.rounds),
                static_cast<unsigned long long>(r.ops), static_cast<double>(r.ops) / std::max(r.seconds, 1e-9),
                static_cast<unsigned long long>(r.violations), static_cast<unsigned long long>(o.seed),
                static_cast<unsigned long long>(o.shard_i),
                static_cast<unsigned long long>(o.shard_n), r.seconds,
                r.violations == 0 ? "PASS" : "FAIL");
    std::fflush(stdout);
  }
  std::printf("cancelkit-stress: %zu scenario(s), %llu violation(s), perturbation points hit %llu\n",
              chosen.size(), static_cast<unsigned long long>(total_violations),
              static_cast<unsigned long long>(stress::perturbation::points_hit()));
  json.finish(stress::perturbation::points_hit());
#if defined(CANCELKIT_STRESS_SANITIZED)
  __sanitizer_set_death_callback(nullptr);  // a leak report at exit comes after main's objects
#endif
  g_watchdog = nullptr;
  g_json = nullptr;
  return total_violations == 0 ? 0 : 1;
}
