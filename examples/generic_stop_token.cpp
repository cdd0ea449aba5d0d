// One generic algorithm over stop tokens, driven by a cancelkit source and by a std::stop_source.
//
// `sleep_unless_stopped(token, d)` is written only against the stoppable-token concept
// (cancelkit/stoppable_token.hpp): it registers a callback through stop_callback_for_t, which is
// cancellation_callback for a cancellation_token and std::stop_callback for a std::stop_token,
// and sleeps on a condition variable that the callback notifies. Generic code written this way
// takes either token unchanged, and moves to C++26's std::stoppable_token by renaming.
//
// Exits 0 when both tokens end the sleep early and a never-stopped token lets it run out;
// 1 otherwise.
#include <cancelkit/cancelkit.hpp>

#include <chrono>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <stop_token>
#include <thread>

using namespace std::chrono_literals;

namespace {

// Sleeps for `d` or until `token` is stopped, whichever comes first; true iff it was stopped.
template <cancelkit::stoppable_token_via_trait Token>
bool sleep_unless_stopped(const Token& token, std::chrono::milliseconds d) {
  std::mutex mutex;
  std::condition_variable woken;
  bool stopped = false;
  auto wake = [&] {
    const std::lock_guard<std::mutex> lock(mutex);
    stopped = true;
    woken.notify_all();
  };
  // Runs `wake` at once if the token is already stopped; unregisters (waiting for a running
  // `wake`) at the end of the scope, before `mutex` and `woken` go.
  const cancelkit::stop_callback_for_t<Token, decltype(wake)> on_stop(token, wake);
  std::unique_lock<std::mutex> lock(mutex);
  woken.wait_for(lock, d, [&] { return stopped; });
  return stopped;
}

bool report(const char* what, bool stopped, bool expected) {
  std::cout << what << ": " << (stopped ? "stopped early" : "slept the whole time") << '\n';
  return stopped == expected;
}

}  // namespace

int main() {
  bool ok = true;

  // A cancelkit source whose timer cancels it after 50 ms ends a 20 s sleep.
  cancelkit::cancellation_source timed(50ms);
  ok &= report("cancellation_token, cancel_after(50ms)", sleep_unless_stopped(timed.get_token(), 20s),
               true);

  // A std::stop_source requested by another thread ends it just the same.
  std::stop_source std_source;
  std::jthread requester([&] {
    std::this_thread::sleep_for(50ms);
    std_source.request_stop();
  });
  ok &= report("std::stop_token, request_stop() from a thread",
               sleep_unless_stopped(std_source.get_token(), 20s), true);

  // A token nobody stops: the sleep runs out.
  cancelkit::cancellation_source idle;
  ok &= report("cancellation_token, never cancelled", sleep_unless_stopped(idle.get_token(), 20ms),
               false);

  std::cout << (ok ? "generic stop token: OK" : "generic stop token: FAILED") << '\n';
  return ok ? 0 : 1;
}
