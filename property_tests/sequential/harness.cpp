// property_tests/sequential/harness.cpp — the real library behind the model's commands.
#include "harness.hpp"

#include "../model/behaviour.hpp"

#include <rapidcheck.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <initializer_list>
#include <optional>
#include <span>
#include <sstream>
#include <stdexcept>
#include <typeinfo>
#include <utility>

namespace cktest {

using namespace cancelkit;
using ckmodel::none;
using std::chrono::nanoseconds;

namespace {

// system_timer_service() is process-wide: its error handler (S15, also used by linked(std::
// stop_token) children) reports to the harness of the running test case.
std::atomic<harness*> current_harness{nullptr};

void install_system_handler() {
  static const bool installed = [] {
    system_timer_service().set_error_handler([](std::exception_ptr e) {
      if (harness* h = current_harness.load()) h->on_error("sys", e);
    });
    return true;
  }();
  static_cast<void>(installed);
}

std::string ids_of(const aggregate_exception& e) {
  std::vector<int> ids;
  for (const std::exception_ptr& p : e.exceptions()) {
    try {
      std::rethrow_exception(p);
    } catch (const test_error& t) {
      ids.push_back(t.id);
    } catch (...) {
      ids.push_back(-1);
    }
  }
  return ckmodel::errors_string(ids);
}

std::string set_string(const std::vector<int>& v) {
  std::string s = "{";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "}";
}

}  // namespace

void callback::operator()() const { h->on_callback(id); }

const bool harness::trace = std::getenv("CKTEST_TRACE") != nullptr;

harness::harness() : start_a_(svc_a_.now()), start_b_(svc_b_.now()) {
  install_system_handler();
  current_harness.store(this);
  svc_a_.set_error_handler([this](std::exception_ptr e) { on_error("A", e); });
  svc_b_.set_error_handler([this](std::exception_ptr e) { on_error("B", e); });
}

harness::~harness() {
  // Coroutines first (a suspended one withdraws from its source and its service: S28), then
  // registrations, tokens and sources (the services outlive them all).
  for (await_slot& a : awaits_) a.coroutine.destroy();
  reg_slots_.clear();
  stops_.clear();
  tokens_.clear();
  handles_.clear();
  current_harness.store(nullptr);
}

timer_service& harness::service(ckmodel::timers svc) {
  switch (svc) {
    case ckmodel::timers::a: return svc_a_;
    case ckmodel::timers::b: return svc_b_;
    case ckmodel::timers::system: break;
  }
  return system_timer_service();
}

// Timers of system_timer_service() would fire in real time: the suite arms them an hour ahead
// (the model does the same; which service a source uses is the model's knowledge).
std::int64_t harness::effective_delay(int h, std::int64_t ns) const {
  const int s = truth.handles[static_cast<std::size_t>(h)].src;
  if (s == none) return ns;
  if (truth.sources[static_cast<std::size_t>(s)].svc == ckmodel::timers::system && ns > 0 &&
      ns != ckmodel::no_timer)
    return ckmodel::one_hour_ns;
  return ns;
}

std::string harness::describe_current_exception() {
  try {
    throw;
  } catch (const test_error& e) {
    return "threw test_error#" + std::to_string(e.id);
  } catch (const aggregate_exception& e) {
    return "threw " + ids_of(e);
  } catch (const std::invalid_argument&) {
    return "threw invalid_argument";
  } catch (const std::exception& e) {
    return std::string("threw unexpected ") + typeid(e).name() + ": " + e.what();
  } catch (...) {
    return "threw unexpected non-std exception";
  }
}

// ---- callbacks -------------------------------------------------------------------------------

void harness::on_callback(int id) {
  emit("cb#" + std::to_string(id) + " ran");
  const reg_info info = regs_[static_cast<std::size_t>(id)];
  if (ckmodel::perform(*this, id, info.what, info.slot)) throw test_error{id};
}

void harness::on_error(const char* svc, const std::exception_ptr& e) {
  std::string what;
  try {
    std::rethrow_exception(e);
  } catch (const aggregate_exception& a) {
    what = ids_of(a);
  } catch (...) {
    what = "not an aggregate_exception";
  }
  emit(std::string("handler[") + svc + "] " + what);
}

// ---- source handles --------------------------------------------------------------------------

std::string harness::new_source(ckmodel::timers svc) {
  if (svc == ckmodel::timers::system) {
    handles_.emplace_back(cancellation_source());
  } else {
    handles_.emplace_back(cancellation_source(service(svc)));
  }
  return "ok";
}

std::string harness::new_source_after(ckmodel::timers svc, std::int64_t ns) {
  if (svc == ckmodel::timers::system) {
    if (ns > 0 && ns != ckmodel::no_timer) ns = ckmodel::one_hour_ns;
    handles_.emplace_back(cancellation_source(nanoseconds(ns)));
  } else {
    handles_.emplace_back(cancellation_source(nanoseconds(ns), service(svc)));
  }
  return "ok";
}

std::string harness::copy_handle(int h) {
  std::optional<cancellation_source> copy = handles_[static_cast<std::size_t>(h)];
  handles_.push_back(std::move(copy));
  return "ok";
}

std::string harness::move_handle(int h) {
  cancellation_source moved = std::move(*handles_[static_cast<std::size_t>(h)]);
  handles_.emplace_back(std::move(moved));
  return "ok";
}

std::string harness::drop_handle(int h) {
  if (h < 0 || static_cast<std::size_t>(h) >= handles_.size() ||
      !handles_[static_cast<std::size_t>(h)])
    return "absent";
  handles_[static_cast<std::size_t>(h)].reset();  // may be the handle whose cancel() is running
  return "ok";
}

// ---- tokens ----------------------------------------------------------------------------------

std::string harness::token(int h) {
  tokens_.push_back(handles_[static_cast<std::size_t>(h)]->token());
  return "ok";
}

std::string harness::copy_token(int t) {
  cancellation_token copy = tokens_[static_cast<std::size_t>(t)];
  tokens_.push_back(std::move(copy));
  return "ok";
}

std::string harness::none_token() {
  tokens_.push_back(tokens_.size() % 2 == 0 ? cancellation_token() : cancellation_token::none());
  return "ok";
}

std::string harness::drop_token(int t) {
  tokens_[static_cast<std::size_t>(t)] = cancellation_token();
  return "ok";
}

// ---- linked sources --------------------------------------------------------------------------

std::string harness::linked(const std::vector<int>& parent_tokens) {
  std::vector<cancellation_token> parents;
  for (int t : parent_tokens) parents.push_back(tokens_[static_cast<std::size_t>(t)]);
  switch (parents.size()) {  // both overloads
    case 1:
      handles_.emplace_back(cancellation_source::linked({parents[0]}));
      break;
    case 2:
      handles_.emplace_back(cancellation_source::linked({parents[0], parents[1]}));
      break;
    default:
      handles_.emplace_back(
          cancellation_source::linked(std::span<const cancellation_token>(parents)));
      break;
  }
  return "ok";
}

std::string harness::linked_std(int s) {
  handles_.emplace_back(cancellation_source::linked(stops_[static_cast<std::size_t>(s)]));
  return "ok";
}

std::string harness::to_stop_token(int t) {
  const cancellation_token& tok = tokens_[static_cast<std::size_t>(t)];
  stop_from_none_.push_back(tok == cancellation_token::none());
  stops_.push_back(tok.to_stop_token());
  return "ok";
}

// ---- registrations ---------------------------------------------------------------------------

bool harness::reg_present(int k) const {
  if (k < 0 || static_cast<std::size_t>(k) >= reg_slots_.size()) return false;
  const reg_slot& r = reg_slots_[static_cast<std::size_t>(k)];
  return r.reg.has_value() || r.cb != nullptr;
}

std::string harness::register_on(int t, bool raii, const ckmodel::behaviour& b) {
  if (t < 0 || static_cast<std::size_t>(t) >= tokens_.size()) return "absent";
  if (reg_slots_.size() >= ckmodel::max_reg_slots) return "full";
  const int k = static_cast<int>(reg_slots_.size());
  reg_slots_.emplace_back();
  slot_reg_.push_back(none);
  const int id = static_cast<int>(regs_.size());
  regs_.push_back(reg_info{b, k});
  try {
    if (raii) {
      auto cb = std::make_unique<cancellation_callback<callback>>(
          tokens_[static_cast<std::size_t>(t)], callback{this, id});
      reg_slots_[static_cast<std::size_t>(k)].cb = std::move(cb);
    } else {
      cancellation_registration reg =
          tokens_[static_cast<std::size_t>(t)].register_callback(callback{this, id});
      reg_slots_[static_cast<std::size_t>(k)].reg.emplace(std::move(reg));
    }
  } catch (...) {
    return describe_current_exception();  // S14
  }
  slot_reg_[static_cast<std::size_t>(k)] = id;
  return ckmodel::slot_name('r', k);
}

std::string harness::register_empty(int t, bool raii) {
  const cancellation_token& tok = tokens_[static_cast<std::size_t>(t)];
  try {
    if (raii) {
      cancellation_callback<std::function<void()>> cb(tok, std::function<void()>());
    } else if (t % 2 == 0) {
      static_cast<void>(tok.register_callback(std::function<void()>()));
    } else {
      void (*null_function)() = nullptr;
      static_cast<void>(tok.register_callback(null_function));
    }
  } catch (...) {
    return describe_current_exception();
  }
  return "no exception";
}

std::string harness::unregister(int k) {
  if (!reg_present(k)) return "absent";
  reg_slot& r = reg_slots_[static_cast<std::size_t>(k)];
  const bool removed = r.cb ? r.cb->unregister() : r.reg->unregister();
  return removed ? "true" : "false";
}

std::string harness::dispose(int k) {
  if (!reg_present(k)) return "absent";
  reg_slot& r = reg_slots_[static_cast<std::size_t>(k)];
  if (r.cb) return destroy(k);  // a cancellation_callback disposes in its destructor
  r.reg->dispose();
  return "ok";
}

std::string harness::destroy(int k) {
  if (!reg_present(k)) return "absent";
  reg_slot& r = reg_slots_[static_cast<std::size_t>(k)];
  slot_reg_[static_cast<std::size_t>(k)] = none;
  if (r.cb) {
    r.cb.reset();  // may be the callback that is running (S10)
  } else {
    r.reg.reset();
  }
  return "ok";
}

std::string harness::move_registration(int to, int from) {
  *reg_slots_[static_cast<std::size_t>(to)].reg =
      std::move(*reg_slots_[static_cast<std::size_t>(from)].reg);
  const int id = slot_reg_[static_cast<std::size_t>(from)];
  slot_reg_[static_cast<std::size_t>(to)] = id;
  slot_reg_[static_cast<std::size_t>(from)] = none;
  if (id != none) regs_[static_cast<std::size_t>(id)].slot = to;
  return "ok";
}

// ---- cancel, timers, reset -------------------------------------------------------------------

std::string harness::cancel(int h, bool with_reason, bool throw_first) {
  if (h < 0 || static_cast<std::size_t>(h) >= handles_.size() ||
      !handles_[static_cast<std::size_t>(h)])
    return "absent";
  cancel_options options;
  options.throw_on_first_exception = throw_first;
  if (with_reason) {
    options.reason =
        std::make_exception_ptr(user_reason{static_cast<int>(user_reasons_.size())});
    user_reasons_.push_back(options.reason);
  }
  cancellation_source& src = *handles_[static_cast<std::size_t>(h)];
  try {
    const bool requested = (!with_reason && !throw_first) ? src.cancel() : src.cancel(options);
    return requested ? "true" : "false";
  } catch (...) {
    return describe_current_exception();
  }
}

std::string harness::cancel_after(int h, std::int64_t ns) {
  ns = effective_delay(h, ns);
  try {
    handles_[static_cast<std::size_t>(h)]->cancel_after(nanoseconds(ns));
  } catch (...) {
    return describe_current_exception();
  }
  return "ok";
}

std::string harness::advance(ckmodel::timers svc, std::int64_t ns) {
  try {
    static_cast<manual_timer_service&>(service(svc)).advance(nanoseconds(ns));
  } catch (...) {
    return describe_current_exception();
  }
  return "ok";
}

std::string harness::try_reset(int h) {
  return handles_[static_cast<std::size_t>(h)]->try_reset() ? "true" : "false";
}

// ---- coroutines (S26-S28) ----------------------------------------------------------------------

namespace {

// A suspension point nothing resumes: the coroutine parks here after its awaiter resumed it.
struct park {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  void await_resume() const noexcept {}
};

// The frame holds `token` (a copy: the model counts it as a reference, S17/S21) until destroyed.
task await_cancelled_body(harness* h, int a, cancellation_token token) {
  std::string how;
  try {
    co_await cancelled(token);
    how = "resumed";
  } catch (const std::logic_error&) {
    how = "logic_error";  // S26/S23
  } catch (...) {
    how = "unexpected exception";
  }
  h->on_await(a, how);
  co_await park{};
  h->on_await(a, "resumed again");  // [C1]: the awaiter resumed it twice
}

task await_delay_body(harness* h, int a, std::optional<cancellation_token> token,
                      timer_service& timers, nanoseconds d) {
  std::string how;
  try {
    if (token) {
      co_await delay(d, *token, timers);
    } else {
      co_await delay(d, timers);
    }
    how = "elapsed";
  } catch (const operation_canceled& e) {
    // S27: carrying the awaited token.
    how = token && e.token() == *token ? "canceled(self)" : "canceled(other token)";
  } catch (...) {
    how = "unexpected exception";
  }
  h->on_await(a, how);
  co_await park{};
  h->on_await(a, "resumed again");
}

}  // namespace

void harness::on_await(int a, const std::string& how) {
  await_slot& slot = awaits_[static_cast<std::size_t>(a)];
  if (slot.resumptions++ == 0) slot.how = how;
  ++awaits_resumed;
  emit("aw#" + std::to_string(a) + " " + how);
}

std::string harness::await_cancelled(int t) {
  const int a = static_cast<int>(awaits_.size());
  awaits_.emplace_back();  // before the coroutine starts: it may resume at once
  regs_.push_back(reg_info{});  // the awaiter's node takes a registration id, as in the model
  awaits_.back().coroutine = await_cancelled_body(this, a, tokens_[static_cast<std::size_t>(t)]);
  return ckmodel::slot_name('a', a);
}

std::string harness::await_delay(int t, ckmodel::timers svc, std::int64_t ns) {
  const int a = static_cast<int>(awaits_.size());
  awaits_.emplace_back();
  regs_.push_back(reg_info{});
  std::optional<cancellation_token> token;
  if (t != none) token = tokens_[static_cast<std::size_t>(t)];
  awaits_.back().coroutine = await_delay_body(this, a, std::move(token), service(svc), nanoseconds(ns));
  return ckmodel::slot_name('a', a);
}

std::string harness::destroy_await(int a) {
  if (a < 0 || static_cast<std::size_t>(a) >= awaits_.size() ||
      awaits_[static_cast<std::size_t>(a)].destroyed)
    return "absent";
  await_slot& slot = awaits_[static_cast<std::size_t>(a)];
  slot.destroyed = true;
  slot.coroutine.destroy();  // suspended in the awaiter, or parked after it
  return "ok";
}

// ---- observation -----------------------------------------------------------------------------

std::string harness::reason_name(const std::exception_ptr& p) {
  if (!p) return "null";
  try {
    std::rethrow_exception(p);
  } catch (const user_reason& u) {
    const bool same = static_cast<std::size_t>(u.id) < user_reasons_.size() &&
                      user_reasons_[static_cast<std::size_t>(u.id)] == p;
    return "R" + std::to_string(u.id) + (same ? "" : "(a different object)");
  } catch (const deadline_exceeded& d) {
    if (std::string(d.what()) != "deadline exceeded") return "D(what() is wrong)";
    auto it = std::find(deadlines_seen_.begin(), deadlines_seen_.end(), p);
    if (it == deadlines_seen_.end()) {
      deadlines_seen_.push_back(p);
      return "D" + std::to_string(deadlines_seen_.size());
    }
    return "D" + std::to_string(it - deadlines_seen_.begin() + 1);
  } catch (...) {
    return "unexpected";
  }
}

// Keep in step with ckmodel::world::snapshot().
std::vector<std::string> harness::snapshot() {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < tokens_.size(); ++i) {
    const cancellation_token& t = tokens_[i];
    std::string throw_if = "-";
    try {
      t.throw_if_cancellation_requested();
    } catch (const operation_canceled& e) {
      throw_if = e.token() == t ? "self" : "other";
      if (std::string(e.what()) != "operation canceled") throw_if += "(what() is wrong)";
    } catch (...) {
      throw_if = "unexpected";
    }
    std::vector<int> eq;
    for (std::size_t j = 0; j < tokens_.size(); ++j)
      if (tokens_[j] == t) eq.push_back(static_cast<int>(j));
    const bool req = t.is_cancellation_requested();
    out.push_back(ckmodel::slot_name('t', static_cast<int>(i)) +
                  " none=" + (t == cancellation_token::none() ? "1" : "0") +
                  " req=" + (req ? "1" : "0") + " can=" + (t.can_be_canceled() ? "1" : "0") +
                  " reason=" + reason_name(t.cancellation_reason()) +
                  " wait0=" + (t.wait_for(nanoseconds(0)) ? "1" : "0") + " throw_if=" + throw_if +
                  " eq=" + set_string(eq));
  }
  for (std::size_t i = 0; i < handles_.size(); ++i) {
    if (!handles_[i]) {
      out.push_back(ckmodel::slot_name('h', static_cast<int>(i)) + " absent");
      continue;
    }
    const cancellation_source& h = *handles_[i];
    std::vector<int> eq_h, eq_t;
    for (std::size_t j = 0; j < handles_.size(); ++j)
      if (handles_[j] && *handles_[j] == h) eq_h.push_back(static_cast<int>(j));
    const cancellation_token ht = h.token();
    for (std::size_t j = 0; j < tokens_.size(); ++j)
      if (tokens_[j] == ht) eq_t.push_back(static_cast<int>(j));
    out.push_back(ckmodel::slot_name('h', static_cast<int>(i)) +
                  " req=" + (h.is_cancellation_requested() ? "1" : "0") +
                  " eq_h=" + set_string(eq_h) + " eq_t=" + set_string(eq_t));
  }
  for (std::size_t i = 0; i < reg_slots_.size(); ++i) {
    std::string line = ckmodel::slot_name('r', static_cast<int>(i));
    const reg_slot& r = reg_slots_[i];
    if (r.cb) {
      line += " raii";
    } else if (!r.reg) {
      line += " absent";
    } else {
      const cancellation_token rt = r.reg->token();
      std::vector<int> eq_t;
      for (std::size_t j = 0; j < tokens_.size(); ++j)
        if (tokens_[j] == rt) eq_t.push_back(static_cast<int>(j));
      line += std::string(" token_none=") + (rt == cancellation_token::none() ? "1" : "0") +
              " eq_t=" + set_string(eq_t);
    }
    out.push_back(line);
  }
  for (std::size_t i = 0; i < stops_.size(); ++i) {
    std::string line = ckmodel::slot_name('s', static_cast<int>(i)) +
                       " req=" + (stops_[i].stop_requested() ? "1" : "0");
    if (stop_from_none_[i]) line += std::string(" possible=") + (stops_[i].stop_possible() ? "1" : "0");
    out.push_back(line);
  }
  for (std::size_t i = 0; i < awaits_.size(); ++i) {
    const await_slot& a = awaits_[i];
    std::string line = ckmodel::slot_name('a', static_cast<int>(i));
    if (a.destroyed) {
      line += " destroyed";
    } else if (a.resumptions == 0) {
      line += " suspended";
    } else {
      line += " resumed(" + a.how + ")";
      if (a.resumptions > 1) line += " " + std::to_string(a.resumptions) + " times";
    }
    out.push_back(line);
  }
  out.push_back("clock A=" + std::to_string(nanoseconds(svc_a_.now() - start_a_).count()) +
                " B=" + std::to_string(nanoseconds(svc_b_.now() - start_b_).count()));
  return out;
}

