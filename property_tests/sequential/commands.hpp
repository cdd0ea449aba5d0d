// property_tests/sequential/commands.hpp — the rc::state commands: one per operation of the
// contract, each runnable on the model and on the harness (same member names), each with a
// show() that reads like the call it makes.
#pragma once

#include "../model/model.hpp"
#include "harness.hpp"

#include <rapidcheck.h>
#include <rapidcheck/state.h>

#include <cstdint>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

namespace cktest {

using command_base = rc::state::Command<ckmodel::world, harness>;
using command_ptr = std::shared_ptr<const command_base>;

std::string duration_string(std::int64_t ns);

// Slot checks, shared by the operations' valid() members.
bool handle_ok(const ckmodel::world& w, int h);  // a present source handle (maybe empty)
bool token_ok(const ckmodel::world& w, int t);
bool reg_ok(const ckmodel::world& w, int r);  // a present registration of either kind
bool heap_reg_ok(const ckmodel::world& w, int r);  // a present cancellation_registration
bool await_ok(const ckmodel::world& w, int a);  // an await slot whose coroutine still exists

// ---- the operations --------------------------------------------------------------------------
// Each: valid(world) — may it run here; run(System&) — do it (model or harness); show(os).

struct new_source_op {
  ckmodel::timers svc;
  bool valid(const ckmodel::world&) const { return true; }
  template <class S> std::string run(S& s) const { return s.new_source(svc); }
  void show(std::ostream& os) const { os << "new_source(" << ckmodel::name(svc) << ")"; }
};

struct new_source_after_op {
  ckmodel::timers svc;
  std::int64_t ns;
  bool valid(const ckmodel::world&) const { return true; }
  template <class S> std::string run(S& s) const { return s.new_source_after(svc, ns); }
  void show(std::ostream& os) const {
    os << "new_source_after(" << ckmodel::name(svc) << ", " << duration_string(ns) << ")";
  }
};

struct copy_handle_op {
  int h;
  bool valid(const ckmodel::world& w) const { return handle_ok(w, h); }
  template <class S> std::string run(S& s) const { return s.copy_handle(h); }
  void show(std::ostream& os) const { os << "copy(h" << h << ")"; }
};

struct move_handle_op {
  int h;
  bool valid(const ckmodel::world& w) const { return handle_ok(w, h); }
  template <class S> std::string run(S& s) const { return s.move_handle(h); }
  void show(std::ostream& os) const { os << "move(h" << h << ")"; }
};

struct drop_handle_op {
  int h;
  bool valid(const ckmodel::world& w) const { return handle_ok(w, h); }
  template <class S> std::string run(S& s) const { return s.drop_handle(h); }
  void show(std::ostream& os) const { os << "drop(h" << h << ")"; }
};

struct token_op {
  int h;
  bool valid(const ckmodel::world& w) const { return handle_ok(w, h); }
  template <class S> std::string run(S& s) const { return s.token(h); }
  void show(std::ostream& os) const { os << "token(h" << h << ")"; }
};

struct copy_token_op {
  int t;
  bool valid(const ckmodel::world& w) const { return token_ok(w, t); }
  template <class S> std::string run(S& s) const { return s.copy_token(t); }
  void show(std::ostream& os) const { os << "copy(t" << t << ")"; }
};

struct none_token_op {
  bool valid(const ckmodel::world&) const { return true; }
  template <class S> std::string run(S& s) const { return s.none_token(); }
  void show(std::ostream& os) const { os << "none_token()"; }
};

struct drop_token_op {
  int t;
  bool valid(const ckmodel::world& w) const { return token_ok(w, t); }
  template <class S> std::string run(S& s) const { return s.drop_token(t); }
  void show(std::ostream& os) const { os << "drop(t" << t << ")"; }
};

struct linked_op {
  std::vector<int> parents;  // token slots
  bool valid(const ckmodel::world& w) const {
    for (int t : parents)
      if (!token_ok(w, t)) return false;
    return true;
  }
  template <class S> std::string run(S& s) const { return s.linked(parents); }
  void show(std::ostream& os) const {
    os << "linked(";
    for (std::size_t i = 0; i < parents.size(); ++i) os << (i ? ", t" : "t") << parents[i];
    os << ")";
  }
};

// `depth` linked sources, each below the previous one's token, starting below token slot t:
// each level adds a handle slot and a token slot.
struct chain_op {
  int t;
  int depth;
  bool valid(const ckmodel::world& w) const { return token_ok(w, t); }
  std::string run(ckmodel::world& s) const { return go(s, s.tokens.size(), s.handles.size()); }
  std::string run(harness& s) const {
    return go(s, s.truth.tokens.size(), s.truth.handles.size());
  }
  template <class S> std::string go(S& s, std::size_t tokens, std::size_t handles) const {
    int parent = t;
    for (int i = 0; i < depth; ++i) {
      s.linked({parent});
      s.token(static_cast<int>(handles++));
      parent = static_cast<int>(tokens++);
    }
    return "ok";
  }
  void show(std::ostream& os) const { os << "chain(t" << t << ", depth " << depth << ")"; }
};

// to_stop_token(t), linked() on that std::stop_token, and a token of the new source, at once.
struct std_child_op {
  int t;
  bool valid(const ckmodel::world& w) const { return token_ok(w, t); }
  std::string run(ckmodel::world& s) const { return go(s, s.stops.size(), s.handles.size()); }
  std::string run(harness& s) const { return go(s, s.truth.stops.size(), s.truth.handles.size()); }
  template <class S> std::string go(S& s, std::size_t stops, std::size_t handles) const {
    s.to_stop_token(t);
    s.linked_std(static_cast<int>(stops));
    s.token(static_cast<int>(handles));
    return "ok";
  }
  void show(std::ostream& os) const { os << "std_child(t" << t << ")"; }
};

struct linked_std_op {
  int st;
  bool valid(const ckmodel::world& w) const {
    return st >= 0 && static_cast<std::size_t>(st) < w.stops.size();
  }
  template <class S> std::string run(S& s) const { return s.linked_std(st); }
  void show(std::ostream& os) const { os << "linked(s" << st << ")"; }
};

struct to_stop_token_op {
  int t;
  bool valid(const ckmodel::world& w) const { return token_ok(w, t); }
  template <class S> std::string run(S& s) const { return s.to_stop_token(t); }
  void show(std::ostream& os) const { os << "to_stop_token(t" << t << ")"; }
};

struct register_op {
  int t;
  bool raii;
  ckmodel::behaviour what;
  bool valid(const ckmodel::world& w) const { return token_ok(w, t); }
  template <class S> std::string run(S& s) const { return s.register_on(t, raii, what); }
  void show(std::ostream& os) const {
    os << (raii ? "cancellation_callback(t" : "register_callback(t") << t << ", "
       << ckmodel::to_string(what) << ")";
  }
};

struct register_empty_op {
  int t;
  bool raii;
  bool valid(const ckmodel::world& w) const { return token_ok(w, t); }
  template <class S> std::string run(S& s) const { return s.register_empty(t, raii); }
  void show(std::ostream& os) const {
    os << (raii ? "cancellation_callback(t" : "register_callback(t") << t << ", empty)";
  }
};

struct unregister_op {
  int r;
  bool valid(const ckmodel::world& w) const { return reg_ok(w, r); }
  template <class S> std::string run(S& s) const { return s.unregister(r); }
  void show(std::ostream& os) const { os << "unregister(r" << r << ")"; }
};

struct dispose_op {
  int r;
  bool valid(const ckmodel::world& w) const { return reg_ok(w, r); }
  template <class S> std::string run(S& s) const { return s.dispose(r); }
  void show(std::ostream& os) const { os << "dispose(r" << r << ")"; }
};

struct destroy_op {
  int r;
  bool valid(const ckmodel::world& w) const { return reg_ok(w, r); }
  template <class S> std::string run(S& s) const { return s.destroy(r); }
  void show(std::ostream& os) const { os << "destroy(r" << r << ")"; }
};

struct move_registration_op {
  int to;
  int from;
  bool valid(const ckmodel::world& w) const {
    return to != from && heap_reg_ok(w, to) && heap_reg_ok(w, from);
  }
  template <class S> std::string run(S& s) const { return s.move_registration(to, from); }
  void show(std::ostream& os) const { os << "r" << to << " = move(r" << from << ")"; }
};

struct cancel_op {
  int h;
  bool with_reason;
  bool throw_first;
  bool valid(const ckmodel::world& w) const { return handle_ok(w, h); }
  template <class S> std::string run(S& s) const { return s.cancel(h, with_reason, throw_first); }
  void show(std::ostream& os) const {
    os << "cancel(h" << h << (with_reason ? ", reason" : "")
       << (throw_first ? ", throw_on_first_exception" : "") << ")";
  }
};

struct cancel_after_op {
  int h;
  std::int64_t ns;
  bool valid(const ckmodel::world& w) const { return handle_ok(w, h); }
  template <class S> std::string run(S& s) const { return s.cancel_after(h, ns); }
  void show(std::ostream& os) const {
    os << "cancel_after(h" << h << ", " << duration_string(ns) << ")";
  }
};

struct advance_op {
  ckmodel::timers svc;
  std::int64_t ns;
  bool valid(const ckmodel::world&) const { return true; }
  template <class S> std::string run(S& s) const { return s.advance(svc, ns); }
  void show(std::ostream& os) const {
    os << "advance(" << ckmodel::name(svc) << ", " << duration_string(ns) << ")";
  }
};

struct try_reset_op {
  int h;
  bool valid(const ckmodel::world& w) const { return handle_ok(w, h); }
  template <class S> std::string run(S& s) const { return s.try_reset(h); }
  void show(std::ostream& os) const { os << "try_reset(h" << h << ")"; }
};

// S26: a coroutine does `co_await cancelled(t)` (await slot a<next>).
struct await_cancelled_op {
  int t;
  bool valid(const ckmodel::world& w) const { return token_ok(w, t); }
  template <class S> std::string run(S& s) const { return s.await_cancelled(t); }
  void show(std::ostream& os) const { os << "await_cancelled(t" << t << ")"; }
};

// S27: a coroutine does `co_await delay(ns, t, svc)`, or `delay(ns, svc)` when t is none.
struct await_delay_op {
  int t;  // token slot, or none: no token
  ckmodel::timers svc;  // a manual service: A or B
  std::int64_t ns;
  bool valid(const ckmodel::world& w) const { return t == ckmodel::none || token_ok(w, t); }
  template <class S> std::string run(S& s) const { return s.await_delay(t, svc, ns); }
  void show(std::ostream& os) const {
    os << "await_delay(" << (t == ckmodel::none ? std::string("no token") : "t" + std::to_string(t))
       << ", " << ckmodel::name(svc) << ", " << duration_string(ns) << ")";
  }
};

// S28: destroys the coroutine of await slot a, suspended or resumed (parked).
struct destroy_await_op {
  int a;
  bool valid(const ckmodel::world& w) const { return await_ok(w, a); }
  template <class S> std::string run(S& s) const { return s.destroy_await(a); }
  void show(std::ostream& os) const { os << "destroy_await(a" << a << ")"; }
};

// ---- the rc::state command around an operation -------------------------------------------------

template <class Op>
class command final : public command_base {
 public:
  explicit command(Op op) : op_(std::move(op)) {}

  void checkPreconditions(const ckmodel::world& w) const override { RC_PRE(op_.valid(w)); }

  // The generation-time model: option 0 wherever the contract allows several outcomes.
  void apply(ckmodel::world& w) const override {
    w.log.clear();
    op_.run(w);
  }

  void run(const ckmodel::world&, harness& h) const override {
    // The harness's own model may have taken another allowed order than the generation-time
    // one; a command that does not fit it is skipped on both sides.
    if (!op_.valid(h.truth)) return;
    std::ostringstream name;
    op_.show(name);
    const Op op = op_;
    h.check(name.str(), [op](harness& s) { return op.run(s); },
            [op](ckmodel::world& s) { return op.run(s); });
  }

  void show(std::ostream& os) const override { op_.show(os); }

 private:
  Op op_;
};

template <class Op>
command_ptr make_command(Op op) {
  return std::make_shared<const command<Op>>(std::move(op));
}

// The generator: the next command for model state `w` (see commands.cpp for the biases).
rc::Gen<command_ptr> next_command(const ckmodel::world& w);

}  // namespace cktest
