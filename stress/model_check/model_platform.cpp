// stress/model_check/model_platform.cpp — the machine-dependent part of the library, for the
// model. The model checker compiles every file of impl/src through detail/sync.hpp except
// system_timer_service.cpp, whose threads, condition variables and fork handlers are real; its
// protocol is checked by the stress scenarios and unit tests instead (stress/README.md). This
// file supplies the one function the rest of the library needs from it.
#include "model_registry.hpp"

#include <cstddef>

namespace cancelkit_model {
cancelkit::timer_service* system_timers = nullptr;

// Relacy replaces the global operator new/delete with *inline* definitions. g++ emits them as
// weak symbols, which then also serve the allocations made inside libstdc++.so (an exception's
// message string, say); clang++ emits an inline function only where a call was not inlined, so
// libstdc++ kept its own operator new while the library's inlined delete went to Relacy, which
// reported the foreign pointer as a DOUBLE FREE. Taking their addresses makes every compiler
// emit them, so the whole program allocates through Relacy.
const kept_allocation_functions kept_allocation = {&::operator new, &::operator new[],
                                                   &::operator delete, &::operator delete[]};
}  // namespace cancelkit_model

namespace cancelkit {

timer_service& system_timer_service() {
  // A test that lets the library fall back to the system service must provide one (above).
  RL_ASSERT(cancelkit_model::system_timers != nullptr);
  return *cancelkit_model::system_timers;
}

}  // namespace cancelkit
