// timer_service, manual_timer_service and system_timer_service().
//
// Each service keeps its armed timers in one ordered map keyed by (deadline, arming sequence),
// guarded by one mutex. A firing timer is removed from the map and marked `firing` under that
// mutex, then cancels its source outside it; try_reset() fails while `firing` is set (S18), which
// closes the window where a reset could slip between "timer fired" and "source cancelled".
// The mutex is taken before any state lock, never after ([I12] in detail/state.hpp).
#include <cancelkit/timer_service.hpp>

#include <cancelkit/exceptions.hpp>

#include "source_extension.hpp"

#include <condition_variable>
#include <map>
#include <stdexcept>
#include <thread>
#include <utility>

namespace cancelkit {

using detail::source_extension;
using detail::state;

struct timer_service::impl {
  using key = std::pair<clock::time_point, std::uint64_t>;

  std::mutex mutex;
  std::map<key, source_extension*> timers;  // guarded by mutex
  std::uint64_t next_sequence = 0;          // guarded by mutex
  std::function<void(std::exception_ptr)> error_handler;  // guarded by mutex
};

timer_service::timer_service() : impl_(std::make_unique<impl>()) {}
timer_service::~timer_service() = default;

void timer_service::set_error_handler(std::function<void(std::exception_ptr)> handler) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->error_handler = std::move(handler);
}

timer_service::clock::time_point timer_service::run_due(clock::time_point now) {
  for (;;) {
    std::unique_lock<std::mutex> lock(impl_->mutex);
    auto first = impl_->timers.begin();
    if (first == impl_->timers.end()) return clock::time_point::max();
    if (first->first.first > now) return first->first.first;
    source_extension* e = first->second;
    impl_->timers.erase(first);
    e->armed.store(false, std::memory_order_relaxed);  // relaxed: see source_extension
    state* s = e->owner();
    if (!s->try_add_ref()) continue;  // being destroyed: nobody can observe it (S17)
    e->firing = true;
    lock.unlock();

    std::exception_ptr reason;
    try {
      reason = std::make_exception_ptr(deadline_exceeded());
    } catch (...) {
      reason = std::current_exception();  // out of memory: the bad_alloc is the reason
    }
    detail::cancel_in_background(s, reason, *this);

    lock.lock();
    e->firing = false;
    lock.unlock();
    s->release_canceller();  // the timer was one of its cancellers [I10]
    state::release(s);
  }
}

namespace detail {

void timer_access::arm(source_extension& e, timer_service::clock::time_point deadline) {
  timer_service& service = e.service();
  timer_service::impl& t = *service.impl_;
  {
    std::lock_guard<std::mutex> lock(t.mutex);
    const timer_service::impl::key k{deadline, t.next_sequence};
    t.timers.emplace(k, &e);  // may throw: nothing changed yet
    ++t.next_sequence;
    if (e.armed.load(std::memory_order_relaxed)) {  // relaxed: written under this mutex
      t.timers.erase({e.deadline, e.sequence});  // S17: replaces the earlier timer
    } else {
      e.armed.store(true, std::memory_order_relaxed);
      e.owner()->add_canceller();  // relaxed inside: the caller's source handle is a canceller
    }
    e.deadline = deadline;
    e.sequence = k.second;
  }
  service.timers_changed();
}

void timer_access::disarm(source_extension& e) noexcept {
  // relaxed pre-check: a timer armed concurrently with this call is ordered by the caller
  // (cancel_after vs cancel race: the later timer then finds the source cancelled).
  if (!e.armed.load(std::memory_order_relaxed)) return;
  bool was_armed = false;
  {
    std::lock_guard<std::mutex> lock(e.service().impl_->mutex);
    if (e.armed.load(std::memory_order_relaxed)) {
      e.service().impl_->timers.erase({e.deadline, e.sequence});
      e.armed.store(false, std::memory_order_relaxed);
      was_armed = true;
    }
  }
  if (was_armed) e.owner()->release_canceller();
}

bool timer_access::reset(source_extension& e) noexcept {
  bool was_armed = false;
  {
    std::lock_guard<std::mutex> lock(e.service().impl_->mutex);
    if (e.firing) return false;  // S18: the timer has started firing
    if (!e.owner()->reset_registrations()) return false;  // cancelled (or cannot be)
    if (e.armed.load(std::memory_order_relaxed)) {
      e.service().impl_->timers.erase({e.deadline, e.sequence});
      e.armed.store(false, std::memory_order_relaxed);
      was_armed = true;
    }
  }
  if (was_armed) e.owner()->release_canceller();
  return true;
}

void timer_access::forget(source_extension& e) noexcept {
  // relaxed: the owner is being destroyed, so no arm() can run; a timer that fired and let go
  // of its reference happens-before this destruction (reference drops are release/acquire).
  if (!e.armed.load(std::memory_order_relaxed)) return;
  std::lock_guard<std::mutex> lock(e.service().impl_->mutex);
  if (e.armed.load(std::memory_order_relaxed)) {
    e.service().impl_->timers.erase({e.deadline, e.sequence});
    e.armed.store(false, std::memory_order_relaxed);
  }
}

void timer_access::report(timer_service& service, dispatch_outcome&& outcome) noexcept {
  std::function<void(std::exception_ptr)> handler;
  {
    std::lock_guard<std::mutex> lock(service.impl_->mutex);
    handler = service.impl_->error_handler;
  }
  if (!handler) std::terminate();  // S15: no handler installed
  std::vector<std::exception_ptr> errors = std::move(outcome.errors);
  if (errors.empty()) errors.push_back(outcome.first_error);  // collection ran out of memory
  // A handler that throws, or no memory for the aggregate, ends here: we are noexcept.
  handler(std::make_exception_ptr(aggregate_exception(std::move(errors))));
}

}  // namespace detail

// ---- manual_timer_service ---------------------------------------------------------------------

manual_timer_service::manual_timer_service() = default;
manual_timer_service::~manual_timer_service() = default;

manual_timer_service::clock::time_point manual_timer_service::now() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return now_;
}

void manual_timer_service::advance(std::chrono::nanoseconds by) {
  if (by < std::chrono::nanoseconds::zero())
    throw std::invalid_argument("manual_timer_service::advance: negative duration");
  clock::time_point now;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    now_ += by;
    now = now_;
  }
  run_due(now);
}

// ---- system_timer_service ---------------------------------------------------------------------

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
