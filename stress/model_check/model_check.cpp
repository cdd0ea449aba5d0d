// stress/model_check/model_check.cpp — Relacy model checking of cancelkit's concurrent core.
//
// This instantiates the library's OWN detail/state.hpp (no copy): CANCELKIT_SYNC_RELACY makes
// detail/sync.hpp map the core's atomics, thread ids, spin pauses and futex waits onto Relacy's
// simulated atomics and scheduler. Relacy then runs each test below under many schedules and a
// relaxed memory model (stale reads allowed wherever the memory orders allow them) and reports
// data races on rl::var, accesses to freed memory, leaks, double frees, deadlocks, livelocks and
// failed RL_ASSERTs.
//
// The tests play the part of the public handles directly on `state` (add_ref/release for tokens,
// add_canceller/release_canceller for source handles, link/unregister/dispose for
// registrations), with callback nodes whose invoke functions write rl::var data: a callback's
// writes racing with a reader that the core failed to order after them is reported as a race.
//
//   cancelkit-model-check [--iterations N] [--test NAME]... [--scheduler random|bound|full]
//                         [--list]
// Exit status 0 iff every selected test passed.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "model_registry.hpp"

#include <cancelkit/detail/state.hpp>

#include "core/state_slow_paths.hpp"  // the core's cold paths (impl/src), same code

namespace {

using cancelkit_model::library_test_count;
using cancelkit_model::coroutine_test_count;
using cancelkit_model::coroutine_tests;
using cancelkit_model::library_tests;
using cancelkit_model::run_test;
using cancelkit_model::test_entry;
using cancelkit::detail::callback_node;
using cancelkit::detail::dispatch_outcome;
using cancelkit::detail::link_result;
using cancelkit::detail::owned_callback_node;
using cancelkit::detail::parent_link;
using cancelkit::detail::state;
using cancelkit::detail::wait_result;

constexpr std::chrono::nanoseconds no_timeout{-1};

// ---- handle emulation (what the public layer does, see cancellation_*.hpp) ----------------------

// A state with `sources` source handles and `tokens` other references (tokens, registrations).
state* make_state(unsigned sources, unsigned refs) {
  state* s = new state();  // one reference, one canceller: the first source handle
  for (unsigned i = 1; i < sources; ++i) {
    s->add_ref();
    s->add_canceller();
  }
  for (unsigned i = 0; i < refs; ++i) s->add_ref();
  return s;
}

void drop_source(state* s) { state::release_source_handle(s); }  // ~cancellation_source

void drop_ref(state* s) { state::release(s); }  // ~cancellation_token and the like

// cancellation_source::cancel() without a reason, step for step as the library's inline one:
// the idle request from the guess 0 [I16], with the spinning lock when that finds the lock
// held, then the full request from the lock it holds when the state has work.
dispatch_outcome cancel(state* s) {
  std::uint32_t w = s->try_request_if_idle();
  if (w == state::IDLE_BUSY) w = s->request_if_idle();
  if (w & state::LOCKED) {
    dispatch_outcome out;
    out.requested = w == state::IDLE_REQUESTED;
    return out;
  }
  return state::request_locked(s, w, nullptr, false);
}

// register_callback on a live source: links the node, or runs it inline when cancellation came
// first (S6). The source can still be cancelled: a refusal (S7) is a failure.
void register_or_run_inline(state* s, callback_node& n) {
  switch (s->link(&n, false)) {
    case link_result::linked: break;
    case link_result::already_requested: n.invoke(&n); break;  // S6: inline
    case link_result::cannot_cancel: RL_ASSERT(false); break;
  }
}

// A callback node that runs `fn(test, id)`.
template <class Test>
struct node : callback_node {
  Test* test = nullptr;
  int id = 0;
  node() = default;
  node(Test* t, int i) : test(t), id(i) { invoke = &run; }
  static void run(callback_node* n) {
    auto* self = static_cast<node*>(n);
    self->test->on_callback(self);
  }
};

// =============================================================================================
// 1. concurrent cancel (S1, S2, S4, S5): three source handles cancel at once. Exactly one call
//    requests; both callbacks run exactly once, latest first, before that call returns; the
//    losers see the request at once. stdexec#2169 (inverted request_stop result).
// =============================================================================================
struct concurrent_cancel : rl::test_suite<concurrent_cancel, 3> {
  state* s = nullptr;
  node<concurrent_cancel> a, b;
  rl::var<int> ran_a, ran_b, seq;
  rl::atomic<int> winners;

  void before() {
    s = make_state(3, 0);
    ran_a($) = 0;
    ran_b($) = 0;
    seq($) = 0;
    winners($).store(0, rl::mo_relaxed);
    a = node<concurrent_cancel>(this, 0);
    b = node<concurrent_cancel>(this, 1);
    RL_ASSERT(s->link(&a, false) == link_result::linked);
    RL_ASSERT(s->link(&b, false) == link_result::linked);
  }
  void on_callback(node<concurrent_cancel>* n) {
    const int k = seq($) + 1;
    seq($) = k;
    if (n->id == 0) ran_a($) = ran_a($) + k;  // a must run second: ran_a == 2
    else ran_b($) = ran_b($) + k;             // b first: ran_b == 1
  }
  void thread(unsigned) {
    const dispatch_outcome out = cancel(s);
    if (out.requested) {
      winners($).fetch_add(1, rl::mo_relaxed);
      RL_ASSERT(ran_a($) == 2 && ran_b($) == 1);  // S5: all ran, LIFO, before returning
    } else {
      RL_ASSERT(s->is_requested());  // S1/S2: a false return means someone else requested
    }
    drop_source(s);
  }
  void after() {
    RL_ASSERT(winners($).load(rl::mo_relaxed) == 1);
    RL_ASSERT(ran_a($) == 2 && ran_b($) == 1);
  }
};

// =============================================================================================
// 2. publication (S3, S16 [I5]): what the canceller wrote before cancel() is visible to a thread
//    that observes the request through is_requested() or returns from wait().
//    microsoft/STL#1196 (relaxed completion flag).
// =============================================================================================
struct publication : rl::test_suite<publication, 3> {
  state* s = nullptr;
  rl::var<int> payload;

