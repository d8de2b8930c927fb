// closest_match, the runtime's "did you mean", is the YAML front end's klay_closest_name: an
// adjacent transposition is one edit, case does not count, and a word far from every name gets
// no suggestion.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/error.hpp"

namespace klay {
namespace {

TEST(ClosestMatch, ATranspositionIsOneEdit) {
  // Levenshtein puts "tnah" two edits from both; as one transposition it is closest to "tanh".
  EXPECT_EQ(closest_match("tnah", {"tan", "tanh"}), "tanh");
  EXPECT_EQ(closest_match("rleu", {"silu", "relu"}), "relu");
}

TEST(ClosestMatch, CaseDoesNotCount) { EXPECT_EQ(closest_match("ReLU", {"silu", "relu"}), "relu"); }

TEST(ClosestMatch, NothingFarFromEveryName) {
  EXPECT_EQ(closest_match("convolution", {"relu", "silu"}), "");
  EXPECT_EQ(closest_match("x", {}), "");
}

}  // namespace
}  // namespace klay
