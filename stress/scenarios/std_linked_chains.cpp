// std_linked_chains — chains and fans of a few hundred sources linked the ways users mix
// cancelkit with std::stop_token code: natively (`linked({t})`, sometimes two parents), through
// the bridge (`linked(t.to_stop_token())`), and through a foreign std::stop_source relayed by a
// std::stop_callback on the parent's to_stop_token() (`linked(relay.get_token())`). One worker
// cancels the root or a node in the middle while the others register, unregister and dispose
// callbacks on the levels (stored and RAII), call to_stop_token() (and hang std::stop_callbacks
// on it), link short-lived children below levels and drop extra handles of the levels.
//
// Defends S20 (when the canceller's cancel() returns, every level below the cancelled one is
// cancelled and its callbacks have run; stack use does not grow with the depth: every callback
// measures how deep below its worker's entry frame it runs), S22 (reason null below a std link;
// the bridge of a cancelled level is requested), S16 (the canceller's reason below native links),
// S19 (a child linked below a level that is known cancelled is born cancelled), S6 (a
// registration on such a level runs inline), S4 (every callback at most once), S8/S11 (an
// unregister() that returned true: the callback never ran; otherwise it ran once), S9 (a
// disposed callback never runs afterwards), S21 (levels stay attached while referred to; the
// dropped handles and children are freed: ASan), and data races and use-after-free (TSan, ASan).
// Issue 16, defect 6: a std-triggered cancellation recursed once per std link (the drain queue
// of source_extension.cpp, [B1]..[B5]; mutants/34-std-chain-recursion.patch): caught here by
// the stack-depth bound, at depths far from an overflow.
#include "common.hpp"
#include "timing.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <stop_token>

namespace stress {
namespace {

enum class link_kind : unsigned { root, native, native2, std_token, relay };

// How far below its worker's entry frame a callback may run. Fixed code: the canceller's call
// plus one dispatch and one drain, about 1.5 KiB in release at any depth (measured; a few times
// more under a sanitizer). With the recursion of defect 6, every std link on the path adds a
// request_stop, a trigger and a request: 25..45 KiB for chains of 300..600 levels in release
// (mutants/34-std-chain-recursion.patch), several times that under a sanitizer.
// The bound sits between: 12 KiB, 32 KiB under a sanitizer (ASan measured 5.6 KiB fixed).
constexpr std::uintptr_t max_callback_depth = (sanitized_build ? 32 : 12) * 1024;

// The frame address of the worker's work() (0 outside work(): main thread, or not set).
thread_local std::uintptr_t stack_base = 0;
std::atomic<std::uintptr_t> deepest{0};  // the deepest callback seen this round

std::uintptr_t frame_address() noexcept {
  return reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
}

// Called by every callback: records how far below its worker's work() it runs.
void note_depth() noexcept {
  const std::uintptr_t base = stack_base;
  if (base == 0) return;
  const std::uintptr_t here = frame_address();
  const std::uintptr_t depth = base > here ? base - here : 0;
  // relaxed: a maximum read by check() after the round's barrier.
  std::uintptr_t seen = deepest.load(std::memory_order_relaxed);
  while (depth > seen &&
         !deepest.compare_exchange_weak(seen, depth, std::memory_order_relaxed)) {
  }
}

struct relay_fn {
  std::stop_source* target;
  void operator()() const noexcept { target->request_stop(); }
};

constexpr unsigned reason_user = 1;  // the canceller's reason object
constexpr unsigned reason_null = 2;  // null (below a std link, S22)

struct node {
  link_kind how = link_kind::root;
  unsigned p = 0, q = 0;                   // parents (q only for native2)
  cancelkit::cancellation_source source;   // kept by setup, or empty (tokens only)
  cancelkit::cancellation_token token;     // kept: the level stays attached (S21)
  cancelkit::cancellation_source extra_source;  // dropped by its worker during the round
  cancelkit::cancellation_token extra_token;    // likewise
  std::stop_source relay{std::nostopstate};
  std::optional<std::stop_callback<relay_fn>> relay_cb;
  cancelkit::cancellation_registration pre;  // registered in setup; nobody unregisters it
  std::atomic<int> pre_ran{0};
  bool below = false;        // in the cancelled subtree
  unsigned reasons = 0;      // reason_* bits a cancelled level may carry
};

// A worker's stored registration.
struct slot {
  cancelkit::cancellation_registration reg;
  unsigned level = 0;
  std::atomic<int> ran{0};
  bool unregistered = false;  // some unregister() returned true
  bool disposed = false;
  int ran_at_dispose = 0;
};

constexpr unsigned actions_per_worker = 48;

class std_linked_chains final : public scenario {
 public:
  explicit std_linked_chains(unsigned threads)
      : threads_(threads),
        slots_(std::make_unique<slot[]>(threads * actions_per_worker)),
        used_(threads, 0) {}

