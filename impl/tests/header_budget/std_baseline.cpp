// The std headers that the public API needs, and nothing else: the yardstick of the header budget.
#include <chrono>
#include <exception>
#include <functional>
#include <initializer_list>
#include <span>
#include <stop_token>
