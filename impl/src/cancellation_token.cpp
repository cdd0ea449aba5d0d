// cancellation_token: the members that throw or allocate, and to_stop_token().
#include <cancelkit/cancellation_token.hpp>

#include <cancelkit/exceptions.hpp>

#include "source_extension.hpp"

#include <stdexcept>
#include <string>

namespace cancelkit {

void cancellation_token::throw_if_cancellation_requested() const {
  if (is_cancellation_requested()) throw operation_canceled(*this);
}

void cancellation_token::wait() const {
  if (s_ == nullptr) throw std::logic_error("cancelkit: wait() on a token that cannot be canceled");
  if (!wait_without_limit())
    throw std::logic_error("cancelkit: wait() on a token that can no longer be canceled");
}

bool cancellation_token::wait_without_limit() const {
  return s_->wait(std::chrono::nanoseconds(-1)) == detail::wait_result::requested;
}

void cancellation_token::throw_nan_wait_time(const char* what) {
  throw std::invalid_argument(std::string("cancelkit: ") + what);
}

std::stop_token cancellation_token::to_stop_token() const {
  if (s_ == nullptr || !s_->can_be_canceled()) return {};
  detail::source_extension& ext = detail::extension_of(s_);
  std::stop_source bridge = ext.bridge();
  // Requested already, or between bridge creation and now: on_requested() may have missed the
  // new bridge, so request it here too (idempotent; [B5] [B6] in source_extension.hpp).
  if (s_->is_requested()) ext.request_bridge(bridge);
  return bridge.get_token();
}

}  // namespace cancelkit
