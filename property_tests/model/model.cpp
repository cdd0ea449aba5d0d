// property_tests/model/model.cpp — the oracle's rules, one function per operation, each citing
// the rule of docs/spec/SEMANTICS.md it follows.
#include "model.hpp"

#include <deque>
#include <utility>

#include "behaviour.hpp"

#include <algorithm>
#include <utility>

namespace ckmodel {

const char* name(timers t) {
  switch (t) {
    case timers::a: return "A";
    case timers::b: return "B";
    case timers::system: return "sys";
  }
  return "?";
}

std::string slot_name(char kind, int i) { return kind + std::to_string(i); }

std::string to_string(const behaviour& b) {
  switch (b.what) {
    case action::count: return "count";
    case action::throw_error: return "throw";
    case action::unregister_self: return "unregister(self)";
    case action::dispose: return "dispose(" + slot_name('r', b.target) + ")";
    case action::destroy: return "destroy(" + slot_name('r', b.target) + ")";
    case action::register_on: return "register(" + slot_name('t', b.target) + ")";
    case action::cancel: {
      std::string s = "cancel(" + slot_name('h', b.target);
      if (b.with_reason) s += ", reason";
      if (b.throw_first) s += ", throw_first";
      return s + ")";
    }
    case action::drop_handle: return "drop(" + slot_name('h', b.target) + ")";
  }
  return "?";
}

std::string errors_string(const std::vector<int>& ids) {
  std::string s = "aggregate[";
  for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? ",#" : "#") + std::to_string(ids[i]);
  return s + "]";
}

// ---- small helpers ---------------------------------------------------------------------------

void world::emit(std::string line) {
  log.push_back(std::move(line));
  if (expected != nullptr &&
      (log.size() > expected->size() || (*expected)[log.size() - 1] != log.back()))
    throw prune{};
}

int world::choose(int n) {
  if (n <= 1 || choices == nullptr) return 0;
  return choices->choose(n);
}

int world::make_source(timers svc) {
  source s;
  s.svc = svc;
  sources.push_back(std::move(s));
  return static_cast<int>(sources.size()) - 1;
}

reason world::new_deadline() { return reason{reason::deadline, deadlines++}; }

void world::disarm(int s) { sources[static_cast<std::size_t>(s)].armed = false; }

// The suite never lets a system_timer_service() timer fire in real time: a positive delay on a
// source of that service means an hour (the harness does the same).
std::int64_t world::effective_delay(int s, std::int64_t ns) const {
  if (sources[static_cast<std::size_t>(s)].svc == timers::system && ns > 0 && ns != no_timer)
    return one_hour_ns;
  return ns;
}

// ---- lifetime: S23 (cancellers) and S17/S21 (references) -----------------------------------

// S23: a source handle, the armed timer, a linked parent that can itself be cancelled, a
// std::stop_token parent.
int world::cancellers(int s) const {
  const source& x = sources[static_cast<std::size_t>(s)];
  int n = (x.armed ? 1 : 0) + (x.std_parent ? 1 : 0);
  for (const handle_slot& h : handles) n += (h.present && h.src == s) ? 1 : 0;
  for (int p : x.parents) n += sources[static_cast<std::size_t>(p)].orphaned ? 0 : 1;
  return n;
}

