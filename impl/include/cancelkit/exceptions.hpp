// cancelkit/exceptions.hpp — the exceptions cancelkit throws.
//
//  - operation_canceled: thrown by throw_if_cancellation_requested(); carries the token.
//  - aggregate_exception: thrown by cancel() when callbacks threw (S12); holds their exceptions
//    in the order the callbacks ran. Copying it is cheap and never throws; it has no move
//    operations, so "moving" one copies and the source keeps its exceptions.
//  - deadline_exceeded: the reason recorded by a timer-triggered cancellation (S16, S17).
//
// Thread safety: each is immutable once constructed, so any number of threads may read one
// object at the same time (a reason shared through cancellation_reason(), an aggregate rethrown
// on several threads); what() never allocates or throws.
#pragma once

#include <cancelkit/cancellation_token.hpp>

#include <exception>
#include <memory>
#include <stdexcept>
#include <vector>

namespace cancelkit {

class operation_canceled : public std::exception {
 public:
  explicit operation_canceled(cancellation_token token) noexcept : token_(std::move(token)) {}
  const char* what() const noexcept override { return "operation canceled"; }
  cancellation_token token() const noexcept { return token_; }

 private:
  cancellation_token token_;
};

class aggregate_exception : public std::exception {
 public:
  // Throws std::bad_alloc if the list cannot be stored.
  explicit aggregate_exception(std::vector<std::exception_ptr> exceptions)
      : exceptions_(std::make_shared<const std::vector<std::exception_ptr>>(std::move(exceptions))) {}

  // Copies share the (immutable) list: never throw, as std::exception requires. Declaring them
  // suppresses the implicit move operations, so a move is a copy and the moved-from object still
  // holds the same exceptions: `exceptions_` is never null, whatever was done to the object.
  aggregate_exception(const aggregate_exception&) noexcept = default;
  aggregate_exception& operator=(const aggregate_exception&) noexcept = default;
  ~aggregate_exception() override = default;

  const char* what() const noexcept override { return "one or more cancellation callbacks threw"; }

  // The exceptions of the callbacks that threw, in the order they ran (S12). Always valid, also
  // on an object that was moved from (it still holds the same list).
  const std::vector<std::exception_ptr>& exceptions() const noexcept { return *exceptions_; }

 private:
  std::shared_ptr<const std::vector<std::exception_ptr>> exceptions_;  // shared: noexcept copies
};

class deadline_exceeded : public std::runtime_error {
 public:
  deadline_exceeded() : std::runtime_error("deadline exceeded") {}
};

}  // namespace cancelkit
