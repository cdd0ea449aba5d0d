// property_tests/linearizability/program.hpp — small concurrent programs on shared sources, and
// the histories their runs leave.
//
// A program: 1–2 sources S0, S1 (cancellation_source()), maybe a child linked below S0 (and S1),
// maybe a timer on S0 (cancel_after(10 ms) on a manual_timer_service that advance() moves by
// 10 ms, so the first advance fires it unless try_reset or a cancel came first), a few
// callbacks registered before the threads start (R0..), then 2–3 threads of up to 4 operations
// each. Registrations made by a thread's register() get the next ids and may be
// unregistered/disposed later by the same thread; the pre-registered ones by any thread (S11).
// Every callback records when it started and ended and on which thread, and spins a little so
// that disposers and cancellers overlap with it.
//
// Coroutines (S26-S28): a thread's await op starts a coroutine (A0, A1, ... in program order)
// that does `co_await cancelled(token)` or `co_await delay(10ms, token, the manual timer)`; its
// awaiter's callback node takes the next registration id, like a register op, and its
// resumption is recorded like a callback run (reg = that id), with how it resumed. The coroutine
// then parks at a second suspension point, so that a second resumption is recorded too.
// destroy_await destroys it (suspended or parked); the generator only places one where no other
// thread can resume that coroutine (S28: destroying a coroutine concurrently with its resumption
// is the caller's bug). Whatever is left is destroyed after the join, before the sources.
#pragma once

#include <rapidcheck.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace cklin {

enum class op_kind : std::uint8_t {
  cancel,        // source; with_reason: cancel({.reason = <object of this op>})
  register_cb,   // source -> registration `reg`
  unregister,    // registration -> bool
  dispose,       // registration
  try_reset,     // source -> bool
  is_requested,  // source -> bool
  reason,        // source -> cancellation_reason(): null, the reason object of a cancel op, or a
                 // deadline_exceeded
  advance,       // the program's manual_timer_service moves 10 ms: fires S0's timer if armed
  pause,         // spins `micros` microseconds (not an operation of the library)
  await_cancelled,  // source -> coroutine `await` in co_await cancelled(token) (S26), node `reg`
  await_delay,      // source -> coroutine `await` in co_await delay(10ms, token, timer) (S27)
  destroy_await,    // destroys coroutine `await` (S28)
};

struct op {
  op_kind kind = op_kind::pause;
  int source = 0;
  int reg = 0;
  bool with_reason = false;
  int micros = 0;
  int await = 0;  // await ops: the coroutine A<await>
};

struct program {
  int roots = 1;          // S0 .. S<roots-1>
  int child_parents = 0;  // 0: no child; n: S<roots> = linked({S0, .., S<n-1>})
  bool timer = false;     // S0 made on a manual_timer_service, cancel_after(10 ms) armed
  std::vector<int> pre;   // the source of each pre-registered callback R0..
  std::vector<std::vector<op>> threads;

  int sources() const { return roots + (child_parents > 0 ? 1 : 0); }
  int registrations() const;  // pre-registered plus one per register op and await op
  int awaits() const;         // await ops
};

std::string show(const program& p);
std::string show(const op& o);
inline void showValue(const program& p, std::ostream& os) { os << "\n" << show(p); }  // RapidCheck

rc::Gen<program> programs();

// ---- histories -------------------------------------------------------------------------------

// The source that carries the program's timer, when it has one.
inline constexpr int timed_source = 0;

// cancellation_reason() results besides the id of the cancel op whose object it is.
inline constexpr int null_reason = -1;
inline constexpr int copied_reason = -2;    // a copy of a cancel op's object, not the object (S16)
inline constexpr int unknown_reason = -3;   // some other exception
inline constexpr int deadline_reason = -4;  // a deadline_exceeded (S16, S17)

struct op_record {
  int thread = 0;
  int index = 0;  // in the thread's program
  int id = 0;     // global operation number (thread-major): names the reason object of a cancel
  std::uint64_t call = 0;
  std::uint64_t ret = 0;
  int result = 0;  // bool, or a reason: a cancel op's id, or one of the *_reason values above
};

// What each source shows once every thread has joined: is_cancellation_requested() and
// cancellation_reason() (as in op_record::result). One per source of the program.
struct final_state {
  bool requested = false;
  int reason = null_reason;
};

// How a coroutine resumed (callback_record::how); `callback` for a plain callback's run.
enum resumed_how : int {
  callback = 0,
  resumed_normally,    // cancelled(): cancellation was requested
  logic_error,         // cancelled(): the token can no longer be canceled (S23)
  elapsed,             // delay(): the timer
  canceled_self,       // delay(): operation_canceled carrying the awaited token
  canceled_other,      // delay(): operation_canceled carrying another token
  unexpected,          // any other exception
  resumed_again,       // a second resumption of the awaiter ([C1])
};
const char* show_how(int how);

struct callback_record {
  int reg = 0;
  int thread = 0;  // index of the program thread that ran it
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  int how = callback;  // a coroutine's resumption: how (start == end: the moment it resumed)
};

struct history {
  std::vector<op_record> ops;            // thread-major, in program order
  std::vector<callback_record> callbacks;
  std::vector<final_state> end;  // per source, after the join
};

// Runs `p` once on real threads (execute.cpp): builds the sources and pre-registrations, starts
// the threads together behind a barrier, joins them, tears everything down. Timestamps come from
// one global counter. (property_tests/model_programs runs the same programs under Relacy.)
history execute(const program& p, int callback_spin_ns);

std::string show(const program& p, const history& h);
std::string show_reason(int reason);  // an op_record::result of a cancellation_reason() op

}  // namespace cklin