void world::settle() {
  // S23: once nothing can cancel a live source, its pending callbacks never run and
  // can_be_canceled() turns false; that may orphan its children in turn.
  std::vector<int> orphaned;  // in the order found
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t s = 0; s < sources.size(); ++s) {
      source& x = sources[s];
      if (x.requested || x.orphaned || cancellers(static_cast<int>(s)) != 0) continue;
      for (int r : x.callbacks) regs[static_cast<std::size_t>(r)].status = reg_status::dropped;
      x.callbacks.clear();
      x.orphaned = true;
      orphaned.push_back(static_cast<int>(s));
      changed = true;
    }
  }
  if (!orphaned.empty()) resume_orphaned(orphaned);
  // S17/S21: a source nothing refers to (no handle, token, registration, or live child) is gone;
  // its timer is disarmed and it can never be cancelled again.
  std::vector<char> alive(sources.size(), 0);
  for (const handle_slot& h : handles)
    if (h.present && h.src != none) alive[static_cast<std::size_t>(h.src)] = 1;
  for (int t : tokens)
    if (t != none) alive[static_cast<std::size_t>(t)] = 1;
  if (std_drain != nullptr)  // a queued std child holds a reference until it is cancelled [B2]
    for (int q : *std_drain) alive[static_cast<std::size_t>(q)] = 1;
  for (const reg_slot& rs : reg_slots) {
    if (!rs.present || rs.reg == none) continue;
    const registration& r = regs[static_cast<std::size_t>(rs.reg)];
    if (r.holds_ref && r.source != none) alive[static_cast<std::size_t>(r.source)] = 1;
  }
  for (const await_slot& a : awaits)  // the frame's copy of the token
    if (a.frame && a.source != none) alive[static_cast<std::size_t>(a.source)] = 1;
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t s = 0; s < sources.size(); ++s) {
      if (!alive[s] || sources[s].dead) continue;
      for (int p : sources[s].parents) {
        if (!alive[static_cast<std::size_t>(p)]) {
          alive[static_cast<std::size_t>(p)] = 1;
          changed = true;
        }
      }
    }
  }
  for (std::size_t s = 0; s < sources.size(); ++s) {
    if (alive[s] || sources[s].dead) continue;
    sources[s].dead = true;
    sources[s].armed = false;
  }
}

// ---- cancellation ----------------------------------------------------------------------------

bool world::request(int s, reason r) {
  source& x = sources[static_cast<std::size_t>(s)];
  if (x.requested || x.orphaned || x.dead) return false;  // S1, S2, S23
  x.requested = true;
  x.why = r;             // S16
  x.dispatcher = thread;
  x.armed = false;       // a cancelled source needs no timer (S17: no effect once cancelled)
  return true;
}

int world::next_callback(int s) const {
  const source& x = sources[static_cast<std::size_t>(s)];
  return x.callbacks.empty() ? none : x.callbacks.back();
}

void world::claim_children(int s) {
  const std::vector<int> children = sources[static_cast<std::size_t>(s)].children;
  for (auto it = children.rbegin(); it != children.rend(); ++it)
    request(*it, sources[static_cast<std::size_t>(s)].why);
}

bool world::run_callback(int reg) {
  if (const int a = regs[static_cast<std::size_t>(reg)].await; a != none) {
    // S26/S27: the awaiter's node runs as a callback would; it resumes the coroutine here, on
    // the cancelling thread. A delay's cancel takes its timer off first (S27).
    resume_await(a, awaits[static_cast<std::size_t>(a)].kind == await_kind::delay
                        ? "canceled(self)"
                        : "resumed");
    return false;  // the coroutine's exceptions go to its promise, never to cancel()
  }
  emit("cb#" + std::to_string(reg) + " ran");
  const registration r = regs[static_cast<std::size_t>(reg)];
  return perform(*this, reg, r.what, r.slot);
}

