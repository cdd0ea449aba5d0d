// property_tests/sequential/harness.hpp — the system under test: real cancelkit objects in slots
// numbered like the model's, the same commands as ckmodel::world with the same result strings,
// and the check that compares the two after every command.
#pragma once

#include "../model/model.hpp"

#include <cancelkit/cancelkit.hpp>
#include <cancelkit/coroutine.hpp>

#include "coro_task.hpp"

#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

namespace cktest {

struct test_error {  // what a throwing test callback throws
  int id;
};
struct user_reason {  // the object behind cancel({.reason = ...})
  int id;
};

class harness;

// The callback type of every registration: forwards to the harness and touches nothing of its
// own afterwards, so it may destroy its own cancellation_callback (S10).
struct callback {
  harness* h;
  int id;
  void operator()() const;
};

class harness {
 public:
  harness();
  ~harness();
  harness(const harness&) = delete;
  harness& operator=(const harness&) = delete;

  // ---- the commands of ckmodel::world, on the real library -----------------------------------
  std::string new_source(ckmodel::timers svc);
  std::string new_source_after(ckmodel::timers svc, std::int64_t ns);
  std::string copy_handle(int h);
  std::string move_handle(int h);
  std::string drop_handle(int h);
  std::string token(int h);
  std::string copy_token(int t);
  std::string none_token();
  std::string drop_token(int t);
  std::string linked(const std::vector<int>& parent_tokens);
  std::string linked_std(int s);
  std::string to_stop_token(int t);
  std::string register_on(int t, bool raii, const ckmodel::behaviour& b);
  std::string register_empty(int t, bool raii);
  std::string unregister(int r);
  std::string dispose(int r);
  std::string destroy(int r);
  std::string move_registration(int to, int from);
  std::string cancel(int h, bool with_reason, bool throw_first);
  std::string cancel_after(int h, std::int64_t ns);
  std::string advance(ckmodel::timers svc, std::int64_t ns);
  std::string try_reset(int h);
  std::string await_cancelled(int t);
  std::string await_delay(int t, ckmodel::timers svc, std::int64_t ns);
  std::string destroy_await(int a);
  std::vector<std::string> snapshot();

  void emit(std::string line) { log_.push_back(std::move(line)); }
  void on_callback(int id);
  void on_error(const char* svc, const std::exception_ptr& e);
  // An awaiting coroutine of slot `a` was resumed and saw `how` (logged "aw#<a> <how>").
  void on_await(int a, const std::string& how);

  // Runs one command on the library, then finds an execution of the model that explains the
  // result, the callback log and every observable value; fails the property (RC_FAIL) if none.
  // `model` runs the same command on a model world.
  void check(const std::string& what, const std::function<std::string(harness&)>& real,
             const std::function<std::string(ckmodel::world&)>& model);

  // The model state that explained everything so far (commands are checked against it).
  ckmodel::world truth;

  // Statistics of this case (reported through RC_TAG) and CKTEST_TRACE=1: print every command.
  long commands_run = 0;
  long callbacks_run = 0;
  long awaits_resumed = 0;  // coroutine resumptions (S26, S27)
  static const bool trace;

 private:
  cancelkit::timer_service& service(ckmodel::timers svc);
  std::int64_t effective_delay(int h, std::int64_t ns) const;
  bool reg_present(int k) const;
  std::string reason_name(const std::exception_ptr& p);
  std::string describe_current_exception();

  cancelkit::manual_timer_service svc_a_;  // first: outlives every source
  cancelkit::manual_timer_service svc_b_;
  cancelkit::timer_service::clock::time_point start_a_, start_b_;

  std::deque<std::optional<cancelkit::cancellation_source>> handles_;
  std::deque<cancelkit::cancellation_token> tokens_;
  struct reg_slot {
    std::optional<cancelkit::cancellation_registration> reg;
    std::unique_ptr<cancelkit::cancellation_callback<callback>> cb;
  };
  std::deque<reg_slot> reg_slots_;
  std::vector<int> slot_reg_;  // registration id held by each registration slot, or none
  std::deque<std::stop_token> stops_;
  std::vector<bool> stop_from_none_;
  // Coroutines that awaited (S26-S28): each records how it resumed, then parks at a second
  // suspension point, so that a second resumption of its awaiter is seen ("resumed again").
  struct await_slot {
    task coroutine;
    std::string how;
    int resumptions = 0;
    bool destroyed = false;
  };
  std::deque<await_slot> awaits_;

  struct reg_info {
    ckmodel::behaviour what;
    int slot;
  };
  std::vector<reg_info> regs_;
  std::vector<std::exception_ptr> user_reasons_;
  std::vector<std::exception_ptr> deadlines_seen_;
  std::vector<std::string> log_;
};

}  // namespace cktest
