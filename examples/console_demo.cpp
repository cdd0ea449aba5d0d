// The classic .NET CancellationTokenSource console demo, with cancelkit.
//
// A worker prints "Working... iteration N" once per interval and checks its token each
// iteration; pressing Enter (or closing stdin) cancels it. A callback registered on the token
// announces the cancellation, and the caller sees the worker end with operation_canceled.
//
//   console_demo [--interval-ms N]     (default 1000)
#include <cancelkit/cancelkit.hpp>

#include <chrono>
#include <future>
#include <iostream>
#include <mutex>
#include <string>
#include <string_view>

#include "interval_option.hpp"

namespace {

std::mutex output_mutex;

// One whole line per call, flushed, so lines from the two threads never interleave.
void say(std::string_view line) {
  const std::lock_guard lock(output_mutex);
  std::cout << line << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  std::chrono::milliseconds interval{1000};
  if (!example::parse_interval(argc, argv, interval)) {
    std::cerr << "usage: console_demo [--interval-ms N]\n";
    return 2;
  }

  cancelkit::cancellation_source source;
  const cancelkit::cancellation_token token = source.token();

  auto work = std::async(std::launch::async, [token, interval] {
    for (int iteration = 0;; ++iteration) {
      token.throw_if_cancellation_requested();
      say("Working... iteration " + std::to_string(iteration));
      // Like Thread.Sleep(interval), but wakes at once when cancellation is requested.
      static_cast<void>(token.wait_for(interval));
    }
  });

  say("Press Enter to request cancellation.");
  const auto registration =
      token.register_callback([] { say("Cancellation has been triggered."); });

  std::string line;
  std::getline(std::cin, line);  // end of input counts as Enter
  source.cancel();

  try {
    work.get();
    say("Task ran to completion.");  // unreachable: the worker only ends by cancellation
    return 1;
  } catch (const cancelkit::operation_canceled&) {
    say("Task was canceled.");
  }
  return 0;
}