  void before() {
    s = make_state(1, 2);
    payload($) = 0;
  }
  void thread(unsigned i) {
    if (i == 0) {
      payload($) = 42;
      RL_ASSERT(cancel(s).requested);
      drop_source(s);
    } else if (i == 1) {
      if (s->is_requested()) RL_ASSERT(payload($) == 42);
      drop_ref(s);
    } else {
      RL_ASSERT(s->wait(no_timeout) == wait_result::requested);
      RL_ASSERT(payload($) == 42);
      drop_ref(s);
    }
  }
};

// =============================================================================================
// 2b. publication through the first callback (S3, [I1] [I5]): as 2, with one callback
//     registered, so that the request takes the one-callback path (issue 20) and REQUESTED is
//     published by the unlock that starts the callback. The callback and a thread that sees the
//     request both see what the canceller wrote before cancel().
// =============================================================================================
struct publication_with_a_callback : rl::test_suite<publication_with_a_callback, 2> {
  state* s = nullptr;
  node<publication_with_a_callback> a;
  rl::var<int> payload;

  void before() {
    s = make_state(1, 1);  // thread 1 holds a token
    payload($) = 0;
    a = node<publication_with_a_callback>(this, 0);
    RL_ASSERT(s->link(&a, false) == link_result::linked);
  }
  void on_callback(node<publication_with_a_callback>*) { RL_ASSERT(payload($) == 42); }
  void thread(unsigned i) {
    if (i == 0) {
      payload($) = 42;
      RL_ASSERT(cancel(s).requested);
      drop_source(s);
    } else {
      if (s->is_requested()) RL_ASSERT(payload($) == 42);
      drop_ref(s);
    }
  }
};

// =============================================================================================
// 3. register vs cancel (S6): a registration racing with cancel() is run either by the
//    cancelling thread or inline by the registering thread: never both, never neither. A
//    cancellation_callback (raii) registered alongside, disposed afterwards, runs at most once.
// =============================================================================================
struct register_vs_cancel : rl::test_suite<register_vs_cancel, 2> {
  state* s = nullptr;
  node<register_vs_cancel> reg, raii;
  rl::var<int> ran_reg, ran_raii;

  void before() {
    s = make_state(1, 2);  // thread 1 holds a token, after() the registration's reference
    ran_reg($) = 0;
    ran_raii($) = 0;
    reg = node<register_vs_cancel>(this, 0);
    raii = node<register_vs_cancel>(this, 1);
  }
  void on_callback(node<register_vs_cancel>* n) {
    if (n->id == 0) ran_reg($) = ran_reg($) + 1;
    else ran_raii($) = ran_raii($) + 1;
  }
  void thread(unsigned i) {
    if (i == 0) {
      RL_ASSERT(cancel(s).requested);
      drop_source(s);
      return;
    }
    register_or_run_inline(s, reg);
    bool raii_linked = false;
    switch (s->link(&raii, true)) {
      case link_result::linked: raii_linked = true; break;
      case link_result::already_requested: raii.invoke(&raii); break;
      case link_result::cannot_cancel: RL_ASSERT(false); break;
    }
    if (raii_linked) s->dispose(&raii, true, false);  // ~cancellation_callback
    RL_ASSERT(s->wait(no_timeout) == wait_result::requested);
    drop_ref(s);  // the token; the registration is disposed once the canceller is done
  }
  void after() {
    RL_ASSERT(ran_reg($) == 1);  // never both, never neither
    RL_ASSERT(ran_raii($) <= 1);  // disposed by its owner, possibly before the cancel
    RL_ASSERT(!s->unregister(&reg));  // S6/S8: inert, or already run
    s->dispose(&reg, false, false);
    drop_ref(s);  // the registration's reference: frees the state
  }
};

// =============================================================================================
// 4. unregister vs cancel (S8, S11): two threads unregister (and dispose) the same registration
//    while a third cancels. Exactly one of "the callback ran" and "some unregister() returned
//    true". coreclr#20145 (bulk detach let a disposed callback run).
// =============================================================================================
struct unregister_vs_cancel : rl::test_suite<unregister_vs_cancel, 3> {
  state* s = nullptr;
  node<unregister_vs_cancel> n;
  rl::var<int> ran;
  rl::atomic<int> removed;

  void before() {
    s = make_state(1, 2);  // two handles to the registration (threads 1 and 2)
    ran($) = 0;
    removed($).store(0, rl::mo_relaxed);
    n = node<unregister_vs_cancel>(this, 0);
    RL_ASSERT(s->link(&n, false) == link_result::linked);
  }
  void on_callback(node<unregister_vs_cancel>*) {
    RL_ASSERT(removed($).load(rl::mo_relaxed) == 0);
    ran($) = 1;
  }
  void thread(unsigned i) {
    if (i == 0) {
      RL_ASSERT(cancel(s).requested);
      drop_source(s);
      return;
    }
    if (s->unregister(&n)) removed($).fetch_add(1, rl::mo_relaxed);
    if (i == 2) s->dispose(&n, false, false);
    drop_ref(s);
  }
  void after() {
    const int r = removed($).load(rl::mo_relaxed);
    RL_ASSERT(r <= 1);
    RL_ASSERT(ran($) + r == 1);
  }
};

// =============================================================================================
// 5. dispose waits for a running callback (S9): after dispose() returns on another thread the
//    callback is neither running nor will run, and its writes happen-before the disposer's next
//    step (the disposer then reuses the callback's memory). libstdc++ PR 92895, coreclr#20145.
// =============================================================================================
struct dispose_waits : rl::test_suite<dispose_waits, 2> {
  state* s = nullptr;
  node<dispose_waits> n;
  rl::var<int> victim;  // the callback's memory: the disposer frees it after dispose()

