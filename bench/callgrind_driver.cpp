// cancelkit-bench-callgrind: runs ONE hot-path operation N times inside ckbench_measure(), so
// that `valgrind --tool=callgrind --collect-atstart=no --toggle-collect=ckbench_measure` counts
// exactly the instructions of those N operations (plus the loop). scripts/bench-callgrind runs
// every operation, subtracts the empty loop and prints instructions per operation — a figure
// that does not move with machine load, unlike wall-clock times.
//
//   usage: cancelkit-bench-callgrind OPERATION [N]      (N defaults to 10000)
//          cancelkit-bench-callgrind --list
//
// Setup (sources, tokens, callbacks to dispatch) happens outside ckbench_measure and is not
// counted. One thread is started and joined first, as in cancelkit-bench (libstdc++'s
// multi-threaded paths). Note: a syscall counts as one instruction here, so std's futex wake per
// dispatched callback is almost free in these counts; the wall-clock family shows its real cost.
#include "raw_floor.hpp"

#include <cancelkit/cancelkit.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace {

struct small_fn {
  int* target;
  void operator()() const noexcept { ++*target; }
};

int sink = 0;

// Keeps `v` alive in a register without a memory clobber (which would force reloads that the
// real code does not do).
template <class T>
inline void keep(T& v) {
  asm volatile("" : "+r"(v));
}
template <class T>
inline void keep_object(T& obj) {
  asm volatile("" : : "r"(&obj) : "memory");
}

struct context {
  std::size_t n = 0;
  cancelkit::cancellation_source ck_source;
  cancelkit::cancellation_token ck_token = ck_source.token();
  std::stop_source st_source;
  std::stop_token st_token = st_source.get_token();
  std::unique_ptr<std::atomic<bool>> raw_flag = std::make_unique<std::atomic<bool>>(false);

  // For the cancel operations: n sources, each with `per_source` callbacks.
  std::vector<cancelkit::cancellation_source> ck_sources;
  std::vector<std::stop_source> st_sources;
  std::unique_ptr<std::optional<cancelkit::cancellation_callback<small_fn>>[]> ck_cbs;
  std::unique_ptr<std::optional<std::stop_callback<small_fn>>[]> st_cbs;
  std::unique_ptr<bench::raw_list[]> raw_lists;
  std::unique_ptr<std::optional<bench::raw_callback<small_fn>>[]> raw_cbs;
  std::unique_ptr<bench::raw_detach_list[]> detach_lists;
  std::unique_ptr<std::optional<bench::raw_detach_callback<small_fn>>[]> detach_cbs;
  std::unique_ptr<bench::raw_claim_list[]> claim_lists;
  std::unique_ptr<std::optional<bench::raw_claim_callback<small_fn>>[]> claim_cbs;
  bench::raw_list raw_list;

  void prepare_cancel(std::size_t per_source) {
    ck_sources.resize(n);
    st_sources.resize(n);
    ck_cbs = std::make_unique<std::optional<cancelkit::cancellation_callback<small_fn>>[]>(n * per_source);
    st_cbs = std::make_unique<std::optional<std::stop_callback<small_fn>>[]>(n * per_source);
    raw_lists = std::make_unique<bench::raw_list[]>(n);
    raw_cbs = std::make_unique<std::optional<bench::raw_callback<small_fn>>[]>(n * per_source);
    detach_lists = std::make_unique<bench::raw_detach_list[]>(n);
    detach_cbs =
        std::make_unique<std::optional<bench::raw_detach_callback<small_fn>>[]>(n * per_source);
    claim_lists = std::make_unique<bench::raw_claim_list[]>(n);
    claim_cbs =
        std::make_unique<std::optional<bench::raw_claim_callback<small_fn>>[]>(n * per_source);
    for (std::size_t i = 0; i < n; ++i) {
      const cancelkit::cancellation_token ct = ck_sources[i].token();
      const std::stop_token stt = st_sources[i].get_token();
      for (std::size_t k = 0; k < per_source; ++k) {
        ck_cbs[i * per_source + k].emplace(ct, small_fn{&sink});
        st_cbs[i * per_source + k].emplace(stt, small_fn{&sink});
        raw_cbs[i * per_source + k].emplace(raw_lists[i], small_fn{&sink});
        detach_cbs[i * per_source + k].emplace(detach_lists[i], small_fn{&sink});
        claim_cbs[i * per_source + k].emplace(claim_lists[i], small_fn{&sink});
      }
    }
  }
};

