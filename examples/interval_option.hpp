// The one command-line option of the console demos: `--interval-ms N` (N >= 0, decimal).
#pragma once

#include <charconv>
#include <chrono>
#include <string_view>
#include <system_error>

namespace example {

// Parses argv[1..]; leaves `interval` as is when the option is absent. False for anything else
// (an unknown argument, a missing, negative or non-numeric N): the caller prints its usage.
inline bool parse_interval(int argc, char** argv, std::chrono::milliseconds& interval) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg != "--interval-ms" || i + 1 >= argc) return false;
    const std::string_view value = argv[++i];
    long long ms = 0;
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), ms);
    if (error != std::errc{} || end != value.data() + value.size() || ms < 0) return false;
    interval = std::chrono::milliseconds(ms);
  }
  return true;
}

}  // namespace example