// One cancellation request's dispatch (S5, S12, S13, S20). Work items: each requested source
// ("task") has steps: tell its std::stop_token children (S22), run its next callback (LIFO among
// its own), claim one of its children. The contract fixes the order only within one source's
// callbacks, so any interleaving is allowed; option 0 follows a work stack: finish a source
// (std children, callbacks, then claim every child), then take the last claimed one.
std::vector<int> world::cascade(int root, bool throw_first) {
  struct task {
    int src;
    bool announced = false;
  };
  enum class kind { announce, run, claim };
  struct step {
    kind k;
    std::size_t task;
    int child;
  };
  std::vector<task> tasks{task{root}};
  std::vector<int> errors;
  std::size_t current = 0;

  auto source_of = [&](std::size_t t) -> source& {
    return sources[static_cast<std::size_t>(tasks[t].src)];
  };
  auto waiting_std_child = [&](std::size_t t) {
    for (int c : source_of(t).std_children) {
      const source& x = sources[static_cast<std::size_t>(c)];
      if (!x.requested && !x.orphaned && !x.dead) return true;
    }
    return false;
  };
  auto claimable = [&](int c) {
    const source& x = sources[static_cast<std::size_t>(c)];
    return !x.requested && !x.orphaned && !x.dead;
  };
  // The steps of task t, its natural (option-0) step first.
  auto steps_of = [&](std::size_t t, std::vector<step>& out) {
    if (!tasks[t].announced && waiting_std_child(t)) out.push_back({kind::announce, t, none});
    // S13: with throw_on_first_exception no user callback runs after the first one threw.
    if (!(throw_first && !errors.empty()) && !source_of(t).callbacks.empty())
      out.push_back({kind::run, t, none});
    const std::vector<int>& kids = source_of(t).children;
    for (auto it = kids.rbegin(); it != kids.rend(); ++it)
      if (claimable(*it)) out.push_back({kind::claim, t, *it});
  };

  for (;;) {
    std::vector<step> steps;
    std::vector<step> mine;
    steps_of(current, mine);
    std::size_t natural = current;
    if (mine.empty()) {
      for (std::size_t t = tasks.size(); t-- > 0;) {
        steps_of(t, mine);
        if (!mine.empty()) {
          natural = t;
          break;
        }
      }
    }
    if (mine.empty()) break;
    steps = mine;
    for (std::size_t t = tasks.size(); t-- > 0;)
      if (t != natural) steps_of(t, steps);
    const step s = steps[static_cast<std::size_t>(choose(static_cast<int>(steps.size())))];
    current = s.task;
    switch (s.k) {
      case kind::announce: {
        // S22: the source's std::stop_source is requested; each std child is cancelled by its
        // std::stop_callback, reason null, as a background cancel (S15 for exceptions).
        tasks[s.task].announced = true;
        std::vector<int> waiting;
        for (int c : source_of(s.task).std_children)
          if (claimable(c)) waiting.push_back(c);
        // libstdc++ runs stop callbacks latest first; the standard does not say.
        std::reverse(waiting.begin(), waiting.end());
        while (!waiting.empty()) {
          const auto k = static_cast<std::size_t>(choose(static_cast<int>(waiting.size())));
          const int c = waiting[k];
          waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(k));
          std_trigger(c);
        }
        break;
      }
      case kind::run: {
        source& x = source_of(s.task);
        const int r = x.callbacks.back();
        x.callbacks.pop_back();
        regs[static_cast<std::size_t>(r)].status = reg_status::ran;  // S4
        if (run_callback(r)) errors.push_back(r);                     // S12
        break;
      }
      case kind::claim:
        // S19/S20: the child is cancelled with the parent's reason; its callbacks are ours to run.
        if (request(s.child, source_of(s.task).why)) tasks.push_back(task{s.child});
        break;
    }
  }
  return errors;
}

// A std::stop_token child's trigger (S22). Like the library ([B1]..[B5] in
// impl/src/source_extension.hpp), std-triggered cancellation does not recurse: a trigger that
// fires while a drain runs only queues its source (which the queue keeps alive, see settle()),
// and the outermost trigger cancels the queued sources one after the other, in FIFO order,
// before it returns.
void world::std_trigger(int c) {
  if (std_drain != nullptr) {
    std_drain->push_back(c);
    return;
  }
  std::deque<int> queue;
  std_drain = &queue;
  for (int next = c;;) {
    fire(next, sources[static_cast<std::size_t>(next)].svc, reason{});
    if (queue.empty()) break;
    next = queue.front();
    queue.pop_front();
  }
  std_drain = nullptr;
}

// Timer (S15, S17) or std::stop_token parent (S22): every callback runs; if any threw, the
// service's error handler gets them once, as an aggregate_exception.
void world::fire(int s, timers svc, reason r) {
  if (!request(s, r)) return;
  const std::vector<int> errors = cascade(s, false);
  if (!errors.empty()) emit(std::string("handler[") + name(svc) + "] " + errors_string(errors));
}

std::string world::cancel_source(int s, reason r, bool throw_first, const char* ok) {
  if (!request(s, r)) return "false";  // S2
  // [B5]: a cancel() made inside a drain (from a callback) completes its own std-linked
  // descendants before it returns; it hides the enclosing drain meanwhile.
  std::deque<int>* const hidden = std::exchange(std_drain, nullptr);
  const std::vector<int> errors = cascade(s, throw_first);
  std_drain = hidden;
  if (errors.empty()) return ok;
  if (throw_first) return "threw test_error#" + std::to_string(errors.front());  // S13
  return "threw " + errors_string(errors);                                       // S12
}

// ---- source handles --------------------------------------------------------------------------

