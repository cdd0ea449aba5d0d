// A minimal coroutine type for the tests of <cancelkit/coroutine.hpp> (unit tests, stress).
//
// cktest::task starts at once (initial_suspend never) and stays suspended at its end
// (final_suspend always) until the task object destroys the frame, so a test can read the
// outcome after the body finished on any thread. `finished()` is an acquire load of a flag the
// final suspension sets with release, so a test thread may poll it while another thread resumes
// the coroutine, and destroy the frame once it is true. destroy() destroys the frame at its
// current suspension point (a coroutine suspended in an awaiter: the awaiter's destructor runs).
#pragma once

#include <atomic>
#include <coroutine>
#include <exception>
#include <utility>

namespace cktest {

class task {
 public:
  struct promise_type {
    std::exception_ptr error;
    std::atomic<bool> finished{false};

    task get_return_object() noexcept {
      return task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_never initial_suspend() noexcept { return {}; }
    auto final_suspend() noexcept {
      struct final_awaiter {
        bool await_ready() noexcept { return false; }
        void await_suspend(std::coroutine_handle<promise_type> h) noexcept {
          // release: the body's effects happen-before a poller's acquire of `finished`. The
          // frame is suspended from here on: the poller may destroy it.
          h.promise().finished.store(true, std::memory_order_release);
        }
        void await_resume() noexcept {}
      };
      return final_awaiter{};
    }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { error = std::current_exception(); }
  };

  task() noexcept = default;
  task(task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  task& operator=(task&& other) noexcept {
    task(std::move(other)).swap(*this);
    return *this;
  }
  ~task() { destroy(); }

  // True once the body has finished (returned or thrown). acquire: pairs with final_suspend.
  bool finished() const noexcept {
    return h_ && h_.promise().finished.load(std::memory_order_acquire);
  }
  // The exception the body let escape, once finished().
  std::exception_ptr error() const noexcept { return h_.promise().error; }

  // Destroys the frame where it is suspended. The coroutine must not be running.
  void destroy() noexcept {
    if (h_) std::exchange(h_, {}).destroy();
  }

  void swap(task& other) noexcept { std::swap(h_, other.h_); }

 private:
  explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

}  // namespace cktest
