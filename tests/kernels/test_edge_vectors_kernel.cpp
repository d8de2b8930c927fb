// The edge vectors kernel against the composite path (index_selects, sub, add): values and the
// gradients with respect to the positions and the shift in float64 to rounding, for a shift per
// edge, one shift row for every edge and a 3-vector; second derivatives (training's force loss);
// float32; any thread count; nodes outside the positions.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <vector>

#include "kernels/edge_vectors.hpp"
#include "kernels/relative_error.hpp"

namespace klay::kernels {
namespace {

at::Tensor composite(const at::Tensor& pos, const at::Tensor& edge_index, const at::Tensor& shift) {
  return pos.index_select(0, edge_index[1]) - pos.index_select(0, edge_index[0]) + shift;
}

struct Graph {
  at::Tensor pos, edge_index;
};

// Random edges among `nodes` nodes, each node sending and receiving several.
Graph random_graph(int64_t nodes, int64_t edges, uint64_t seed) {
  at::manual_seed(seed);
  return {at::randn({nodes, 3}, at::kDouble) * 3.0, at::randint(nodes, {2, edges}, at::kLong)};
}

// The shifts the layer is given: one per edge, one row for all, a 3-vector.
std::vector<at::Tensor> shifts(int64_t edges) {
  return {at::randn({edges, 3}, at::kDouble), at::randn({1, 3}, at::kDouble), at::randn({3}, at::kDouble)};
}

struct Derivatives {
  at::Tensor out, grad_pos, grad_shift, second_pos, second_shift;
};

// out, d(probe·out³)/d(pos, shift) and, with second_order, d/d(pos, shift) of a probe of those:
// the vectors are linear in pos and shift, so the second derivatives are those of the backward
// with respect to its incoming gradient (here 3·probe·out²), what training's force loss needs.
Derivatives derivatives(bool fused, const Graph& graph, const at::Tensor& shift_values, at::ScalarType dtype,
                        bool second_order) {
  set_fused_kernels_enabled(fused);
  const at::Tensor pos = graph.pos.to(dtype).requires_grad_();
  const at::Tensor shift = shift_values.to(dtype).requires_grad_();
  const at::Tensor out = edge_vectors(pos, graph.edge_index, shift);
  const at::Tensor probe = at::sin(at::arange(out.numel(), out.options())).view_as(out);
  const auto grads = torch::autograd::grad({(out.pow(3) * probe).sum()}, {pos, shift}, {}, true, second_order);
  Derivatives d{out.detach(), grads[0].detach(), grads[1].detach(), {}, {}};
  if (second_order) {
    const at::Tensor probe_pos = at::cos(at::arange(grads[0].numel(), grads[0].options())).view_as(grads[0]);
    const at::Tensor loss = (grads[0] * probe_pos).sum() + (grads[1] * grads[1]).sum();
    const auto second = torch::autograd::grad({loss}, {pos, shift});
    d.second_pos = second[0].detach();
    d.second_shift = second[1].detach();
  }
  set_fused_kernels_enabled(true);
  return d;
}

TEST(EdgeVectorsKernel, MatchesTheCompositePathAndItsGradients) {
  const Graph graph = random_graph(40, 300, 3);
  for (const at::Tensor& shift : shifts(300)) {
    SCOPED_TRACE("shift " + c10::str(shift.sizes()));
    const KernelCounters before = edge_vectors_counters();
    const Derivatives fused = derivatives(true, graph, shift, at::kDouble, false);
    const KernelCounters after = edge_vectors_counters();
    EXPECT_EQ(after.forward_calls - before.forward_calls, 1);
    EXPECT_EQ(after.backward_calls - before.backward_calls, 1);
    const Derivatives reference = derivatives(false, graph, shift, at::kDouble, false);
    EXPECT_EQ(edge_vectors_counters().forward_calls, after.forward_calls);  // switched off: composite
    ASSERT_EQ(fused.out.sizes(), (std::vector<int64_t>{300, 3}));
    ASSERT_EQ(fused.grad_shift.sizes(), shift.sizes());
    EXPECT_LE(relative_error(fused.out, reference.out), 1e-12);
    EXPECT_LE(relative_error(fused.grad_pos, reference.grad_pos), 1e-12);
    EXPECT_LE(relative_error(fused.grad_shift, reference.grad_shift), 1e-12);
    EXPECT_LE(relative_error(edge_vectors(graph.pos, graph.edge_index, shift),
                             composite(graph.pos, graph.edge_index, shift)),
              1e-12);
  }
}

TEST(EdgeVectorsKernel, SecondDerivativesGoThroughTheCompositePath) {
  const Graph graph = random_graph(9, 40, 5);
  for (const at::Tensor& shift : shifts(40)) {
    SCOPED_TRACE("shift " + c10::str(shift.sizes()));
    const KernelCounters before = edge_vectors_counters();
    const Derivatives fused = derivatives(true, graph, shift, at::kDouble, true);
    EXPECT_EQ(edge_vectors_counters().composite_backward_calls - before.composite_backward_calls, 1);
    const Derivatives reference = derivatives(false, graph, shift, at::kDouble, true);
    EXPECT_LE(relative_error(fused.grad_pos, reference.grad_pos), 1e-12);
    EXPECT_LE(relative_error(fused.grad_shift, reference.grad_shift), 1e-12);
    EXPECT_LE(relative_error(fused.second_pos, reference.second_pos), 1e-12);
    EXPECT_LE(relative_error(fused.second_shift, reference.second_shift), 1e-12);
  }
}

TEST(EdgeVectorsKernel, Float32AgreesWithFloat64ToSinglePrecision) {
  const Graph graph = random_graph(30, 200, 7);
  for (const at::Tensor& shift : shifts(200)) {
    SCOPED_TRACE("shift " + c10::str(shift.sizes()));
    const int64_t calls = edge_vectors_counters().forward_calls;
    const Derivatives single = derivatives(true, graph, shift, at::kFloat, false);
    EXPECT_EQ(edge_vectors_counters().forward_calls - calls, 1);
    EXPECT_EQ(single.out.scalar_type(), at::kFloat);
    const Derivatives reference = derivatives(false, graph, shift, at::kDouble, false);
    EXPECT_LE(relative_error(single.out, reference.out), 1e-6);
    EXPECT_LE(relative_error(single.grad_pos, reference.grad_pos), 1e-6);
    EXPECT_LE(relative_error(single.grad_shift, reference.grad_shift), 1e-6);
  }
}

TEST(EdgeVectorsKernel, ResultsDoNotDependOnTheThreadCount) {
  const Graph graph = random_graph(500, 20000, 2);  // three tasks
  const at::Tensor shift = shifts(20000)[0];
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const Derivatives one = derivatives(true, graph, shift, at::kDouble, false);
  at::set_num_threads(2);
  const Derivatives two = derivatives(true, graph, shift, at::kDouble, false);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one.out, two.out));
  EXPECT_TRUE(at::equal(one.grad_pos, two.grad_pos));
  EXPECT_TRUE(at::equal(one.grad_shift, two.grad_shift));
}

TEST(EdgeVectorsKernel, NodesOutsideThePositionsAreErrors) {
  const at::Tensor pos = at::randn({4, 3}, at::kDouble);
  const at::Tensor shift = at::zeros({1, 3}, at::kDouble);
  for (const std::vector<int64_t>& edges : {std::vector<int64_t>{0, 1, 2, 4}, std::vector<int64_t>{0, -1, 2, 3}}) {
    const at::Tensor edge_index = at::tensor(edges, at::kLong).view({2, 2});
    try {
      edge_vectors(pos, edge_index, shift);
      FAIL() << "expected an error";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("0..3"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace klay::kernels
