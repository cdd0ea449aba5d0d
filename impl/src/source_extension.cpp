// The per-source services outside the core: timer entry, std::stop_source bridge, std parent.
#include "source_extension.hpp"

#include <utility>

namespace cancelkit::detail {

source_extension::~source_extension() {
  // The owner is being freed: nothing can observe it any more, so the timer just goes (S17),
  // and the std parent's callback is deregistered (its destructor waits if it is running; the
  // running trigger fails try_add_ref and returns, so this cannot deadlock).
  timer_access::forget(*this);
}

void source_extension::on_requested() noexcept {
  // A cancelled source needs no timer: free the entry now instead of when it would have fired.
  timer_access::disarm(*this);
  std::optional<std::stop_source> to_request;
  {
    std::lock_guard<std::mutex> lock(bridge_mutex_);
    to_request = bridge_;  // a copy: request_stop() runs std callbacks, so not under our mutex
  }
  if (to_request) to_request->request_stop();
}

void source_extension::on_orphaned() noexcept {
  std::optional<std::stop_source> dropped;
  {
    std::lock_guard<std::mutex> lock(bridge_mutex_);
    orphaned_ = true;
    dropped.swap(bridge_);
  }
  // `dropped` goes out of scope outside the lock: with the last stop_source gone, every
  // std::stop_token handed out reports stop_possible() == false (S23 mirrored).
}

std::stop_source source_extension::bridge() {
  std::lock_guard<std::mutex> lock(bridge_mutex_);
  // The second test covers an extension installed after the orphaning looked for one.
  if (orphaned_ || !owner_->can_be_canceled()) return std::stop_source(std::nostopstate);
  if (!bridge_) bridge_.emplace();
  return *bridge_;
}

void source_extension::attach_std_parent(const std::stop_token& parent) {
  // The std parent counts as a canceller for as long as the source exists: a std::stop_token
  // cannot tell us when its last stop_source goes away.
  owner_->add_canceller();
  // May run the trigger right here if the parent is already requested: born cancelled (S19).
  std_parent_.emplace(parent, std_parent_trigger{owner_, &service_});
}

void std_parent_trigger::operator()() const noexcept {
  if (!target->try_add_ref()) return;  // the source is being destroyed: nobody can observe it
  cancel_in_background(target, nullptr, *service);
  state::release(target);
}

void cancel_in_background(state* s, const std::exception_ptr& reason,
                          timer_service& service) noexcept {
  dispatch_outcome out = state::request(s, reason, /*throw_on_first=*/false);
  if (out.first_error) timer_access::report(service, std::move(out));
}

source_extension& extension_of(state* s) {
  if (state_extension* e = s->extension()) return static_cast<source_extension&>(*e);
  timer_service& service = s->timers() != nullptr ? *s->timers() : system_timer_service();
  auto* fresh = new source_extension(s, service);
  state_extension* installed = s->install_extension(fresh);
  if (installed != fresh) delete fresh;  // another thread was first
  return static_cast<source_extension&>(*installed);
}

}  // namespace cancelkit::detail
