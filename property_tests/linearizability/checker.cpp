// property_tests/linearizability/checker.cpp — history -> operations -> WGL search on the model.
#include "checker.hpp"

#include "../model/model.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <sstream>
#include <unordered_set>

namespace cklin {

namespace {

using ckmodel::none;

constexpr std::int64_t advance_ns = 10'000'000;  // reasons.hpp's timer_delay (10 ms)

struct lin_op {
  enum kind_t { call, run, claim, fire, take, link } kind = call;
  int thread = 0;
  std::uint64_t lo = 0;  // may not take effect before this tick
  std::uint64_t hi = 0;  // ... nor after this one
  const op* what = nullptr;   // call: the program operation
  const op_record* rec = nullptr;
  int reg = none;     // run
  int source = none;  // claim: the parent; fire: the source whose timer fires
  int await = none;   // take: the coroutine whose delay's timer is taken
  bool ran_inline = false;  // call of register: its callback ran inside it
  bool if_fired = false;    // claim of an advance: a no-op unless its timer cancelled the parent
  std::string name() const {
    switch (kind) {
      case call: {
        std::string s = "T" + std::to_string(thread) + " " + show(*what);
        if (what->kind == op_kind::register_cb) s += ran_inline ? " (ran inline)" : " (stored)";
        if (what->kind == op_kind::await_cancelled || what->kind == op_kind::await_delay)
          s += ran_inline ? " (did not suspend)" : " (suspended)";
        return s + " [op #" + std::to_string(rec->id) + "]";
      }
      case run:
        if (await != none)
          return "T" + std::to_string(thread) + " resumes A" + std::to_string(await) +
                 " (its node R" + std::to_string(reg) + ")";
        return "T" + std::to_string(thread) + " runs callback R" + std::to_string(reg);
      case claim:
        return "T" + std::to_string(thread) + " claims the children of S" + std::to_string(source);
      case fire:
        return "T" + std::to_string(thread) + " cancels S" + std::to_string(source) +
               " for the timer it took off";
      case take:
        return "T" + std::to_string(thread) + " takes the delay timer of A" +
               std::to_string(await) + " (it resumes elapsed)";
      case link:
        return "T" + std::to_string(thread) + " links the delay node of A" +
               std::to_string(await) + (ran_inline ? " (cancelled: does not suspend)" : "");
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
      if (const int a = w.regs[static_cast<std::size_t>(o.reg)].await; a != none) {
        // S26/S27: the awaiter's node resumes the coroutine; a delay's timer is taken off [C3].
        w.awaits[static_cast<std::size_t>(a)].armed = false;
        w.awaits[static_cast<std::size_t>(a)].status = ckmodel::await_status::resumed;
      }
      return true;
    }
    case lin_op::take: {
      // S27: the timer resumes a suspended delay whose timer is armed and due, and the earliest
      // armed one (S0's, armed first at 10 ms, before any delay; then deadline and arming order).
      ckmodel::await_slot& a = w.awaits[static_cast<std::size_t>(o.await)];
      if (a.status != ckmodel::await_status::suspended || !a.armed || a.deadline > w.now[0])
        return false;
      if (w.sources[timed_source].armed) return false;
      for (const ckmodel::await_slot& b : w.awaits)
        if (b.armed && (b.deadline < a.deadline ||
                        (b.deadline == a.deadline && b.sequence < a.sequence)))
          return false;
      w.remove(a.reg);  // [C3]: the timer takes the cancel node off
      a.armed = false;
      a.status = ckmodel::await_status::resumed;
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
    case lin_op::link: {
      // S27, the second half of an await_delay: after arming the timer, the awaiter registers
      // on the token: canceled at once iff it is cancelled by then, else linked. A timer that
      // took the delay in between (an advance during the arming) resumed it already: elapsed.
      ckmodel::await_slot& a = w.awaits[static_cast<std::size_t>(o.await)];
      if (a.status == ckmodel::await_status::pending) return false;  // the arming comes first
      if (a.status != ckmodel::await_status::suspended) return !o.ran_inline;
      const bool now_ = w.attach(a.reg) == ckmodel::reg_status::ran_inline;
      if (now_) {
        a.armed = false;  // [C3]: the timer is taken off
        a.status = ckmodel::await_status::resumed;
      }
      return now_ == o.ran_inline;
    }
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
      w.now[0] += advance_ns;
      w.start_firing(timed_source);
      return true;
    case op_kind::await_cancelled: {  // S26: like a register; inline iff already cancelled
      w.awaits[static_cast<std::size_t>(p.await)].status = ckmodel::await_status::suspended;
      const bool now_ = w.attach(p.reg) == ckmodel::reg_status::ran_inline;
      if (now_) w.awaits[static_cast<std::size_t>(p.await)].status = ckmodel::await_status::resumed;
      return now_ == o.ran_inline;
    }
    case op_kind::await_delay: {  // S27, the first half: the timer is armed (then `link`)
      ckmodel::await_slot& a = w.awaits[static_cast<std::size_t>(p.await)];
      a.status = ckmodel::await_status::suspended;
      a.armed = true;
      a.deadline = w.now[0] + advance_ns;
      a.sequence = w.next_sequence[0]++;
      return true;
    }
    case op_kind::destroy_await: {  // S28: a suspended one is withdrawn; nothing resumes it
      ckmodel::await_slot& a = w.awaits[static_cast<std::size_t>(p.await)];
      if (a.status == ckmodel::await_status::suspended) w.withdraw_await(p.await);
      a.status = ckmodel::await_status::destroyed;
      return true;
    }
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
  f += '|' + std::to_string(w.now[0]) + ',' + std::to_string(w.next_sequence[0]);
  for (const ckmodel::await_slot& a : w.awaits)
    f += ';' + std::to_string(static_cast<int>(a.status)) + (a.armed ? "A" : "-") +
         std::to_string(a.deadline / advance_ns) + '.' + std::to_string(a.sequence);
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
  if (p.timer) {  // cancel_after(10ms): the first advance; the first timer armed on the service
    w.sources[timed_source].armed = true;
    w.next_sequence[0] = 1;
  }
  if (p.child_parents > 0) {
    std::vector<int> parents;
    for (int s = 0; s < p.child_parents; ++s) parents.push_back(s);
    w.linked(parents);
  }
  for (int s : p.pre) w.attach(w.new_registration(s, false, ckmodel::behaviour{}, none));
  // Coroutines: A<i> in await-id order, each with its awaiter's node (ids in program order, as
  // the register ops'), pending until its await op takes effect.
  std::vector<const op*> await_ops(static_cast<std::size_t>(p.awaits()), nullptr);
  std::vector<std::size_t> await_record(await_ops.size(), h.ops.size());
  std::vector<std::size_t> destroy_record(await_ops.size(), h.ops.size());
  w.awaits.resize(await_ops.size());
  for (const auto& t : p.threads) {
    for (const op& o : t) {
      if (o.kind == op_kind::register_cb) {
        w.new_registration(o.source, false, ckmodel::behaviour{}, none);
      } else if (o.kind == op_kind::await_cancelled || o.kind == op_kind::await_delay) {
        ckmodel::await_slot& a = w.awaits[static_cast<std::size_t>(o.await)];
        a.kind = o.kind == op_kind::await_delay ? ckmodel::await_kind::delay
                                                : ckmodel::await_kind::cancelled;
        a.source = o.source;
        a.status = ckmodel::await_status::pending;
        a.reg = w.new_awaiter_node(o.source, o.await);
        await_ops[static_cast<std::size_t>(o.await)] = &o;
      }
    }
  }
  for (std::size_t i = 0; i < h.ops.size(); ++i) {
    const op& o = p.threads[static_cast<std::size_t>(h.ops[i].thread)]
                           [static_cast<std::size_t>(h.ops[i].index)];
    if (o.kind == op_kind::await_cancelled || o.kind == op_kind::await_delay)
      await_record[static_cast<std::size_t>(o.await)] = i;
    if (o.kind == op_kind::destroy_await) destroy_record[static_cast<std::size_t>(o.await)] = i;
  }
  std::vector<int> await_of_reg(static_cast<std::size_t>(p.registrations()), none);
  for (std::size_t a = 0; a < await_ops.size(); ++a)
    await_of_reg[static_cast<std::size_t>(await_ops[a]->reg)] = static_cast<int>(a);

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
  // [C1], S26/S27: each coroutine resumes at most once (its second resumption is recorded from
  // the park, or as a second record of the awaiter's). Checked first: it explains the rest.
  std::vector<int> resumptions(await_ops.size(), 0);
  for (const callback_record& c : cbs) {
    if (c.how == callback) continue;
    const int a = c.reg >= 0 && static_cast<std::size_t>(c.reg) < await_of_reg.size()
                      ? await_of_reg[static_cast<std::size_t>(c.reg)]
                      : none;
    if (a == none) return fail("a resumption of a coroutine the program never started");
    if (++resumptions[static_cast<std::size_t>(a)] > 1 || c.how == resumed_again)
      return fail("coroutine A" + std::to_string(a) + " (" +
                  show(*await_ops[static_cast<std::size_t>(a)]) + ") resumed a second time, on T" +
                  std::to_string(c.thread) + " ([C1]; S26/S27: exactly once)");
  }
  for (const callback_record& c : cbs) {
    if (c.how != callback) {  // a coroutine's resumption
      const int a = c.reg >= 0 && static_cast<std::size_t>(c.reg) < await_of_reg.size()
                        ? await_of_reg[static_cast<std::size_t>(c.reg)]
                        : none;
      const auto ai = static_cast<std::size_t>(a);
      const op& aw = *await_ops[ai];
      const std::string co = "coroutine A" + std::to_string(a) + " (" + show(aw) + ") " +
                             show_how(c.how) + " on T" + std::to_string(c.thread);
      if (destroy_record[ai] < h.ops.size() && c.start > h.ops[destroy_record[ai]].call)
        return fail(co + " after destroy_await(A" + std::to_string(a) +
                    ") began (S28: nothing resumes it afterwards)");
      const bool is_delay = aw.kind == op_kind::await_delay;
      if (c.how == logic_error)
        return fail(co + ": but its source can still be canceled (S23, S26)");
      if (c.how == canceled_other) return fail(co + " (S27: it carries the awaited token)");
      if (c.how == unexpected || (is_delay && c.how == resumed_normally) ||
          (!is_delay && (c.how == elapsed || c.how == canceled_self)))
        return fail(co + ": not an outcome of this awaiter (S26, S27)");
      std::size_t k = h.ops.size();
      for (std::size_t i = 0; i < h.ops.size(); ++i)
        if (h.ops[i].thread == c.thread && h.ops[i].call < c.start && c.start < h.ops[i].ret) k = i;
      if (k == h.ops.size())
        return fail(co + " outside any operation of that thread (S26, S27: it resumes inside "
                         "the cancel(), the advance() or its own await)");
      const op& o = p.threads[static_cast<std::size_t>(h.ops[k].thread)]
                             [static_cast<std::size_t>(h.ops[k].index)];
      lin_op l;
      l.thread = c.thread;
      l.hi = c.start;
      if (k == await_record[ai]) {  // inside its own await: it did not stay suspended
        if (c.how != elapsed) {
          ops[static_cast<std::size_t>(op_of_record[k])].ran_inline = true;
          continue;
        }
        l.kind = lin_op::take;  // an advance took the timer while the await was arming
        l.await = a;
        l.lo = h.ops[k].call;
        ops.push_back(l);
        continue;
      }
      if (o.kind != op_kind::cancel && o.kind != op_kind::advance)
        return fail(co + " inside " + show(o) + ", which resumes no coroutine (S26, S27)");
      if (c.how == elapsed && o.kind != op_kind::advance)
        return fail(co + " inside " + show(o) + ": only advance() runs the timer (S27)");
      l.kind = c.how == elapsed ? lin_op::take : lin_op::run;
      l.lo = std::max(h.ops[k].call, last_end[k]);
      l.reg = aw.reg;
      l.await = a;
      last_end[k] = c.end;
      ops.push_back(l);
      continue;
    }
    std::size_t k = h.ops.size();
    for (std::size_t i = 0; i < h.ops.size(); ++i)
      if (h.ops[i].thread == c.thread && h.ops[i].call < c.start && c.start < h.ops[i].ret) k = i;
    const std::string cb = "callback R" + std::to_string(c.reg) + " on T" + std::to_string(c.thread);
    if (k == h.ops.size())
      return fail(cb + " ran outside any cancel() or register() of that thread (S5, S6)");
    const op& o = p.threads[static_cast<std::size_t>(h.ops[k].thread)]
                           [static_cast<std::size_t>(h.ops[k].index)];
    if ((o.kind == op_kind::register_cb || o.kind == op_kind::await_cancelled ||
         o.kind == op_kind::await_delay) &&
        o.reg == c.reg) {
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
  // The second half of every await_delay (see lin_op::link), once its record says whether it
  // did not suspend.
  for (std::size_t i = 0, n = ops.size(); i < n; ++i) {
    if (ops[i].kind != lin_op::call || ops[i].what->kind != op_kind::await_delay) continue;
    lin_op l = ops[i];
    l.kind = lin_op::link;
    l.await = l.what->await;
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
        "model (S2, S4-S6, S8, S11, S16-S18, S20, S26-S28) and ends as the sources were after the "
        "join.\n";
  if (search.longest().size() == search.ops().size())
    os << "every operation fits in some order, but each such order ends with a source cancelled "
          "(or not, or with a reason) other than it was after the join, a cancelled source still "
          "holding a callback or a suspended coroutine (a lost resumption: S5, S26, S27), or a "
          "timer taken off that never cancelled. One of them:\n";
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
