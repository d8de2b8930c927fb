// o3.Linear, TensorProduct, FullyConnectedNet, Activation, Gate, NormActivation,
// SymmetricContraction and scatter_sum: state_dict layout (docs/layers.md#e3nn,
// #symmetric-contraction-detail), equivariance under rotations and inversion, the documented
// formulas on small cases, and autograd against finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>

#include "e3nn/activations.hpp"
#include "e3nn/gate.hpp"
#include "e3nn/linear.hpp"
#include "e3nn/scatter.hpp"
#include "e3nn/spherical_harmonics.hpp"
#include "e3nn/symmetric_contraction.hpp"
#include "e3nn/tensor_product.hpp"
#include "e3nn_test_util.hpp"
#include "base/error.hpp"

namespace klay::e3nn {
namespace {

using test::irreps_rotation;
using test::relative_error;

std::map<std::string, std::vector<int64_t>> state_shapes(const torch::nn::Module& module) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& p : module.named_parameters()) out[p.key()] = p.value().sizes().vec();
  for (const auto& b : module.named_buffers()) out[b.key()] = b.value().sizes().vec();
  return out;
}

// f(x g) vs f(x) g' for a random rotation, with and without the inversion.
template <typename F>
void expect_equivariant(F f, const Irreps& in, const Irreps& out, int64_t n = 5) {
  const at::Tensor x = at::randn({n, in.dim()}, at::kDouble);
  for (bool inversion : {false, true}) {
    const at::Tensor r = test::random_rotation();
    const at::Tensor d_in = irreps_rotation(in, r, inversion), d_out = irreps_rotation(out, r, inversion);
    EXPECT_LT(relative_error(f(at::matmul(x, d_in.t())), at::matmul(f(x), d_out.t())), 1e-12)
        << "inversion " << inversion;
  }
}

TEST(Linear, StateDictLayoutAndMask) {
  LinearImpl linear(Irreps("32x0e+32x1o"), Irreps("1x0e"));
  EXPECT_EQ(state_shapes(linear), (std::map<std::string, std::vector<int64_t>>{
                                      {"weight", {32}}, {"bias", {0}}, {"output_mask", {1}}}));
  LinearImpl partial(Irreps("2x0e+1x1o+3x0e"), Irreps("1x2e+2x0e+1x1o"));
  EXPECT_EQ(partial.weight_numel(), 2 * 2 + 3 * 2 + 1);
  EXPECT_TRUE(at::equal(partial.named_buffers()["output_mask"],
                        at::cat({at::zeros({5}, at::kDouble), at::ones({5}, at::kDouble)})));
  LinearImpl empty(Irreps("2x1o"), Irreps("3x0e"));
  EXPECT_EQ(empty.named_parameters().size(), 0u);
  EXPECT_EQ(empty.named_buffers()["weight"].numel(), 0);
}

// docs/layers.md#linear: out_o = Σ_instr Σ_u W[u,w] in_i[u,m] / √F(o), instructions i_in-major,
// blocks [mul_in, mul_out].
TEST(Linear, SpecFormulaOnSmallCase) {
  LinearImpl linear(Irreps("2x0e+1x1o+1x0e"), Irreps("1x1o+2x0e"));
  {
    at::NoGradGuard no_grad;
    linear.weight.copy_(at::tensor({1., 2., 3., 4., 5., 6., 7.}, at::kDouble));
  }
  // Instructions: (0,1) W=[[1,2],[3,4]], (1,0) W=[[5]], (2,1) W=[[6,7]]; F(0e out) = 2+1 = 3, F(1o) = 1.
  const at::Tensor x = at::tensor({0.5, -1.0, 0.1, 0.2, 0.3, 2.0}, at::kDouble).view({1, 6});
  const double s = 1 / std::sqrt(3.0);
  const at::Tensor expected = at::tensor(
      {5 * 0.1, 5 * 0.2, 5 * 0.3, s * (1 * 0.5 + 3 * -1.0 + 6 * 2.0), s * (2 * 0.5 + 4 * -1.0 + 7 * 2.0)},
      at::kDouble).view({1, 5});
  EXPECT_LT(relative_error(linear.forward(x), expected), 1e-15);
}

