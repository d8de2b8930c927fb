#include <gtest/gtest.h>

#include <cstdlib>

#include "base/environment.hpp"

namespace {

constexpr const char* kVariable = "KLAY_TEST_ENVIRONMENT_SWITCH";

TEST(EnvironmentSwitch, IsOnUnlessSetToZero) {
  unsetenv(kVariable);
  EXPECT_TRUE(klay::switched_on_by_environment(kVariable)) << "unset";
  setenv(kVariable, "0", 1);
  EXPECT_FALSE(klay::switched_on_by_environment(kVariable)) << "0";
  for (const char* on : {"1", "", "00", "off"}) {
    setenv(kVariable, on, 1);
    EXPECT_TRUE(klay::switched_on_by_environment(kVariable)) << "'" << on << "'";
  }
  unsetenv(kVariable);
}

}  // namespace