  void before() {
    s = make_state(1, 1);
    victim($) = 0;
    n = node<dispose_waits>(this, 0);
    RL_ASSERT(s->link(&n, false) == link_result::linked);
  }
  void on_callback(node<dispose_waits>*) {
    victim($) = 1;
    rl::yield(1, $);
    victim($) = victim($) + 1;
  }
  void thread(unsigned i) {
    if (i == 0) {
      cancel(s);
      drop_source(s);
    } else {
      s->dispose(&n, false, false);
      victim($) = -1;  // "free": races with the callback unless dispose ordered it before
      drop_ref(s);
    }
  }
  void after() {
    const int v = victim($);
    RL_ASSERT(v == -1);
  }
};

// =============================================================================================
// 6. self-dispose and dispose-other inside a callback (S9, S10): a registration destroyed from
//    inside its own running callback (the node is freed by the dispatcher after the callback
//    returns), a cancellation_callback disposed from inside itself, and a not-yet-run
//    registration disposed from inside another callback (it must never run) — while another
//    thread disposes a third registration. libstdc++ PR 92895 (deadlock here).
// =============================================================================================
struct self_dispose;
struct owned_node : owned_callback_node {
  self_dispose* test = nullptr;
};

struct self_dispose : rl::test_suite<self_dispose, 2> {
  state* s = nullptr;
  owned_node* self = nullptr;  // heap, like a cancellation_registration's block
  node<self_dispose> other, third, raii;
  rl::var<int> self_ran, other_ran, third_ran, raii_ran, released;

  static void run_self(callback_node* n) {
    auto* me = static_cast<owned_node*>(n);
    self_dispose* t = me->test;
    t->self_ran($) = 1;
    RL_ASSERT(!t->s->unregister(me));  // running: not linked any more
    // ~cancellation_registration from inside its own callback: returns at once, the dispatcher
    // frees the node after we return.
    RL_ASSERT(t->s->dispose(me, false, true) == state::dispose_result::deferred_release);
    drop_ref(t->s);  // the registration's reference
    t->s->dispose(&t->other, false, false);  // dispose another, not yet run: it never runs
  }
  static void release_self(owned_callback_node* n) noexcept {
    auto* me = static_cast<owned_node*>(n);
    me->test->released($) = me->test->released($) + 1;
    delete me;
  }

  void before() {
    s = make_state(1, 4);  // registrations self, other, third; thread 1's token
    self_ran($) = 0;
    other_ran($) = 0;
    third_ran($) = 0;
    raii_ran($) = 0;
    released($) = 0;
    other = node<self_dispose>(this, 0);
    third = node<self_dispose>(this, 1);
    raii = node<self_dispose>(this, 2);
    self = new owned_node();
    self->test = this;
    self->invoke = &run_self;
    self->release = &release_self;
    // LIFO: self runs first, then raii, third, other.
    RL_ASSERT(s->link(&other, false) == link_result::linked);
    RL_ASSERT(s->link(&third, false) == link_result::linked);
    RL_ASSERT(s->link(&raii, true) == link_result::linked);
    RL_ASSERT(s->link(self, false) == link_result::linked);
  }
  void on_callback(node<self_dispose>* n) {
    if (n->id == 0) {
      other_ran($) = 1;
    } else if (n->id == 1) {
      third_ran($) = 1;
    } else {
      raii_ran($) = 1;
      // ~cancellation_callback from inside itself: no wait, leaves the raii count.
      RL_ASSERT(s->dispose(&raii, true, false) == state::dispose_result::done);
    }
  }
  void thread(unsigned i) {
    if (i == 0) {
      RL_ASSERT(cancel(s).requested);
      drop_source(s);
    } else {
      s->dispose(&third, false, false);
      third_ran($) = third_ran($) + 10;  // after dispose: ordered after the callback, if it ran
      drop_ref(s);                        // third's registration
      RL_ASSERT(s->wait(no_timeout) == wait_result::requested);
      drop_ref(s);  // the token
    }
  }
  void after() {
    RL_ASSERT(self_ran($) == 1);
    RL_ASSERT(released($) == 1);
    RL_ASSERT(other_ran($) == 0);
    RL_ASSERT(raii_ran($) == 1);
    const int t = third_ran($);
    RL_ASSERT(t == 10 || t == 11);
    drop_ref(s);  // `other`'s registration, disposed by self's callback
  }
};

// =============================================================================================
// 7. last reference vs cancel (S10, S23, [I7] [I8]): the cancelling thread's callback drops that
//    thread's source handle; another thread drops the other source handle; a third disposes a
//    cancellation_callback (the collective reference), unregisters a registration and drops its
//    token. Whoever drops the last reference frees the state exactly once, after every use
//    (Relacy reports a leak, a double free or an access to freed memory otherwise).
//    josuttis/jthread#42 (double delete).
// =============================================================================================
struct last_reference : rl::test_suite<last_reference, 3> {
  state* s = nullptr;
  node<last_reference> raii, reg;
  rl::var<int> raii_ran, reg_ran;
  bool dropped_in_callback = false;  // thread 0 only (its callback runs on thread 0)
  rl::atomic<int> reg_removed;

