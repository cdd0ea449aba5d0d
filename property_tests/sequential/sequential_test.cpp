// property_tests/sequential/sequential_test.cpp — random command sequences against the model.
//
// After every command the library and the model agree on the command's result (return value or
// exception and its contents), the exact callback log (which callbacks ran, how often, in which
// order, what their actions returned, what the error handlers received) and every observable
// value of every slot (see ckmodel::world::snapshot).
#include "commands.hpp"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

namespace cktest {
namespace {

RC_GTEST_PROP(Sequential, LibraryMatchesModel, ()) {
  harness h;
  rc::state::check(ckmodel::world{}, h, [](const ckmodel::world& w) { return next_command(w); });
  RC_TAG(h.commands_run < 20 ? "commands <20" : h.commands_run < 60 ? "commands 20-59" : "commands 60+",
         h.callbacks_run == 0 ? "callbacks 0" : h.callbacks_run < 10 ? "callbacks 1-9" : "callbacks 10+",
         h.awaits_resumed == 0 ? "resumptions 0" : "resumptions 1+");
}

}  // namespace
}  // namespace cktest
