// property_tests/linearizability/execute.cpp — running a program on real threads (program.hpp):
// the executor of the linearizability test. It finds what the model checker's memory model
// cannot (the real hardware, the real futex and timer paths); the same programs also run under
// Relacy's scheduler, where a failing interleaving replays exactly (property_tests/model_programs).
#include "awaits.hpp"
#include "program.hpp"
#include "reasons.hpp"

#include <cancelkit/cancelkit.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <thread>

namespace cklin {

namespace {

std::atomic<std::uint64_t> clock_ticks{0};

std::uint64_t tick() { return clock_ticks.fetch_add(1, std::memory_order_seq_cst); }

void spin_for(std::chrono::nanoseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

thread_local int this_program_thread = -1;

struct recorder {
  std::vector<callback_record> slots;
  std::atomic<std::size_t> used{0};
  int spin_ns = 0;

  // A coroutine resumed (awaits.hpp), on the thread that resumed it.
  void resumed(int reg, int how) {
    callback_record r;
    r.reg = reg;
    r.thread = this_program_thread;
    r.start = tick();
    r.end = tick();
    r.how = how;
    const std::size_t i = used.fetch_add(1);
    if (i < slots.size()) slots[i] = r;
  }
};

struct recording_callback {
  recorder* rec;
  int reg;
  void operator()() const {
    callback_record r;
    r.reg = reg;
    r.thread = this_program_thread;
    r.start = tick();
    spin_for(std::chrono::nanoseconds(rec->spin_ns));
    r.end = tick();
    const std::size_t i = rec->used.fetch_add(1);
    if (i < rec->slots.size()) rec->slots[i] = r;
  }
};

}  // namespace

history execute(const program& p, int callback_spin_ns) {
  using namespace cancelkit;
  recorder rec;
  rec.slots.resize(static_cast<std::size_t>(p.registrations()) * 2 + 4);
  rec.spin_ns = callback_spin_ns;

  manual_timer_service timer;  // outlives the sources (timer_service.hpp)
  std::vector<std::optional<cancellation_source>> sources;
  std::vector<cancellation_token> tokens;
  for (int s = 0; s < p.roots; ++s) {
    if (s == timed_source && p.timer) {
      sources.emplace_back(cancellation_source(timer));
      sources.back()->cancel_after(timer_delay);
    } else {
      sources.emplace_back(cancellation_source());
    }
    tokens.push_back(sources.back()->token());
  }
  if (p.child_parents > 0) {
    std::vector<cancellation_token> parents(tokens.begin(), tokens.begin() + p.child_parents);
    sources.emplace_back(cancellation_source::linked(std::span<const cancellation_token>(parents)));
    tokens.push_back(sources.back()->token());
  }

  // Records, ids and reason objects, all made before the threads start.
  history h;
  std::vector<std::exception_ptr> reasons;
  for (std::size_t t = 0; t < p.threads.size(); ++t) {
    for (std::size_t i = 0; i < p.threads[t].size(); ++i) {
      op_record r;
      r.thread = static_cast<int>(t);
      r.index = static_cast<int>(i);
      r.id = static_cast<int>(h.ops.size());
      const op& o = p.threads[t][i];
      reasons.push_back(o.kind == op_kind::cancel && o.with_reason
                            ? std::make_exception_ptr(reason_tag{r.id})
                            : std::exception_ptr());
      h.ops.push_back(r);
    }
  }

  std::vector<cancellation_registration> regs(static_cast<std::size_t>(p.registrations()));
  for (std::size_t i = 0; i < p.pre.size(); ++i)
    regs[i] = tokens[static_cast<std::size_t>(p.pre[i])].register_callback(
        recording_callback{&rec, static_cast<int>(i)});

  // Declared after the sources and registrations, so destroyed before them even on a throw.
  std::vector<await_task> tasks(static_cast<std::size_t>(p.awaits()));

  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  std::size_t first_record = 0;
  for (std::size_t t = 0; t < p.threads.size(); ++t) {
    threads.emplace_back([&, t, first_record] {
      this_program_thread = static_cast<int>(t);
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      std::size_t k = first_record;
      for (const op& o : p.threads[t]) {
        op_record& r = h.ops[k++];
        cancellation_token& tok = tokens[static_cast<std::size_t>(o.source)];
        r.call = tick();
        switch (o.kind) {
          case op_kind::cancel: {
            cancel_options opts;
            opts.reason = reasons[static_cast<std::size_t>(r.id)];
            r.result = sources[static_cast<std::size_t>(o.source)]->cancel(opts) ? 1 : 0;
            break;
          }
          case op_kind::register_cb:
            regs[static_cast<std::size_t>(o.reg)] =
                tok.register_callback(recording_callback{&rec, o.reg});
            break;
          case op_kind::unregister:
            r.result = regs[static_cast<std::size_t>(o.reg)].unregister() ? 1 : 0;
            break;
          case op_kind::dispose:
            regs[static_cast<std::size_t>(o.reg)].dispose();
            break;
          case op_kind::try_reset:
            r.result = sources[static_cast<std::size_t>(o.source)]->try_reset() ? 1 : 0;
            break;
          case op_kind::is_requested:
            r.result = tok.is_cancellation_requested() ? 1 : 0;
            break;
          case op_kind::reason:
            r.result = reason_result(tok.cancellation_reason(), reasons);
            break;
          case op_kind::advance:
            timer.advance(timer_delay);
            break;
          case op_kind::pause:
            spin_for(std::chrono::microseconds(o.micros));
            break;
          case op_kind::await_cancelled:
            tasks[static_cast<std::size_t>(o.await)] = await_cancelled_body(&rec, o.reg, tok);
            break;
          case op_kind::await_delay:
            tasks[static_cast<std::size_t>(o.await)] = await_delay_body(&rec, o.reg, tok, timer);
            break;
          case op_kind::destroy_await:
            tasks[static_cast<std::size_t>(o.await)].destroy();
            break;
        }
        r.ret = tick();
      }
    });
    first_record += p.threads[t].size();
  }
  while (ready.load() < static_cast<int>(p.threads.size())) std::this_thread::yield();
  go.store(true, std::memory_order_release);
  for (std::thread& t : threads) t.join();
  for (const cancellation_token& tok : tokens)
    h.end.push_back(
        {tok.is_cancellation_requested(), reason_result(tok.cancellation_reason(), reasons)});
  for (await_task& t : tasks) t.destroy();  // S28: a suspended one withdraws (all joined)

  const std::size_t n = std::min(rec.used.load(), rec.slots.size());
  h.callbacks.assign(rec.slots.begin(), rec.slots.begin() + static_cast<std::ptrdiff_t>(n));
  if (rec.used.load() > rec.slots.size()) h.callbacks.push_back(callback_record{-1, -1, 0, 0});
  return h;
}

}  // namespace cklin
