// stress/model_check/library_tests.cpp — Relacy model checking of the layers around the core:
// the timer protocol ([T1]..[T4], impl/src/timer_service.cpp), the source extension and the
// std::stop_source bridge ([B1]..[B6], impl/src/source_extension.hpp), driven through the public
// API (cancellation_source, cancellation_token, manual_timer_service).
//
// Nothing here is a copy: these tests link the library's own impl/src files, compiled with
// CANCELKIT_SYNC_RELACY, so the service's mutex, the `armed` flag, the fields [T1] guards
// (sync::var: an access the mutex does not order is reported as a data race), the bridge's
// mutex and wait, and the per-thread drain pointer all run on Relacy's scheduler and memory
// model. The state's memory comes from Relacy's operator new, so a timer that touches a freed
// state is reported as ACCESS TO FREED MEMORY, and a state nobody frees as MEMORY LEAK.
//
// A manual_timer_service plays the timer thread: `advance()` on one model thread is run_due()
// and fire() on that thread, as the system service's worker would run them.
//
// What the model does not see: the inside of std::stop_source (libstdc++'s own atomics and
// futex; model threads are fibers of one OS thread, so its thread-id checks see one thread);
// the system timer service's threads (model_platform.cpp).
#include "model_registry.hpp"

#include <cancelkit/cancelkit.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <stop_token>

namespace cancelkit_model {
namespace {

using cancelkit::cancellation_registration;
using cancelkit::cancellation_source;
using cancelkit::cancellation_token;
using cancelkit::manual_timer_service;
using std::chrono::nanoseconds;

bool is_deadline(const std::exception_ptr& e) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const cancelkit::deadline_exceeded&) {
    return true;
  } catch (...) {
    return false;
  }
}

// The service of one iteration, created first and destroyed last (it must outlive every source
// that uses it), also standing in for system_timer_service().
struct service_fixture {
  manual_timer_service* service = nullptr;

  void make_service() {
    service = new manual_timer_service();
    system_timers = service;
  }
  void drop_service() {
    system_timers = nullptr;
    delete service;
    service = nullptr;
  }
};

// A registration whose callback counts its runs in an rl::var: a reader that the library did
// not order after the callback is reported as a data race.
struct counted_callback {
  rl::var<int> runs;
  std::optional<cancellation_registration> registration;

  void attach(const cancellation_token& t) {
    runs($) = 0;
    registration.emplace(t.register_callback([this] { runs($) = runs($) + 1; }));
  }
  int count() { return runs($); }
  void detach() { registration.reset(); }
};

// The shape most timer tests start from: a source on the iteration's service, one counted
// callback on it, and a timer armed for 1 ns (the first advance() fires it).
struct timed_source_fixture : service_fixture {
  cancellation_source* source = nullptr;
  counted_callback callback;

  void make_timed_source() {
    make_service();
    source = new cancellation_source(*service);
    callback.attach(source->token());
    source->cancel_after(nanoseconds(1));
  }
  void drop_timed_source() {
    callback.detach();
    delete source;
    drop_service();
  }
};

// =============================================================================================
// 1. the timer fires while the last handle drops ([T2]; S10, S17; issue 16, defect 1): thread 0
//    runs the due timer (advance), thread 1 destroys the source's only handle. The timer holds
//    no reference: run_due must take one (try_add_ref) while `armed` still keeps the state's
//    destructor (forget) waiting for the service's mutex. Clearing `armed` first, and forget()
//    trusting that without the mutex, lets thread 1 free the state while thread 0 is about to
//    revive it: ACCESS TO FREED MEMORY.
// =============================================================================================
struct timer_fires_vs_last_handle : rl::test_suite<timer_fires_vs_last_handle, 2>,
                                    service_fixture {
  cancellation_source* source = nullptr;

  void before() {
    make_service();
    source = new cancellation_source(*service);
    source->cancel_after(nanoseconds(1));
  }
  void thread(unsigned i) {
    if (i == 0) {
      service->advance(nanoseconds(1));
    } else {
      delete source;
    }
  }
  void after() { drop_service(); }
};

// =============================================================================================
// 2. the timer fires against try_reset() (S18, [T3]): thread 0 runs the due timer, thread 1
//    calls try_reset(). Either the reset came first (true: the timer is disarmed, the
//    registration dropped, the source never cancelled) or the timer did (false: the source is
//    cancelled and the callback ran once). A reset that slips between "taken off the map" and
//    "source cancelled" returns true and is cancelled anyway (dotnet/runtime#60182).
// =============================================================================================
struct timer_fires_vs_try_reset : rl::test_suite<timer_fires_vs_try_reset, 2>,
                                  timed_source_fixture {
  bool reset = false;
  void before() { make_timed_source(); }
  void thread(unsigned i) {
    if (i == 0) {
      service->advance(nanoseconds(1));
    } else {
      reset = source->try_reset();
    }
  }
  void after() {
    service->advance(nanoseconds(1000));  // a timer the reset failed to disarm fires now
    RL_ASSERT(source->is_cancellation_requested() == !reset);
    RL_ASSERT(callback.count() == (reset ? 0 : 1));
    if (!reset) RL_ASSERT(is_deadline(source->token().cancellation_reason()));
    drop_timed_source();
  }
};