std::string world::new_source(timers svc) {
  handles.push_back(handle_slot{true, make_source(svc)});
  return "ok";
}

std::string world::new_source_after(timers svc, std::int64_t ns) {
  const int s = make_source(svc);
  handles.push_back(handle_slot{true, s});
  cancel_after(static_cast<int>(handles.size()) - 1, ns);  // no callbacks yet: nothing can throw
  return "ok";
}

std::string world::copy_handle(int h) {
  handles.push_back(handle_slot{true, handles[static_cast<std::size_t>(h)].src});
  return "ok";
}

std::string world::move_handle(int h) {
  const int s = handles[static_cast<std::size_t>(h)].src;
  handles[static_cast<std::size_t>(h)].src = none;  // a moved-from source is empty
  handles.push_back(handle_slot{true, s});
  return "ok";
}

std::string world::drop_handle(int h) {
  if (h < 0 || static_cast<std::size_t>(h) >= handles.size() ||
      !handles[static_cast<std::size_t>(h)].present)
    return "absent";
  handles[static_cast<std::size_t>(h)] = handle_slot{false, none};
  settle();  // S23: may have been the last canceller
  return "ok";
}

// ---- tokens ----------------------------------------------------------------------------------

std::string world::token(int h) {
  tokens.push_back(handles[static_cast<std::size_t>(h)].src);  // empty source: none token
  return "ok";
}

std::string world::copy_token(int t) {
  tokens.push_back(tokens[static_cast<std::size_t>(t)]);
  return "ok";
}

std::string world::none_token() {
  tokens.push_back(none);
  return "ok";
}

std::string world::drop_token(int t) {
  tokens[static_cast<std::size_t>(t)] = none;
  settle();
  return "ok";
}

// ---- linked sources (S19, S22) -----------------------------------------------------------------

std::string world::linked(const std::vector<int>& parent_tokens) {
  std::vector<int> distinct;  // none ignored, duplicates once, in the order given
  for (int t : parent_tokens) {
    const int s = tokens[static_cast<std::size_t>(t)];
    if (s != none && std::find(distinct.begin(), distinct.end(), s) == distinct.end())
      distinct.push_back(s);
  }
  // The library's documented choice: the first parent's timer service.
  const timers svc =
      distinct.empty() ? timers::system : sources[static_cast<std::size_t>(distinct.front())].svc;
  const int c = make_source(svc);
  handles.push_back(handle_slot{true, c});
  for (int p : distinct) {
    if (sources[static_cast<std::size_t>(p)].requested) {
      // Born cancelled, with that parent's reason (S19). When several parents are cancelled the
      // contract does not say whose reason wins; the library takes the first in the order given
      // and attaches no parent after it. It has no callbacks or children yet.
      request(c, sources[static_cast<std::size_t>(p)].why);
      break;
    }
    sources[static_cast<std::size_t>(c)].parents.push_back(p);
    sources[static_cast<std::size_t>(p)].children.push_back(c);
  }
  return "ok";
}

std::string world::linked_std(int st) {
  const stop_slot slot = stops[static_cast<std::size_t>(st)];
  const int c = make_source(timers::system);  // linked(std::stop_token) uses the system service
  handles.push_back(handle_slot{true, c});
  if (slot.src == none) return "ok";  // stop_possible() == false: no parent (S22)
  const source& p = sources[static_cast<std::size_t>(slot.src)];
  if (!p.requested && (p.orphaned || p.dead)) return "ok";  // its std::stop_source is gone
  sources[static_cast<std::size_t>(c)].std_parent = true;
  if (p.requested) {
    request(c, reason{});  // born cancelled, reason null (S22)
  } else {
    sources[static_cast<std::size_t>(slot.src)].std_children.push_back(c);
  }
  return "ok";
}

std::string world::to_stop_token(int t) {
  const int s = tokens[static_cast<std::size_t>(t)];
  stop_slot slot;
  slot.from_none = s == none;
  if (s != none && (sources[static_cast<std::size_t>(s)].requested ||
                    !sources[static_cast<std::size_t>(s)].orphaned))
    slot.src = s;
  stops.push_back(slot);
  return "ok";
}

// ---- registrations (S6–S11, S14, S25) --------------------------------------------------------