TEST(Linear, EquivariantWithDuplicatedIrreps) {
  at::manual_seed(10);
  const Irreps in("3x0e+2x1o+1x1e+2x0e+1x2e+1x1o"), out("2x0e+1x1o+3x2e+1x1o+0x1e+2x3o");
  LinearImpl linear(in, out);
  expect_equivariant([&](const at::Tensor& x) { return linear.forward(x); }, in, out);
  const at::Tensor y = linear.forward(at::randn({4, in.dim()}, at::kDouble));
  EXPECT_EQ(y.narrow(1, y.size(1) - 14, 14).abs().max().item<double>(), 0.0);  // 3o has no input
}

// tp(D1 x1, D2 x2) = D3 tp(x1, x2) for a random rotation, with and without inversion.
void expect_equivariant(const TensorProduct& tp, const Irreps& in1, const Irreps& in2, const Irreps& out) {
  const at::Tensor x2 = at::randn({5, in2.dim()}, at::kDouble);
  for (bool inversion : {false, true}) {
    const at::Tensor r = test::random_rotation(), x1 = at::randn({5, in1.dim()}, at::kDouble);
    const at::Tensor d1 = irreps_rotation(in1, r, inversion), d2 = irreps_rotation(in2, r, inversion),
                     d3 = irreps_rotation(out, r, inversion);
    EXPECT_LT(relative_error(tp->forward(at::matmul(x1, d1.t()), at::matmul(x2, d2.t())),
                             at::matmul(tp->forward(x1, x2), d3.t())),
              1e-12)
        << "inversion " << inversion;
  }
}

TEST(TensorProduct, FullyConnectedLayoutAndEquivariance) {
  at::manual_seed(11);
  const Irreps in1("2x0e+1x1o+1x2e"), in2("1x0e+1x1o+1x2o"), out("2x0e+2x1o+1x1e+1x2e+1x3o");
  TensorProduct tp = fully_connected_tensor_product(in1, in2, out);
  int64_t expected_numel = 0;
  for (const auto& a : in1)
    for (const auto& b : in2) {
      const auto allowed = irrep_product(a.ir, b.ir);
      for (const auto& c : out)
        if (std::find(allowed.begin(), allowed.end(), c.ir) != allowed.end()) expected_numel += a.mul * b.mul * c.mul;
    }
  EXPECT_EQ(tp->weight_numel(), expected_numel);
  std::set<std::string> w3j;
  for (const auto& b : tp->named_buffers())
    if (b.key().rfind("_compiled_main_left_right.", 0) == 0) w3j.insert(b.key().substr(26));
  // Paths with all three l >= 1 allowed by parity: 1o1o->1e,2e; 1o2o->1e,2e; 2e1o->1o,3o; 2e2o->1o,3o.
  EXPECT_EQ(w3j, (std::set<std::string>{"_w3j_1_1_1", "_w3j_1_1_2", "_w3j_1_2_1", "_w3j_1_2_2", "_w3j_2_1_1",
                                        "_w3j_2_1_3", "_w3j_2_2_1", "_w3j_2_2_3"}));
  expect_equivariant(tp, in1, in2, out);
}

// Every path of two l <= 2 inputs of both parities into l <= 2 outputs, the specialised ones
// (an l = 0 side) included: examples/si's second convolution couples 2e x 2e into 0e, 1e and 2e.
TEST(TensorProduct, EveryPathUpToL2IsEquivariant) {
  at::manual_seed(13);
  const Irreps in1("2x0e+2x1o+2x2e+1x1e+1x2o"), in2("1x0e+1x1o+1x2e"), out("2x0e+1x0o+2x1e+2x1o+2x2e+2x2o");
  TensorProduct tp = fully_connected_tensor_product(in1, in2, out);
  expect_equivariant(tp, in1, in2, out);
}

