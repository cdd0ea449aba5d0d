// stress/model_check/coroutine_tests.cpp — Relacy model checking of the coroutine awaiters'
// resumption handshake ([C1]..[C6] in <cancelkit/coroutine.hpp>) and of the delay's timer entry
// ([T5] in impl/src/timer_service.cpp), issue 18.
//
// Nothing here is a copy: the awaiters are the header's own, compiled with CANCELKIT_SYNC_RELACY
// through detail/sync.hpp, and the library they call (link/dispose, the timer heap, the
// extension's orphan watches) is the model build of impl/src. Coroutine frames come from
// Relacy's operator new, so a timer entry or callback node left pointing into a destroyed
// frame is reported as ACCESS TO FREED MEMORY when it is next touched (the awaiter's phase is an
// rl::atomic, its timer fields rl::vars), and a frame nobody frees as MEMORY LEAK. A coroutine
// resumed twice is caught by its counter: after the awaited operation it parks at a second
// suspension point, so a second resumption of the awaiter lands there and adds 100.
//
// A manual_timer_service plays the timer thread (advance() runs run_due and fire, as the system
// service's worker would). Destruction races only what cannot claim the coroutine (S28: a
// destruction racing a resumption that has started is the caller's bug, [C5]).
#include "model_registry.hpp"

#include <cancelkit/cancelkit.hpp>
#include <cancelkit/coroutine.hpp>

#include <chrono>
#include <coroutine>
#include <exception>
#include <stdexcept>

namespace cancelkit_model {
namespace {

using cancelkit::cancellation_source;
using cancelkit::cancellation_token;
using cancelkit::manual_timer_service;
using cancelkit::timer_service;
using std::chrono::nanoseconds;

// Eager, and suspended at its end until destroyed.
struct model_task {
  struct promise_type {
    model_task get_return_object() noexcept {
      return model_task{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { RL_ASSERT(false); }
  };
  std::coroutine_handle<promise_type> h;
};

// A suspension point nothing resumes: a second resumption of the awaiter before it shows up
// as +100.
struct park {
  bool await_ready() noexcept { return false; }
  void await_suspend(std::coroutine_handle<>) noexcept {}
  void await_resume() noexcept {}
};

// What a coroutine under test did, in rl::vars: a read that the library did not order after
// the coroutine's writes is reported as a DATA RACE.
struct observed {
  rl::var<int> resumed;   // +1 after the awaited operation, +100 if resumed at the park
  rl::var<int> canceled;  // 1: operation_canceled (delay) / resumed by the cancel (cancelled)
  rl::var<int> unable;    // 1: std::logic_error (cancelled(): cannot be canceled, S23)
  void reset() {
    resumed($) = 0;
    canceled($) = 0;
    unable($) = 0;
  }
};

model_task delay_then_park(nanoseconds d, cancellation_token token, timer_service& timers,
                           observed* o) {
  try {
    co_await cancelkit::delay(d, token, timers);
  } catch (const cancelkit::operation_canceled&) {
    o->canceled($) = 1;
  }
  o->resumed($) = o->resumed($) + 1;
  co_await park{};
  o->resumed($) = o->resumed($) + 100;
}

model_task cancelled_then_park(cancellation_token token, observed* o) {
  try {
    co_await cancelkit::cancelled(token);
    o->canceled($) = 1;
  } catch (const std::logic_error&) {
    o->unable($) = 1;
  }
  o->resumed($) = o->resumed($) + 1;
  co_await park{};
  o->resumed($) = o->resumed($) + 100;
}

struct service_fixture {
  manual_timer_service* service = nullptr;
  void make_service() {
    service = new manual_timer_service();
    system_timers = service;  // cancelled() installs an extension on a source without a service
  }
  void drop_service() {
    system_timers = nullptr;
    delete service;
    service = nullptr;
  }
};

// =============================================================================================
// 1. delay: the timer vs cancel() ([C1] [C2] [C3]; S27): a coroutine suspended in
//    delay(5 ns, token, timers); thread 0 advances the clock by 5 ns (the timer is due) or by
//    1 ns (it is not), thread 1 cancels. Exactly one party resumes it, once, and the winner
//    takes the other off: with the timer not yet due the cancel wins, the frame is destroyed and
//    a later advance() must find no entry pointing into it. A claim that is not one
//    compare-exchange resumes it twice (+100: mutant 60); a cancel that leaves the timer armed
//    lets the last advance() touch the freed frame (mutant 63).
// =============================================================================================
struct delay_advance_vs_cancel : rl::test_suite<delay_advance_vs_cancel, 2>, service_fixture {
  cancellation_source* source = nullptr;
  observed o;
  model_task task;