// =============================================================================================
// 3. the timer fires against a cancel_after() re-arm (S17, [T1] [T3] [T4]): thread 0 runs the
//    1 ns timer, thread 1 re-arms it for 10 ns from now. The re-arm replaces the timer if it
//    comes first (nothing is due at 1 ns), or the source is already cancelled and the re-arm
//    does nothing, or it arms a second timer while the first is firing, which the cancellation
//    then disarms. In every case, once time has passed both deadlines the source is cancelled
//    exactly once, with deadline_exceeded, and dropping the last handle takes the timer off the
//    service: an entry left in the map while `armed` is false ([T1]: a re-arm that treats the
//    firing entry as armed) survives the state's destruction, and the service's next advance()
//    touches freed memory.
// =============================================================================================
struct timer_fires_vs_rearm : rl::test_suite<timer_fires_vs_rearm, 2>, timed_source_fixture {
  void before() { make_timed_source(); }
  void thread(unsigned i) {
    if (i == 0) {
      service->advance(nanoseconds(1));
    } else {
      source->cancel_after(nanoseconds(10));
    }
  }
  void after() {
    // Only a re-arm that came first leaves a timer that should fire (at 11 ns); a cancelled
    // source must have none left, which the advance after the free below checks.
    if (!source->is_cancellation_requested()) service->advance(nanoseconds(100));
    RL_ASSERT(source->is_cancellation_requested());
    RL_ASSERT(callback.count() == 1);
    RL_ASSERT(is_deadline(source->token().cancellation_reason()));
    callback.detach();
    delete source;
    service->advance(nanoseconds(100));  // no timer of the freed source may be left [T2]
    drop_service();
  }
};

// =============================================================================================
// 4. a sole owner frees the state while another handle installed the extension ([I15]; issue
//    16, defect 2), with the library's own timer: thread 1, a second source handle, arms a
//    timer (installing the extension), drops its handle and then runs the timer; thread 0 drops
//    the first handle, which may take the sole-owner free. That free is only sound if it sees
//    the extension, i.e. reads `ext` after the acquire load that found `refs == 1`; read before,
//    a stale null frees the state under the firing timer (ACCESS TO FREED MEMORY) or leaks the
//    extension (MEMORY LEAK). Test 13 of model_check.cpp checks the same free with a stand-in
//    timer; this one runs arm(), run_due() and forget() themselves.
// =============================================================================================
struct sole_owner_vs_timer : rl::test_suite<sole_owner_vs_timer, 2>, service_fixture {
  cancellation_source* first = nullptr;
  cancellation_source* second = nullptr;

  void before() {
    make_service();
    first = new cancellation_source(*service);
    second = new cancellation_source(*first);
  }
  void thread(unsigned i) {
    if (i == 0) {
      delete first;
    } else {
      second->cancel_after(nanoseconds(1));
      delete second;
      service->advance(nanoseconds(1));
    }
  }
  void after() { drop_service(); }
};

// =============================================================================================
// 5. the bridge is requested while to_stop_token() is called ([B6]; S20, S22): a child is linked
//    to the source through `to_stop_token()`. Thread 0 cancels the source (on_requested requests
//    the bridge), thread 1 calls to_stop_token() on it (which requests the bridge itself if it
//    finds the source cancelled). Whichever loses the bridge's request_stop() must not let
//    cancel() return before the winner has run the child's trigger: when cancel() returns, the
//    child is cancelled and its callback's write is visible (S20). Thread 1's token reports the
//    request if thread 1 saw the source cancelled first.
// =============================================================================================
struct bridge_vs_to_stop_token : rl::test_suite<bridge_vs_to_stop_token, 2>, service_fixture {
  cancellation_source* source = nullptr;
  cancellation_source* child = nullptr;
  std::stop_token bridge_token;
  counted_callback child_callback;

  void before() {
    make_service();
    source = new cancellation_source(*service);
    bridge_token = source->token().to_stop_token();
    child = new cancellation_source(cancellation_source::linked(bridge_token));
    child_callback.attach(child->token());
  }
  void thread(unsigned i) {
    if (i == 0) {
      RL_ASSERT(source->cancel());
      RL_ASSERT(child->is_cancellation_requested());  // S20
      RL_ASSERT(child_callback.count() == 1);         // and ordered before cancel()'s return
    } else {
      const bool seen = source->is_cancellation_requested();
      const std::stop_token t = source->token().to_stop_token();
      RL_ASSERT(t.stop_possible());
      if (seen) RL_ASSERT(t.stop_requested());
    }
  }
  void after() {
    RL_ASSERT(bridge_token.stop_requested());
    child_callback.detach();
    delete child;
    bridge_token = std::stop_token();
    delete source;
    drop_service();
  }
};