// The NequIP/MACE convolution: uvu with per-edge weights; output slots sorted as in
// docs/layers.md#convolution-tensor-product.
TEST(TensorProduct, UvuExternalWeightsPerEdge) {
  at::manual_seed(12);
  const Irreps in1("3x0e+2x1o"), sh = Irreps::spherical_harmonics(2), mid("3x0e+2x0e+2x1o+3x1o+2x1e+2x2o");
  std::vector<TPInstruction> ins{{0, 0, 0, ConnectionMode::uvu, true}, {0, 1, 3, ConnectionMode::uvu, true},
                                 {1, 1, 1, ConnectionMode::uvu, true}, {1, 0, 2, ConnectionMode::uvu, true},
                                 {1, 1, 4, ConnectionMode::uvu, true}, {1, 2, 5, ConnectionMode::uvu, true}};
  TensorProduct tp(in1, sh, mid, ins, /*internal_weights=*/false);
  EXPECT_EQ(tp->weight_numel(), 3 + 3 + 2 + 2 + 2 + 2);
  EXPECT_EQ(tp->named_parameters().size(), 0u);
  const int64_t e = 6;
  const at::Tensor w = at::randn({e, tp->weight_numel()}, at::kDouble), x = at::randn({e, in1.dim()}, at::kDouble);
  const at::Tensor v = at::randn({e, 3}, at::kDouble);
  for (bool inversion : {false, true}) {
    const at::Tensor r = test::random_rotation(), g = inversion ? -r : r;
    const at::Tensor y = tp->forward(x, spherical_harmonics(2, v, true), w);
    const at::Tensor y_rot = tp->forward(at::matmul(x, irreps_rotation(in1, r, inversion).t()),
                                         spherical_harmonics(2, at::matmul(v, g.t()), true), w);
    EXPECT_LT(relative_error(y_rot, at::matmul(y, irreps_rotation(mid, r, inversion).t())), 1e-12);
  }
  // A [weight_numel] weight is shared by every row; rows are independent.
  const at::Tensor shared = tp->forward(x, spherical_harmonics(2, v, true), w[2]);
  EXPECT_LT(relative_error(shared[2], tp->forward(x[2], spherical_harmonics(2, v[2], true), w[2])), 1e-15);
  EXPECT_THROW(tp->forward(x, spherical_harmonics(2, v, true)), Error);
}

// docs/layers.md#elementwise-tp: with a scalar second operand the elementwise product is copy u
// times scalar u.
TEST(TensorProduct, ElementwiseWithScalars) {
  at::manual_seed(13);
  TensorProduct etp = elementwise_tensor_product(Irreps("2x1o+1x2e+1x1o"), Irreps("3x0e+1x0o"));
  EXPECT_EQ(etp->irreps_out(), Irreps("2x1o+1x2e+1x1e"));
  EXPECT_EQ(etp->irreps_in1(), Irreps("2x1o+1x2e+1x1o"));
  EXPECT_EQ(etp->irreps_in2(), Irreps("2x0e+1x0e+1x0o"));
  EXPECT_EQ(state_shapes(*etp), (std::map<std::string, std::vector<int64_t>>{{"weight", {0}},
                                                                             {"output_mask", {14}}}));
  const at::Tensor a = at::randn({3, 14}, at::kDouble), s = at::randn({3, 4}, at::kDouble);
  const at::Tensor expected = at::cat({a.narrow(1, 0, 3) * s.narrow(1, 0, 1), a.narrow(1, 3, 3) * s.narrow(1, 1, 1),
                                       a.narrow(1, 6, 5) * s.narrow(1, 2, 1), a.narrow(1, 11, 3) * s.narrow(1, 3, 1)},
                                      1);
  EXPECT_LT(relative_error(etp->forward(a, s), expected), 1e-15);
}

TEST(TensorProduct, GradientsMatchFiniteDifferences) {
  at::manual_seed(14);
  TensorProduct tp = fully_connected_tensor_product(Irreps("1x0e+1x1o+1x2e"), Irreps("1x1o+1x2e"), Irreps("1x1e+2x2o"),
                                                    /*internal_weights=*/false);
  const at::Tensor x1 = at::randn({2, 9}, at::kDouble).requires_grad_(true);
  const at::Tensor x2 = at::randn({2, 8}, at::kDouble).requires_grad_(true);
  const at::Tensor w = at::randn({2, tp->weight_numel()}, at::kDouble).requires_grad_(true);
  const at::Tensor c = at::randn({2, 13}, at::kDouble);
  auto energy = [&](const at::Tensor& a, const at::Tensor& b, const at::Tensor& ww) {
    return (tp->forward(a, b, ww) * c).sum();
  };
  const auto grads = torch::autograd::grad({energy(x1, x2, w)}, {x1, x2, w});
  at::NoGradGuard no_grad;
  const double h = 1e-6;
  const at::Tensor inputs[3] = {x1.detach(), x2.detach(), w.detach()};
  for (int k = 0; k < 3; ++k) {
    at::Tensor fd = at::zeros_like(inputs[k]);
    for (int64_t i = 0; i < inputs[k].numel(); ++i) {
      at::Tensor args[3] = {inputs[0].clone(), inputs[1].clone(), inputs[2].clone()};
      args[k].view(-1)[i] += h;
      const at::Tensor plus = energy(args[0], args[1], args[2]);
      args[k].view(-1)[i] -= 2 * h;
      fd.view(-1)[i] = (plus - energy(args[0], args[1], args[2])) / (2 * h);
    }
    EXPECT_LT(relative_error(grads[k], fd), 1e-8) << k;
  }
}