// ---- the check -------------------------------------------------------------------------------

namespace {

// Enumerates every sequence of choices depth-first: replays a prefix, extends it with option 0.
class trail_chooser final : public ckmodel::chooser {
 public:
  int choose(int n) override {
    if (pos_ < trail_.size()) return trail_[pos_++].first;
    trail_.emplace_back(0, n);
    ++pos_;
    return 0;
  }
  void restart() { pos_ = 0; }
  // Moves to the next sequence after a failed run; false when all were tried.
  bool next() {
    trail_.resize(pos_);
    while (!trail_.empty() && trail_.back().first + 1 >= trail_.back().second) trail_.pop_back();
    if (trail_.empty()) return false;
    ++trail_.back().first;
    return true;
  }

 private:
  std::vector<std::pair<int, int>> trail_;
  std::size_t pos_ = 0;
};

constexpr int max_explanations_tried = 4000;

void side_by_side(std::ostringstream& os, const char* title, const std::vector<std::string>& real,
                  const std::vector<std::string>& model, bool only_differences) {
  os << title << " (library | model, option 0):\n";
  const std::size_t n = std::max(real.size(), model.size());
  for (std::size_t i = 0; i < n; ++i) {
    const std::string r = i < real.size() ? real[i] : "(nothing)";
    const std::string m = i < model.size() ? model[i] : "(nothing)";
    if (only_differences && r == m) continue;
    os << "  " << (r == m ? "  " : "≠ ") << r;
    if (r != m) os << "   |   " << m;
    os << "\n";
  }
}

}  // namespace

