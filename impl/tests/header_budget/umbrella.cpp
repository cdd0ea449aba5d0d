// The whole public API: what a user TU pays for (issue 21, part 5).
#include <cancelkit/cancelkit.hpp>
