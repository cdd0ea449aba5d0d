// cancelkit <-> std::stop_token interop, both directions.
//
// 1. A std::jthread worker blocks in condition_variable_any::wait(lock, stop_token, pred) with
//    the stop token of a cancellation_source (token().to_stop_token()); source.cancel() wakes it.
// 2. cancellation_source::linked(jthread.get_stop_token()) gives a token that request_stop()
//    cancels, running the token's callbacks.
//
// Exits 0 when both behave as expected, 1 otherwise.
#include <cancelkit/cancelkit.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <stop_token>
#include <thread>

using namespace std::chrono_literals;

namespace {

bool cancel_wakes_a_stop_token_wait() {
  std::cout << "[1] cancellation_source -> std::stop_token -> condition_variable_any\n";
  cancelkit::cancellation_source source;
  std::mutex mutex;
  std::condition_variable_any cv;
  const bool work_ready = false;  // never set: only cancellation can end the wait
  bool woken_by_stop = false;

  std::jthread worker([&, stop = source.token().to_stop_token()] {
    std::unique_lock lock(mutex);
    const bool ready = cv.wait(lock, stop, [&] { return work_ready; });
    woken_by_stop = !ready && stop.stop_requested();
  });

  std::this_thread::sleep_for(20ms);  // let the worker block (the outcome does not depend on it)
  std::cout << "    main: source.cancel()\n";
  source.cancel();
  worker.join();

  std::cout << "    worker: " << (woken_by_stop ? "wait ended by the stop request" : "wait did NOT end by a stop request")
            << '\n';
  return woken_by_stop;
}

bool request_stop_cancels_a_linked_token() {
  std::cout << "[2] std::jthread::request_stop() -> cancellation_source::linked(stop_token)\n";
  std::jthread worker([](std::stop_token stop) {
    std::mutex mutex;
    std::condition_variable_any cv;
    std::unique_lock lock(mutex);
    static_cast<void>(cv.wait(lock, stop, [] { return false; }));
  });

  const cancelkit::cancellation_source linked =
      cancelkit::cancellation_source::linked(worker.get_stop_token());
  const cancelkit::cancellation_token token = linked.token();
  std::atomic<bool> callback_ran{false};
  const auto registration = token.register_callback([&callback_ran] {
    callback_ran = true;
    std::cout << "    callback: linked token cancelled\n";
  });

  const bool before = token.is_cancellation_requested();
  std::cout << "    before request_stop: cancelled = " << std::boolalpha << before << '\n';
  std::cout << "    main: worker.request_stop()\n";
  worker.request_stop();
  const bool after = token.wait_for(5s);
  worker.join();
  std::cout << "    after request_stop: cancelled = " << after
            << ", callback ran = " << callback_ran.load() << '\n';
  return !before && after && callback_ran.load();
}

}  // namespace

int main() {
  const bool first = cancel_wakes_a_stop_token_wait();
  const bool second = request_stop_cancels_a_linked_token();
  const bool ok = first && second;
  std::cout << (ok ? "jthread interop: OK" : "jthread interop: FAILED") << '\n';
  return ok ? 0 : 1;
}