void harness::check(const std::string& what, const std::function<std::string(harness&)>& real,
                    const std::function<std::string(ckmodel::world&)>& model) {
  log_.clear();
  current_harness.store(this);
  const std::string got = real(*this);
  const std::vector<std::string> seen = snapshot();
  if (trace) {
    std::cerr << "  " << what << " -> " << got << "\n";
    for (const std::string& line : log_) std::cerr << "      " << line << "\n";
  }
  ++commands_run;
  callbacks_run += static_cast<long>(std::count_if(log_.begin(), log_.end(), [](const std::string& l) {
    return l.size() > 4 && l.compare(l.size() - 4, 4, " ran") == 0;
  }));

  trail_chooser choices;
  int tried = 0;
  do {
    ++tried;
    choices.restart();
    ckmodel::world w = truth;
    w.log.clear();
    w.choices = &choices;
    w.expected = &log_;
    try {
      const std::string want = model(w);
      if (want == got && w.log == log_ && w.snapshot() == seen) {
        w.choices = nullptr;
        w.expected = nullptr;
        truth = std::move(w);
        return;
      }
    } catch (const ckmodel::prune&) {
    }
  } while (tried < max_explanations_tried && choices.next());

  // Nothing explains it: show the library against the model's option-0 execution.
  ckmodel::world w = truth;
  w.log.clear();
  const std::string want = model(w);
  const std::vector<std::string> predicted = w.snapshot();
  std::ostringstream os;
  os << "the model cannot explain command `" << what << "` (" << tried
     << " allowed orders tried)\n";
  os << "  result: library `" << got << "`, model `" << want << "`\n";
  side_by_side(os, "callback log", log_, w.log, false);
  side_by_side(os, "observations that differ", seen, predicted, true);
  RC_FAIL(os.str());
}

}  // namespace cktest