  void before() {
    s = make_state(2, 2);  // sources: threads 0 and 1; refs: thread 2's token and registration
    raii_ran($) = 0;
    reg_ran($) = 0;
    dropped_in_callback = false;
    reg_removed($).store(0, rl::mo_relaxed);
    raii = node<last_reference>(this, 0);
    reg = node<last_reference>(this, 1);
    RL_ASSERT(s->link(&reg, false) == link_result::linked);
    RL_ASSERT(s->link(&raii, true) == link_result::linked);
  }
  void on_callback(node<last_reference>* n) {
    if (n->id == 0) {
      raii_ran($) = 1;
      dropped_in_callback = true;
      drop_source(s);  // S10: thread 0 drops its own handle inside the callback
    } else {
      RL_ASSERT(reg_removed($).load(rl::mo_relaxed) == 0);
      reg_ran($) = 1;
    }
  }
  void thread(unsigned i) {
    if (i == 0) {
      RL_ASSERT(cancel(s).requested);
      // The raii callback dropped thread 0's handle, unless thread 2 disposed it before.
      if (!dropped_in_callback) drop_source(s);
    } else if (i == 1) {
      drop_source(s);
    } else {
      s->dispose(&raii, true, false);
      if (s->unregister(&reg)) reg_removed($).store(1, rl::mo_relaxed);
      s->dispose(&reg, false, false);
      drop_ref(s);
      drop_ref(s);
    }
  }
  void after() {
    RL_ASSERT(reg_ran($) + reg_removed($).load(rl::mo_relaxed) == 1);
    RL_ASSERT(raii_ran($) <= 1);
  }
};

// =============================================================================================
// 8. linked: parent cancel vs the child's last release (S19-S21, [I11] [I12]): the parent's
//    propagation walks its children under its lock while the child's last handle goes and the
//    child unlinks itself from the parent before it is freed.
// =============================================================================================
struct linked_release : rl::test_suite<linked_release, 2> {
  state* parent = nullptr;
  state* child = nullptr;
  node<linked_release> n;
  rl::var<int> ran;

  void before() {
    parent = make_state(1, 0);
    child = make_state(1, 1);  // the child's source handle and a token
    ran($) = 0;
    auto* links = new parent_link[1];
    state* parents[1] = {parent};
    RL_ASSERT(child->attach_to_parents(links, parents, 1) == nullptr);
    n = node<linked_release>(this, 0);
    RL_ASSERT(child->link(&n, false) == link_result::linked);
    child->add_ref();  // the registration's reference
  }
  void on_callback(node<linked_release>*) { ran($) = ran($) + 1; }
  void thread(unsigned i) {
    if (i == 0) {
      RL_ASSERT(cancel(parent).requested);
      drop_source(parent);  // the child's link still keeps the parent's memory alive
    } else {
      s_dispose_and_drop();
    }
  }
  void s_dispose_and_drop() {
    child->dispose(&n, false, false);
    drop_ref(child);     // registration
    drop_ref(child);     // token
    // The child's source handle goes last: its only reference unless the parent's propagation
    // holds one, yet the parent's list still points at it, so it must not take the sole-owner
    // shortcut; it unlinks itself from the parent before it is freed.
    drop_source(child);
  }
  void after() { RL_ASSERT(ran($) <= 1); }
};

// =============================================================================================
// 9. two parents cancel one child at once (S19, S20, [I2]): the child is requested once, its
//    callback runs exactly once, on one of the two cancelling threads.
// =============================================================================================
struct two_parents : rl::test_suite<two_parents, 2> {
  state* p[2] = {nullptr, nullptr};
  state* child = nullptr;
  node<two_parents> n;
  rl::var<int> ran;

  void before() {
    p[0] = make_state(1, 0);
    p[1] = make_state(1, 0);
    child = make_state(1, 1);
    ran($) = 0;
    auto* links = new parent_link[2];
    RL_ASSERT(child->attach_to_parents(links, p, 2) == nullptr);
    drop_source(child);  // only the parents can cancel it now
    n = node<two_parents>(this, 0);
    RL_ASSERT(child->link(&n, false) == link_result::linked);
  }
  void on_callback(node<two_parents>*) { ran($) = ran($) + 1; }
  void thread(unsigned i) {
    RL_ASSERT(cancel(p[i]).requested);
    drop_source(p[i]);
  }
  void after() {
    RL_ASSERT(ran($) == 1);
    RL_ASSERT(child->is_requested());
    drop_ref(child);  // frees the child, then both parents through the links
  }
};

// =============================================================================================
// 10. wait vs the last canceller going away (S23): a waiter on the source and a waiter on a
//     child whose only canceller is the source are both woken, with "cannot cancel", and pending
//     callbacks never run (unregister() then returns false). tokio#4497 (lost wake-up).
// =============================================================================================
struct wait_vs_orphan : rl::test_suite<wait_vs_orphan, 3> {
  state* s = nullptr;
  state* child = nullptr;
  node<wait_vs_orphan> n;
  rl::var<int> ran;

