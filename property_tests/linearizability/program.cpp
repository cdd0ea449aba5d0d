// property_tests/linearizability/program.cpp — generating and printing programs and histories.
// No threads and no cancelkit code: the same file serves both executors, execute.cpp (real
// threads) and property_tests/model_programs (Relacy's scheduler, the library compiled through
// the model's detail/sync.hpp).
#include "program.hpp"

#include <algorithm>
#include <sstream>

namespace cklin {

namespace gen = rc::gen;

int program::registrations() const {
  int n = static_cast<int>(pre.size());
  for (const auto& t : threads)
    for (const op& o : t)
      n += o.kind == op_kind::register_cb || o.kind == op_kind::await_cancelled ||
                   o.kind == op_kind::await_delay
               ? 1
               : 0;
  return n;
}

int program::awaits() const {
  int n = 0;
  for (const auto& t : threads)
    for (const op& o : t)
      n += o.kind == op_kind::await_cancelled || o.kind == op_kind::await_delay ? 1 : 0;
  return n;
}

const char* show_how(int how) {
  switch (how) {
    case callback: return "ran";
    case resumed_normally: return "resumed";
    case logic_error: return "resumed with logic_error";
    case elapsed: return "resumed: elapsed";
    case canceled_self: return "resumed: operation_canceled";
    case canceled_other: return "resumed: operation_canceled with another token";
    case unexpected: return "resumed with an unexpected exception";
    case resumed_again: return "resumed AGAIN";
    default: return "?";
  }
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
    case op_kind::await_cancelled:
      return "A" + std::to_string(o.await) + " = await_cancelled(" + s + ") [" + r + "]";
    case op_kind::await_delay:
      return "A" + std::to_string(o.await) + " = await_delay(10ms, " + s + ") [" + r + "]";
    case op_kind::destroy_await: return "destroy_await(A" + std::to_string(o.await) + ")";
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

// S28: a coroutine may be destroyed only while nothing else can resume it. Drops every
// destroy_await whose coroutine another thread could resume: a cancel of its source (or of a
// parent of it), an advance for a delay or for a coroutine on the timed source (or its child).
void drop_unsafe_destroys(program& p) {
  std::vector<op> awaits;
  for (const auto& t : p.threads)
    for (const op& o : t)
      if (o.kind == op_kind::await_cancelled || o.kind == op_kind::await_delay)
        awaits.push_back(o);
  const int child = p.child_parents > 0 ? p.roots : -1;
  auto can_resume = [&](const op& other, const op& a) {
    if (other.kind == op_kind::cancel)
      return other.source == a.source || (a.source == child && other.source < p.child_parents);
    if (other.kind == op_kind::advance)
      return a.kind == op_kind::await_delay ||
             (p.timer && (a.source == timed_source || a.source == child));
    return false;
  };
  for (std::size_t t = 0; t < p.threads.size(); ++t) {
    std::vector<op>& ops = p.threads[t];
    for (std::size_t i = 0; i < ops.size();) {
      bool unsafe = false;
      if (ops[i].kind == op_kind::destroy_await) {
        for (const op& a : awaits) {
          if (a.await != ops[i].await) continue;
          for (std::size_t u = 0; u < p.threads.size(); ++u)
            if (u != t)
              for (const op& other : p.threads[u]) unsafe = unsafe || can_resume(other, a);
        }
      }
      if (unsafe) {
        ops.erase(ops.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
  }
  p.threads.erase(std::remove_if(p.threads.begin(), p.threads.end(),
                                 [](const std::vector<op>& t) { return t.empty(); }),
                  p.threads.end());
}

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
    int next_await = 0;
    const int nthreads = *pick(2, 4);
    for (int t = 0; t < nthreads; ++t) {
      std::vector<int> mine;  // registrations this thread may target: pre ones and its own
      for (int i = 0; i < static_cast<int>(p.pre.size()); ++i) mine.push_back(i);
      std::vector<int> my_awaits;  // coroutines this thread started (it may destroy them)
      std::vector<op> ops;
      for (int i = 0; i < 4; ++i) {
        // Weights: skip 4, cancel 4, register 4, unregister 3, dispose 3, try_reset 1,
        // is_cancellation_requested 2, cancellation_reason 1, pause 1; with a timer also
        // advance 2 and try_reset 2 more (the S18 race: reset vs a timer that started firing);
        // then coroutines: await_cancelled 2, await_delay 3, destroy_await 2, advance 1.
        const int base = p.timer ? 27 : 23;
        const int k = *pick(0, base + 8);
        const int source = source_of(*pick(0, 4));
        const int reg_pick = *pick(0, 8);
        op o;
        o.source = source;
        if (k < 4) continue;
        if (k >= base) {
          const int j = k - base;
          if (j < 5) {
            o.kind = j < 2 ? op_kind::await_cancelled : op_kind::await_delay;
            o.reg = next_reg++;
            o.await = next_await++;
            my_awaits.push_back(o.await);
          } else if (j < 7) {
            if (my_awaits.empty()) continue;
            o.kind = op_kind::destroy_await;
            o.await = my_awaits[static_cast<std::size_t>(reg_pick) % my_awaits.size()];
          } else {
            o.kind = op_kind::advance;
          }
          ops.push_back(o);
          continue;
        }
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
    drop_unsafe_destroys(p);
    return p;
  });
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
  std::vector<int> await_of_reg(static_cast<std::size_t>(p.registrations()) + 1, -1);
  for (const auto& t : p.threads)
    for (const op& o : t)
      if (o.kind == op_kind::await_cancelled || o.kind == op_kind::await_delay)
        await_of_reg[static_cast<std::size_t>(o.reg)] = o.await;
  for (const callback_record& c : h.callbacks) {
    const std::string who = "T" + std::to_string(c.thread) + "   ";
    if (c.how != callback) {
      const int a = c.reg >= 0 && static_cast<std::size_t>(c.reg) < await_of_reg.size()
                        ? await_of_reg[static_cast<std::size_t>(c.reg)]
                        : -1;
      lines.push_back({c.start, who + "coroutine A" + std::to_string(a) + " " + show_how(c.how)});
      continue;
    }
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
