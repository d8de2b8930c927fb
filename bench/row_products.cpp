// bench_row_products: the tall, narrow matrix products of the kernels (radial networks, linears,
// self-connections) as kernels::row_matmul computes them against at::mm (OpenBLAS), on 1 thread and
// on --threads (default 2), interleaved. The shapes are those of examples/si at 512 atoms (7,492
// edges, 1,367 atoms with images) and of the MACE_layer cases at --copies 200 (2,400 edges).
#include <cmath>
#include <cstdio>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "bench_common.hpp"
#include "kernels/row_matmul.hpp"

namespace klay::bench {
namespace {

constexpr int kCalls = 20;

struct Shape {
  int64_t rows, inner, cols;
  const char* where;
};

int run(int argc, char** argv) {
  Options options = parse_options(argc, argv, "bench_row_products: kernels::row_matmul against at::mm");
  const int threads = options.threads > 1 ? options.threads : 2;
  options.threads = 1;
  print_machine(options);
  const std::vector<Shape> shapes = {
      {7492, 8, 16, "si radial net, layer 1"},   {7492, 16, 16, "si radial net, layer 2"},
      {7492, 16, 48, "si radial net, output"},   {7492, 48, 16, "si radial net, its backward"},
      {1367, 80, 48, "si self-connection"},      {1367, 16, 16, "si linear"},
      {2400, 6, 64, "MACE radial net, layer 1"}, {2400, 64, 64, "MACE radial net, hidden"},
      {2400, 64, 8, "MACE radial net, output"},  {2400, 8, 64, "MACE radial net, its backward"}};
  const auto type = at::TensorOptions().dtype(at::kDouble);
  std::printf("\nfloat64, median ms of interleaved calls; ratio: at::mm / row_matmul on the same threads\n");
  std::printf("%-30s %-16s %9s %9s %6s  %9s %9s %6s  %s\n", "product", "[rows,in,out]", "mm 1t", "rows 1t", "ratio",
              ("mm " + std::to_string(threads) + "t").c_str(), ("rows " + std::to_string(threads) + "t").c_str(),
              "ratio", "rows threads/1");
  double log_one = 0, log_many = 0;
  for (const Shape& s : shapes) {
    const int64_t rows = options.quick ? 16 : s.rows;
    const at::Tensor a = at::randn({rows, s.inner}, type), b = at::randn({s.inner, s.cols}, type);
    at::Tensor out = at::empty({rows, s.cols}, type);
    const at::Tensor reference = at::mm(a, b);
    kernels::row_matmul_out(out, a, b);
    if (relative_difference(out, reference) > 1e-14) {
      std::printf("%s: row_matmul differs from at::mm by %.1e\n", s.where, relative_difference(out, reference));
      return 1;
    }
    double ms[2][2];  // [threads 1 or many][mm, rows]
    for (int t = 0; t < 2; ++t) {
      use_threads(t == 0 ? 1 : threads);
      // A sample is kCalls calls: single calls of 10-300 µs are at the timer's and the scheduler's mercy.
      const int calls = options.quick ? 1 : kCalls;
      const auto mm = [&] { for (int c = 0; c < calls; ++c) at::mm_out(out, a, b); };
      const auto tiled = [&] { for (int c = 0; c < calls; ++c) kernels::row_matmul_out(out, a, b); };
      std::vector<double> samples[2];
      const int repeats = repeats_for(2 * time_once_ms(mm), options);
      for (int r = 0; r < repeats + 2; ++r) {
        const double mm_ms = time_once_ms(mm) / calls, tiled_ms = time_once_ms(tiled) / calls;
        if (r >= 2) samples[0].push_back(mm_ms), samples[1].push_back(tiled_ms);
      }
      ms[t][0] = median_ms(samples[0]);
      ms[t][1] = median_ms(samples[1]);
    }
    use_threads(1);
    log_one += std::log(ms[0][0] / ms[0][1]);
    log_many += std::log(ms[1][0] / ms[1][1]);
    const std::string shape = "[" + std::to_string(rows) + "," + std::to_string(s.inner) + "," +
                              std::to_string(s.cols) + "]";
    std::printf("%-30s %-16s %9.4f %9.4f %5.2fx  %9.4f %9.4f %5.2fx  %5.2fx\n", s.where, shape.c_str(), ms[0][0],
                ms[0][1], ms[0][0] / ms[0][1], ms[1][0], ms[1][1], ms[1][0] / ms[1][1], ms[0][1] / ms[1][1]);
  }
  std::printf("\ngeometric mean at::mm / row_matmul: %.2fx on 1 thread, %.2fx on %d\n",
              std::exp(log_one / shapes.size()), std::exp(log_many / shapes.size()), threads);
  return 0;
}

}  // namespace
}  // namespace klay::bench

int main(int argc, char** argv) { return klay::bench::run(argc, argv); }