  void before() {
    s = make_state(1, 1);
    child = make_state(1, 1);
    ran($) = 0;
    auto* links = new parent_link[1];
    state* parents[1] = {s};
    RL_ASSERT(child->attach_to_parents(links, parents, 1) == nullptr);
    drop_source(child);  // the child's only canceller is now its parent
    n = node<wait_vs_orphan>(this, 0);
    RL_ASSERT(s->link(&n, false) == link_result::linked);
  }
  void on_callback(node<wait_vs_orphan>*) { ran($) = 1; }
  void thread(unsigned i) {
    if (i == 0) {
      drop_source(s);  // the last canceller: orphans s, then the child
    } else if (i == 1) {
      RL_ASSERT(s->wait(no_timeout) == wait_result::cannot_cancel);
      RL_ASSERT(!s->can_be_canceled());
      RL_ASSERT(!s->unregister(&n));  // S8/S23: dropped by the orphaning
      drop_ref(s);
    } else {
      RL_ASSERT(child->wait(no_timeout) == wait_result::cannot_cancel);
      RL_ASSERT(!child->is_requested());
      drop_ref(child);
    }
  }
  void after() { RL_ASSERT(ran($) == 0); }
};

// =============================================================================================
// 11. the source's last handle vs the last other reference ([I7] [I8], try_destroy_sole_owner):
//     a thread observes the state and drops its token while the source handle goes on another
//     thread. Whichever is last frees the state, exactly once, after the other's last access
//     (Relacy reports use-after-free, double free or leak); a source handle that finds itself the
//     sole owner frees at once, and must still see the token owner's last writes (else: race).
// =============================================================================================
struct sole_owner_release : rl::test_suite<sole_owner_release, 2> {
  state* s = nullptr;
  rl::var<int> token_done;  // stands for whatever the token's owner did with the state

  void before() {
    s = make_state(1, 1);
    token_done($) = 0;
  }
  void thread(unsigned i) {
    if (i == 0) {
      static_cast<void>(s->can_be_canceled());
      token_done($) = 1;
      drop_ref(s);
    } else if (s->try_destroy_sole_owner()) {
      RL_ASSERT(token_done($) == 1);  // the token's last uses happen-before the free
    } else {
      drop_source(s);
    }
  }
};

// =============================================================================================
// 12. the last owner frees ([I7] [I8]): a source handle and two tokens are dropped at once, each
//     after its owner wrote its own data; the state's destructor (here: the destructor of an
//     extension, which ~state deletes) reads all of it. Whichever thread frees, and whether the
//     earlier drops took the lock-free path (another unit stayed) or the locked one, every owner's last use
//     must happen-before the free (a weaker order on either decrement: DATA RACE).
// =============================================================================================
struct last_owner_frees : rl::test_suite<last_owner_frees, 3> {
  struct probe final : cancelkit::detail::state_extension {
    last_owner_frees* test;
    explicit probe(last_owner_frees* t) : test(t) {}
    ~probe() override {
      for (rl::var<int>& u : test->used) RL_ASSERT(u($) == 1);  // racing unless ordered
      test->freed($).fetch_add(1, rl::mo_relaxed);
    }
    void on_requested() noexcept override {}
    void on_orphaned() noexcept override {}
  };

  state* s = nullptr;
  rl::var<int> used[3];
  rl::atomic<int> freed;

  void before() {
    s = make_state(1, 2);  // thread 0's source handle, the tokens of threads 1 and 2
    // With an extension the source handle cannot take the sole-owner shortcut: every drop goes
    // through drop_ref, the path under test.
    RL_ASSERT(s->install_extension(new probe(this)) != nullptr);
    for (rl::var<int>& u : used) u($) = 0;
    freed($).store(0, rl::mo_relaxed);
  }
  void thread(unsigned i) {
    used[i]($) = 1;  // this owner's last use of what the state guards
    if (i == 0) drop_source(s);
    else drop_ref(s);
  }
  void after() { RL_ASSERT(freed($).load(rl::mo_relaxed) == 1); }
};

// =============================================================================================
// 13. a sole owner frees the state while another handle installed the extension ([I15]; issue
//     16, defect 2): thread 1, a second source handle, installs an extension, arms a timer
//     through it (the timer counts as a canceller [I10]) and drops its handle; then it plays
//     that timer, which holds no reference and revives the state with try_add_ref() to fire it
//     (the timer's own thread, in the library; one thread here keeps the schedules few, and the
//     timer learns of the entry no earlier than that). Thread 0 drops the first source handle,
//     which may take the sole-owner free. That shortcut is only sound if it sees the extension:
//     reading `ext` before the acquire load of `refs` (the old order) lets thread 0 free the
//     state under the firing timer (ACCESS TO FREED MEMORY) or skip the extension's destructor
//     (MEMORY LEAK). The stand-in's destructor waits until the timer is done with the state, as
//     forget() does [T2].
// =============================================================================================
struct sole_owner_vs_extension : rl::test_suite<sole_owner_vs_extension, 2> {
  // The timer entry lives in the service, not in the state: 0 none, 1 armed, 2 taken by the
  // firing timer, 3 the timer is done with the state. Stands in for the service's map and mutex.
  enum : int { none, armed, firing, fired };
  struct timer_stand_in final : cancelkit::detail::state_extension {
    sole_owner_vs_extension* test;
    explicit timer_stand_in(sole_owner_vs_extension* t) : test(t) {}
    ~timer_stand_in() override {
      // forget(): remove the entry, or wait until the timer that took it is done [T2].
      int e = armed;
      if (!test->entry($).compare_exchange_strong(e, none, rl::mo_acq_rel)) {
        while (test->entry($).load(rl::mo_acquire) != fired) rl::yield(1, $);
      }
      test->freed($).fetch_add(1, rl::mo_relaxed);
    }
    void on_requested() noexcept override {}
    void on_orphaned() noexcept override {}
  };

  state* s = nullptr;
  rl::atomic<int> entry;
  rl::atomic<int> freed;

