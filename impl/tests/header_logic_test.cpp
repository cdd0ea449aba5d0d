// Behaviour of the public headers' inline logic that the other test files do not pin down
// (issue 17, part 5: mutants of the public headers).
#include <cancelkit/cancelkit.hpp>

#include <gtest/gtest.h>
