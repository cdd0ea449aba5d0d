// property_tests/linearizability/reasons.hpp — what both executors of a program (execute.cpp on
// real threads, property_tests/model_programs under Relacy) share besides program.hpp: the
// reason objects that cancel ops pass, and how a cancellation_reason() becomes an
// op_record::result. Included by each executor, so it is compiled against whichever build of
// the library that executor links (the real one, or the one through the model's sync seam).
#pragma once

#include "program.hpp"

#include <cancelkit/exceptions.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <span>

namespace cklin {

// The exception object a `cancel(S, reason)` op passes: names the op that made it.
struct reason_tag {
  int op_id;
};

// How far advance() moves the manual timer, and the delay of S0's cancel_after.
inline constexpr std::chrono::milliseconds timer_delay{10};

// cancellation_reason() as an op_record::result (program.hpp): the id of the cancel op whose very
// object it is, or one of the *_reason values. `reasons[id]` is the object op #id passed (null
// for ops that are not cancels with a reason). Catches everything it rethrows.
inline int reason_result(const std::exception_ptr& e, std::span<const std::exception_ptr> reasons) {
  if (!e) return null_reason;
  try {
    std::rethrow_exception(e);
  } catch (const reason_tag& tag) {
    const auto id = static_cast<std::size_t>(tag.op_id);
    return id < reasons.size() && reasons[id] == e ? tag.op_id : copied_reason;
  } catch (const cancelkit::deadline_exceeded&) {
    return deadline_reason;
  } catch (...) {
    return unknown_reason;
  }
}

}  // namespace cklin