  void before() {
    s = make_state(2, 0);  // the source handles of threads 0 and 1
    entry($).store(none, rl::mo_relaxed);
    freed($).store(0, rl::mo_relaxed);
  }
  void thread(unsigned i) {
    if (i == 0) {
      drop_source(s);  // may be the sole-owner free
      return;
    }
    auto* ext = new timer_stand_in(this);
    RL_ASSERT(s->install_extension(ext) == ext);
    s->add_canceller();  // arm: the timer is a canceller [I10]
    entry($).store(armed, rl::mo_release);
    drop_source(s);
    // The timer fires, if the entry is still there.
    int e = armed;
    if (!entry($).compare_exchange_strong(e, firing, rl::mo_acq_rel)) return;
    if (s->try_add_ref()) {
      static_cast<void>(cancel(s));
      entry($).store(fired, rl::mo_release);
      s->release_canceller();
      drop_ref(s);
    } else {
      entry($).store(fired, rl::mo_release);
    }
  }
  void after() { RL_ASSERT(freed($).load(rl::mo_relaxed) == 1); }
};

// =============================================================================================
// 14. the idle request vs the first registration (S1, S6, [I16]): thread 0 cancels a source that
//     has never had work, so its cancel() may take the idle request; thread 1 registers the first
//     callback at the same moment. The callback runs exactly once: by the canceller (linked
//     first: the idle request finds it under the lock and the full request runs it) or inline
//     (REQUESTED first). An idle request that ignores the list, or a lock that does not exclude
//     (a relaxed or non-atomic acquisition), loses the callback. Run inline, the callback sees
//     what the canceller wrote before cancel() (S3, S6): the registration's guess-0
//     compare-exchange that finds REQUESTED is its acquire (mutant 85: relaxed, DATA RACE).
// =============================================================================================
struct idle_cancel_vs_first_registration
    : rl::test_suite<idle_cancel_vs_first_registration, 2> {
  state* s = nullptr;
  node<idle_cancel_vs_first_registration> reg;
  rl::var<int> ran;
  rl::var<int> payload;  // written by the canceller before cancel()

  void before() {
    s = make_state(1, 1);  // thread 0's source handle, the registration's reference
    ran($) = 0;
    payload($) = 0;
    reg = node<idle_cancel_vs_first_registration>(this, 0);
  }
  void on_callback(node<idle_cancel_vs_first_registration>*) {
    RL_ASSERT(payload($) == 42);  // S3: by the canceller, or inline after seeing REQUESTED
    ran($) = ran($) + 1;
  }
  void thread(unsigned i) {
    if (i == 0) {
      payload($) = 42;
      RL_ASSERT(cancel(s).requested);
      drop_source(s);
      return;
    }
    register_or_run_inline(s, reg);
    RL_ASSERT(s->wait(no_timeout) == wait_result::requested);
  }
  void after() {
    RL_ASSERT(ran($) == 1);  // never both, never neither
    s->dispose(&reg, false, false);
    drop_ref(s);  // the registration's reference: frees the state
  }
};

// =============================================================================================
// 15. the last handles go while the dispatcher runs (S10, [I17]): the dispatch holds no reference.
//     Thread 0 cancels; the one callback, a registration, destroys itself (deferred release),
//     drops its reference and then thread 0's source handle; thread 1 drops a token meanwhile.
//     Depending on the schedule the source handle is the sole owner (refs == 1: the shortcut
//     must see DISPATCHING and step aside), or the token's or the handle's drop takes `refs` to
//     0 under the lock while DISPATCHING is set; either way the dispatcher frees the state when
//     it is done with it, exactly once, never under its own feet (ACCESS TO FREED MEMORY) and
//     never not at all (MEMORY LEAK).
// =============================================================================================
struct handles_go_during_dispatch;
struct dispatch_owned_node : owned_callback_node {
  handles_go_during_dispatch* test = nullptr;
};

struct handles_go_during_dispatch : rl::test_suite<handles_go_during_dispatch, 2> {
  state* s = nullptr;
  dispatch_owned_node* reg = nullptr;  // heap, like a cancellation_registration's block
  rl::var<int> ran;
  rl::atomic<int> released;

  static void run_reg(callback_node* n) {
    auto* me = static_cast<dispatch_owned_node*>(n);
    handles_go_during_dispatch* t = me->test;
    t->ran($) = 1;
    RL_ASSERT(t->s->dispose(me, false, true) == state::dispose_result::deferred_release);
    drop_ref(t->s);      // the registration's reference
    drop_source(t->s);   // S10: the caller's own handle, from inside the callback
  }
  static void release_reg(owned_callback_node* n) noexcept {
    auto* me = static_cast<dispatch_owned_node*>(n);
    me->test->released($).fetch_add(1, rl::mo_relaxed);
    delete me;
  }

  void before() {
    s = make_state(1, 2);  // thread 0's source handle; the registration; thread 1's token
    ran($) = 0;
    released($).store(0, rl::mo_relaxed);
    reg = new dispatch_owned_node();
    reg->test = this;
    reg->invoke = &run_reg;
    reg->release = &release_reg;
    RL_ASSERT(s->link(reg, false) == link_result::linked);
  }
  void thread(unsigned i) {
    if (i == 0) {
      RL_ASSERT(cancel(s).requested);  // `s` may be gone once this returns
    } else {
      drop_ref(s);  // the token
    }
  }
  void after() {
    RL_ASSERT(ran($) == 1);
    RL_ASSERT(released($).load(rl::mo_relaxed) == 1);
  }
};

// =============================================================================================
// 16. the last cancellation_callback leaves while the dispatcher runs (S9, S10, [I9], [I17]):
//     a source with two cancellation_callbacks (the collective reference) and no other handle
//     but thread 0's. The callback that runs first disposes itself and drops thread 0's source
//     handle, leaving only the collective reference; thread 1 disposes the other, not yet run,
//     which makes it the last to leave: the collective reference reaches 0 under the lock while
//     DISPATCHING is set, so the dispatcher, not thread 1, frees the state.
// =============================================================================================
struct last_raii_leaves_during_dispatch : rl::test_suite<last_raii_leaves_during_dispatch, 2> {
  state* s = nullptr;
  node<last_raii_leaves_during_dispatch> first, second;  // second is linked last: runs first
  rl::var<int> ran_first, ran_second;
  rl::atomic<int> disposed_first;

