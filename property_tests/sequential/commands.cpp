// property_tests/sequential/commands.cpp — which command comes next, and how likely.
//
// Biases (issue 3, "generators that find bugs"):
//  - few sources (at most 6) and many registrations on them (registering is the most likely
//    command, on tokens of live sources);
//  - reentrant callbacks: 40% of callbacks act (cancel their own or another source, dispose or
//    destroy a registration of the same source or themselves, register on the same token, drop a
//    handle of their own source, unregister themselves), so cancel-during-cancel is common;
//  - timers due at the same instant: delays and advances come from {10, 20, 30 ms}, so deadlines
//    tie and several fire in one advance();
//  - deep link chains: linked() prefers the newest tokens and chain() adds up to 5 levels at once;
//    std_child() links a source below a std::stop_token of a live one in one step;
//  - awaiting coroutines (S26-S28) on live tokens, delays from the same {10, 20, 30 ms} as the
//    sources' timers (so a delay and a timer, or two delays, are due at the same instant), and
//    destroy_await() mostly on suspended ones.
#include "commands.hpp"

#include <rapidcheck/gen/detail/ScaleInteger.h>

#include <utility>

namespace cktest {

using ckmodel::none;
namespace gen = rc::gen;

std::string duration_string(std::int64_t ns) {
  if (ns == ckmodel::no_timer) return "max";
  if (ns != 0 && ns % 1'000'000 == 0) return std::to_string(ns / 1'000'000) + "ms";
  return std::to_string(ns) + "ns";
}

bool handle_ok(const ckmodel::world& w, int h) {
  return h >= 0 && static_cast<std::size_t>(h) < w.handles.size() &&
         w.handles[static_cast<std::size_t>(h)].present;
}

bool token_ok(const ckmodel::world& w, int t) {
  return t >= 0 && static_cast<std::size_t>(t) < w.tokens.size();
}

bool reg_ok(const ckmodel::world& w, int r) {
  return r >= 0 && static_cast<std::size_t>(r) < w.reg_slots.size() &&
         w.reg_slots[static_cast<std::size_t>(r)].present;
}

bool heap_reg_ok(const ckmodel::world& w, int r) {
  return reg_ok(w, r) && !w.reg_slots[static_cast<std::size_t>(r)].raii;
}

bool await_ok(const ckmodel::world& w, int a) {
  return a >= 0 && static_cast<std::size_t>(a) < w.awaits.size() &&
         w.awaits[static_cast<std::size_t>(a)].frame;
}

namespace {

// A number in [lo, hi), uniform at every RapidCheck size (gen::inRange alone is scaled down at
// small sizes), shrinking toward lo.
rc::Gen<int> pick(int lo, int hi) { return gen::resize(100, gen::inRange(lo, hi)); }

// What the generators need to know about a model state (captured by value: generators are
// re-run while shrinking, long after the state they were made for).
struct view {
  int sources = 0;
  int handle_slots = 0;
  int tokens = 0;
  int regs = 0;  // registration slots (the next registration gets this index)
  int stops = 0;
  std::vector<int> handles;        // present handle slots
  std::vector<int> live_handles;   // present handles of a source that is not cancelled
  std::vector<int> handle_src;     // per handle slot: source or none
  std::vector<int> token_src;      // per token slot
  std::vector<int> live_tokens;    // tokens of sources that are not cancelled
  std::vector<int> present_regs;   // registration slots holding an object
  std::vector<int> heap_regs;      // ... a cancellation_registration
  std::vector<int> reg_src;        // per registration slot: source or none
  int pending = 0;                 // callbacks stored and not run yet
  std::vector<int> live_stops;     // std::stop_tokens of sources that can still be cancelled
  int awaits = 0;                  // await slots
  std::vector<int> live_frames;    // await slots not destroyed
  std::vector<int> suspended;      // ... still suspended
};

std::shared_ptr<const view> make_view(const ckmodel::world& w) {
  auto v = std::make_shared<view>();
  v->sources = static_cast<int>(w.sources.size());
  v->handle_slots = static_cast<int>(w.handles.size());
  v->tokens = static_cast<int>(w.tokens.size());
  v->regs = static_cast<int>(w.reg_slots.size());
  v->stops = static_cast<int>(w.stops.size());
  for (std::size_t i = 0; i < w.handles.size(); ++i) {
    const ckmodel::handle_slot& h = w.handles[i];
    v->handle_src.push_back(h.present ? h.src : none);
    if (!h.present) continue;
    v->handles.push_back(static_cast<int>(i));
    if (h.src != none && !w.sources[static_cast<std::size_t>(h.src)].requested)
      v->live_handles.push_back(static_cast<int>(i));
  }
  for (std::size_t i = 0; i < w.tokens.size(); ++i) {
    const int s = w.tokens[i];
    v->token_src.push_back(s);
    if (s != none && !w.sources[static_cast<std::size_t>(s)].requested)
      v->live_tokens.push_back(static_cast<int>(i));
  }
  for (const ckmodel::source& s : w.sources) v->pending += static_cast<int>(s.callbacks.size());
  for (std::size_t i = 0; i < w.stops.size(); ++i) {
    const int s = w.stops[i].src;
    if (s == none) continue;
    const ckmodel::source& x = w.sources[static_cast<std::size_t>(s)];
    if (!x.requested && !x.orphaned && !x.dead) v->live_stops.push_back(static_cast<int>(i));
  }
  v->awaits = static_cast<int>(w.awaits.size());
  for (std::size_t i = 0; i < w.awaits.size(); ++i) {
    if (!w.awaits[i].frame) continue;
    v->live_frames.push_back(static_cast<int>(i));
    if (w.awaits[i].status == ckmodel::await_status::suspended)
      v->suspended.push_back(static_cast<int>(i));
  }
  for (std::size_t i = 0; i < w.reg_slots.size(); ++i) {
    const ckmodel::reg_slot& r = w.reg_slots[i];
    v->reg_src.push_back(r.present && r.reg != none ? w.regs[static_cast<std::size_t>(r.reg)].source
                                                    : none);
    if (!r.present) continue;
    v->present_regs.push_back(static_cast<int>(i));
    if (!r.raii) v->heap_regs.push_back(static_cast<int>(i));
  }
  return v;
}

// weightedOneOf with weights known only at run time; zero weights drop out.
template <class T>
rc::Gen<T> weighted(std::vector<std::pair<std::size_t, rc::Gen<T>>> options) {
  std::vector<std::size_t> weights;
  std::vector<rc::Gen<T>> gens;
  for (auto& o : options) {
    if (o.first == 0) continue;
    weights.push_back(o.first);
    gens.push_back(std::move(o.second));
  }
  return gen::join(rc::Gen<rc::Gen<T>>(
      gen::detail::WeightedElementGen<rc::Gen<T>>(std::move(weights), std::move(gens))));
}

// A slot among `preferred` (3 in 4) or any of [0, n).
rc::Gen<int> prefer(const std::vector<int>& preferred, int n) {
  return weighted<int>({{preferred.empty() ? 0u : 3u, gen::elementOf(preferred)},
                        {n > 0 ? 1u : 0u, pick(0, std::max(n, 1))}});
}

std::vector<int> slots_of(const std::vector<int>& src_of_slot, int s) {
  std::vector<int> out;
  if (s == none) return out;
  for (std::size_t i = 0; i < src_of_slot.size(); ++i)
    if (src_of_slot[i] == s) out.push_back(static_cast<int>(i));
  return out;
}

rc::Gen<std::int64_t> delay() {
  return gen::weightedElement<std::int64_t>({{4, 10'000'000},
                                             {4, 20'000'000},
                                             {2, 30'000'000},
                                             {2, 0},
                                             {1, -1},
                                             {2, ckmodel::no_timer}});
}

rc::Gen<ckmodel::timers> service() {
  return gen::weightedElement<ckmodel::timers>(
      {{4, ckmodel::timers::a}, {1, ckmodel::timers::b}, {2, ckmodel::timers::system}});
}

// A flag that is true one time in `n` and shrinks to false.
bool one_in(int n) { return *pick(0, n) == n - 1; }

// What a callback registered on source `s` (none: the none token) does. The kind is a number
// that shrinks toward 0 = count, so shrunk counterexamples keep only the behaviours that matter.
rc::Gen<ckmodel::behaviour> behaviour_for(std::shared_ptr<const view> v, int s) {
  using ckmodel::action;
  using ckmodel::behaviour;
  const int self = v->regs;
  std::vector<int> same_regs = slots_of(v->reg_src, s);
  same_regs.push_back(self);
  const std::vector<int> own_handles = slots_of(v->handle_src, s);
  const std::vector<int> same_tokens = slots_of(v->token_src, s);
  return gen::exec([v, self, same_regs, own_handles, same_tokens] {
    // Cumulative weights: count 30, throw 10, unregister(self) 6, dispose 8, destroy 4,
    // register 8, cancel 12, drop a handle 5.
    const int k = *pick(0, 83);
    behaviour b;
    if (k < 30) {
      b.what = action::count;
    } else if (k < 40) {
      b.what = action::throw_error;
    } else if (k < 46) {
      b.what = action::unregister_self;
    } else if (k < 58) {
      b.what = k < 54 ? action::dispose : action::destroy;
      b.target = *prefer(same_regs, self + 1);
    } else if (k < 66 && v->tokens > 0) {
      b.what = action::register_on;
      b.target = *prefer(same_tokens, v->tokens);
    } else if (k < 78 && v->handle_slots > 0) {
      // Its own source (cancel during cancel: S10) or another live one (nested cancels).
      b.what = action::cancel;
      b.target = *weighted<int>({{own_handles.empty() ? 0u : 2u, gen::elementOf(own_handles)},
                                 {v->live_handles.empty() ? 0u : 2u, gen::elementOf(v->live_handles)},
                                 {1, pick(0, v->handle_slots)}});
      b.with_reason = one_in(3);
      b.throw_first = one_in(5);
    } else if (v->handle_slots > 0) {
      b.what = action::drop_handle;
      b.target = *prefer(own_handles, v->handle_slots);
    }
    return b;
  });
}

// A token slot, preferring the newest ones (deep chains) and live ones.
rc::Gen<int> parent_token(std::shared_ptr<const view> v) {
  std::vector<int> newest;
  for (int t = std::max(0, v->tokens - 2); t < v->tokens; ++t) newest.push_back(t);
  return weighted<int>({{3, gen::elementOf(newest)},
                        {v->live_tokens.empty() ? 0u : 2u, gen::elementOf(v->live_tokens)},
                        {1, pick(0, v->tokens)}});
}

rc::Gen<int> registration_token(std::shared_ptr<const view> v) {
  return weighted<int>({{v->live_tokens.empty() ? 0u : 5u, gen::elementOf(v->live_tokens)},
                        {1, pick(0, v->tokens)}});
}

rc::Gen<int> some_handle(std::shared_ptr<const view> v) {
  return weighted<int>({{v->live_handles.empty() ? 0u : 3u, gen::elementOf(v->live_handles)},
                        {1, gen::elementOf(v->handles)}});
}

// await_delay: a token (4 in 5, when there is one) or none at all (`delay(d, timers)`).
bool have_token_for_delay(const std::shared_ptr<const view>& v) {
  return v->tokens > 0 && !one_in(5);
}

template <class Op, class F>
std::pair<std::size_t, rc::Gen<command_ptr>> option(std::size_t weight, F make) {
  return {weight, gen::exec([make] { return make_command<Op>(make()); })};
}

}  // namespace

rc::Gen<command_ptr> next_command(const ckmodel::world& w) {
  const std::shared_ptr<const view> v = make_view(w);
  const bool room_for_source =
      (v->sources < 6 || v->live_handles.empty()) && v->sources < 10 && v->handle_slots < 14;
  const bool have_handles = !v->handles.empty();
  const bool have_tokens = v->tokens > 0;
  const bool room_for_token = v->tokens < 16;
  const bool room_for_reg = v->regs < 24;
  const bool have_regs = !v->present_regs.empty();
  const std::size_t few = 1;

  return weighted<command_ptr>({
      option<new_source_op>(!room_for_source ? 0 : v->live_handles.empty() ? 30 : 3,
                            [] { return new_source_op{*service()}; }),
      option<new_source_after_op>(room_for_source ? 2 : 0,
                                  [] { return new_source_after_op{*service(), *delay()}; }),
      option<copy_handle_op>(have_handles && v->handle_slots < 12 ? 2 : 0,
                             [v] { return copy_handle_op{*some_handle(v)}; }),
      option<move_handle_op>(have_handles && v->handle_slots < 12 ? few : 0,
                             [v] { return move_handle_op{*some_handle(v)}; }),
      option<drop_handle_op>(have_handles ? 2 : 0, [v] { return drop_handle_op{*some_handle(v)}; }),
      option<token_op>(have_handles && room_for_token
                           ? (v->live_tokens.empty() && !v->live_handles.empty() ? 20 : 4)
                           : 0,
                       [v] { return token_op{*some_handle(v)}; }),
      option<copy_token_op>(have_tokens && room_for_token ? few : 0,
                            [v] { return copy_token_op{*pick(0, v->tokens)}; }),
      option<none_token_op>(room_for_token ? few : 0, [] { return none_token_op{}; }),
      option<drop_token_op>(have_tokens ? few : 0,
                            [v] { return drop_token_op{*pick(0, v->tokens)}; }),
      option<linked_op>(have_tokens && room_for_source ? 3 : 0,
                        [v] {
                          const int n = *gen::weightedElement<int>(
                              {{1, 0}, {4, 1}, {3, 2}, {1, 3}, {1, 4}});
                          std::vector<int> parents;
                          for (int i = 0; i < n; ++i) parents.push_back(*parent_token(v));
                          return linked_op{parents};
                        }),
      option<chain_op>(have_tokens && v->sources < 4 && v->tokens < 8 ? few : 0,
                       [v] { return chain_op{*parent_token(v), *pick(1, 6)}; }),
      option<linked_std_op>(v->stops > 0 && room_for_source ? 2 : 0,
                            [v] { return linked_std_op{*prefer(v->live_stops, v->stops)}; }),
      option<std_child_op>(have_tokens && v->stops < 4 && room_for_source && room_for_token ? 2 : 0,
                           [v] { return std_child_op{*registration_token(v)}; }),
      option<to_stop_token_op>(have_tokens && v->stops < 4 ? 2 : 0,
                               [v] { return to_stop_token_op{*registration_token(v)}; }),
      option<register_op>(have_tokens && room_for_reg ? 14 : 0,
                          [v] {
                            const int t = *registration_token(v);
                            const bool raii = one_in(4);
                            return register_op{t, raii,
                                               *behaviour_for(v, v->token_src[static_cast<std::size_t>(t)])};
                          }),
      option<register_empty_op>(have_tokens ? few : 0,
                                [v] {
                                  return register_empty_op{*pick(0, v->tokens), one_in(2)};
                                }),
      option<unregister_op>(have_regs ? 3 : 0,
                            [v] { return unregister_op{*gen::elementOf(v->present_regs)}; }),
      option<dispose_op>(have_regs ? 2 : 0,
                         [v] { return dispose_op{*gen::elementOf(v->present_regs)}; }),
      option<destroy_op>(have_regs ? 1 : 0,
                         [v] { return destroy_op{*gen::elementOf(v->present_regs)}; }),
      option<move_registration_op>(v->heap_regs.size() >= 2 ? few : 0,
                                   [v] {
                                     const int to = *gen::elementOf(v->heap_regs);
                                     const int from = *gen::elementOf(v->heap_regs);
                                     RC_PRE(to != from);
                                     return move_registration_op{to, from};
                                   }),
      // Cancelling is worth more once callbacks are waiting (few sources, many registrations).
      option<cancel_op>(have_handles ? 2 + static_cast<std::size_t>(std::min(v->pending, 10)) : 0,
                        [v] {
                          const int h = *some_handle(v);
                          const bool reason = one_in(3);
                          const bool first = one_in(4);
                          return cancel_op{h, reason, first};
                        }),
      option<cancel_after_op>(have_handles ? 3 : 0,
                              [v] { return cancel_after_op{*some_handle(v), *delay()}; }),
      option<advance_op>(v->sources > 0 ? 3 : 0,
                         [] {
                           const auto svc = *gen::weightedElement<ckmodel::timers>(
                               {{4, ckmodel::timers::a}, {1, ckmodel::timers::b}});
                           const auto ns = *gen::weightedElement<std::int64_t>(
                               {{4, 10'000'000}, {3, 20'000'000}, {2, 30'000'000}, {1, 0}, {1, -1}});
                           return advance_op{svc, ns};
                         }),
      option<try_reset_op>(have_handles ? 1 : 0, [v] { return try_reset_op{*some_handle(v)}; }),
      option<await_cancelled_op>(have_tokens && v->awaits < 12 ? 3 : 0,
                                 [v] { return await_cancelled_op{*registration_token(v)}; }),
      option<await_delay_op>(v->awaits < 12 ? 3 : 0,
                             [v] {
                               const int t = have_token_for_delay(v) ? *registration_token(v) : none;
                               const auto svc = *gen::weightedElement<ckmodel::timers>(
                                   {{4, ckmodel::timers::a}, {1, ckmodel::timers::b}});
                               return await_delay_op{t, svc, *delay()};
                             }),
      option<destroy_await_op>(v->live_frames.empty() ? 0 : 2,
                               [v] {
                                 return destroy_await_op{*weighted<int>(
                                     {{v->suspended.empty() ? 0u : 3u, gen::elementOf(v->suspended)},
                                      {1, gen::elementOf(v->live_frames)}})};
                               }),
  });
}

}  // namespace cktest
