// system_timer_service(): the process-wide timer_service on std::chrono::steady_clock, with a
// timer thread that waits for deadlines and a small pool of workers that fire the due timers.
//
// Threads. The timer thread runs loop(): it sleeps until the earliest deadline or until
// timers_changed() bumps `generation_` (which closes the window between reading the next
// deadline and going to sleep); run_due() then passes each due timer to hand_off(), which queues
// it for a worker. The timer thread runs no user code: when it fired timers itself, one callback
// that blocked delayed every other timer of the process, and a callback that waited for another
// timer-driven token deadlocked (issue 16, defect 7). The one exception is the last resort of
// hand_off(): with no memory to queue a timer, or no worker thread at all, it fires the timer
// itself rather than lose it (`inline_firing_`). Workers are detached, so nothing ever joins a
// thread that may be running a callback (defect 12).
//
// Locks. `mutex_` guards every field below. It is never held while calling run_due(), fire() or
// user code, and never taken while the base service's mutex (timer_access::mutex_of) is held, so
// the fork handler may take both, in that order.
//
// fork() (defect 5). The child has only the forking thread; it used to keep a joinable
// std::thread for a timer thread that does not exist there (its timers never fired, and its
// exit joined a ghost), and a fork while another thread held a timer mutex left it locked in
// the child forever. pthread_atfork handlers, registered before the first thread starts, hold
// both mutexes across the fork, so the child's copy of the service is consistent, and the child
// forgets the parent's threads: the next ensure_running() starts fresh ones.
//
// Exit (defect 12). shutdown() runs at the shutdown point (register_shutdown): it stops all
// firing, joins the timer thread (which runs no user code) and waits for the idle workers to
// leave, but does not wait for busy ones: their callback may be waiting for the exiting thread.
// The service object is never destroyed, so a late worker touches only valid memory.
// The rules users see are at the top of timer_service.hpp.
#include <cancelkit/timer_service.hpp>

#include "source_extension.hpp"

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <utility>

namespace cancelkit {

namespace {

// Enough for callbacks that block for a while (each blocked one holds a worker); bounded so that
// a burst of due timers cannot start an unbounded number of threads. Documented in
// timer_service.hpp.
constexpr std::size_t max_workers = 8;
// An idle worker exits after this long, so a process that used timers once keeps no pool.
constexpr std::chrono::seconds idle_retirement{2};

class system_timer final : public timer_service {
 public:
  clock::time_point now() const override { return clock::now(); }

  // The shutdown point: see the top of this file and of timer_service.hpp.
  void shutdown() noexcept;

 private:
  void ensure_running() override;
  void timers_changed() noexcept override;
  void hand_off(detail::timer_entry& due) noexcept override;

  void loop();
  void work();
  void start_worker_locked();  // throws std::system_error, changing nothing

  static void register_shutdown();
  static void register_fork_handlers();
  static void before_fork() noexcept;
  static void after_fork_in_parent() noexcept;
  static void after_fork_in_child() noexcept;

  std::mutex mutex_;
  std::condition_variable wake_;     // the timer thread sleeps here
  std::condition_variable work_;     // idle workers wait here for `due_`
  std::condition_variable retired_;  // shutdown() waits here for the idle workers to leave
  // Held through a pointer so that a fork child can drop it: the std::thread of a thread that
  // does not exist must never be joined, detached or destroyed.
  std::thread* timer_thread_ = nullptr;
  std::deque<detail::timer_entry*> due_;  // handed off, not yet taken by a worker
  std::size_t workers_ = 0;                    // live worker threads
  std::size_t idle_ = 0;                       // workers waiting on work_
  std::uint64_t generation_ = 0;
  bool stopping_ = false;       // past the shutdown point
  bool inline_firing_ = false;  // the timer thread is running fire() itself (last resort)
};

system_timer& system_timer_instance() {
  // Never destroyed: sources may disarm their timers during static destruction, and a worker
  // still running a callback at exit comes back to this object. Only the threads are stopped
  // at exit (register_shutdown).
  static system_timer* const instance = new system_timer();
  return *instance;
}

void system_timer::ensure_running() {
  register_fork_handlers();
  // Places the shutdown point: its guard is constructed at the first armed timer of the process
  // (a fork child inherits it with the parent's memory and exit handlers).
  register_shutdown();
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_ || timer_thread_ != nullptr) return;  // after the shutdown point nothing fires
  // Throws std::system_error (or std::bad_alloc) when no thread can be started: the caller
  // (timer_access::arm) has changed nothing yet, so cancel_after throws and the earlier timer
  // stays as it was (S25). Swallowing it armed a timer that never fired (issue 16, defect 7).
  timer_thread_ = std::make_unique<std::thread>([this] { loop(); }).release();
  if (!due_.empty() && workers_ == 0) {
    // Timers handed off in the parent and queued at the fork: give them a worker now. If none
    // can start, the next hand_off() tries again.
    try {
      start_worker_locked();
    } catch (...) {
    }
  }
}

void system_timer::timers_changed() noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++generation_;
  }
  wake_.notify_one();
}

