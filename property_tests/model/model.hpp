// property_tests/model/model.hpp — the oracle: a plain, single-threaded model of the contract in
// docs/spec/SEMANTICS.md (rules cited as S1..S29; S26-S28: the coroutine awaiters).
//
// No atomics, no locks, no code shared with impl/. Sources, tokens, registrations and std stop
// tokens live in tables; the test harness keeps the real objects in "slots" numbered exactly like
// the model's (h<i> source handles, t<i> tokens, r<i> registrations, s<i> std::stop_tokens), so
// every command names the same thing on both sides.
//
// Where the contract leaves a choice open (S20: the order between a parent's callbacks and its
// descendants'; the order in which a std::stop_source runs its callbacks; which cancelled parent
// a born-cancelled linked source takes its reason from), the model asks a `chooser`. Without one it
// takes option 0, which is the order the library documents or happens to use; the sequential
// suite searches the other options when option 0 does not explain what the library did.
//
// The same primitives (request, next_callback, claim_children, new_registration/attach, remove,
// reset) are the atomic steps of the linearizability checker.
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <string>
#include <vector>

namespace ckmodel {

inline constexpr int none = -1;

// cancel_after(nanoseconds::max()) means "no timer" (S17).
inline constexpr std::int64_t no_timer = std::numeric_limits<std::int64_t>::max();
// Timers on system_timer_service() run in real time; the suite only arms them this far ahead.
inline constexpr std::int64_t one_hour_ns = 3'600'000'000'000;

// The three timer services of a test: two manual_timer_services and system_timer_service().
enum class timers : std::uint8_t { a, b, system };
const char* name(timers t);

struct reason {
  enum kind_t : std::uint8_t { null, user, deadline };
  kind_t kind = null;
  int id = 0;  // user: index of the harness's reason object; deadline: creation number
  friend bool operator==(const reason&, const reason&) = default;
};

// What a test callback does after logging "cb#<id> ran" (the list of behaviours).
enum class action : std::uint8_t {
  count,            // nothing more
  throw_error,      // throws test_error{id}
  unregister_self,  // unregister() on its own registration slot
  dispose,          // dispose() registration slot `target` (a cancellation_callback: destroys it)
  destroy,          // destroys the object in registration slot `target`
  register_on,      // registers a counting callback on token slot `target` (new slot)
  cancel,           // cancel() through handle slot `target`
  drop_handle,      // destroys the source handle in slot `target`
};

struct behaviour {
  action what = action::count;
  int target = none;
  bool with_reason = false;  // cancel: cancel({.reason = new reason})
  bool throw_first = false;  // cancel: throw_on_first_exception
  friend bool operator==(const behaviour&, const behaviour&) = default;
};
std::string to_string(const behaviour& b);

enum class reg_status : std::uint8_t {
  pending,     // being registered (its callback may be running inline)
  linked,      // stored in its source's list, not run yet
  ran,         // started by a cancelling thread
  removed,     // unregister()/dispose() took it out before it ran (S8)
  dropped,     // try_reset (S18) or the loss of the last canceller (S23) took it out
  ran_inline,  // the token was cancelled: ran inside register_callback (S6)
  not_stored,  // none token or a token that cannot be cancelled (S7)
};

struct registration {
  int source = none;
  int await = none;  // the await slot whose awaiter this node is (S26, S27), else none
  bool raii = false;  // a cancellation_callback (else a cancellation_registration)
  behaviour what;
  int slot = none;  // the registration slot that holds its object now
  reg_status status = reg_status::pending;
  bool holds_ref = false;  // its object keeps the source's state alive (S23)
};

struct source {
  timers svc = timers::system;
  bool requested = false;  // S1
  bool orphaned = false;   // nothing can cancel it any more (S23)
  bool dead = false;       // nothing refers to it: it is gone and can never be cancelled (S17, S21)
  reason why;              // S16
  int dispatcher = none;   // the thread that requested cancellation
  std::vector<int> parents;       // attached linked parents (S19)
  std::vector<int> children;      // attached linked children, in link order
  bool std_parent = false;        // linked(std::stop_token) with stop_possible(): a canceller for good
  std::vector<int> std_children;  // sources linked to a std::stop_token of this source
  std::vector<int> callbacks;     // registration ids; back() runs next (LIFO, S5)
  bool armed = false;             // S17
  // The thread whose timer service took the armed timer off and has not cancelled the source
  // yet (none: no timer is firing). Only the concurrent checker sees this state (it splits a
  // firing in two steps); try_reset fails in it (S18).
  int firing = none;
  std::int64_t deadline = 0;      // manual services: ns since the service's epoch
  std::uint64_t sequence = 0;     // arming order, for ties
};

struct handle_slot {
  bool present = true;  // false: destroyed
  int src = none;       // none: an empty (moved-from) source
};

struct reg_slot {
  bool present = false;  // false: destroyed, never created (inline callback threw), or pending
  bool raii = false;
  int reg = none;  // none: an empty (moved-from) registration
};

// A coroutine suspended in `co_await cancelled(token)` or `co_await delay(d, token, timers)`
// (S26-S28). Its awaiter is a callback node on the token's source (`reg`, in that source's LIFO
// `callbacks` like any registration, S26/S27), a watch on the orphaning (cancelled(), S23) and
// a timer on a manual service (delay(), S27). The frame holds a copy of the token (the
// coroutine's parameter) until the coroutine is destroyed.
enum class await_kind : std::uint8_t { cancelled, delay };
enum class await_status : std::uint8_t {
  pending,  // the concurrent checker: its await op has not taken effect yet
  suspended,
  resumed,
  destroyed,
};

struct await_slot {
  await_kind kind = await_kind::cancelled;
  int source = none;       // the awaited token's source; none: the none token, or no token
  int reg = none;          // its callback node, or none (never linked)
  bool watching = false;   // cancelled(): listed for the orphaning of `source` (S23)
  await_status status = await_status::suspended;
  std::string how;         // once resumed: "resumed", "logic_error", "elapsed", "canceled(self)"
  bool frame = true;       // not destroyed: the frame's token keeps `source` alive (S17, S21)
  timers svc = timers::a;  // delay(): its manual service
  bool armed = false;      // delay(): its timer is armed
  std::int64_t deadline = 0;
  std::uint64_t sequence = 0;  // arming order on `svc`, shared with the sources' timers (S27)
};

struct stop_slot {
  int src = none;          // the source whose bridge made it; none: it can never be requested
  bool from_none = false;  // made from the none token: stop_possible() is false (API.md)
};

// Picks one of `n` options at a point where the contract allows several outcomes.
class chooser {
 public:
  virtual int choose(int n) = 0;

