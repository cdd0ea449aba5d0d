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

// Surfaces callback exceptions of a user-requested cancel: the first one unchanged with
// throw_on_first_exception (S13), else all of them in an aggregate_exception (S12).
void rethrow_callback_errors(detail::dispatch_outcome& out, bool throw_on_first) {
  if (!out.first_error) return;
  if (throw_on_first) std::rethrow_exception(out.first_error);
  if (out.errors.empty()) out.errors.push_back(out.first_error);  // collection ran out of memory
  throw aggregate_exception(std::move(out.errors));
}

bool request_and_rethrow(state* s, const std::exception_ptr& reason, bool throw_on_first) {
  // S10 (a callback drops the last handle) needs no reference here: DISPATCHING keeps the state
  // while its callbacks run ([I17]), and `s` is not used after request() returns.
  // S20 also from a callback inside a std-triggered cancellation: sources std-linked below `s`
  // are cancelled before we return, not queued on the enclosing drain ([B5] in
  // source_extension.hpp). The scope still hides the drain while the errors are rethrown, which
  // fires no trigger.
  detail::std_trigger_scope scope;
  // Initialised from the prvalue: no default construction and move assignment of the outcome.
  detail::dispatch_outcome out = state::request(s, reason, throw_on_first);
  rethrow_callback_errors(out, throw_on_first);
  return out.requested;
}

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

// Without a reason, a source that never had work is cancelled by one compare-exchange ([I16]:
// no callback, child, extension or waiter to attend to); otherwise, or when it is contended,
// the full request. A source known to have had work skips the guess (which would fail: one
// more read-modify-write). No cancel_options temporary on this path.
bool cancellation_source::cancel() {
  if (s_ == nullptr) return false;
  if (s_->maybe_idle()) {  // else the guess would fail: go straight to the lock
    switch (s_->request_if_idle()) {
      case state::idle_request::requested:
        return true;
      case state::idle_request::refused:  // S2: later callers return at once
        return false;
      case state::idle_request::has_work:
        break;
    }
  }
  return request_and_rethrow(s_, std::exception_ptr(), false);
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
