// cancellation_source: construction, cancel, cancel_after, try_reset, linked.
#include <cancelkit/cancellation_source.hpp>

#include <cancelkit/exceptions.hpp>

#include "source_extension.hpp"

#include <algorithm>
#include <memory>
#include <vector>

namespace cancelkit {

using detail::state;

namespace {

// Surfaces callback exceptions of a user-requested cancel (`out.first_error` is set): the first
// one unchanged with throw_on_first_exception (S13), else all of them in an aggregate_exception
// (S12). Out of line and cold: most cancellations throw nothing.
[[noreturn, gnu::noinline, gnu::cold]] void rethrow_callback_errors(detail::dispatch_outcome& out,
                                                                   bool throw_on_first) {
  if (throw_on_first) std::rethrow_exception(out.first_error);
  throw aggregate_exception(out.take_errors());
}

// Runs `request` (which returns a dispatch_outcome) and surfaces the callbacks' exceptions.
template <class Request>
bool run_and_rethrow(const Request& request, bool throw_on_first) {
  // S10 (a callback drops the last handle) needs no reference here: DISPATCHING keeps the state
  // while its callbacks run ([I17]), and the state is not used after the request returns.
  // S20 also from a callback inside a std-triggered cancellation: sources std-linked below the
  // state are cancelled before we return, not queued on the enclosing drain ([B5] in
  // source_extension.hpp). The scope still hides the drain while the errors are rethrown, which
  // fires no trigger.
  detail::std_trigger_scope scope;
  // Initialised from the prvalue: no default construction and move assignment of the outcome.
  detail::dispatch_outcome out = request();
  if (out.first_error) [[unlikely]] rethrow_callback_errors(out, throw_on_first);
  return out.requested;
}

bool request_and_rethrow(state* s, const std::exception_ptr& reason, bool throw_on_first) {
  return run_and_rethrow([&] { return state::request(s, reason, throw_on_first); },
                         throw_on_first);
}

// The reason of a cancel() without one: null, shared, so that no call builds a temporary.
const std::exception_ptr no_reason;

}  // namespace

cancellation_source::cancellation_source() : s_(new state()) {}

cancellation_source::cancellation_source(timer_service& timers) : s_(new state(&timers)) {}

cancellation_source::cancellation_source(std::chrono::nanoseconds delay, timer_service& timers)
    : cancellation_source(timers) {
  cancel_after(delay);  // a throw here destroys *this through the delegated constructor
}

cancellation_source::cancellation_source(const cancellation_source& other) noexcept
    : s_(other.s_) {
  if (s_ != nullptr) {
    s_->add_ref();
    s_->add_canceller();  // a source handle can cancel [I10]
  }
}

cancellation_source& cancellation_source::operator=(const cancellation_source& other) noexcept {
  cancellation_source(other).swap(*this);
  return *this;
}

cancellation_source& cancellation_source::operator=(cancellation_source&& other) noexcept {
  cancellation_source(std::move(other)).swap(*this);
  return *this;
}

cancellation_source::~cancellation_source() {
  if (s_ != nullptr) state::release_source_handle(s_);
}

// cancel() (inline in the header) once the idle request found work. Out of line, so that the
// inline part needs no stack frame.
bool cancellation_source::cancel_with_work(state* s, std::uint32_t w) {
  return run_and_rethrow(
      [&] { return state::request_locked(s, w, no_reason, false); }, false);
}

// cancel() when its one attempt at the lock found it held: the same, with the spinning lock.
bool cancellation_source::cancel_contended(state* s) {
  const std::uint32_t w = s->request_if_idle();
  if (!(w & state::LOCKED)) return cancel_with_work(s, w);
  return w == state::IDLE_REQUESTED;
}

bool cancellation_source::cancel(const cancel_options& options) {
  if (s_ == nullptr || s_->is_requested()) return false;  // S2: later callers return at once
  return request_and_rethrow(s_, options.reason, options.throw_on_first_exception);
}

void cancellation_source::cancel_after(std::chrono::nanoseconds delay) {
  if (s_ == nullptr || s_->is_requested()) return;  // S17: no effect once cancelled
  if (delay <= std::chrono::nanoseconds::zero()) {
    // S17: synchronous, with reason deadline_exceeded, exceptions as from cancel() (S12).
    request_and_rethrow(s_, std::make_exception_ptr(deadline_exceeded()), false);
    return;
  }
  detail::source_extension& e = detail::extension_of(s_);
  const timer_service::clock::time_point now = e.service().now();
  if (delay == std::chrono::nanoseconds::max() ||
      delay > timer_service::clock::time_point::max() - now) {
    detail::timer_access::disarm(e);  // "no timer"; never overflows
    return;
  }
  detail::timer_access::arm(e, now + delay);
}

bool cancellation_source::try_reset() {
  if (s_ == nullptr) return false;
  if (detail::state_extension* e = s_->extension())
    return detail::timer_access::reset(static_cast<detail::source_extension&>(*e));
  return s_->reset_registrations();  // no extension: no timer was ever armed
}

cancellation_source cancellation_source::linked(std::initializer_list<cancellation_token> parents) {
  return linked(std::span<const cancellation_token>(parents.begin(), parents.size()));
}

cancellation_source cancellation_source::linked(std::span<const cancellation_token> parents) {
  // Distinct live parents, in the order given (S19: none ignored, duplicates cost nothing).
  std::vector<state*> distinct;
  distinct.reserve(parents.size());
  for (const cancellation_token& t : parents) {
    if (t.s_ != nullptr && std::find(distinct.begin(), distinct.end(), t.s_) == distinct.end())
      distinct.push_back(t.s_);
  }
  timer_service* timers = distinct.empty() ? nullptr : distinct.front()->timers();
  std::unique_ptr<detail::parent_link[]> links;
  if (!distinct.empty()) links.reset(new detail::parent_link[distinct.size()]);
  cancellation_source child(new state(timers));  // all allocations done: nothing can throw now
  if (state* cancelled_parent =
          child.s_->attach_to_parents(links.release(), distinct.data(), distinct.size())) {
    // S19: born cancelled, with that parent's reason; it has no callbacks or children yet.
    state::request(child.s_, cancelled_parent->reason(), false);
  }
  return child;
}

cancellation_source cancellation_source::linked(std::stop_token parent) {
  cancellation_source child;
  if (parent.stop_possible()) detail::extension_of(child.s_).attach_std_parent(parent);
  return child;
}

}  // namespace cancelkit
