// property_tests/model/behaviour.hpp — what a test callback does, written once for both sides.
//
// `System` is the model (ckmodel::world) or the harness around the real library; both offer the
// same commands with the same result strings, so a behaviour means the same on both and the
// callback log lines they produce can be compared word for word.
#pragma once

#include "model.hpp"

#include <string>

namespace ckmodel {

// Performs behaviour `b` of callback `id` whose registration object sits in `own_slot`; logs what
// it did (after the caller logged "cb#<id> ran"). Returns true if the callback must throw.
template <class System>
bool perform(System& sys, int id, const behaviour& b, int own_slot) {
  std::string result;
  switch (b.what) {
    case action::count:
      return false;
    case action::throw_error:
      return true;
    case action::unregister_self:
      result = sys.unregister(own_slot);
      break;
    case action::dispose:
      result = sys.dispose(b.target);
      break;
    case action::destroy:
      result = sys.destroy(b.target);
      break;
    case action::register_on:
      result = sys.register_on(b.target, false, behaviour{});
      break;
    case action::cancel:
      result = sys.cancel(b.target, b.with_reason, b.throw_first);
      break;
    case action::drop_handle:
      result = sys.drop_handle(b.target);
      break;
  }
  sys.emit("cb#" + std::to_string(id) + " " + to_string(b) + " -> " + result);
  return false;
}

}  // namespace ckmodel