  void before() {
    s = make_state(1, 0);  // thread 0's source handle
    ran_first($) = 0;
    ran_second($) = 0;
    disposed_first($).store(0, rl::mo_relaxed);
    first = node<last_raii_leaves_during_dispatch>(this, 0);
    second = node<last_raii_leaves_during_dispatch>(this, 1);
    RL_ASSERT(s->link(&first, true) == link_result::linked);
    RL_ASSERT(s->link(&second, true) == link_result::linked);
  }
  void on_callback(node<last_raii_leaves_during_dispatch>* n) {
    if (n->id == 0) {
      RL_ASSERT(disposed_first($).load(rl::mo_relaxed) == 0);
      ran_first($) = 1;
      return;
    }
    ran_second($) = 1;
    RL_ASSERT(s->dispose(&second, true, false) == state::dispose_result::done);  // from inside
    drop_source(s);  // S10
  }
  void thread(unsigned i) {
    if (i == 0) {
      RL_ASSERT(cancel(s).requested);
    } else {
      if (s->unregister(&first)) disposed_first($).store(1, rl::mo_relaxed);
      s->dispose(&first, true, false);  // ~cancellation_callback: may be the last to leave
    }
  }
  void after() {
    RL_ASSERT(ran_second($) == 1);
    RL_ASSERT(ran_first($) + disposed_first($).load(rl::mo_relaxed) == 1);
  }
};

// =============================================================================================
// 17. dispose waits inside a batch (S9, [I6], [I18]): three callbacks, so with the model's
//     batches (the first callback alone, then 2) the dispatcher runs {c}, then {b, a}: b claimed
//     under the lock, a by a compare-exchange that also ends b. Thread 1 disposes c, whose end
//     is reported at the batch end under the lock; thread 2 disposes b, whose end is reported by
//     that compare-exchange. Each disposer then reuses its callback's memory: a disposer that
//     returns while its callback still runs, or without its writes, is a data race (the dispatch
//     code paths of [I18]: the flag found by the claim, the flag found at the batch end, the "it
//     ran" read).
// =============================================================================================
struct batch_dispose_waits : rl::test_suite<batch_dispose_waits, 3> {
  state* s = nullptr;
  node<batch_dispose_waits> a, b, c;
  rl::var<int> victim_b, victim_c, ran_a;

  void before() {
    s = make_state(1, 2);  // thread 0's source handle; the registrations of threads 1 and 2
    victim_b($) = 0;
    victim_c($) = 0;
    ran_a($) = 0;
    a = node<batch_dispose_waits>(this, 0);
    b = node<batch_dispose_waits>(this, 1);
    c = node<batch_dispose_waits>(this, 2);
    RL_ASSERT(s->link(&a, false) == link_result::linked);
    RL_ASSERT(s->link(&b, false) == link_result::linked);
    RL_ASSERT(s->link(&c, false) == link_result::linked);  // latest: runs first
  }
  void on_callback(node<batch_dispose_waits>* n) {
    if (n->id == 0) {
      ran_a($) = 1;
      return;
    }
    rl::var<int>& v = n->id == 1 ? victim_b : victim_c;
    v($) = 1;
    rl::yield(1, $);
    v($) = v($) + 1;
  }
  void thread(unsigned i) {
    if (i == 0) {
      RL_ASSERT(cancel(s).requested);
      drop_source(s);
      return;
    }
    node<batch_dispose_waits>& mine = i == 1 ? c : b;
    rl::var<int>& v = i == 1 ? victim_c : victim_b;
    s->dispose(&mine, false, false);
    v($) = -1;  // "free": races with the callback unless dispose ordered it before
    drop_ref(s);
  }
  void after() {
    RL_ASSERT(victim_b($) == -1);
    RL_ASSERT(victim_c($) == -1);
    RL_ASSERT(ran_a($) == 1);
  }
};

// =============================================================================================
// 18. unregister against the claim (S5, S8, S11, [I6]): callbacks c (latest), b and a, batches
//     {c} and {b, a}. While the dispatcher runs, thread 1 unregisters b (still in the list, or
//     the second batch's first slot, claimed under the lock) and a (in the list, or pending in
//     the second batch: the take-back races the dispatcher's claim). For each, exactly one of
//     "ran" and "unregister() returned true" holds, and whatever ran, ran latest first.
// =============================================================================================
struct batch_unregister_vs_claim : rl::test_suite<batch_unregister_vs_claim, 2> {
  state* s = nullptr;
  node<batch_unregister_vs_claim> a, b, c;
  rl::var<int> ran_a, ran_b, ran_c, order;
  rl::atomic<int> removed_a, removed_b;

