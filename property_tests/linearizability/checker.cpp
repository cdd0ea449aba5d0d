// property_tests/linearizability/checker.cpp — history -> operations -> WGL search on the model.
#include "checker.hpp"

#include "../model/model.hpp"

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <unordered_set>

namespace cklin {

namespace {

using ckmodel::none;

struct lin_op {
  enum kind_t { call, run, claim, fire } kind = call;
  int thread = 0;
  std::uint64_t lo = 0;  // may not take effect before this tick
  std::uint64_t hi = 0;  // ... nor after this one
  const op* what = nullptr;   // call: the program operation
  const op_record* rec = nullptr;
  int reg = none;     // run
  int source = none;  // claim: the parent; fire: the source whose timer fires
  bool ran_inline = false;  // call of register: its callback ran inside it
  bool if_fired = false;    // claim of an advance: a no-op unless its timer cancelled the parent
  std::string name() const {
    switch (kind) {
      case call: {
        std::string s = "T" + std::to_string(thread) + " " + show(*what);
        if (what->kind == op_kind::register_cb) s += ran_inline ? " (ran inline)" : " (stored)";
        return s + " [op #" + std::to_string(rec->id) + "]";
      }
      case run: return "T" + std::to_string(thread) + " runs callback R" + std::to_string(reg);
      case claim:
        return "T" + std::to_string(thread) + " claims the children of S" + std::to_string(source);
      case fire:
        return "T" + std::to_string(thread) + " cancels S" + std::to_string(source) +
               " for the timer it took off";
    }
    return "?";
  }
};

int reason_tag(const ckmodel::reason& r) {
  switch (r.kind) {
    case ckmodel::reason::user: return r.id;
    case ckmodel::reason::deadline: return deadline_reason;
    case ckmodel::reason::null: break;
  }
  return null_reason;
}

// One step of the model; false if the observed result is impossible in this state.
bool apply(ckmodel::world& w, const lin_op& o) {
  w.thread = o.thread;
  switch (o.kind) {
    case lin_op::run: {
      const int s = w.regs[static_cast<std::size_t>(o.reg)].source;
      const ckmodel::source& x = w.sources[static_cast<std::size_t>(s)];
      // S5: run by the thread that requested cancellation, latest registered first; S4/S6/S8:
      // only a callback still in the list.
      if (!x.requested || x.dispatcher != o.thread || w.next_callback(s) != o.reg) return false;
      w.sources[static_cast<std::size_t>(s)].callbacks.pop_back();
      w.regs[static_cast<std::size_t>(o.reg)].status = ckmodel::reg_status::ran;
      return true;
    }
    case lin_op::claim: {
      // S19/S20: the thread that cancelled the parent cancels its children, after the parent.
      const ckmodel::source& x = w.sources[static_cast<std::size_t>(o.source)];
      if (!x.requested || x.dispatcher != o.thread) return o.if_fired;
      w.claim_children(o.source);
      return true;
    }
    case lin_op::fire:  // S17: the second half of a firing; a no-op if this thread took none off
      w.finish_firing(o.source);
      return true;
    case lin_op::call:
      break;
  }
  const op& p = *o.what;
  const int result = o.rec->result;
  switch (p.kind) {
    case op_kind::cancel: {
      const ckmodel::reason r =
          p.with_reason ? ckmodel::reason{ckmodel::reason::user, o.rec->id} : ckmodel::reason{};
      return w.request(p.source, r) == (result != 0);  // S1, S2
    }
    case op_kind::register_cb:  // S6: inline iff already cancelled
      return (w.attach(p.reg) == ckmodel::reg_status::ran_inline) == o.ran_inline;
    case op_kind::unregister:  // S8, S11
      return w.remove(p.reg) == (result != 0);
    case op_kind::dispose:
      w.remove(p.reg);
      return true;
    case op_kind::try_reset:  // S18
      return w.reset(p.source) == (result != 0);
    case op_kind::advance:  // S17: the first half of a firing: the timer, if armed, is taken off
      w.start_firing(timed_source);
      return true;
    case op_kind::is_requested:
      return w.sources[static_cast<std::size_t>(p.source)].requested == (result != 0);
    case op_kind::reason: {  // S16
      const ckmodel::source& x = w.sources[static_cast<std::size_t>(p.source)];
      return (x.requested ? reason_tag(x.why) : null_reason) == result;
    }
    case op_kind::pause:
      return true;
  }
  return false;
}

// The end of an order: no cancelled source still holds a callback that neither ran nor was
// removed (S5/S11), no timer is still half-fired, and every source is as the program saw it after
// the join (cancelled or not, and with which reason: S16, S17, S20).
bool complete(const ckmodel::world& w, const std::vector<final_state>& end) {
  for (std::size_t i = 0; i < w.sources.size(); ++i) {
    const ckmodel::source& s = w.sources[i];
    if (s.requested && !s.callbacks.empty()) return false;
    if (s.firing != none) return false;
    const int reason = s.requested ? reason_tag(s.why) : null_reason;
    if (s.requested != end[i].requested || reason != end[i].reason) return false;
  }
  return true;
}

std::string fingerprint(const ckmodel::world& w) {
  std::string f;
  for (const ckmodel::source& s : w.sources) {
    f += s.requested ? 'R' : 'l';
    f += static_cast<char>('0' + s.dispatcher + 1);
    f += std::to_string(reason_tag(s.why));
    f += s.armed ? ":A" : ":-";
    f += std::to_string(s.firing);
    for (int c : s.callbacks) f += "," + std::to_string(c);
    f += ';';
  }
  for (const ckmodel::registration& r : w.regs) f += static_cast<char>('a' + static_cast<int>(r.status));
  return f;
}

class wgl {
 public:
  wgl(std::vector<lin_op> ops, ckmodel::world start, std::vector<final_state> end)
      : ops_(std::move(ops)), start_(std::move(start)), end_(std::move(end)) {}

