// system_timer_service(): the process-wide timer_service on std::chrono::steady_clock, with a
// background thread of its own.
#include <cancelkit/timer_service.hpp>

#include <condition_variable>
#include <mutex>
#include <thread>

namespace cancelkit {

namespace {

// One background thread, started by the first armed timer. It sleeps until the earliest
// deadline or until timers_changed() bumps `generation_`, which closes the window between
// reading the next deadline and going to sleep.
class system_timer final : public timer_service {
 public:
  clock::time_point now() const override { return clock::now(); }

  void stop() noexcept {
    std::thread worker;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      worker = std::move(thread_);
    }
    wake_.notify_all();
    if (!worker.joinable()) return;
    if (worker.get_id() == std::this_thread::get_id()) {
      worker.detach();  // exit() called from a timer callback: cannot join ourselves
    } else {
      worker.join();
    }
  }

 private:
  void timers_changed() noexcept override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      ++generation_;
      if (!thread_.joinable()) {
        try {
          thread_ = std::thread([this] { loop(); });
        } catch (...) {
          return;  // no thread can be started: timers stay armed and fire once one can be
        }
        register_shutdown();
      }
    }
    wake_.notify_one();
  }

  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      const std::uint64_t seen = generation_;
      lock.unlock();
      const clock::time_point next = run_due(clock::now());
      lock.lock();
      if (stopping_ || generation_ != seen) continue;
      if (next == clock::time_point::max()) {
        wake_.wait(lock);
      } else {
        wake_.wait_until(lock, next);
      }
    }
  }

  static void register_shutdown();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::thread thread_;            // guarded by mutex_
  std::uint64_t generation_ = 0;  // guarded by mutex_
  bool stopping_ = false;         // guarded by mutex_
};

system_timer& system_timer_instance() {
  // Never destroyed: sources may disarm their timers during static destruction. Only the thread
  // is stopped at exit (register_shutdown).
  static system_timer* const instance = new system_timer();
  return *instance;
}

void system_timer::register_shutdown() {
  struct shutdown_at_exit {
    ~shutdown_at_exit() { system_timer_instance().stop(); }
  };
  static shutdown_at_exit guard;
}

}  // namespace

timer_service& system_timer_service() { return system_timer_instance(); }

}  // namespace cancelkit