int world::new_registration(int s, bool raii, const behaviour& b, int slot) {
  registration r;
  r.source = s;
  r.raii = raii;
  r.what = b;
  r.slot = slot;
  regs.push_back(r);
  return static_cast<int>(regs.size()) - 1;
}

reg_status world::attach(int reg) {
  registration& r = regs[static_cast<std::size_t>(reg)];
  const int s = r.source;
  if (s == none) {
    r.status = reg_status::not_stored;  // S7
  } else if (sources[static_cast<std::size_t>(s)].requested) {
    r.status = reg_status::ran_inline;  // S6
    r.holds_ref = !r.raii;
  } else if (sources[static_cast<std::size_t>(s)].orphaned) {
    r.status = reg_status::not_stored;  // S7
    r.holds_ref = !r.raii;
  } else {
    r.status = reg_status::linked;
    r.holds_ref = true;
    sources[static_cast<std::size_t>(s)].callbacks.push_back(reg);
  }
  return r.status;
}

std::string world::register_on(int t, bool raii, const behaviour& b) {
  if (t < 0 || static_cast<std::size_t>(t) >= tokens.size()) return "absent";
  if (reg_slots.size() >= max_reg_slots) return "full";
  const int k = static_cast<int>(reg_slots.size());
  reg_slots.push_back(reg_slot{false, raii, none});
  const int id = new_registration(tokens[static_cast<std::size_t>(t)], raii, b, k);
  if (attach(id) == reg_status::ran_inline && run_callback(id)) {
    // S14: the exception leaves register_callback; no registration object exists.
    regs[static_cast<std::size_t>(id)].holds_ref = false;
    return "threw test_error#" + std::to_string(id);
  }
  reg_slots[static_cast<std::size_t>(k)].present = true;
  reg_slots[static_cast<std::size_t>(k)].reg = id;
  return slot_name('r', k);
}

std::string world::register_empty(int, bool) {
  return "threw invalid_argument";  // S25: checked first, nothing changes
}

bool world::remove(int reg) {
  registration& r = regs[static_cast<std::size_t>(reg)];
  if (r.status != reg_status::linked) return false;
  std::vector<int>& list = sources[static_cast<std::size_t>(r.source)].callbacks;
  list.erase(std::find(list.begin(), list.end(), reg));
  r.status = reg_status::removed;
  return true;
}

std::string world::unregister(int k) {
  if (k < 0 || static_cast<std::size_t>(k) >= reg_slots.size() ||
      !reg_slots[static_cast<std::size_t>(k)].present)
    return "absent";
  const int id = reg_slots[static_cast<std::size_t>(k)].reg;
  return (id != none && remove(id)) ? "true" : "false";  // S8
}

std::string world::dispose(int k) {
  if (k < 0 || static_cast<std::size_t>(k) >= reg_slots.size() ||
      !reg_slots[static_cast<std::size_t>(k)].present)
    return "absent";
  if (reg_slots[static_cast<std::size_t>(k)].raii) return destroy(k);  // its destructor disposes
  const int id = reg_slots[static_cast<std::size_t>(k)].reg;
  if (id != none) remove(id);  // S9: sequentially there is nothing to wait for
  return "ok";
}

std::string world::destroy(int k) {
  if (k < 0 || static_cast<std::size_t>(k) >= reg_slots.size() ||
      !reg_slots[static_cast<std::size_t>(k)].present)
    return "absent";
  const int id = reg_slots[static_cast<std::size_t>(k)].reg;
  if (id != none) remove(id);
  reg_slots[static_cast<std::size_t>(k)].present = false;
  reg_slots[static_cast<std::size_t>(k)].reg = none;
  settle();
  return "ok";
}

// API.md: move-assigning onto a non-empty registration disposes the old one first.
std::string world::move_registration(int to, int from) {
  const int old = reg_slots[static_cast<std::size_t>(to)].reg;
  if (old != none) remove(old);
  const int id = reg_slots[static_cast<std::size_t>(from)].reg;
  reg_slots[static_cast<std::size_t>(to)].reg = id;
  reg_slots[static_cast<std::size_t>(from)].reg = none;
  if (id != none) regs[static_cast<std::size_t>(id)].slot = to;
  settle();
  return "ok";
}

// ---- cancel, timers, reset -------------------------------------------------------------------