  void before() {
    o.reset();
    make_service();
    source = new cancellation_source();
    task = delay_then_park(nanoseconds(5), source->token(), *service, &o);
  }
  void thread(unsigned i) {
    if (i == 0) {
      service->advance(nanoseconds(rl::rand(2) == 0 ? 5 : 1));
    } else {
      static_cast<void>(source->cancel());
    }
  }
  void after() {
    RL_ASSERT(o.resumed($) == 1);
    task.h.destroy();                    // parked: the awaiter is long gone
    service->advance(nanoseconds(100));  // an entry left in the heap is in freed memory now
    delete source;
    drop_service();
  }
};

// =============================================================================================
// 2. delay: claims while the awaiter is still registering ([C2] early claims; S27): thread 0
//    starts the coroutine (await_ready, await_suspend: arm, link, finish), thread 1 advances by
//    5 ns, thread 2 cancels. The cancel always happens, so the coroutine always resumes exactly
//    once: at await_ready (already cancelled), inside await_suspend (an early claim: it goes on
//    without suspending), or through the winner's resume. An early claim taken for `waiting`
//    suspends it with nobody left to resume it (lost resumption: mutant 61).
// =============================================================================================
struct delay_claims_while_arming : rl::test_suite<delay_claims_while_arming, 3>, service_fixture {
  cancellation_source* source = nullptr;
  observed o;
  model_task task;

  void before() {
    o.reset();
    make_service();
    source = new cancellation_source();
  }
  void thread(unsigned i) {
    if (i == 0) {
      task = delay_then_park(nanoseconds(5), source->token(), *service, &o);
    } else if (i == 1) {
      service->advance(nanoseconds(5));
    } else {
      static_cast<void>(source->cancel());
    }
  }
  void after() {
    RL_ASSERT(o.resumed($) == 1);
    task.h.destroy();
    service->advance(nanoseconds(100));
    delete source;
    drop_service();
  }
};

// =============================================================================================
// 3. delay: destruction while suspended vs the timer's heap ([C4] [T5]; S28): thread 0 destroys
//    the suspended coroutine, thread 1 advances the clock short of its deadline (run_due looks
//    at the heap, finds nothing due) and arms a source timer in the same heap. Afterwards the
//    cancel and the deadline must resume nothing: the destructor withdrew both the timer and the
//    registration. A destructor that leaves the registration linked lets cancel() run it in the
//    freed frame (resumption after destruction: mutant 62).
// =============================================================================================
struct delay_destroy_vs_timers : rl::test_suite<delay_destroy_vs_timers, 2>, service_fixture {
  cancellation_source* source = nullptr;
  cancellation_source* timed = nullptr;
  observed o;
  model_task task;