using op_fn = void (*)(context&);

struct operation {
  const char* name;
  const char* what;
  std::size_t callbacks_per_cancel;  // > 0: prepare sources with that many callbacks
  bool cancels;                      // needs n prepared sources
  op_fn run;
};

void op_empty(context& c) {
  for (std::size_t i = 0; i < c.n; ++i) keep(i);
}

void op_check_cancelkit(context& c) {
  const cancelkit::cancellation_token& t = c.ck_token;
  for (std::size_t i = 0; i < c.n; ++i) {
    bool r = t.is_cancellation_requested();
    keep(r);
  }
}
void op_check_std(context& c) {
  const std::stop_token& t = c.st_token;
  for (std::size_t i = 0; i < c.n; ++i) {
    bool r = t.stop_requested();
    keep(r);
  }
}
void op_check_raw(context& c) {
  const std::atomic<bool>* f = c.raw_flag.get();
  for (std::size_t i = 0; i < c.n; ++i) {
    bool r = f->load(std::memory_order_acquire);
    keep(r);
  }
}

void op_copy_cancelkit(context& c) {
  for (std::size_t i = 0; i < c.n; ++i) {
    cancelkit::cancellation_token copy(c.ck_token);
    keep_object(copy);
  }
}
void op_copy_std(context& c) {
  for (std::size_t i = 0; i < c.n; ++i) {
    std::stop_token copy(c.st_token);
    keep_object(copy);
  }
}

void op_register_cancelkit(context& c) {
  for (std::size_t i = 0; i < c.n; ++i) {
    cancelkit::cancellation_callback cb(c.ck_token, small_fn{&sink});
    keep_object(cb);
  }
}
void op_register_std(context& c) {
  for (std::size_t i = 0; i < c.n; ++i) {
    std::stop_callback cb(c.st_token, small_fn{&sink});
    keep_object(cb);
  }
}
void op_register_raw(context& c) {
  for (std::size_t i = 0; i < c.n; ++i) {
    bench::raw_callback<small_fn> cb(c.raw_list, small_fn{&sink});
    keep_object(cb);
  }
}
void op_register_erased_cancelkit(context& c) {
  for (std::size_t i = 0; i < c.n; ++i) {
    cancelkit::cancellation_registration r = c.ck_token.register_callback(small_fn{&sink});
    keep_object(r);
  }
}

void op_cancel_cancelkit(context& c) {
  for (std::size_t i = 0; i < c.n; ++i) c.ck_sources[i].cancel();
}
void op_cancel_std(context& c) {
  for (std::size_t i = 0; i < c.n; ++i) c.st_sources[i].request_stop();
}

void op_cancel_raw(context& c) {
  for (std::size_t i = 0; i < c.n; ++i) c.raw_lists[i].request();
}

void op_cancel_raw_detach(context& c) {
  for (std::size_t i = 0; i < c.n; ++i) c.detach_lists[i].request();
}

void op_cancel_raw_claim(context& c) {
  for (std::size_t i = 0; i < c.n; ++i) c.claim_lists[i].request();
}

void op_create_cancelkit(context& c) {
  for (std::size_t i = 0; i < c.n; ++i) {
    cancelkit::cancellation_source s;
    keep_object(s);
  }
}
void op_create_std(context& c) {
  for (std::size_t i = 0; i < c.n; ++i) {
    std::stop_source s;
    keep_object(s);
  }
}

// Construct a source, copy one token out of it (as users do), destroy both.
void op_create_token_cancelkit(context& c) {
  for (std::size_t i = 0; i < c.n; ++i) {
    cancelkit::cancellation_source s;
    cancelkit::cancellation_token t = s.token();
    keep_object(s);
    keep_object(t);
  }
}
void op_create_token_std(context& c) {
  for (std::size_t i = 0; i < c.n; ++i) {
    std::stop_source s;
    std::stop_token t = s.get_token();
    keep_object(s);
    keep_object(t);
  }
}
void op_create_token_raw_heap(context& c) {
  for (std::size_t i = 0; i < c.n; ++i) {
    bench::raw_heap_source s;
    bench::raw_heap_token t = s.token();
    keep_object(s);
    keep_object(t);
  }
}