  bool run() {
    std::vector<int> order;
    return search(start_, 0, order);
  }

  const std::vector<int>& longest() const { return longest_; }
  const std::vector<lin_op>& ops() const { return ops_; }

 private:
  bool search(const ckmodel::world& w, std::uint64_t done, std::vector<int>& order) {
    if (order.size() > longest_.size()) longest_ = order;
    if (order.size() == ops_.size()) return complete(w, end_);
    const std::string key = std::to_string(done) + "|" + fingerprint(w);
    if (!seen_.insert(key).second) return false;
    std::uint64_t min_hi = UINT64_MAX;
    for (std::size_t i = 0; i < ops_.size(); ++i)
      if (!(done >> i & 1u)) min_hi = std::min(min_hi, ops_[i].hi);
    for (std::size_t i = 0; i < ops_.size(); ++i) {
      // Real time: an operation may go next only if none left over ended before it began.
      if ((done >> i & 1u) || ops_[i].lo > min_hi) continue;
      ckmodel::world next = w;
      if (!apply(next, ops_[i])) continue;
      order.push_back(static_cast<int>(i));
      if (search(next, done | (std::uint64_t{1} << i), order)) return true;
      order.pop_back();
    }
    return false;
  }

  std::vector<lin_op> ops_;
  ckmodel::world start_;
  std::vector<final_state> end_;
  std::unordered_set<std::string> seen_;
  std::vector<int> longest_;
};

}  // namespace

verdict check(const program& p, const history& h) {
  verdict v;
  auto fail = [&v](std::string why) {
    v.ok = false;
    v.why = std::move(why);
    return v;
  };
  for (const callback_record& c : h.callbacks)
    if (c.reg < 0) return fail("more callback runs than the program has registrations (S4)");

  // The model at the start: the sources, the pre-registered callbacks attached, the later ones
  // waiting to be registered (ids in program order, as the runner numbers them).
  ckmodel::world w;
  for (int s = 0; s < p.roots; ++s) {
    w.new_source(ckmodel::timers::system);
    w.token(s);
  }
  if (p.timer) w.sources[timed_source].armed = true;  // cancel_after(10ms): the first advance
  if (p.child_parents > 0) {
    std::vector<int> parents;
    for (int s = 0; s < p.child_parents; ++s) parents.push_back(s);
    w.linked(parents);
  }
  for (int s : p.pre) w.attach(w.new_registration(s, false, ckmodel::behaviour{}, none));
  for (const auto& t : p.threads)
    for (const op& o : t)
      if (o.kind == op_kind::register_cb) w.new_registration(o.source, false, ckmodel::behaviour{}, none);

  // Operations with their intervals.
  std::vector<lin_op> ops;
  std::vector<int> op_of_record(h.ops.size(), none);
  for (std::size_t i = 0; i < h.ops.size(); ++i) {
    const op_record& r = h.ops[i];
    const op& o = p.threads[static_cast<std::size_t>(r.thread)][static_cast<std::size_t>(r.index)];
    if (o.kind == op_kind::pause) continue;
    lin_op l;
    l.kind = lin_op::call;
    l.thread = r.thread;
    l.lo = r.call;
    l.hi = r.ret;
    l.what = &o;
    l.rec = &r;
    op_of_record[i] = static_cast<int>(ops.size());
    ops.push_back(l);
    if (o.kind == op_kind::cancel && r.result != 0 && p.child_parents > o.source) {
      lin_op c;
      c.kind = lin_op::claim;
      c.thread = r.thread;
      c.lo = r.call;
      c.hi = r.ret;
      c.source = o.source;
      ops.push_back(c);
    }
    if (o.kind == op_kind::advance) {  // the second half of the firing, and its children
      lin_op f;
      f.kind = lin_op::fire;
      f.thread = r.thread;
      f.lo = r.call;
      f.hi = r.ret;
      f.source = timed_source;
      ops.push_back(f);
      if (p.child_parents > 0) {
        lin_op c = f;
        c.kind = lin_op::claim;
        c.if_fired = true;
        ops.push_back(c);
      }
    }
  }
  // Callbacks: inline in their own register(), else a run step of the cancel() that ran them.
  std::vector<callback_record> cbs = h.callbacks;
  std::sort(cbs.begin(), cbs.end(),
            [](const callback_record& a, const callback_record& b) { return a.start < b.start; });
  std::vector<std::uint64_t> last_end(h.ops.size(), 0);
  for (const callback_record& c : cbs) {
    std::size_t k = h.ops.size();
    for (std::size_t i = 0; i < h.ops.size(); ++i)
      if (h.ops[i].thread == c.thread && h.ops[i].call < c.start && c.start < h.ops[i].ret) k = i;
    const std::string cb = "callback R" + std::to_string(c.reg) + " on T" + std::to_string(c.thread);
    if (k == h.ops.size())
      return fail(cb + " ran outside any cancel() or register() of that thread (S5, S6)");
    const op& o = p.threads[static_cast<std::size_t>(h.ops[k].thread)]
                           [static_cast<std::size_t>(h.ops[k].index)];
    if (o.kind == op_kind::register_cb && o.reg == c.reg) {
      lin_op& reg = ops[static_cast<std::size_t>(op_of_record[k])];
      if (reg.ran_inline) return fail(cb + " ran inline twice (S4)");
      reg.ran_inline = true;
      continue;
    }
    if (o.kind != op_kind::cancel && o.kind != op_kind::advance)
      return fail(cb + " ran inside " + show(o) + ", which runs no callbacks (S5, S6)");
    lin_op l;
    l.kind = lin_op::run;
    l.thread = c.thread;
    l.lo = std::max(h.ops[k].call, last_end[k]);
    l.hi = c.start;
    l.reg = c.reg;
    last_end[k] = c.end;
    ops.push_back(l);
  }
  if (ops.size() > 64) return fail("history too long for the checker");

  // S9: dispose() on one thread returns only once that callback, running on another, has ended.
  for (std::size_t i = 0; i < h.ops.size(); ++i) {
    const op& o = p.threads[static_cast<std::size_t>(h.ops[i].thread)]
                           [static_cast<std::size_t>(h.ops[i].index)];
    if (o.kind != op_kind::dispose) continue;
    for (const callback_record& c : h.callbacks) {
      if (c.reg != o.reg || c.thread == h.ops[i].thread || c.end < h.ops[i].ret) continue;
      std::ostringstream os;
      os << "S9 violated: T" << h.ops[i].thread << " dispose(R" << o.reg << ") [op #"
         << h.ops[i].id << "] returned while callback R" << c.reg << " on T" << c.thread
         << (c.start < h.ops[i].ret ? " was still running" : " had not even started yet")
         << " (it ends later)";
      return fail(os.str());
    }
  }

  wgl search(std::move(ops), std::move(w), h.end);
  if (search.run()) return v;
  std::ostringstream os;
  os << "not linearizable: no order of these operations that respects real time is legal in the "
        "model (S2, S4-S6, S8, S11, S16-S18, S20) and ends as the sources were after the join.\n";
  if (search.longest().size() == search.ops().size())
    os << "every operation fits in some order, but each such order ends with a source cancelled "
          "(or not, or with a reason) other than it was after the join, a cancelled source still "
          "holding a callback, or a timer taken off that never cancelled. One of them:\n";
  else
    os << "longest legal prefix found (" << search.longest().size() << " of "
       << search.ops().size() << " operations):\n";
  for (int i : search.longest()) os << "    " << search.ops()[static_cast<std::size_t>(i)].name() << "\n";
  os << "operations left over:\n";
  for (std::size_t i = 0; i < search.ops().size(); ++i)
    if (std::find(search.longest().begin(), search.longest().end(), static_cast<int>(i)) ==
        search.longest().end())
      os << "    " << search.ops()[i].name() << "\n";
  return fail(os.str());
}

}  // namespace cklin