 protected:
  ~chooser() = default;
};

// Thrown when the model's log departs from the expected (observed) one: that option is wrong.
struct prune {};

inline constexpr std::size_t max_reg_slots = 32;

class world {
 public:
  std::vector<source> sources;
  std::vector<registration> regs;
  std::vector<handle_slot> handles;
  std::vector<int> tokens;  // source id, or none
  std::vector<reg_slot> reg_slots;
  std::vector<stop_slot> stops;
  std::vector<await_slot> awaits;
  std::int64_t now[2] = {0, 0};
  std::uint64_t next_sequence[2] = {0, 0};
  int user_reasons = 0;  // reason objects made so far
  int deadlines = 0;     // deadline_exceeded reasons made so far
  std::deque<int>* std_drain = nullptr;  // the running drain's queue of std children, if any
  std::vector<std::string> log;  // callback events of the current command
  std::vector<int> deadline_names;  // deadline id -> display number in snapshots (0: not yet shown)
  int named_deadlines = 0;
  int thread = 0;  // who performs the steps (the concurrent checker sets it)

  chooser* choices = nullptr;                      // null: always option 0
  const std::vector<std::string>* expected = nullptr;  // when set, emit() prunes on divergence

  // ---- commands: the same names and results as the harness (sequential/harness.hpp) ---------
  std::string new_source(timers svc);
  std::string new_source_after(timers svc, std::int64_t ns);
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
  std::string register_on(int t, bool raii, const behaviour& b);
  std::string register_empty(int t, bool raii);
  std::string unregister(int r);
  std::string dispose(int r);
  std::string destroy(int r);
  std::string move_registration(int to, int from);
  std::string cancel(int h, bool with_reason, bool throw_first);
  std::string cancel_after(int h, std::int64_t ns);
  std::string advance(timers svc, std::int64_t ns);
  std::string try_reset(int h);
  std::string await_cancelled(int t);                               // S26
  std::string await_delay(int t, timers svc, std::int64_t ns);      // S27; t == none: no token
  std::string destroy_await(int a);                                 // S28

