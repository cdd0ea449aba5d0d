// property_tests/main.cpp — gtest main that prints RapidCheck's configuration first, so every run
// (CI included) shows the seed it used; replay with RC_PARAMS="seed=<that seed>" or, after a
// failure, with the RC_PARAMS="reproduce=..." line RapidCheck prints.
#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <cstdlib>
#include <iostream>

int main(int argc, char** argv) {
  const auto& params = rc::detail::configuration().testParams;
  const char* env = std::getenv("RC_PARAMS");
  std::cout << "RapidCheck seed=" << params.seed << " max_success=" << params.maxSuccess
            << " max_size=" << params.maxSize << " (RC_PARAMS=\"" << (env ? env : "") << "\")"
            << std::endl;
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
