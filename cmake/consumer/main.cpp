// Consumer check: returns 0 iff a registered callback runs when the source is cancelled.
#include <cancelkit/cancelkit.hpp>

#include <iostream>

int main() {
  cancelkit::cancellation_source source;
  bool callback_ran = false;
  auto registration = source.token().register_callback([&callback_ran] { callback_ran = true; });
  const bool requested = source.cancel();
  const bool ok = requested && callback_ran && source.token().is_cancellation_requested();
  std::cout << (ok ? "consumer: callback ran on cancel" : "consumer: callback did NOT run") << '\n';
  return ok ? 0 : 1;
}