  void setup(const round_info& r, rng& g) override {
    count_ = 100 + g.below(g.percent(20) ? 500 : 300);
    nodes_ = std::make_unique<node[]>(count_);
    canceller_ = static_cast<unsigned>(r.seed % threads_);
    cut_ = g.percent(40) ? 0 : g.below(count_ / 2);  // the cancelled level
    reason_ = std::make_exception_ptr(stamped_reason(canceller_, r.seed));
    for (unsigned i = 0; i < count_; ++i) {
      node& n = nodes_[i];
      cancelkit::cancellation_source s;
      if (i == 0) {
        n.how = link_kind::root;
      } else {
        // Mostly a chain (parent i-1); sometimes a fan below a recent level.
        n.p = g.percent(75) ? i - 1 : i - 1 - g.below(std::min(i, 16u));
        const unsigned k = g.below(100);
        n.how = k < 35 ? link_kind::native
                : k < 45 ? link_kind::native2
                : k < 80 ? link_kind::std_token
                         : link_kind::relay;
        const cancelkit::cancellation_token& pt = nodes_[n.p].token;
        switch (n.how) {
          case link_kind::native:
            s = cancelkit::cancellation_source::linked({pt});
            break;
          case link_kind::native2:
            n.q = g.below(i);
            s = cancelkit::cancellation_source::linked({pt, nodes_[n.q].token});
            break;
          case link_kind::std_token:
            s = cancelkit::cancellation_source::linked(pt.to_stop_token());
            break;
          case link_kind::relay:
            n.relay = std::stop_source();
            n.relay_cb.emplace(pt.to_stop_token(), relay_fn{&n.relay});
            s = cancelkit::cancellation_source::linked(n.relay.get_token());
            break;
          case link_kind::root:
            break;
        }
      }
      n.token = s.token();
      n.extra_source = s;
      n.extra_token = n.token;
      if (i == 0 || i == cut_ || g.percent(60)) n.source = std::move(s);
      n.pre_ran.store(0, std::memory_order_relaxed);
      node* const np = &n;
      n.pre = n.token.register_callback([np] {
        note_depth();
        // release: the canceller checks S20 with an acquire load after its cancel() returns.
        if (np->pre_ran.fetch_add(1, std::memory_order_release) != 0) {
          STRESS_EXPECT(false, "a level's callback ran twice (S4)");
        }
      });
      // Expected outcome: cancelled iff at or below the cut (by any parent).
      if (i == cut_) {
        n.below = true;
        n.reasons = reason_user;
      } else if (i > cut_) {
        const bool via_p = nodes_[n.p].below;
        const bool via_q = n.how == link_kind::native2 && nodes_[n.q].below;
        n.below = via_p || via_q;
        const bool std_link = n.how == link_kind::std_token || n.how == link_kind::relay;
        if (via_p) n.reasons |= std_link ? reason_null : nodes_[n.p].reasons;
        if (via_q) n.reasons |= nodes_[n.q].reasons;
      }
    }
    for (unsigned t = 0; t < threads_; ++t) used_[t] = 0;
    cancel_done_.store(0, std::memory_order_relaxed);
    deepest.store(0, std::memory_order_relaxed);
  }

  std::uint64_t work(unsigned tid, rng& g) override {
    stack_base = frame_address();
    std::uint64_t ops = tid == canceller_ ? cancel(g) : churn(tid, g);
    stack_base = 0;
    return ops;
  }