// =============================================================================================
// 6. advance() races cancel() (S2, S16, S17, [T4]): thread 0 runs the due timer, thread 1
//    cancels. Exactly one of them requests the source: cancel() returns true iff the reason is
//    its own (none given: operation_canceled is not deadline_exceeded), the callback runs once,
//    and the timer's canceller is released by exactly one party (on_requested's disarm or the
//    firing), so the last handle frees the state, the extension and the map entry.
// =============================================================================================
struct advance_vs_cancel : rl::test_suite<advance_vs_cancel, 2>, timed_source_fixture {
  bool cancelled_by_call = false;
  void before() { make_timed_source(); }
  void thread(unsigned i) {
    if (i == 0) {
      service->advance(nanoseconds(1));
    } else {
      cancelled_by_call = source->cancel();
    }
  }
  void after() {
    RL_ASSERT(source->is_cancellation_requested());
    RL_ASSERT(callback.count() == 1);
    RL_ASSERT(is_deadline(source->token().cancellation_reason()) == !cancelled_by_call);
    RL_ASSERT(!source->try_reset());  // cancelled (S18), not stuck "firing"
    drop_timed_source();
  }
};

// =============================================================================================
// 7. a timer's callback throws while another thread replaces the error handler (S15; API:
//    set_error_handler is thread-safe): thread 0 runs the due timer, whose callback throws;
//    thread 1 installs a second handler. Exactly one of the two handlers receives the
//    aggregate_exception, once, holding the callback's exception. The service's handler is a
//    sync::var guarded by the service's mutex [T1]: a report() that copies it without the
//    mutex is a DATA RACE with the setter.
// =============================================================================================
struct timer_error_vs_set_handler : rl::test_suite<timer_error_vs_set_handler, 2>,
                                    service_fixture {
  struct callback_error {};
  cancellation_source* source = nullptr;
  std::optional<cancellation_registration> registration;
  rl::var<int> first_handler_calls;
  rl::var<int> second_handler_calls;
  rl::var<int> well_formed;  // the aggregate held exactly the callback's exception

  static bool holds_callback_error(const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const cancelkit::aggregate_exception& a) {
      if (a.exceptions().size() != 1) return false;
      try {
        std::rethrow_exception(a.exceptions().front());
      } catch (const callback_error&) {
        return true;
      } catch (...) {
        return false;
      }
    } catch (...) {
      return false;
    }
  }

  void before() {
    first_handler_calls($) = 0;
    second_handler_calls($) = 0;
    well_formed($) = 0;
    make_service();
    service->set_error_handler([this](std::exception_ptr e) {
      first_handler_calls($) = first_handler_calls($) + 1;
      if (holds_callback_error(e)) well_formed($) = well_formed($) + 1;
    });
    source = new cancellation_source(*service);
    registration.emplace(source->token().register_callback([] { throw callback_error(); }));
    source->cancel_after(nanoseconds(1));
  }
  void thread(unsigned i) {
    if (i == 0) {
      service->advance(nanoseconds(1));
    } else {
      service->set_error_handler([this](std::exception_ptr e) {
        second_handler_calls($) = second_handler_calls($) + 1;
        if (holds_callback_error(e)) well_formed($) = well_formed($) + 1;
      });
    }
  }
  void after() {
    RL_ASSERT(first_handler_calls($) + second_handler_calls($) == 1);
    RL_ASSERT(well_formed($) == 1);
    registration.reset();
    delete source;
    drop_service();
  }
};

// =============================================================================================
// 8. a timed wait vs cancel() (S3, S14 wait_for; issue 16, defect 3's path): thread 0 waits with
//    a timeout on the token, thread 1 writes, then cancels. The model's timed sleep never times
//    out (it explores orders, not time), so wait_for() must return true, and the canceller's
//    write must be visible after it: the timed path re-checks with the same acquire load as
//    wait(), which a relaxed re-check would break (DATA RACE on `payload`).
// =============================================================================================
struct timed_wait_vs_cancel : rl::test_suite<timed_wait_vs_cancel, 2> {
  cancellation_source* source = nullptr;
  rl::var<int> payload;

  void before() {
    payload($) = 0;
    source = new cancellation_source();
  }
  void thread(unsigned i) {
    if (i == 0) {
      RL_ASSERT(source->token().wait_for(std::chrono::hours(1)));
      RL_ASSERT(payload($) == 1);  // S3: what the canceller did before cancel() is visible
    } else {
      payload($) = 1;
      RL_ASSERT(source->cancel());
    }
  }
  void after() { delete source; }
};

}  // namespace

const test_entry library_tests[] = {
    {"timer_fires_vs_last_handle", &run_test<timer_fires_vs_last_handle>},
    {"timer_fires_vs_try_reset", &run_test<timer_fires_vs_try_reset>},
    {"timer_fires_vs_rearm", &run_test<timer_fires_vs_rearm>},
    {"sole_owner_vs_timer", &run_test<sole_owner_vs_timer>},
    {"bridge_vs_to_stop_token", &run_test<bridge_vs_to_stop_token>},
    {"advance_vs_cancel", &run_test<advance_vs_cancel>},
    {"timer_error_vs_set_handler", &run_test<timer_error_vs_set_handler>},
    {"timed_wait_vs_cancel", &run_test<timed_wait_vs_cancel>},
};
const std::size_t library_test_count = sizeof(library_tests) / sizeof(library_tests[0]);

}  // namespace cancelkit_model
