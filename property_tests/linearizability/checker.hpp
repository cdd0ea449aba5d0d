// property_tests/linearizability/checker.hpp — does some sequential order explain a history?
//
// The history is turned into operations with real-time intervals [call, return]:
//  - every library call of a thread;
//  - every callback run by a cancelling thread ("run R": from the previous callback of that call,
//    or the call itself, up to the callback's start — by then it has been taken off the list);
//  - for every successful cancel of a parent, "claim children" anywhere inside that call, after
//    the parent's request (S20: when it returns, its children are cancelled);
//  - for every advance(): the call itself takes S0's timer off the service if it is armed, and a
//    second step inside the call cancels S0 with deadline_exceeded if this thread took it off
//    (S17; between the two, try_reset fails and S0 is not cancelled yet: S18), plus, with a
//    linked child, a claim that is a no-op unless that firing cancelled S0; the call also moves
//    the manual clock by 10 ms;
//  - coroutines (S26, S27): an await op links the awaiter's node (a callback that resumes the
//    coroutine: cancelled() like a register, S26) and, for a delay, arms its timer at the clock
//    plus 10 ms; a resumption inside a cancel() (or a timer's firing) is a run step of that
//    node, LIFO with the callbacks, and takes the delay's timer off; a delay resumed by its
//    timer is a "take" step inside the advance() that resumed it (or inside its own await, when
//    an advance took the timer while it was arming): the timer was armed and due, it was the
//    earliest armed one (deadline, then arming order, S17/S27), and it takes the node off;
//    destroy_await withdraws node and timer (S28);
// A callback that ran inside the register() call that made it is that register's result: it ran
// inline (S6). A Wing–Gong search with memoisation (WGL) then looks for an order that respects
// real time (a before b whenever a returned before b was called) in which every operation is
// legal in the model (../model) and gives the observed result — cancel true in exactly one
// caller (S2), run only by the canceller, latest first, never twice (S4, S5, S6), unregister true
// iff the callback had not started (S8, S11), inline iff already cancelled (S6), reasons (S16),
// try_reset (S18: it also disarms the timer) — and after which no cancelled source still holds a
// callback (S5/S11: every callback ran or was removed), no timer is half-fired, and every source
// is cancelled, or not, with the reason the program saw after the join. Real-time checks outside
// the search: a dispose() on one thread returns only after that registration's callback, running
// on another thread, has ended (S9); a coroutine resumes at most once ([C1], S27), never after
// its destroy_await began (S28), with the outcome its awaiter promises (S26, S27: operation_
// canceled carries the awaited token), and on a thread that was resuming it: its own inside its
// await op, or one inside a cancel() or advance().
#pragma once

#include "program.hpp"

#include <string>

namespace cklin {

struct verdict {
  bool ok = true;
  std::string why;  // when !ok: which rule, and the longest linearizable prefix found
};

verdict check(const program& p, const history& h);

}  // namespace cklin