  void check(const round_info&) override {
    for (unsigned i = 0; i < count_; ++i) {
      node& n = nodes_[i];
      const bool requested = n.token.is_cancellation_requested();
      STRESS_EXPECT(requested == n.below, "level ", i, " (cut ", cut_, "): requested ", requested,
                    ", expected ", n.below);
      if (requested && n.below) {
        const std::exception_ptr why = n.token.cancellation_reason();
        const unsigned got = why == nullptr ? reason_null : why == reason_ ? reason_user : 0;
        STRESS_EXPECT((got & n.reasons) != 0, "level ", i, " (cut ", cut_, ", link ",
                      static_cast<unsigned>(n.how), "): wrong reason (",
                      got == reason_null ? "null" : got == reason_user ? "the canceller's" : "other",
                      "): below a std link it is null (S22), below native links the "
                      "canceller's (S16)");
      }
      STRESS_EXPECT(n.pre_ran.load(std::memory_order_relaxed) == (n.below ? 1 : 0), "level ", i,
                    "'s callback ran ", n.pre_ran.load(std::memory_order_relaxed), " times");
    }
    for (unsigned t = 0; t < threads_; ++t) {
      for (unsigned k = 0; k < used_[t]; ++k) {
        slot& s = slots_[t * actions_per_worker + k];
        const int ran = s.ran.load(std::memory_order_relaxed);
        STRESS_EXPECT(ran <= 1, "a callback ran ", ran, " times (S4)");
        if (s.disposed) {
          STRESS_EXPECT(ran == s.ran_at_dispose, "a callback ran after dispose() returned (S9)");
        } else if (s.unregistered) {
          STRESS_EXPECT(ran == 0, "a callback ran after unregister() returned true (S8)");
        } else if (nodes_[s.level].below) {
          STRESS_EXPECT(ran == 1, "a registration on a cancelled level never ran (S5/S20)");
        } else {
          STRESS_EXPECT(ran == 0, "a registration on a level nobody cancelled ran");
        }
        s.reg = {};
      }
    }
    const std::uintptr_t depth = deepest.load(std::memory_order_relaxed);
    STRESS_EXPECT(depth <= max_callback_depth, "a callback ran ", depth,
                  " bytes below its worker's entry frame, ", count_,
                  " levels: stack use grows with the depth of std links (S20, issue 16 defect 6)");
    // Free from the root or from the leaves.
    if (cut_ % 2 == 0) {
      for (unsigned i = 0; i < count_; ++i) clear(nodes_[i]);
    }
    nodes_.reset();
  }

 private:
  static void clear(node& n) {
    n.pre = {};
    n.relay_cb.reset();
    n.source = {};
    n.token = {};
    n.extra_source = {};
    n.extra_token = {};
  }

  bool done() const {
    // acquire: pairs with the canceller's release after its cancel() returned (S20 then holds).
    return cancel_done_.load(std::memory_order_acquire) != 0;
  }

  std::uint64_t cancel(rng& g) {
    jitter(g, 4096);
    for (unsigned spins = g.below(100); spins > 0; --spins) std::this_thread::yield();
    STRESS_EXPECT(nodes_[cut_].source.cancel({.reason = reason_}),
                  "the only canceller's cancel() returned false (S2)");
    // S20: everything below is cancelled and its callbacks have run, now.
    for (unsigned i = cut_; i < count_; ++i) {
      const node& n = nodes_[i];
      if (!n.below) continue;
      STRESS_EXPECT(n.token.is_cancellation_requested(), "level ", i, " (link ",
                    static_cast<unsigned>(n.how), ") below the cancelled level ", cut_,
                    " is not cancelled when cancel() returns (S20)");
      // acquire: pairs with the callback's release.
      STRESS_EXPECT(n.pre_ran.load(std::memory_order_acquire) == 1, "level ", i,
                    "'s callback has not run when cancel() returns (S20)");
    }
    cancel_done_.store(1, std::memory_order_release);
    return 1;
  }

  unsigned pick(rng& g) const { return g.below(count_); }