  void before() {
    o.reset();
    make_service();
    source = new cancellation_source();
    timed = new cancellation_source(*service);
    task = delay_then_park(nanoseconds(5), source->token(), *service, &o);
  }
  void thread(unsigned i) {
    if (i == 0) {
      task.h.destroy();
    } else {
      service->advance(nanoseconds(1));
      timed->cancel_after(nanoseconds(2));
    }
  }
  void after() {
    static_cast<void>(source->cancel());
    service->advance(nanoseconds(100));
    RL_ASSERT(o.resumed($) == 0);
    RL_ASSERT(timed->is_cancellation_requested());
    delete timed;
    delete source;
    drop_service();
  }
};

// =============================================================================================
// 4. cancelled(): cancel() vs the orphaning vs the await itself ([C1] [C2]; S26, S23):
//    thread 0 starts the coroutine (watch, link, finish), thread 1 holds the only source handle
//    and either cancels and drops it, or just drops it (the token can then no longer be
//    canceled). Exactly one resumption, with the matching outcome: resumed if cancellation was
//    requested, std::logic_error otherwise — at await_ready, as an early claim, or from the
//    cancelling / orphaning thread.
// =============================================================================================
struct cancelled_cancel_vs_orphan : rl::test_suite<cancelled_cancel_vs_orphan, 2>,
                                    service_fixture {
  cancellation_source* source = nullptr;
  cancellation_token token;
  observed o;
  model_task task;
  rl::var<int> did_cancel;

  void before() {
    o.reset();
    did_cancel($) = 0;
    make_service();
    source = new cancellation_source();
    token = source->token();
  }
  void thread(unsigned i) {
    if (i == 0) {
      task = cancelled_then_park(token, &o);
    } else {
      if (rl::rand(2) == 0) {
        static_cast<void>(source->cancel());
        did_cancel($) = 1;
      }
      delete source;
    }
  }
  void after() {
    RL_ASSERT(o.resumed($) == 1);
    RL_ASSERT(o.canceled($) == did_cancel($));
    RL_ASSERT(o.unable($) == 1 - did_cancel($));
    task.h.destroy();
    token = cancellation_token();
    drop_service();
  }
};

// =============================================================================================
// 5. cancelled(): destruction while suspended vs other registrations on the same token ([C4];
//    S28): two coroutines wait on one token; thread 0 destroys the first while it is suspended
//    (withdrawing its node and its orphan watch), thread 1 registers and unregisters a plain
//    callback on the same list. Then cancel() resumes the second coroutine only, once.
// =============================================================================================
struct cancelled_destroy_vs_registrations
    : rl::test_suite<cancelled_destroy_vs_registrations, 2>,
      service_fixture {
  cancellation_source* source = nullptr;
  observed first;
  observed second;
  model_task a;
  model_task b;

  void before() {
    first.reset();
    second.reset();
    make_service();
    source = new cancellation_source();
    a = cancelled_then_park(source->token(), &first);
    b = cancelled_then_park(source->token(), &second);
  }
  void thread(unsigned i) {
    if (i == 0) {
      a.h.destroy();
    } else {
      cancelkit::cancellation_registration r = source->token().register_callback([] {});
      static_cast<void>(r.unregister());
    }
  }
  void after() {
    static_cast<void>(source->cancel());
    RL_ASSERT(first.resumed($) == 0);
    RL_ASSERT(second.resumed($) == 1);
    RL_ASSERT(second.canceled($) == 1);
    b.h.destroy();
    delete source;
    drop_service();
  }
};

// =============================================================================================
// 6. delay: the timer taken due while await_suspend is still arming, then the frame ends at once
//    ([C2] [C4] [T5]; S27, S28): thread 1's advance() takes the just-armed timer and claims the
//    awaiter early (arming -> early_event); thread 0's await_suspend sees the early claim and
//    goes on without suspending, the coroutine finishes, and thread 0 destroys the frame. run_due
//    still clears the entry's `armed` after its claim, so await_suspend must wait for it (take
//    the service's mutex) before it lets the coroutine go on; otherwise that store lands in the
//    freed frame (found by the generated programs under Relacy, property_tests/model_programs;
//    mutant 64). When the coroutine did suspend, thread 1 resumes it (or, if its advance came
//    before the arming, the one after the join does); the frame is then destroyed after the
//    join.
// =============================================================================================
model_task delay_then_mark(nanoseconds d, timer_service& timers, rl::atomic<unsigned>* resumer,
                           observed* o) {
  co_await cancelkit::delay(d, timers);
  o->resumed($) = o->resumed($) + 1;
  // release: the write above happens-before the destroyer's acquire of the mark.
  (*resumer)($).store(rl::thread_index(), rl::mo_release);
}

struct delay_taken_while_arming_vs_frame_end
    : rl::test_suite<delay_taken_while_arming_vs_frame_end, 2>, service_fixture {
  static constexpr unsigned nobody = 99;
  observed o;
  rl::atomic<unsigned> resumer;
  model_task task;
  bool destroyed = false;

  void before() {
    o.reset();
    resumer($).store(nobody, rl::mo_relaxed);
    make_service();
    destroyed = false;
  }
  void thread(unsigned i) {
    if (i == 0) {
      task = delay_then_mark(nanoseconds(5), *service, &resumer, &o);
      // acquire: pairs with the mark's release. Thread 0 itself marked: it went on without
      // suspending (the early claim), so the frame is its to destroy now.
      if (resumer($).load(rl::mo_acquire) == 0) {
        task.h.destroy();
        destroyed = true;
      }
    } else {
      service->advance(nanoseconds(5));
    }
  }
  void after() {
    service->advance(nanoseconds(5));  // the advance came before the arming: fire it now
    RL_ASSERT(o.resumed($) == 1);
    if (!destroyed) task.h.destroy();
    drop_service();
  }
};

}  // namespace

const test_entry coroutine_tests[] = {
    {"delay_advance_vs_cancel", &run_test<delay_advance_vs_cancel>},
    {"delay_claims_while_arming", &run_test<delay_claims_while_arming>},
    {"delay_destroy_vs_timers", &run_test<delay_destroy_vs_timers>},
    {"cancelled_cancel_vs_orphan", &run_test<cancelled_cancel_vs_orphan>},
    {"cancelled_destroy_vs_registrations", &run_test<cancelled_destroy_vs_registrations>},
    {"delay_taken_while_arming_vs_frame_end", &run_test<delay_taken_while_arming_vs_frame_end>},
};
const std::size_t coroutine_test_count = sizeof(coroutine_tests) / sizeof(coroutine_tests[0]);

}  // namespace cancelkit_model