const operation operations[] = {
    {"empty", "the measuring loop alone (subtracted from the others)", 0, false, op_empty},
    {"check/cancelkit", "token.is_cancellation_requested()", 0, false, op_check_cancelkit},
    {"check/std", "stop_token.stop_requested()", 0, false, op_check_std},
    {"check/raw", "atomic<bool>.load(acquire)", 0, false, op_check_raw},
    {"copy/cancelkit", "copy + destroy a token", 0, false, op_copy_cancelkit},
    {"copy/std", "copy + destroy a stop_token", 0, false, op_copy_std},
    {"register/cancelkit", "cancellation_callback construct + destroy", 0, false,
     op_register_cancelkit},
    {"register/std", "std::stop_callback construct + destroy", 0, false, op_register_std},
    {"register/raw", "CAS-lock list floor: add + remove", 0, false, op_register_raw},
    {"register_erased/cancelkit", "register_callback(small) + dispose", 0, false,
     op_register_erased_cancelkit},
    {"cancel0/cancelkit", "cancel() with 0 callbacks", 0, true, op_cancel_cancelkit},
    {"cancel0/std", "request_stop() with 0 callbacks", 0, true, op_cancel_std},
    {"cancel0/raw", "CAS-lock list floor: request with 0 callbacks", 0, true, op_cancel_raw},
    {"cancel8/cancelkit", "cancel() with 8 cancellation_callbacks", 8, true, op_cancel_cancelkit},
    {"cancel8/std", "request_stop() with 8 stop_callbacks", 8, true, op_cancel_std},
    {"cancel8/raw", "CAS-lock list floor: request with 8 callbacks", 8, true, op_cancel_raw},
    {"cancel8/raw_detach", "pop-once floor: request with 8 callbacks", 8, true,
     op_cancel_raw_detach},
    {"cancel8/raw_claim", "claim-per-callback floor: request with 8 callbacks", 8, true,
     op_cancel_raw_claim},
    {"cancel1/cancelkit", "cancel() with 1 cancellation_callback", 1, true, op_cancel_cancelkit},
    {"cancel1/std", "request_stop() with 1 stop_callback", 1, true, op_cancel_std},
    {"cancel1/raw", "CAS-lock list floor: request with 1 callback", 1, true, op_cancel_raw},
    {"cancel1/raw_detach", "pop-once floor: request with 1 callback", 1, true,
     op_cancel_raw_detach},
    {"cancel1/raw_claim", "claim-per-callback floor: request with 1 callback", 1, true,
     op_cancel_raw_claim},
    {"create_destroy/cancelkit", "construct + destroy a source", 0, false, op_create_cancelkit},
    {"create_destroy/std", "construct + destroy a stop_source", 0, false, op_create_std},
    {"create_token_destroy/cancelkit", "construct a source, copy out a token, destroy both", 0,
     false, op_create_token_cancelkit},
    {"create_token_destroy/std", "construct a stop_source, get_token(), destroy both", 0, false,
     op_create_token_std},
    {"create_token_destroy/raw_heap", "heap floor: new state-sized block, pointer token, delete",
     0, false, op_create_token_raw_heap},
};

}  // namespace

// The only function callgrind collects in (--toggle-collect=ckbench_measure).
extern "C" __attribute__((noinline)) void ckbench_measure(const operation* op, context* c) {
  op->run(*c);
}

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--list") == 0) {
    for (const operation& op : operations) std::printf("%s\t%s\n", op.name, op.what);
    return 0;
  }
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s OPERATION [N] | --list\n", argv[0]);
    return 2;
  }
  const operation* op = nullptr;
  for (const operation& o : operations) {
    if (std::strcmp(o.name, argv[1]) == 0) op = &o;
  }
  if (op == nullptr) {
    std::fprintf(stderr, "unknown operation %s (see --list)\n", argv[1]);
    return 2;
  }
  std::thread([] {}).join();  // libstdc++'s multi-threaded paths, as in cancelkit-bench

  context c;
  c.n = argc >= 3 ? static_cast<std::size_t>(std::strtoull(argv[2], nullptr, 10)) : 10000;
  if (op->cancels) c.prepare_cancel(op->callbacks_per_cancel);
  // Warm-up outside the measured call: first-use costs (per-thread caches, lazy statics) are
  // not the steady state we report.
  {
    context warm;
    warm.n = 64;
    if (op->cancels) warm.prepare_cancel(op->callbacks_per_cancel);
    op->run(warm);
  }
  ckbench_measure(op, &c);
  std::printf("%s %zu\n", op->name, c.n);
  return sink == -1 ? 1 : 0;
}