  std::uint64_t churn(unsigned tid, rng& g) {
    std::uint64_t ops = 0;
    slot* mine = &slots_[tid * actions_per_worker];
    unsigned& used = used_[tid];
    const unsigned workers = threads_ - 1;
    const unsigned me = tid < canceller_ ? tid : tid - 1;  // 0..workers-1
    unsigned next_drop = me;                                 // my levels: me, me+workers, ...
    for (unsigned a = 0; a < actions_per_worker; ++a) {
      jitter(g, 256);
      const unsigned r = g.below(100);
      ++ops;
      if (r < 28) {  // a stored registration
        const unsigned level = pick(g);
        const bool known = done() && nodes_[level].below;
        slot& s = mine[used++];
        s.level = level;
        s.ran.store(0, std::memory_order_relaxed);
        s.unregistered = s.disposed = false;
        s.ran_at_dispose = 0;
        slot* const sp = &s;
        s.reg = nodes_[level].token.register_callback([sp] {
          note_depth();
          sp->ran.fetch_add(1, std::memory_order_relaxed);
        });
        if (known) {
          STRESS_EXPECT(s.ran.load(std::memory_order_relaxed) == 1,
                        "a registration on a level known cancelled did not run inline (S6)");
        }
      } else if (r < 38) {  // unregister one of mine
        if (used == 0) continue;
        slot& s = mine[g.below(used)];
        if (s.reg.unregister()) s.unregistered = true;
      } else if (r < 46) {  // dispose one of mine
        if (used == 0) continue;
        slot& s = mine[g.below(used)];
        if (s.disposed) continue;
        s.reg.dispose();
        s.disposed = true;
        s.ran_at_dispose = s.ran.load(std::memory_order_relaxed);
      } else if (r < 56) {  // a RAII callback, briefly
        const unsigned level = pick(g);
        const bool known = done() && nodes_[level].below;
        std::atomic<int> ran{0};
        {
          cancelkit::cancellation_callback cb(nodes_[level].token, [&ran] {
            note_depth();
            ran.fetch_add(1, std::memory_order_relaxed);
          });
          if (known) {
            STRESS_EXPECT(ran.load(std::memory_order_relaxed) == 1,
                          "a cancellation_callback on a level known cancelled did not run (S6)");
          }
          jitter(g, 512);
        }
        STRESS_EXPECT(ran.load(std::memory_order_relaxed) <= 1, "a RAII callback ran twice (S4)");
      } else if (r < 70) {  // the bridge, sometimes with a std::stop_callback on it
        const unsigned level = pick(g);
        const cancelkit::cancellation_token& t = nodes_[level].token;
        const bool known = (done() && nodes_[level].below) || t.is_cancellation_requested();
        const std::stop_token st = t.to_stop_token();
        STRESS_EXPECT(st.stop_possible(), "to_stop_token() of a cancellable level: "
                                          "stop_possible() false");
        if (known) {
          STRESS_EXPECT(st.stop_requested(),
                        "to_stop_token() of a cancelled level is not requested (S22)");
        }
        if (g.percent(40)) {
          std::atomic<int> ran{0};
          {
            std::stop_callback cb(st, [&ran] {
              note_depth();
              ran.fetch_add(1, std::memory_order_relaxed);
            });
            jitter(g, 256);
          }
          STRESS_EXPECT(ran.load(std::memory_order_relaxed) <= 1, "a std::stop_callback ran twice");
        }
      } else if (r < 82) {  // a short-lived child below a level
        const unsigned level = pick(g);
        const cancelkit::cancellation_token& t = nodes_[level].token;
        const bool known = done() && nodes_[level].below;
        const bool via_std = g.percent(50);
        const cancelkit::cancellation_source child =
            via_std ? cancelkit::cancellation_source::linked(t.to_stop_token())
                    : cancelkit::cancellation_source::linked({t});
        if (known) {
          STRESS_EXPECT(child.is_cancellation_requested(), "a child linked (",
                        via_std ? "std" : "native",
                        ") below a level known cancelled is not born cancelled (S19, S22)");
        }
        std::atomic<int> ran{0};
        cancelkit::cancellation_registration reg = child.token().register_callback([&ran] {
          note_depth();
          ran.fetch_add(1, std::memory_order_relaxed);
        });
        jitter(g, 256);
        reg.dispose();  // before `ran` goes (S9)
        STRESS_EXPECT(ran.load(std::memory_order_relaxed) <= 1, "a child's callback ran twice");
        ++ops;
      } else if (r < 92) {  // drop the extra handles of one of my levels
        if (next_drop >= count_) continue;
        node& n = nodes_[next_drop];
        if (g.percent(50)) {
          n.extra_source = {};
        } else {
          n.extra_token = {};
        }
        if (g.percent(50)) next_drop += workers;
      } else {  // every level keeps a canceller: its own handle, or a parent that has one
        const unsigned level = pick(g);
        STRESS_EXPECT(nodes_[level].token.can_be_canceled(),
                      "level ", level, " can no longer be canceled (S23/S24)");
      }
    }
    // Whatever extra handles are left go now, racing the cancel if it is still running.
    for (; next_drop < count_; next_drop += workers) {
      nodes_[next_drop].extra_source = {};
      nodes_[next_drop].extra_token = {};
    }
    return ops;
  }

  const unsigned threads_;
  std::unique_ptr<node[]> nodes_;
  unsigned count_ = 0;
  std::unique_ptr<slot[]> slots_;
  std::vector<unsigned> used_;  // slots used per worker (each writes its own)
  unsigned canceller_ = 0;
  unsigned cut_ = 0;
  std::exception_ptr reason_;
  std::atomic<int> cancel_done_{0};
};

}  // namespace

STRESS_SCENARIO(std_linked_chains, "std_linked_chains", 170, "S4 S6 S9 S16 S19 S20 S21 S22",
                "issue 16 defect 6 (std-triggered cancellation recursed once per std link)",
                "chains/fans linked via to_stop_token(), linked(stop_token) and relays, cancelled "
                "from the root or the middle while others churn",
                2);

}  // namespace stress