std::string world::cancel(int h, bool with_reason, bool throw_first) {
  if (h < 0 || static_cast<std::size_t>(h) >= handles.size() ||
      !handles[static_cast<std::size_t>(h)].present)
    return "absent";
  const reason r = with_reason ? reason{reason::user, user_reasons++} : reason{};
  const int s = handles[static_cast<std::size_t>(h)].src;
  if (s == none) return "false";  // an empty source
  return cancel_source(s, r, throw_first, "true");
}

std::string world::cancel_after(int h, std::int64_t ns) {
  const int s = handles[static_cast<std::size_t>(h)].src;
  if (s == none || sources[static_cast<std::size_t>(s)].requested) return "ok";  // S17: no effect
  ns = effective_delay(s, ns);
  source& x = sources[static_cast<std::size_t>(s)];
  if (ns <= 0) {
    // S17: cancels now with reason deadline_exceeded; exceptions as from cancel() (S12).
    const std::string r = cancel_source(s, new_deadline(), false, "ok");
    return r == "false" ? "ok" : r;
  }
  if (ns == no_timer) {
    x.armed = false;  // "no timer"
    return "ok";
  }
  x.armed = true;  // replaces any earlier timer
  if (x.svc == timers::system) {
    x.deadline = no_timer;  // an hour away: never fires during a test
  } else {
    const auto i = static_cast<std::size_t>(x.svc);
    x.deadline = now[i] + ns;
    x.sequence = next_sequence[i]++;
  }
  return "ok";
}

std::string world::advance(timers svc, std::int64_t ns) {
  if (ns < 0) return "threw invalid_argument";  // API.md: now() unchanged
  const auto i = static_cast<std::size_t>(svc);
  now[i] += ns;
  for (;;) {
    // Every due timer, in deadline order, ties in arming order (API.md, S27): the sources'
    // timers and the delays' share one queue per service.
    int due = none;
    bool due_is_await = false;
    std::int64_t due_deadline = 0;
    std::uint64_t due_sequence = 0;
    auto consider = [&](int id, bool is_await, std::int64_t deadline, std::uint64_t sequence) {
      if (deadline > now[i]) return;
      if (due != none && !(deadline < due_deadline ||
                           (deadline == due_deadline && sequence < due_sequence)))
        return;
      due = id;
      due_is_await = is_await;
      due_deadline = deadline;
      due_sequence = sequence;
    };
    for (std::size_t s = 0; s < sources.size(); ++s) {
      const source& x = sources[s];
      if (x.armed && x.svc == svc) consider(static_cast<int>(s), false, x.deadline, x.sequence);
    }
    for (std::size_t a = 0; a < awaits.size(); ++a) {
      const await_slot& x = awaits[a];
      if (x.armed && x.svc == svc) consider(static_cast<int>(a), true, x.deadline, x.sequence);
    }
    if (due == none) break;
    if (due_is_await) {
      // S27: the timer wins; it takes the cancel node off, then resumes the coroutine here.
      resume_await(due, "elapsed");
      continue;
    }
    disarm(due);
    std::deque<int>* const hidden = std::exchange(std_drain, nullptr);  // [B5], as cancel_source
    fire(due, svc, new_deadline());  // S15, S16
    std_drain = hidden;
  }
  return "ok";
}

bool world::reset(int s) {
  source& x = sources[static_cast<std::size_t>(s)];
  if (x.requested || x.orphaned || x.firing != none) return false;
  for (int r : x.callbacks) regs[static_cast<std::size_t>(r)].status = reg_status::dropped;
  x.callbacks.clear();
  disarm(s);
  return true;
}

void world::start_firing(int s) {
  source& x = sources[static_cast<std::size_t>(s)];
  if (!x.armed) return;
  x.armed = false;
  x.firing = thread;
}

void world::finish_firing(int s) {
  source& x = sources[static_cast<std::size_t>(s)];
  if (x.firing != thread) return;
  x.firing = none;
  request(s, new_deadline());
}

std::string world::try_reset(int h) {
  const int s = handles[static_cast<std::size_t>(h)].src;
  return s != none && reset(s) ? "true" : "false";
}

// ---- coroutines (S26-S28) ----------------------------------------------------------------------