TEST(TensorProduct, RejectsInvalidInstructions) {
  EXPECT_THROW(TensorProduct(Irreps("1x1o"), Irreps("1x1o"), Irreps("1x1o"),
                             std::vector<TPInstruction>{{0, 0, 0, ConnectionMode::uvw, true}}, true),
               Error);  // parity forbids 1o x 1o -> 1o
  EXPECT_THROW(TensorProduct(Irreps("2x0e"), Irreps("1x0e"), Irreps("3x0e"),
                             std::vector<TPInstruction>{{0, 0, 0, ConnectionMode::uvu, true}},
                             true),
               Error);  // uvu needs mul_out == mul1
}

// docs/layers.md#normalize2mom: the constants. libtorch's CPU generator is the same code as
// Python's, so the method (1e6 float64 torch.randn samples, generator seeded 0) reproduces the
// hard-coded values.
TEST(FullyConnectedNet, Normalize2momConstants) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  const at::Tensor z = at::randn({1000000}, gen, at::kDouble);
  for (const std::string name : {"silu", "ssp", "tanh", "abs", "sigmoid", "relu"}) {
    const double recomputed = ScalarActivation(name, false)(z).pow(2).mean().pow(-0.5).item<double>();
    EXPECT_NEAR(recomputed, normalize2mom_constant(name), 1e-13) << name;
  }
  EXPECT_DOUBLE_EQ(normalize2mom_constant("silu"), 1.6791767923989418);
  EXPECT_DOUBLE_EQ(normalize2mom_constant("ssp"), 1.878204668541552);
  EXPECT_DOUBLE_EQ(normalize2mom_constant("tanh"), 1.5937334472592695);
  EXPECT_DOUBLE_EQ(normalize2mom_constant("abs"), 1.001110600838467);
  EXPECT_DOUBLE_EQ(ScalarActivation("abs", true).scale(), 1.001110600838467);  // not treated as identity
  EXPECT_EQ(ScalarActivation("silu", false).scale(), 1.0);
  EXPECT_THROW(ScalarActivation("gelu", true), Error);
}

TEST(FullyConnectedNet, LayoutAndForward) {
  at::manual_seed(15);
  FullyConnectedNetImpl net({2, 3, 1}, "ssp");
  EXPECT_EQ(state_shapes(net), (std::map<std::string, std::vector<int64_t>>{{"layer0.weight", {2, 3}},
                                                                            {"layer1.weight", {3, 1}}}));
  const at::Tensor x = at::randn({4, 2}, at::kDouble);
  const at::Tensor w0 = net.named_parameters()["layer0.weight"], w1 = net.named_parameters()["layer1.weight"];
  const at::Tensor hidden =
      (at::softplus(at::matmul(x, w0) / std::sqrt(2.0)) - std::log(2.0)) * 1.878204668541552;
  EXPECT_LT(relative_error(net.forward(x), at::matmul(hidden, w1) / std::sqrt(3.0)), 1e-15);
}

