// property_tests/linearizability/awaits.hpp — the coroutines of a program's await ops (S26-S28),
// written once for both executors (execute.cpp on real threads, model_programs/executor.cpp
// under Relacy). Included by each, so it is compiled against whichever build of the library
// that executor links.
//
// A coroutine awaits, records how it resumed through its `Recorder` (which stamps the tick and
// the thread, as for a callback), then parks at a second suspension point that nothing resumes:
// a second resumption of the awaiter ([C1] in coroutine.hpp) lands there and is recorded as
// `resumed_again` instead of running off the end of a finished frame.
#pragma once

#include "program.hpp"
#include "reasons.hpp"

#include <cancelkit/cancellation_token.hpp>
#include <cancelkit/coroutine.hpp>
#include <cancelkit/exceptions.hpp>
#include <cancelkit/timer_service.hpp>

#include <coroutine>
#include <stdexcept>
#include <utility>

namespace cklin {

// Eager (it runs up to its first suspension inside the await op), and never finishes by itself:
// its owner destroys it, suspended in the awaiter or parked. No atomics: whoever destroys it
// runs after its last resumption (a destroy_await on a thread nothing else resumes it from, or
// the teardown after the join).
class await_task {
 public:
  struct promise_type {
    await_task get_return_object() noexcept {
      return await_task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept {}  // the bodies catch everything they await
  };

  await_task() noexcept = default;
  await_task(await_task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  await_task& operator=(await_task&& other) noexcept {
    destroy();
    h_ = std::exchange(other.h_, {});
    return *this;
  }
  await_task(const await_task&) = delete;
  await_task& operator=(const await_task&) = delete;
  ~await_task() { destroy(); }

  // S28: destroys the frame where it is suspended; a suspended awaiter withdraws.
  void destroy() noexcept {
    if (h_) std::exchange(h_, {}).destroy();
  }

 private:
  explicit await_task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

// A suspension point nothing resumes.
struct await_park {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  void await_resume() const noexcept {}
};

// `rec->resumed(reg, how)` records a resumption of the coroutine whose awaiter's node is `reg`.
template <class Recorder>
await_task await_cancelled_body(Recorder* rec, int reg, cancelkit::cancellation_token token) {
  int how = unexpected;
  try {
    co_await cancelkit::cancelled(token);
    how = resumed_normally;
  } catch (const std::logic_error&) {
    how = logic_error;
  } catch (...) {
  }
  rec->resumed(reg, how);
  co_await await_park{};
  rec->resumed(reg, resumed_again);
}

template <class Recorder>
await_task await_delay_body(Recorder* rec, int reg, cancelkit::cancellation_token token,
                            cancelkit::timer_service& timers) {
  int how = unexpected;
  try {
    co_await cancelkit::delay(timer_delay, token, timers);
    how = elapsed;
  } catch (const cancelkit::operation_canceled& e) {
    how = e.token() == token ? canceled_self : canceled_other;  // S27
  } catch (...) {
  }
  rec->resumed(reg, how);
  co_await await_park{};
  rec->resumed(reg, resumed_again);
}

}  // namespace cklin
