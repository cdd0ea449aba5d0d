// Helpers shared by the unit tests: bounded waiting, threads that cannot hang the run, a thread
// with a small stack, and the exception type the tests throw from callbacks.
//
// Every concurrent test is bounded in time: it polls with `eventually` and joins threads through
// `bounded_thread`, which reports a failure and ends the process instead of hanging when a thread
// does not finish (CTest's TIMEOUT is the last line of defence).
#pragma once

#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

namespace cktest {

using steady = std::chrono::steady_clock;

// How long a test waits for something that should happen promptly before calling it a failure.
inline constexpr std::chrono::seconds patience{5};

// Polls `pred` until it returns true or `timeout` has passed; returns its last value.
template <class Pred>
bool eventually(Pred&& pred, steady::duration timeout = patience) {
  const auto deadline = steady::now() + timeout;
  for (int spins = 0;; ++spins) {
    if (pred()) return true;
    if (steady::now() >= deadline) return pred();
    if (spins < 1000) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
}

// Milliseconds since `start`, for checks like "returned at once".
inline std::chrono::milliseconds elapsed_since(steady::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
}

[[noreturn]] inline void abandon_hung_test(const char* what) {
  ADD_FAILURE() << what << " (the test would hang; ending the process)";
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(EXIT_FAILURE);
}

// A std::thread that is never joined without a bound. If it does not finish within the bound,
// the failure is reported and the process ends (the thread may use the test's stack, so the test
// cannot safely go on).
class bounded_thread {
 public:
  template <class F>
  explicit bounded_thread(F&& f)
      : done_(std::make_shared<std::atomic<bool>>(false)),
        thread_([fn = std::forward<F>(f), done = done_]() mutable {
          fn();
          done->store(true, std::memory_order_release);
        }) {}
  bounded_thread(const bounded_thread&) = delete;
  bounded_thread& operator=(const bounded_thread&) = delete;
  ~bounded_thread() { join(); }

  bool finished() const { return done_->load(std::memory_order_acquire); }
  std::thread::id id() const { return thread_.get_id(); }

  void join(steady::duration timeout = std::chrono::seconds(10)) {
    if (!thread_.joinable()) return;
    if (!eventually([this] { return finished(); }, timeout)) {
      abandon_hung_test("a test thread did not finish in time");
    }
    thread_.join();
  }

 private:
  std::shared_ptr<std::atomic<bool>> done_;
  std::thread thread_;
};

// Cancels `s` from another thread after `delay`, so that a wait has surely started. (A template
// so that this header needs no cancelkit header; deduced from the constructor.)
template <class Source>
class delayed_cancel {
 public:
  delayed_cancel(Source& s, std::chrono::milliseconds delay)
      : thread_([&s, delay] {
          std::this_thread::sleep_for(delay);
          static_cast<void>(s.cancel());
        }) {}

 private:
  bounded_thread thread_;
};

// Runs `fn` on a thread whose whole stack is `stack_bytes`, and waits (bounded) for it. Used to
// show that stack use does not grow with the depth of a linked chain (S20).
inline void run_on_small_stack(std::function<void()> fn, std::size_t stack_bytes,
                               std::chrono::seconds timeout = std::chrono::seconds(45)) {
  struct context {
    std::function<void()> fn;
  } ctx{std::move(fn)};
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, stack_bytes), 0);
  pthread_t thread;
  const int created = pthread_create(
      &thread, &attr,
      [](void* p) -> void* {
        static_cast<context*>(p)->fn();
        return nullptr;
      },
      &ctx);
  pthread_attr_destroy(&attr);
  ASSERT_EQ(created, 0);
  timespec until{};
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += static_cast<time_t>(timeout.count());
  if (pthread_timedjoin_np(thread, nullptr, &until) != 0) {
    abandon_hung_test("the small-stack thread did not finish in time");
  }
}

// What the tests throw from callbacks; `id` tells the throwers apart.
struct test_error {
  int id;
};

// The ids of the test_errors in `exceptions`, in order; -1 for anything else.
inline std::vector<int> error_ids(const std::vector<std::exception_ptr>& exceptions) {
  std::vector<int> ids;
  for (const auto& e : exceptions) {
    try {
      std::rethrow_exception(e);
    } catch (const test_error& err) {
      ids.push_back(err.id);
    } catch (...) {
      ids.push_back(-1);
    }
  }
  return ids;
}

// True iff `e` holds an exception of type E.
template <class E>
bool holds(const std::exception_ptr& e) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace cktest