  // Every observable value, one line per slot (format shared with the harness).
  std::vector<std::string> snapshot();

  // ---- primitives (also the concurrent checker's atomic steps) --------------------------------
  int make_source(timers svc);
  // S1/S2: sets REQUESTED unless already requested, orphaned or gone; true iff this call did.
  bool request(int s, reason r);
  // Runs every callback of `root` (requested by this thread) and of every source linked below it,
  // S5/S12/S13/S20; returns the ids of the callbacks that threw, in the order they ran.
  std::vector<int> cascade(int root, bool throw_first);
  // The registration the dispatcher of `s` runs next, or none.
  int next_callback(int s) const;
  // S19: claims every live child of `s` that is not cancelled yet, with `s`'s reason.
  void claim_children(int s);
  // A registration on source `s` (none: the none token), not yet attached (status pending).
  int new_registration(int s, bool raii, const behaviour& b, int slot);
  // register_callback's decision, S6/S7: links it (linked), or tells the caller to run it now
  // (ran_inline), or stores nothing (not_stored). Returns the new status.
  reg_status attach(int reg);
  // S8: true iff `reg` was linked; it is removed.
  bool remove(int reg);
  // S18: false if the source is cancelled (or cannot be) or its timer has started firing; else
  // drops every registration, disarms the timer and returns true.
  bool reset(int s);
  // A timer firing, as two atomic steps of the concurrent checker (S17, S18), both performed by
  // `thread`: the service takes the timer off if it is armed, then, if this thread took it off,
  // cancels with a new deadline_exceeded. The sequential commands fire in one step (advance).
  void start_firing(int s);
  void finish_firing(int s);

  void emit(std::string line);
  int choose(int n);

  // An awaiting coroutine resumes (logged "aw#<a> <how>"); it is registered nowhere afterwards.
  void resume_await(int a, const std::string& how);
  // The awaiter's destruction while suspended (S28): withdraws its node, timer and watch.
  void withdraw_await(int a);
  int new_awaiter_node(int s, int a);  // its registration id (in `regs`), not linked yet

 private:
  reason new_deadline();
  int cancellers(int s) const;
  void settle();  // S23 orphaning and S17/S21 lifetime, after anything let go of a reference
  bool run_callback(int reg);  // logs and performs the behaviour; true if it threw
  void fire(int s, timers svc, reason r);  // a background cancel: timer (S15) or std parent (S22)
  void std_trigger(int c);  // a std child's trigger: fire now, or queue on the running drain
  void disarm(int s);
  std::int64_t effective_delay(int s, std::int64_t ns) const;
  std::string reason_name(const reason& r);
  void resume_orphaned(const std::vector<int>& orphaned);  // S26/S23: cancelled() -> logic_error
  std::string cancel_source(int s, reason r, bool throw_first, const char* ok);
};

// The formats both sides use.
std::string errors_string(const std::vector<int>& ids);  // "aggregate[#1,#4]"
std::string slot_name(char kind, int i);                  // "h3"

}  // namespace ckmodel
