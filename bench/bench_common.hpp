// What both benchmarks share: the command line, the machine description every result must carry
// (CPU, cores, torch threads, the BLAS libtorch really calls, the load at the time), medians of
// repeated timings, and the comparison bar for two floating tensors.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace klay::bench {

struct Options {
  bool quick = false;   // smoke run for ctest: tiny sizes, one call per timing
  int threads = 0;      // torch intra-op threads; 0 = libtorch's default
  double budget_s = 1.0;  // per timed quantity: repeat until this much time is spent...
  int max_repeats = 15;   // ...or this many repeats (at least 3 unless --quick)
  std::string filter;   // only run entries whose name contains this
  int copies = 1;       // bench_native_vs_torchscript: disjoint copies of each case's inputs
  int64_t atoms = 0;    // bench_layers: atoms of the synthetic workload; 0 = its default (1,000)
};

// Parses --quick, --threads N, --budget S, --repeats N, --filter TEXT, --copies K, --atoms N, --help. Exits on --help or a
// bad argument (with usage on stderr). `purpose` is the first line of the usage text.
Options parse_options(int argc, char** argv, const std::string& purpose);

// Applies the thread setting and prints the machine block: CPU model, cores, load average, torch
// and OpenMP threads, the BLAS library mapped into this process after a matmul. Returns the
// 1024² float64 matmul rate it measured (GFLOP/s), the yardstick for the kernels' rates.
// Also prints one core's float64 multiply-add rate in 256-bit and 512-bit registers.
double print_machine(const Options& options);

// Switches the threads ATen's loops (and so the kernels) run on between timed calls, through
// OpenMP's count, which at::get_num_threads reads. at::set_num_threads would also re-create ATen's
// pthreadpool, whose new worker then spins for milliseconds on a core the next calls need: in
// `perf`, a short-lived libpthreadpool thread per switch, and a 2-thread evaluation interleaved
// with 1-thread ones ran 1.3-2.9x slower than 1 thread.
void use_threads(int threads);

// Median of the collected milliseconds (NaN if empty).
double median_ms(std::vector<double> samples);

// Milliseconds one call of `fn` takes.
double time_once_ms(const std::function<void()>& fn);

struct Timing {
  double median_ms;
  int samples;
};

// Two warm-up calls, then repeats until options.budget_s is spent or options.max_repeats is
// reached (at least 3). A call slower than the whole budget is timed once, cold: at seconds per
// call allocator and cache warm-up are noise, and the table must stay affordable. --quick: one call.
Timing time_median(const std::function<void()>& fn, const Options& options);

// The number of repeats after warm-up for interleaved timings, given the cost of one round.
int repeats_for(double round_ms, const Options& options);

// max|a - b| / max(1, max|b|) over two tensors of the same shape; +inf on a shape mismatch.
double relative_difference(const at::Tensor& a, const at::Tensor& b);

// "12.345" or "-" for NaN.
std::string format_ms(double ms);

}  // namespace klay::bench
