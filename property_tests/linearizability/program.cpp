// property_tests/linearizability/program.cpp — generating, running and printing programs.
#include "program.hpp"

#include <cancelkit/cancelkit.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <sstream>
#include <thread>

namespace cklin {

namespace gen = rc::gen;

int program::registrations() const {
  int n = static_cast<int>(pre.size());
  for (const auto& t : threads)
    for (const op& o : t) n += o.kind == op_kind::register_cb ? 1 : 0;
  return n;
}

std::string show(const op& o) {
  const std::string s = "S" + std::to_string(o.source);
  const std::string r = "R" + std::to_string(o.reg);
  switch (o.kind) {
    case op_kind::cancel: return "cancel(" + s + (o.with_reason ? ", reason" : "") + ")";
    case op_kind::register_cb: return r + " = register(" + s + ")";
    case op_kind::unregister: return "unregister(" + r + ")";
    case op_kind::dispose: return "dispose(" + r + ")";
    case op_kind::try_reset: return "try_reset(" + s + ")";
    case op_kind::is_requested: return "is_cancellation_requested(" + s + ")";
    case op_kind::reason: return "cancellation_reason(" + s + ")";
    case op_kind::advance: return "advance(10ms)";
    case op_kind::pause: return "pause(" + std::to_string(o.micros) + "us)";
  }
  return "?";
}

std::string show(const program& p) {
  std::ostringstream os;
  os << "sources:";
  for (int s = 0; s < p.roots; ++s) os << " S" << s;
  if (p.child_parents > 0) {
    os << ", S" << p.roots << " = linked(";
    for (int s = 0; s < p.child_parents; ++s) os << (s ? ", S" : "S") << s;
    os << ")";
  }
  if (p.timer) os << "; S" << timed_source << ".cancel_after(10ms) on a manual timer";
  os << "\nregistered before the start:";
  if (p.pre.empty()) os << " none";
  for (std::size_t i = 0; i < p.pre.size(); ++i) os << " R" << i << " on S" << p.pre[i] << ";";
  os << "\n";
  for (std::size_t t = 0; t < p.threads.size(); ++t) {
    os << "T" << t << ":";
    for (const op& o : p.threads[t]) os << "  " << show(o) << ";";
    os << "\n";
  }
  return os.str();
}

// ---- generation ------------------------------------------------------------------------------

namespace {
// A number in [lo, hi), uniform at every RapidCheck size (gen::inRange alone is scaled down at
// small sizes), shrinking toward lo.
rc::Gen<int> pick(int lo, int hi) { return gen::resize(100, gen::inRange(lo, hi)); }

}  // namespace


// Every choice is a number that shrinks toward 0, and 0 means "less": no child, no
// pre-registered callback, the operation left out, no reason. So RapidCheck's shrinking removes
// operations one at a time and ends at programs that are small and readable.
rc::Gen<program> programs() {
  return gen::exec([] {
    program p;
    p.roots = *pick(1, 3);
    p.child_parents = *pick(0, p.roots + 1);
    p.timer = *pick(0, 2) != 0;
    const int nsrc = p.sources();
    // Mostly S0: contention on one source is where the races are.
    auto source_of = [nsrc](int pick) { return pick <= 1 ? 0 : (pick - 1) % nsrc; };
    for (int i = 0; i < 4; ++i) {
      const int which = *pick(0, 7);  // 0-2: none; 3-4: S0; 5, 6: S1, S2 (if any)
      if (which >= 3) p.pre.push_back(source_of(which - 2));
    }
    int next_reg = static_cast<int>(p.pre.size());
    const int nthreads = *pick(2, 4);
    for (int t = 0; t < nthreads; ++t) {
      std::vector<int> mine;  // registrations this thread may target: pre ones and its own
      for (int i = 0; i < static_cast<int>(p.pre.size()); ++i) mine.push_back(i);
      std::vector<op> ops;
      for (int i = 0; i < 4; ++i) {
        // Weights: skip 4, cancel 4, register 4, unregister 3, dispose 3, try_reset 1,
        // is_cancellation_requested 2, cancellation_reason 1, pause 1; with a timer also
        // advance 2 and try_reset 2 more (the S18 race: reset vs a timer that started firing).
        const int k = *pick(0, p.timer ? 27 : 23);
        const int source = source_of(*pick(0, 4));
        const int reg_pick = *pick(0, 8);
        op o;
        o.source = source;
        if (k < 4) continue;
        if (k < 8) {
          o.kind = op_kind::cancel;
          o.with_reason = *pick(0, 3) != 0;
        } else if (k < 12) {
          o.kind = op_kind::register_cb;
          o.reg = next_reg++;
          mine.push_back(o.reg);
        } else if (k < 18) {
          if (mine.empty()) continue;
          o.kind = k < 15 ? op_kind::unregister : op_kind::dispose;
          o.reg = mine[static_cast<std::size_t>(reg_pick) % mine.size()];
        } else if (k < 19) {
          o.kind = op_kind::try_reset;
        } else if (k < 21) {
          o.kind = op_kind::is_requested;
        } else if (k < 22) {
          o.kind = op_kind::reason;
        } else if (k < 23) {
          o.kind = op_kind::pause;
          o.micros = *pick(1, 20);
        } else if (k < 25) {
          o.kind = op_kind::advance;
        } else {
          o.kind = op_kind::try_reset;
        }
        ops.push_back(o);
      }
      if (!ops.empty()) p.threads.push_back(std::move(ops));
    }
    return p;
  });
}

// ---- running ---------------------------------------------------------------------------------

namespace {

std::atomic<std::uint64_t> clock_ticks{0};

std::uint64_t tick() { return clock_ticks.fetch_add(1, std::memory_order_seq_cst); }

void spin_for(std::chrono::nanoseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

thread_local int this_program_thread = -1;

struct recorder {
  std::vector<callback_record> slots;
  std::atomic<std::size_t> used{0};
  int spin_ns = 0;
};

struct recording_callback {
  recorder* rec;
  int reg;
  void operator()() const {
    callback_record r;
    r.reg = reg;
    r.thread = this_program_thread;
    r.start = tick();
    spin_for(std::chrono::nanoseconds(rec->spin_ns));
    r.end = tick();
    const std::size_t i = rec->used.fetch_add(1);
    if (i < rec->slots.size()) rec->slots[i] = r;
  }
};

struct reason_tag {
  int op_id;
};

// cancellation_reason() as an op_record::result (program.hpp).
int reason_result(const std::exception_ptr& e, const std::vector<std::exception_ptr>& reasons) {
  if (!e) return null_reason;
  try {
    std::rethrow_exception(e);
  } catch (const reason_tag& tag) {
    return reasons[static_cast<std::size_t>(tag.op_id)] == e ? tag.op_id : copied_reason;
  } catch (const cancelkit::deadline_exceeded&) {
    return deadline_reason;
  } catch (...) {
    return unknown_reason;
  }
}

constexpr std::chrono::milliseconds timer_delay{10};

}  // namespace

history execute(const program& p, int callback_spin_ns) {
  using namespace cancelkit;
  recorder rec;
  rec.slots.resize(static_cast<std::size_t>(p.registrations()) * 2 + 4);
  rec.spin_ns = callback_spin_ns;

  manual_timer_service timer;  // outlives the sources (timer_service.hpp)
  std::vector<std::optional<cancellation_source>> sources;
  std::vector<cancellation_token> tokens;
  for (int s = 0; s < p.roots; ++s) {
    if (s == timed_source && p.timer) {
      sources.emplace_back(cancellation_source(timer));
      sources.back()->cancel_after(timer_delay);
    } else {
      sources.emplace_back(cancellation_source());
    }
    tokens.push_back(sources.back()->token());
  }
  if (p.child_parents > 0) {
    std::vector<cancellation_token> parents(tokens.begin(), tokens.begin() + p.child_parents);
    sources.emplace_back(cancellation_source::linked(std::span<const cancellation_token>(parents)));
    tokens.push_back(sources.back()->token());
  }

  // Records, ids and reason objects, all made before the threads start.
  history h;
  std::vector<std::exception_ptr> reasons;
  for (std::size_t t = 0; t < p.threads.size(); ++t) {
    for (std::size_t i = 0; i < p.threads[t].size(); ++i) {
      op_record r;
      r.thread = static_cast<int>(t);
      r.index = static_cast<int>(i);
      r.id = static_cast<int>(h.ops.size());
      const op& o = p.threads[t][i];
      reasons.push_back(o.kind == op_kind::cancel && o.with_reason
                            ? std::make_exception_ptr(reason_tag{r.id})
                            : std::exception_ptr());
      h.ops.push_back(r);
    }
  }

  std::vector<cancellation_registration> regs(static_cast<std::size_t>(p.registrations()));
  for (std::size_t i = 0; i < p.pre.size(); ++i)
    regs[i] = tokens[static_cast<std::size_t>(p.pre[i])].register_callback(
        recording_callback{&rec, static_cast<int>(i)});

  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  std::size_t first_record = 0;
  for (std::size_t t = 0; t < p.threads.size(); ++t) {
    threads.emplace_back([&, t, first_record] {
      this_program_thread = static_cast<int>(t);
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      std::size_t k = first_record;
      for (const op& o : p.threads[t]) {
        op_record& r = h.ops[k++];
        cancellation_token& tok = tokens[static_cast<std::size_t>(o.source)];
        r.call = tick();
        switch (o.kind) {
          case op_kind::cancel: {
            cancel_options opts;
            opts.reason = reasons[static_cast<std::size_t>(r.id)];
            r.result = sources[static_cast<std::size_t>(o.source)]->cancel(opts) ? 1 : 0;
            break;
          }
          case op_kind::register_cb:
            regs[static_cast<std::size_t>(o.reg)] =
                tok.register_callback(recording_callback{&rec, o.reg});
            break;
          case op_kind::unregister:
            r.result = regs[static_cast<std::size_t>(o.reg)].unregister() ? 1 : 0;
            break;
          case op_kind::dispose:
            regs[static_cast<std::size_t>(o.reg)].dispose();
            break;
          case op_kind::try_reset:
            r.result = sources[static_cast<std::size_t>(o.source)]->try_reset() ? 1 : 0;
            break;
          case op_kind::is_requested:
            r.result = tok.is_cancellation_requested() ? 1 : 0;
            break;
          case op_kind::reason:
            r.result = reason_result(tok.cancellation_reason(), reasons);
            break;
          case op_kind::advance:
            timer.advance(timer_delay);
            break;
          case op_kind::pause:
            spin_for(std::chrono::microseconds(o.micros));
            break;
        }
        r.ret = tick();
      }
    });
    first_record += p.threads[t].size();
  }
  while (ready.load() < static_cast<int>(p.threads.size())) std::this_thread::yield();
  go.store(true, std::memory_order_release);
  for (std::thread& t : threads) t.join();
  for (const cancellation_token& tok : tokens)
    h.end.push_back(
        {tok.is_cancellation_requested(), reason_result(tok.cancellation_reason(), reasons)});

  const std::size_t n = std::min(rec.used.load(), rec.slots.size());
  h.callbacks.assign(rec.slots.begin(), rec.slots.begin() + static_cast<std::ptrdiff_t>(n));
  if (rec.used.load() > rec.slots.size()) h.callbacks.push_back(callback_record{-1, -1, 0, 0});
  return h;
}

// ---- printing --------------------------------------------------------------------------------

std::string show_reason(int reason) {
  if (reason == null_reason) return "null";
  if (reason == deadline_reason) return "deadline_exceeded";
  if (reason >= 0) return "reason of op #" + std::to_string(reason);
  return reason == copied_reason ? "a copy of a reason object" : "an unknown exception_ptr";
}

std::string show(const program& p, const history& h) {
  struct line {
    std::uint64_t at;
    std::string text;
  };
  std::vector<line> lines;
  for (const op_record& r : h.ops) {
    const op& o = p.threads[static_cast<std::size_t>(r.thread)][static_cast<std::size_t>(r.index)];
    const std::string who = "T" + std::to_string(r.thread) + " ";
    lines.push_back({r.call, who + "call   " + show(o)});
    std::string result;
    switch (o.kind) {
      case op_kind::cancel:
      case op_kind::unregister:
      case op_kind::try_reset:
      case op_kind::is_requested:
        result = r.result ? " -> true" : " -> false";
        break;
      case op_kind::reason:
        result = " -> " + show_reason(r.result);
        break;
      default:
        break;
    }
    lines.push_back({r.ret, who + "return " + show(o) + result + "   (op #" +
                                std::to_string(r.id) + ")"});
  }
  for (const callback_record& c : h.callbacks) {
    const std::string who = "T" + std::to_string(c.thread) + "   ";
    lines.push_back({c.start, who + "callback R" + std::to_string(c.reg) + " starts"});
    lines.push_back({c.end, who + "callback R" + std::to_string(c.reg) + " ends"});
  }
  std::sort(lines.begin(), lines.end(), [](const line& a, const line& b) { return a.at < b.at; });
  std::ostringstream os;
  const std::uint64_t base = lines.empty() ? 0 : lines.front().at;
  for (const line& l : lines) os << "  [" << (l.at - base) << "] " << l.text << "\n";
  os << "after the join:";
  for (std::size_t s = 0; s < h.end.size(); ++s)
    os << "  S" << s << (h.end[s].requested ? " cancelled (" + show_reason(h.end[s].reason) + ");"
                                             : " not cancelled;");
  os << "\n";
  return os.str();
}

}  // namespace cklin
