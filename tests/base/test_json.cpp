// The strict JSON reader/writer used for `klay run` inputs and outputs.
#include <gtest/gtest.h>

#include <sstream>

#include <ATen/ATen.h>

#include "base/error.hpp"
#include "base/json.hpp"

namespace klay::json {
namespace {

TEST(Json, ParsesTheConformanceTensorFormat) {
  const Value v = parse(R"({"x": {"dtype": "float64", "shape": [2, 2], "data": [[1.5, -2], [0.1, 1e-3]]},
                            "i": {"dtype": "int64", "shape": [3], "data": [1, -9007199254740993, 3]}})", "t.json");
  const at::Tensor x = to_tensor(*v.find("x"), "x");
  EXPECT_EQ(x.scalar_type(), at::kDouble);
  EXPECT_EQ(x[0][1].item<double>(), -2.0);
  EXPECT_EQ(x[1][0].item<double>(), 0.1);
  const at::Tensor i = to_tensor(*v.find("i"), "i");
  EXPECT_EQ(i[1].item<int64_t>(), -9007199254740993LL);  // beyond 2^53: exact
}

TEST(Json, DoublesRoundTripExactly) {
  const at::Tensor t = at::randn({7, 3}, at::kDouble) * 1e-7;
  std::ostringstream out;
  write(out, from_tensor(t));
  const at::Tensor back = to_tensor(parse(out.str(), "round trip"), "t");
  EXPECT_TRUE(at::equal(t, back));
}

TEST(Json, RejectsMalformedInputWithAPosition) {
  auto error = [](const std::string& text) {
    try {
      parse(text, "bad.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error("{\"a\": [1, 2,]}").find("bad.json:1:13"), std::string::npos) << error("{\"a\": [1, 2,]}");
  EXPECT_NE(error("{\"a\": 1, \"a\": 2}").find("duplicate key"), std::string::npos);
  EXPECT_NE(error("[1] x").find("unexpected text"), std::string::npos);
  EXPECT_NE(error("\"abc").find("unterminated"), std::string::npos);
  EXPECT_NE(error("01").find("unexpected text"), std::string::npos);
  EXPECT_NE(error(std::string(1000, '[')).find("too deep"), std::string::npos);
}

TEST(Json, RejectsDataThatDoesNotMatchTheShape) {
  const Value v = parse(R"({"dtype": "float64", "shape": [2, 2], "data": [[1, 2], [3]]})", "t");
  EXPECT_THROW(to_tensor(v, "x"), Error);
  const Value w = parse(R"({"dtype": "int64", "shape": [1], "data": [1.5]})", "t");
  EXPECT_THROW(to_tensor(w, "x"), Error);
}

}  // namespace
}  // namespace klay::json