  void before() {
    s = make_state(1, 1);  // thread 0's source handle; thread 1's registrations
    ran_a($) = 0;
    ran_b($) = 0;
    ran_c($) = 0;
    order($) = 0;
    removed_a($).store(0, rl::mo_relaxed);
    removed_b($).store(0, rl::mo_relaxed);
    a = node<batch_unregister_vs_claim>(this, 0);
    b = node<batch_unregister_vs_claim>(this, 1);
    c = node<batch_unregister_vs_claim>(this, 2);
    RL_ASSERT(s->link(&a, false) == link_result::linked);
    RL_ASSERT(s->link(&b, false) == link_result::linked);
    RL_ASSERT(s->link(&c, false) == link_result::linked);
  }
  void on_callback(node<batch_unregister_vs_claim>* n) {
    rl::var<int>& ran = n->id == 0 ? ran_a : n->id == 1 ? ran_b : ran_c;
    const int position = order($) + 1;  // its position in the run order
    order($) = position;
    ran($) = position;
    if (n->id == 0) RL_ASSERT(removed_a($).load(rl::mo_relaxed) == 0);
    if (n->id == 1) RL_ASSERT(removed_b($).load(rl::mo_relaxed) == 0);
  }
  void thread(unsigned i) {
    if (i == 0) {
      RL_ASSERT(cancel(s).requested);
      drop_source(s);
      return;
    }
    if (s->unregister(&b)) removed_b($).store(1, rl::mo_relaxed);
    if (s->unregister(&a)) removed_a($).store(1, rl::mo_relaxed);
    RL_ASSERT(!s->unregister(&b));  // S8: a second call returns false
    RL_ASSERT(s->wait(no_timeout) == wait_result::requested);
    s->dispose(&a, false, false);  // c is not ours: it must run
    s->dispose(&b, false, false);
    drop_ref(s);
  }
  void after() {
    RL_ASSERT(ran_c($) == 1);  // nobody removes c: it runs first
    RL_ASSERT((ran_b($) != 0) + removed_b($).load(rl::mo_relaxed) == 1);
    RL_ASSERT((ran_a($) != 0) + removed_a($).load(rl::mo_relaxed) == 1);
    if (ran_a($) != 0 && ran_b($) != 0) RL_ASSERT(ran_b($) < ran_a($));  // LIFO (S5)
  }
};

// ---- driver ---------------------------------------------------------------------------------

std::vector<test_entry> all_tests() {
  std::vector<test_entry> tests = {
    {"concurrent_cancel", &run_test<concurrent_cancel>},
    {"publication", &run_test<publication>},
    {"publication_with_a_callback", &run_test<publication_with_a_callback>},
    {"register_vs_cancel", &run_test<register_vs_cancel>},
    {"unregister_vs_cancel", &run_test<unregister_vs_cancel>},
    {"dispose_waits", &run_test<dispose_waits>},
    {"self_dispose", &run_test<self_dispose>},
    {"last_reference", &run_test<last_reference>},
    {"linked_release", &run_test<linked_release>},
    {"two_parents", &run_test<two_parents>},
    {"wait_vs_orphan", &run_test<wait_vs_orphan>},
    {"sole_owner_release", &run_test<sole_owner_release>},
    {"last_owner_frees", &run_test<last_owner_frees>},
    {"sole_owner_vs_extension", &run_test<sole_owner_vs_extension>},
    {"idle_cancel_vs_first_registration", &run_test<idle_cancel_vs_first_registration>},
    {"handles_go_during_dispatch", &run_test<handles_go_during_dispatch>},
    {"last_raii_leaves_during_dispatch", &run_test<last_raii_leaves_during_dispatch>},
    {"batch_dispose_waits", &run_test<batch_dispose_waits>},
    {"batch_unregister_vs_claim", &run_test<batch_unregister_vs_claim>},
  };
  // The layers around the core (library_tests.cpp).
  tests.insert(tests.end(), library_tests, library_tests + library_test_count);
  // The coroutine awaiters (coroutine_tests.cpp).
  tests.insert(tests.end(), coroutine_tests, coroutine_tests + coroutine_test_count);
  return tests;
}

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "cancelkit-model-check: %s\nusage: cancelkit-model-check [--iterations N] "
               "[--test NAME]... [--scheduler random|bound|full] [--list]\n",
               msg);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<test_entry> tests = all_tests();
  unsigned long long iterations = 100000;
  rl::scheduler_type_e scheduler = rl::random_scheduler_type;
  std::vector<std::string> only;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage((a + " needs a value").c_str());
      return argv[++i];
    };
    if (a == "--iterations") {
      iterations = std::strtoull(value().c_str(), nullptr, 0);
      if (iterations == 0) usage("--iterations must be positive");
    } else if (a == "--test") {
      only.push_back(value());
    } else if (a == "--scheduler") {
      const std::string v = value();
      if (v == "random") scheduler = rl::random_scheduler_type;
      else if (v == "bound") scheduler = rl::fair_context_bound_scheduler_type;
      else if (v == "full") scheduler = rl::fair_full_search_scheduler_type;
      else usage("--scheduler wants random|bound|full");
    } else if (a == "--list") {
      for (const test_entry& t : tests) std::printf("%s\n", t.name);
      return 0;
    } else if (a == "-h" || a == "--help") {
      usage("help");
    } else {
      usage(("unknown argument " + a).c_str());
    }
  }
  for (const std::string& name : only) {
    bool known = false;
    for (const test_entry& t : tests) known = known || name == t.name;
    if (!known) usage(("unknown test " + name).c_str());
  }

  int failed = 0, ran = 0;
  for (const test_entry& t : tests) {
    if (!only.empty()) {
      bool wanted = false;
      for (const std::string& name : only) wanted = wanted || name == t.name;
      if (!wanted) continue;
    }
    rl::test_params p;
    p.iteration_count = static_cast<rl::iteration_t>(iterations);
    p.search_type = scheduler;
    p.context_bound = 2;
    p.execution_depth_limit = 20000;
    // Relacy prints its report (test name, statistics; on failure the error and the full
    // execution history) to std::cout. It must be a stream that does not allocate while a
    // simulation runs (an ostringstream crashes Relacy's allocator), so no capturing here.
    p.output_stream = &std::cout;
    std::ostream no_progress(nullptr);  // drops the percentage lines
    p.progress_stream = &no_progress;
    const auto began = std::chrono::steady_clock::now();
    const bool ok = t.run(p);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    ++ran;
    if (!ok) ++failed;
    std::printf("model %-27s %s  iterations %llu  %.1f s\n", t.name, ok ? "PASS" : "FAIL",
                static_cast<unsigned long long>(p.stop_iteration), secs);
    std::fflush(stdout);
  }
  std::printf("cancelkit-model-check: %d test(s), %d failed\n", ran, failed);
  return failed == 0 ? 0 : 1;
}