void system_timer::hand_off(detail::timer_entry& due) noexcept {
  std::unique_lock<std::mutex> lock(mutex_);
  // Past the shutdown point no cancellation starts: the timer keeps run_due's reference and
  // `firing` for good (documented in timer_service.hpp; the process is ending).
  if (stopping_) return;
  bool queued = false;
  try {
    due_.push_back(&due);
    queued = true;
    if (idle_ < due_.size() && workers_ < max_workers) start_worker_locked();
  } catch (...) {
    // No memory to queue it, or no new thread for it. An existing worker takes a queued timer;
    // without any worker, it is fired here rather than lost.
    if (!queued || workers_ == 0) {
      if (queued) due_.pop_back();  // ours: the lock was held since the push
      inline_firing_ = true;        // shutdown() must not join us while we run user code
      lock.unlock();
      fire(due);
      lock.lock();
      inline_firing_ = false;
      return;
    }
  }
  lock.unlock();
  work_.notify_one();
}

void system_timer::start_worker_locked() {
  // Detached: nothing joins a worker, which may be running a callback that waits for the
  // thread that would join it (defect 12). The service outlives it (never destroyed).
  std::thread([this] { work(); }).detach();
  ++workers_;
}

void system_timer::loop() {
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

void system_timer::work() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    if (due_.empty() && !stopping_) {
      ++idle_;
      const bool woken =
          work_.wait_for(lock, idle_retirement, [this] { return stopping_ || !due_.empty(); });
      --idle_;
      if (stopping_) retired_.notify_all();
      if (!woken) break;  // idle for a while: retire
    }
    if (stopping_) break;  // past the shutdown point: queued timers are not fired
    detail::timer_entry* const e = due_.front();
    due_.pop_front();
    lock.unlock();
    fire(*e);  // [T3]: a source's `firing` was set by run_due and is cleared in here
    lock.lock();
  }
  --workers_;
}

void system_timer::shutdown() noexcept {
  std::thread* timer = nullptr;
  bool timer_runs_user_code = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;  // from here hand_off() and the workers fire nothing
    timer = std::exchange(timer_thread_, nullptr);
    timer_runs_user_code = inline_firing_;
  }
  wake_.notify_all();
  work_.notify_all();
  if (timer != nullptr) {
    // The timer thread runs no user code, so joining it cannot wait on the exiting thread;
    // except in hand_off()'s last resort (or exit() called from there: we are that thread).
    if (timer_runs_user_code || timer->get_id() == std::this_thread::get_id()) {
      timer->detach();
    } else {
      timer->join();
    }
    delete timer;
  }
  // Idle workers wake at once (stopping_) and leave; busy ones are not waited for: once their
  // callback returns they see stopping_ and leave too.
  std::unique_lock<std::mutex> lock(mutex_);
  retired_.wait(lock, [this] { return idle_ == 0; });
}

void system_timer::register_shutdown() {
  struct shutdown_at_exit {
    shutdown_at_exit() noexcept {}
    ~shutdown_at_exit() { system_timer_instance().shutdown(); }
  };
  // Its destruction is the shutdown point: by [basic.start.term], after every static object
  // constructed after this one and before every one constructed earlier.
  static shutdown_at_exit guard;
}

void system_timer::register_fork_handlers() {
  // Once per process, before the first thread starts (so no fork can come between). Not under
  // mutex_: glibc may hold its atfork lock while running before_fork, which takes mutex_. A
  // failure throws out of the static's initialisation and is retried on the next arm.
  static const bool registered = [] {
    const int rc = pthread_atfork(&before_fork, &after_fork_in_parent, &after_fork_in_child);
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "cancelkit: pthread_atfork");
    return true;
  }();
  static_cast<void>(registered);
}

void system_timer::before_fork() noexcept {
  // Both mutexes across the fork: no thread is then inside a critical section of the service,
  // so the child's copy of every guarded field is consistent and no lock is held there.
  // Order: ours, then the base service's (nothing takes them the other way round).
  system_timer& t = system_timer_instance();
  t.mutex_.lock();
  detail::timer_access::mutex_of(t).lock();
}

void system_timer::after_fork_in_parent() noexcept {
  system_timer& t = system_timer_instance();
  detail::timer_access::mutex_of(t).unlock();
  t.mutex_.unlock();
}

void system_timer::after_fork_in_child() noexcept {
  system_timer& t = system_timer_instance();
  // The parent's threads do not exist here. Their std::thread is dropped (leaked, never
  // joined, detached or destroyed); the next ensure_running() starts a fresh timer thread, and
  // hand_off() fresh workers. Timers still in the map stay armed and fire then; a timer that a
  // thread of the parent was firing (or handing off) is never finished here (timer_service.hpp).
  t.timer_thread_ = nullptr;
  t.workers_ = 0;
  t.idle_ = 0;
  t.inline_firing_ = false;
  // The parent's waiters on these condition variables do not exist here either, but glibc's
  // condition variable keeps count of them, and a notify could wait for them forever. Fresh
  // ones replace them; reusing the storage ends the old ones' lifetime ([basic.life]).
  ::new (static_cast<void*>(&t.wake_)) std::condition_variable();
  ::new (static_cast<void*>(&t.work_)) std::condition_variable();
  ::new (static_cast<void*>(&t.retired_)) std::condition_variable();
  // The forking thread (whose copy we are) took them in before_fork().
  detail::timer_access::mutex_of(t).unlock();
  t.mutex_.unlock();
}

}  // namespace

timer_service& system_timer_service() { return system_timer_instance(); }

}  // namespace cancelkit