void world::resume_await(int a, const std::string& how) {
  await_slot& x = awaits[static_cast<std::size_t>(a)];
  if (x.reg != none) remove(x.reg);  // [C3]: the winner withdraws the others
  x.armed = false;
  x.watching = false;
  x.status = await_status::resumed;
  x.how = how;
  emit("aw#" + std::to_string(a) + " " + how);
}

void world::withdraw_await(int a) {
  await_slot& x = awaits[static_cast<std::size_t>(a)];
  if (x.reg != none) remove(x.reg);
  x.armed = false;
  x.watching = false;
  x.status = await_status::destroyed;
}

// S26/S23: every coroutine suspended in cancelled() on a source that can no longer be canceled
// resumes with std::logic_error, on the thread that made it so, before that call returns. The
// contract gives no order among them: option 0 is the library's (sources in the order they were
// orphaned, each source's coroutines latest first).
void world::resume_orphaned(const std::vector<int>& orphaned) {
  std::vector<int> waiting;
  for (int s : orphaned)
    for (std::size_t a = awaits.size(); a-- > 0;)
      if (awaits[a].watching && awaits[a].source == s) waiting.push_back(static_cast<int>(a));
  while (!waiting.empty()) {
    const auto k = static_cast<std::size_t>(choose(static_cast<int>(waiting.size())));
    const int a = waiting[k];
    waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(k));
    resume_await(a, "logic_error");
  }
}

// Every awaiter gets a registration id, linked or not, so that ids stay in step with the
// harness's (which numbers callbacks and awaiters alike).
int world::new_awaiter_node(int s, int a) {
  const int reg = new_registration(s, false, behaviour{}, none);
  regs[static_cast<std::size_t>(reg)].await = a;
  regs[static_cast<std::size_t>(reg)].status = reg_status::not_stored;
  return reg;
}

std::string world::await_cancelled(int t) {
  const int s = tokens[static_cast<std::size_t>(t)];
  const int a = static_cast<int>(awaits.size());
  await_slot x;
  x.kind = await_kind::cancelled;
  x.source = s;
  x.reg = new_awaiter_node(s, a);
  awaits.push_back(x);
  // S26: no suspension when cancellation was requested (resumes normally) or never can be
  // (the none token, an orphaned source: std::logic_error).
  if (s == none || sources[static_cast<std::size_t>(s)].orphaned) {
    resume_await(a, "logic_error");
  } else if (sources[static_cast<std::size_t>(s)].requested) {
    resume_await(a, "resumed");
  } else {
    attach(awaits[static_cast<std::size_t>(a)].reg);  // S26: LIFO with the source's callbacks
    awaits[static_cast<std::size_t>(a)].watching = true;
  }
  return slot_name('a', a);
}

std::string world::await_delay(int t, timers svc, std::int64_t ns) {
  const int s = t == none ? none : tokens[static_cast<std::size_t>(t)];
  const int a = static_cast<int>(awaits.size());
  await_slot x;
  x.kind = await_kind::delay;
  x.source = s;
  x.svc = svc;
  x.reg = new_awaiter_node(s, a);
  awaits.push_back(x);
  // S27: `d <= 0` or a cancelled token: no suspension (the latter throws operation_canceled).
  if (s != none && sources[static_cast<std::size_t>(s)].requested) {
    resume_await(a, "canceled(self)");
    return slot_name('a', a);
  }
  if (ns <= 0) {
    resume_await(a, "elapsed");
    return slot_name('a', a);
  }
  await_slot& y = awaits[static_cast<std::size_t>(a)];
  if (ns != no_timer) {  // max: no timer, only the cancellation resumes it
    const auto i = static_cast<std::size_t>(svc);
    y.armed = true;
    y.deadline = now[i] + ns;
    y.sequence = next_sequence[i]++;
  }
  // S27: a token that can no longer be canceled does not end a delay (no node, no error).
  if (s != none && !sources[static_cast<std::size_t>(s)].orphaned) attach(y.reg);
  return slot_name('a', a);
}

std::string world::destroy_await(int a) {
  if (a < 0 || static_cast<std::size_t>(a) >= awaits.size() ||
      !awaits[static_cast<std::size_t>(a)].frame)
    return "absent";
  await_slot& x = awaits[static_cast<std::size_t>(a)];
  if (x.status == await_status::suspended) withdraw_await(a);  // S28: nothing resumes it now
  x.status = await_status::destroyed;
  x.frame = false;
  settle();  // the frame's token is gone
  return "ok";
}