TEST(Activation, ParityRule) {
  const Activation act(Irreps("2x0e+1x0o+1x0o+1x1o"),
                       {ScalarActivation("silu", true), ScalarActivation("tanh", true), ScalarActivation("abs", true),
                        std::nullopt});
  EXPECT_EQ(act.irreps_out(), Irreps("2x0e+1x0o+1x0e+1x1o"));
  EXPECT_THROW(Activation(Irreps("1x0o"), {ScalarActivation("silu", true)}), Error);
  EXPECT_THROW(Activation(Irreps("1x1o"), {ScalarActivation("tanh", true)}), Error);
  EXPECT_THROW(Activation(Irreps("1x0e+1x0e"), {ScalarActivation("tanh", true)}), Error);
  const at::Tensor x = at::tensor({0.5, -1.0, 0.3, -2.0, 1.0, 2.0, 3.0}, at::kDouble).view({1, 7});
  const at::Tensor y = act.forward(x);
  EXPECT_NEAR(y[0][2].item<double>(), std::tanh(0.3) * 1.5937334472592695, 1e-15);
  EXPECT_NEAR(y[0][3].item<double>(), 2.0 * 1.001110600838467, 1e-15);
  EXPECT_TRUE(at::equal(y.narrow(1, 4, 3), x.narrow(1, 4, 3)));
}

// docs/layers.md#gate: the input is read in the sorted layout and the gated part re-assembled in
// irreps_gated order.
TEST(Gate, SortedInputLayoutAndUnsortedGated) {
  at::manual_seed(16);
  GateImpl gate(Irreps("1x0e"), {"silu"}, Irreps("3x0o"), {"tanh"}, Irreps("2x2e+1x1o"));
  EXPECT_EQ(gate.irreps_in(), Irreps("3x0o+1x0e+1x1o+2x2e"));
  EXPECT_EQ(gate.irreps_out(), Irreps("1x0e+2x2o+1x1e"));  // tanh is odd: gates are 0o, gated flip parity
  EXPECT_EQ(state_shapes(gate), (std::map<std::string, std::vector<int64_t>>{{"mul.weight", {0}},
                                                                             {"mul.output_mask", {13}}}));
  const at::Tensor x = at::randn({3, 17}, at::kDouble);
  const at::Tensor gates = at::tanh(x.narrow(1, 0, 3)) * 1.5937334472592695;
  const at::Tensor expected = at::cat({at::silu(x.narrow(1, 3, 1)) * 1.6791767923989418,
                                       x.narrow(1, 7, 5) * gates.narrow(1, 0, 1),
                                       x.narrow(1, 12, 5) * gates.narrow(1, 1, 1),
                                       x.narrow(1, 4, 3) * gates.narrow(1, 2, 1)},
                                      1);
  EXPECT_LT(relative_error(gate.forward(x), expected), 1e-15);
  expect_equivariant([&](const at::Tensor& t) { return gate.forward(t); }, gate.irreps_in(), gate.irreps_out());
}

TEST(Gate, WithoutGatesOnlyScalars) {
  GateImpl gate(Irreps("2x0e+1x0o"), {"silu", "tanh"}, Irreps(""), {}, Irreps(""));
  EXPECT_EQ(gate.irreps_out(), Irreps("2x0e+1x0o"));
  const at::Tensor x = at::tensor({-0.7, 0.2, 0.4}, at::kDouble).view({1, 3});  // sorted: 0o first
  const at::Tensor expected = at::cat({at::silu(x.narrow(1, 1, 2)) * 1.6791767923989418,
                                       at::tanh(x.narrow(1, 0, 1)) * 1.5937334472592695},
                                      1);
  EXPECT_LT(relative_error(gate.forward(x), expected), 1e-15);
}

// docs/layers.md#norm-activation: out[u,m] = x[u,m] f(r)/r, r = max(|x_u|, 1e-8), f unscaled.
TEST(NormActivation, FormulaStateAndEquivariance) {
  at::manual_seed(17);
  const Irreps irreps("2x0e+1x1o+1x1o+1x2e");
  NormActivationImpl norm(irreps, "ssp");
  EXPECT_EQ(state_shapes(norm), (std::map<std::string, std::vector<int64_t>>{
                                    {"norm.tp.weight", {0}},
                                    {"norm.tp.output_mask", {5}},
                                    {"scalar_multiplier.weight", {0}},
                                    {"scalar_multiplier.output_mask", {13}}}));
  at::Tensor x = at::zeros({1, 13}, at::kDouble);
  x[0][0] = -2.0;
  x[0][2] = 3.0;
  x[0][3] = 4.0;  // second 1o copy left zero
  const at::Tensor y = norm.forward(x);
  const double ssp2 = std::log1p(std::exp(2.0)) - std::log(2.0), ssp5 = std::log1p(std::exp(5.0)) - std::log(2.0);
  EXPECT_NEAR(y[0][0].item<double>(), -ssp2, 1e-15);
  EXPECT_NEAR(y[0][2].item<double>(), 3.0 * ssp5 / 5.0, 1e-15);
  EXPECT_NEAR(y[0][3].item<double>(), 4.0 * ssp5 / 5.0, 1e-15);
  EXPECT_EQ(y.narrow(1, 5, 8).abs().max().item<double>(), 0.0);
  expect_equivariant([&](const at::Tensor& t) { return norm.forward(t); }, irreps, irreps);
}

