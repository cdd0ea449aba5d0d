// The .NET async console demo (`await Task.Delay(1000, token)` in an async method), as C++20
// coroutines with cancelkit's awaiters (<cancelkit/coroutine.hpp>).
//
// do_work_async(token) loops 10 times: it checks the token, prints "Working... iteration i" and
// awaits delay(interval, token). Pressing Enter (or closing stdin) cancels it: the delay then
// resumes on the cancelling thread with operation_canceled, which main reports as
// "Task was canceled."; a callback registered on the token announces the cancellation first
// (callbacks run latest-registered first, and it was registered after the task started waiting).
// If all 10 iterations end before Enter, the task runs to completion.
//
// The library is framework-agnostic; the example brings its own minimal task type.
//
//   async_demo [--interval-ms N]     (default 1000)
#include <cancelkit/cancelkit.hpp>
#include <cancelkit/coroutine.hpp>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <exception>
#include <iostream>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "interval_option.hpp"

namespace {

std::mutex output_mutex;

// One whole line per call, flushed: lines come from main and from the timer's worker threads.
void say(std::string_view line) {
  const std::lock_guard lock(output_mutex);
  std::cout << line << std::endl;
}

// A minimal eager task: runs at once, keeps its frame until destroyed, and get() waits for the
// end and rethrows what escaped the body.
class task {
 public:
  struct promise_type {
    std::exception_ptr error;
    std::atomic<bool> done{false};

    task get_return_object() noexcept {
      return task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_never initial_suspend() noexcept { return {}; }
    auto final_suspend() noexcept {
      struct publish_done {
        bool await_ready() noexcept { return false; }
        void await_suspend(std::coroutine_handle<promise_type> h) noexcept {
          // release: the body's effects happen-before get()'s acquire; from here on the frame
          // is suspended, so get() may go on and the destructor may destroy it.
          h.promise().done.store(true, std::memory_order_release);
        }
        void await_resume() noexcept {}
      };
      return publish_done{};
    }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { error = std::current_exception(); }
  };

  task(task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  task& operator=(task&&) = delete;
  ~task() {
    if (h_) h_.destroy();
  }

  void get() const {
    // acquire: pairs with final_suspend. A poll keeps the frame free of anything a waker would
    // touch after the frame may be gone.
    while (!h_.promise().done.load(std::memory_order_acquire))
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (h_.promise().error) std::rethrow_exception(h_.promise().error);
  }

 private:
  explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

task do_work_async(cancelkit::cancellation_token token, std::chrono::milliseconds interval) {
  for (int iteration = 0; iteration < 10; ++iteration) {
    token.throw_if_cancellation_requested();
    say("Working... iteration " + std::to_string(iteration));
    co_await cancelkit::delay(interval, token);  // Task.Delay(interval, token)
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::chrono::milliseconds interval{1000};
  if (!example::parse_interval(argc, argv, interval)) {
    std::cerr << "usage: async_demo [--interval-ms N]\n";
    return 2;
  }

  cancelkit::cancellation_source source;
  const cancelkit::cancellation_token token = source.token();

  say("Press Enter to request cancellation.");
  const task work = do_work_async(token, interval);
  const auto registration =
      token.register_callback([] { say("Cancellation has been triggered."); });

  std::string line;
  std::getline(std::cin, line);  // end of input counts as Enter
  source.cancel();

  try {
    work.get();
    say("Task ran to completion.");
  } catch (const cancelkit::operation_canceled&) {
    say("Task was canceled.");
  }
  return 0;
}