// ---- observation -----------------------------------------------------------------------------

std::string world::reason_name(const reason& r) {
  switch (r.kind) {
    case reason::null: return "null";
    case reason::user: return "R" + std::to_string(r.id);
    case reason::deadline: {
      if (deadline_names.size() <= static_cast<std::size_t>(r.id))
        deadline_names.resize(static_cast<std::size_t>(r.id) + 1, 0);
      int& n = deadline_names[static_cast<std::size_t>(r.id)];
      if (n == 0) n = ++named_deadlines;
      return "D" + std::to_string(n);
    }
  }
  return "?";
}

namespace {
std::string set_string(const std::vector<int>& v) {
  std::string s = "{";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "}";
}
}  // namespace

// Keep in step with harness::snapshot() (sequential/harness.cpp).
std::vector<std::string> world::snapshot() {
  std::vector<std::string> out;
  auto requested = [&](int s) { return s != none && sources[static_cast<std::size_t>(s)].requested; };
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const int s = tokens[i];
    const bool req = requested(s);
    const bool can = s != none && (req || !sources[static_cast<std::size_t>(s)].orphaned);  // S24
    std::vector<int> eq;
    for (std::size_t j = 0; j < tokens.size(); ++j)
      if (tokens[j] == s) eq.push_back(static_cast<int>(j));
    out.push_back(slot_name('t', static_cast<int>(i)) + " none=" + (s == none ? "1" : "0") +
                  " req=" + (req ? "1" : "0") + " can=" + (can ? "1" : "0") + " reason=" +
                  (req ? reason_name(sources[static_cast<std::size_t>(s)].why) : "null") +
                  " wait0=" + (req ? "1" : "0") + " throw_if=" + (req ? "self" : "-") +
                  " eq=" + set_string(eq));
  }
  for (std::size_t i = 0; i < handles.size(); ++i) {
    const handle_slot& h = handles[i];
    if (!h.present) {
      out.push_back(slot_name('h', static_cast<int>(i)) + " absent");
      continue;
    }
    std::vector<int> eq_h, eq_t;
    for (std::size_t j = 0; j < handles.size(); ++j)
      if (handles[j].present && handles[j].src == h.src) eq_h.push_back(static_cast<int>(j));
    for (std::size_t j = 0; j < tokens.size(); ++j)
      if (tokens[j] == h.src) eq_t.push_back(static_cast<int>(j));
    out.push_back(slot_name('h', static_cast<int>(i)) + " req=" + (requested(h.src) ? "1" : "0") +
                  " eq_h=" + set_string(eq_h) + " eq_t=" + set_string(eq_t));
  }
  for (std::size_t i = 0; i < reg_slots.size(); ++i) {
    const reg_slot& r = reg_slots[i];
    std::string line = slot_name('r', static_cast<int>(i));
    if (!r.present) {
      line += " absent";
    } else if (r.raii) {
      line += " raii";
    } else {
      const int s = r.reg == none ? none : regs[static_cast<std::size_t>(r.reg)].source;
      std::vector<int> eq_t;
      for (std::size_t j = 0; j < tokens.size(); ++j)
        if (tokens[j] == s) eq_t.push_back(static_cast<int>(j));
      line += std::string(" token_none=") + (s == none ? "1" : "0") + " eq_t=" + set_string(eq_t);
    }
    out.push_back(line);
  }
  for (std::size_t i = 0; i < stops.size(); ++i) {
    out.push_back(slot_name('s', static_cast<int>(i)) + " req=" +
                  (requested(stops[i].src) ? "1" : "0") +
                  (stops[i].from_none ? " possible=0" : ""));
  }
  for (std::size_t i = 0; i < awaits.size(); ++i) {
    const await_slot& a = awaits[i];
    std::string line = slot_name('a', static_cast<int>(i));
    switch (a.status) {
      case await_status::pending: line += " pending"; break;
      case await_status::suspended: line += " suspended"; break;
      case await_status::resumed: line += " resumed(" + a.how + ")"; break;
      case await_status::destroyed: line += " destroyed"; break;
    }
    out.push_back(line);
  }
  out.push_back("clock A=" + std::to_string(now[0]) + " B=" + std::to_string(now[1]));
  return out;
}

}  // namespace ckmodel