TEST(SymmetricContraction, ShapesFromSpec) {
  SymmetricContractionImpl lmax1(Irreps("32x0e+32x1o"), Irreps("32x0e+32x1o"), 3, 2);
  const auto shapes = state_shapes(lmax1);
  EXPECT_EQ(shapes.at("contractions.0.U_matrix_1"), (std::vector<int64_t>{4, 1}));
  EXPECT_EQ(shapes.at("contractions.0.U_matrix_2"), (std::vector<int64_t>{4, 4, 2}));
  EXPECT_EQ(shapes.at("contractions.0.U_matrix_3"), (std::vector<int64_t>{4, 4, 4, 4}));
  EXPECT_EQ(shapes.at("contractions.1.U_matrix_1"), (std::vector<int64_t>{3, 4, 1}));
  EXPECT_EQ(shapes.at("contractions.1.U_matrix_2"), (std::vector<int64_t>{3, 4, 4, 2}));
  EXPECT_EQ(shapes.at("contractions.1.U_matrix_3"), (std::vector<int64_t>{3, 4, 4, 4, 6}));
  EXPECT_EQ(shapes.at("contractions.1.weights_max"), (std::vector<int64_t>{2, 6, 32}));
  EXPECT_EQ(shapes.at("contractions.1.weights.0"), (std::vector<int64_t>{2, 2, 32}));
  EXPECT_EQ(shapes.at("contractions.1.weights.1"), (std::vector<int64_t>{2, 1, 32}));
  EXPECT_EQ(shapes.size(), 2u * 6u);
  const Irreps coupling("0e+1o+2e");
  const int expected[3][3] = {{1, 3, 11}, {1, 4, 21}, {1, 4, 23}};
  for (int l = 0; l <= 2; ++l)
    for (int nu = 1; nu <= 3; ++nu)
      EXPECT_EQ(mace_u_matrix(coupling, Irrep{l, l % 2 ? -1 : 1}, nu).size(-1), expected[l][nu - 1]) << l << nu;
  EXPECT_THROW(mace_u_matrix(coupling, Irrep{1, 1}, 1), Error);
}

TEST(SymmetricContraction, Equivariant) {
  at::manual_seed(18);
  const Irreps features("3x0e+3x1o+3x2e"), coupling("0e+1o+2e");
  SymmetricContractionImpl contraction(features, features, 3, 2);
  const int64_t n = 4;
  const at::Tensor attrs = at::randn({n, 2}, at::kDouble);
  const at::Tensor x = at::randn({n, 3, 9}, at::kDouble);
  for (bool inversion : {false, true}) {
    const at::Tensor r = test::random_rotation();
    const at::Tensor rotated = at::matmul(x, irreps_rotation(coupling, r, inversion).t());
    EXPECT_LT(relative_error(contraction.forward(rotated, attrs),
                             at::matmul(contraction.forward(x, attrs), irreps_rotation(features, r, inversion).t())),
              1e-12);
  }
}

TEST(Scatter, SumsRowsIntoIndices) {
  const at::Tensor src = at::tensor({1., 2., 3., 4., 5., 6.}, at::kDouble).view({3, 2});
  const at::Tensor out = scatter_sum(src, at::tensor({2, 0, 2}, at::kLong), 4);
  EXPECT_TRUE(at::equal(out, at::tensor({3., 4., 0., 0., 6., 8., 0., 0.}, at::kDouble).view({4, 2})));
}

}  // namespace
}  // namespace klay::e3nn
