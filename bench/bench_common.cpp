#include "bench_common.hpp"

#include <dlfcn.h>
#include <immintrin.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "kernels/kernel_autograd.hpp"

namespace klay::bench {

namespace {

[[noreturn]] void usage(const char* program, const std::string& purpose, int status) {
  (status ? std::cerr : std::cout)
      << purpose << "\n"
      << "usage: " << program << " [--quick] [--threads N] [--budget SECONDS] [--repeats N] [--filter TEXT] [--copies K]\n"
         "       [--atoms N]\n"
      << "  --quick        smoke run (small sizes, no warm-up, one call); what ctest runs\n"
      << "  --threads N    torch intra-op threads (default: libtorch's choice)\n"
      << "  --budget S     seconds spent on repeats of one timed quantity (default 1.0)\n"
      << "  --repeats N    at most N repeats of one timed quantity (default 15)\n"
      << "  --filter TEXT  only entries whose name contains TEXT\n"
      << "  --copies K     (native vs TorchScript) feed K disjoint copies of each case's inputs (default 1)\n"
      << "  --atoms N      (bench_layers) atoms of the workload, 30 edges each (default 1000)\n";
  std::exit(status);
}

#if defined(__x86_64__) && defined(__GNUC__)
// Twelve independent chains of multiply-adds in registers of one width: the rate one core's vector
// units reach, what the kernels' register tiles can at best (whether 512-bit units are full width
// shows here: twice the 256-bit rate, or the same). Each call n·12 multiply-adds per lane.
#define KLAY_MULTIPLY_ADD_CHAINS(V, FMA, SET1)                                                       \
  V a0 = SET1(x), a1 = SET1(x * 2), a2 = SET1(x * 3), a3 = SET1(x * 4), a4 = SET1(x * 5),            \
    a5 = SET1(x * 6), a6 = SET1(x * 7), a7 = SET1(x * 8), a8 = SET1(x * 9), a9 = SET1(x * 10),       \
    a10 = SET1(x * 11), a11 = SET1(x * 12);                                                          \
  const V b = SET1(0.999999), c = SET1(1e-9);                                                        \
  for (long k = 0; k < n; ++k) {                                                                     \
    a0 = FMA(a0, b, c), a1 = FMA(a1, b, c), a2 = FMA(a2, b, c), a3 = FMA(a3, b, c);                  \
    a4 = FMA(a4, b, c), a5 = FMA(a5, b, c), a6 = FMA(a6, b, c), a7 = FMA(a7, b, c);                  \
    a8 = FMA(a8, b, c), a9 = FMA(a9, b, c), a10 = FMA(a10, b, c), a11 = FMA(a11, b, c);              \
  }                                                                                                  \
  V sum = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;                              \
  return sum[0];
__attribute__((target("avx2,fma"), noinline)) double multiply_adds_256(long n, double x) {
  KLAY_MULTIPLY_ADD_CHAINS(__m256d, _mm256_fmadd_pd, _mm256_set1_pd)
}
__attribute__((target("avx512f"), noinline)) double multiply_adds_512(long n, double x) {
  KLAY_MULTIPLY_ADD_CHAINS(__m512d, _mm512_fmadd_pd, _mm512_set1_pd)
}
#undef KLAY_MULTIPLY_ADD_CHAINS

// GFLOP/s of float64 multiply-adds on one core in 256-bit and 512-bit registers (0: not on this CPU).
std::pair<double, double> multiply_add_rates() {
  constexpr long kRounds = 10'000'000;
  const auto rate = [](double (*chains)(long, double), int lanes) {
    volatile double sink = chains(kRounds / 10, 0.001);  // warm-up
    const auto start = std::chrono::steady_clock::now();
    sink = chains(kRounds, 0.001);
    (void)sink;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return 2.0 * 12 * lanes * kRounds / s / 1e9;
  };
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return {avx2 ? rate(multiply_adds_256, 4) : 0.0, __builtin_cpu_supports("avx512f") ? rate(multiply_adds_512, 8) : 0.0};
}
#endif

std::string first_line_with(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0) {
      const size_t colon = line.find(':');
      std::string value = colon == std::string::npos ? line : line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      return value;
    }
  return "unknown";
}

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line.empty() ? "unknown" : line;
}

// libtorch (Debian) calls whatever libblas.so.3 the alternatives system points at, so the only
// reliable answer is the library actually mapped into this process once a matmul has run.
std::string mapped_blas_libraries() {
  std::ifstream maps("/proc/self/maps");
  std::set<std::string> libraries;
  for (std::string line; std::getline(maps, line);) {
    const size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    std::string lower = path;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    const std::string file = lower.substr(lower.rfind('/') + 1);
    if (file.find("blas") != std::string::npos || file.find("mkl") != std::string::npos ||
        file.find("lapack") != std::string::npos)
      libraries.insert(path);
  }
  if (libraries.empty()) return "none mapped (libtorch's built-in kernels)";
  std::string kind = "reference BLAS (netlib)";
  std::string joined;
  for (const std::string& library : libraries) {
    if (library.find("openblas") != std::string::npos) kind = "OpenBLAS";
    if (library.find("mkl") != std::string::npos) kind = "MKL";
    joined += (joined.empty() ? "" : ", ") + library;
  }
  return kind + " [" + joined + "]";
}

// OpenBLAS's own thread count and build string, when OpenBLAS is the library in use.
std::string openblas_details() {
  using get_int = int (*)();
  using get_text = char* (*)();
  const auto threads = reinterpret_cast<get_int>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  const auto config = reinterpret_cast<get_text>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  if (!threads) return "";
  std::string details = "OpenBLAS threads " + std::to_string(threads());
  if (config) details += ", build \"" + std::string(config()) + "\"";
  return details;
}

}  // namespace

Options parse_options(int argc, char** argv, const std::string& purpose) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << arg << " needs a value\n";
        usage(argv[0], purpose, 2);
      }
      return argv[++i];
    };
    try {
      if (arg == "--quick") options.quick = true;
      else if (arg == "--threads") options.threads = std::stoi(value());
      else if (arg == "--budget") options.budget_s = std::stod(value());
      else if (arg == "--repeats") options.max_repeats = std::stoi(value());
      else if (arg == "--filter") options.filter = value();
      else if (arg == "--copies") options.copies = std::stoi(value());
      else if (arg == "--atoms") options.atoms = std::stoll(value());
      else if (arg == "--help" || arg == "-h") usage(argv[0], purpose, 0);
      else {
        std::cerr << "unknown argument '" << arg << "'\n";
        usage(argv[0], purpose, 2);
      }
    } catch (const std::logic_error&) {  // std::stoi / std::stod
      std::cerr << "bad number for " << arg << "\n";
      usage(argv[0], purpose, 2);
    }
  }
  if (options.threads < 0 || options.max_repeats < 1 || !(options.budget_s >= 0) || options.copies < 1 ||
      options.atoms < 0 || options.atoms == 1)
    usage(argv[0], purpose, 2);
  if (options.quick) {
    options.budget_s = 0;
    options.max_repeats = 1;
  }
  return options;
}

void use_threads(int threads) { omp_set_num_threads(threads); }

double print_machine(const Options& options) {
  if (options.threads > 0) at::set_num_threads(options.threads);
  const auto matmul_gflops = [] {
    const int64_t n = 1024;
    const at::Tensor a = at::randn({n, n}, at::kDouble), b = at::randn({n, n}, at::kDouble);
    at::mm(a, b);  // loads and warms the BLAS
    const double ms = time_once_ms([&] { at::mm(a, b); });
    return 2.0 * n * n * n / (ms * 1e6);
  }();
  std::printf("machine:    %s, %ld logical cores online\n",
              first_line_with("/proc/cpuinfo", "model name").c_str(), sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("load:       %s (loadavg at start; > cores means the timings are from a shared, busy machine)\n",
              read_first_line("/proc/loadavg").c_str());
  std::printf("torch:      %d intra-op threads (the kernels' loops run on %d), %d inter-op threads\n",
              at::get_num_threads(), kernels::kernel_loop_threads(), at::get_num_interop_threads());
  std::printf("BLAS:       %s\n", mapped_blas_libraries().c_str());
  if (const std::string details = openblas_details(); !details.empty()) std::printf("            %s\n", details.c_str());
  std::printf("matmul:     1024x1024 float64 %.1f GFLOP/s\n", matmul_gflops);
#if defined(__x86_64__) && defined(__GNUC__)
  const auto [rate_256, rate_512] = multiply_add_rates();
  if (rate_512 > 0)
    std::printf("peak:       float64 multiply-adds, one core: %.1f GFLOP/s in 256-bit registers, %.1f in 512-bit\n",
                rate_256, rate_512);
  else
    std::printf("peak:       float64 multiply-adds, one core: %.1f GFLOP/s in 256-bit registers (no AVX-512)\n",
                rate_256);
#endif
  std::printf("timing:     %s\n\n", options.quick ? "--quick (one call each: smoke run, numbers meaningless)"
                                                    : "median after warm-up (n = timed calls)");
  return matmul_gflops;
}

double median_ms(std::vector<double> samples) {
  if (samples.empty()) return std::numeric_limits<double>::quiet_NaN();
  const size_t middle = samples.size() / 2;
  std::nth_element(samples.begin(), samples.begin() + middle, samples.end());
  if (samples.size() % 2) return samples[middle];
  const double upper = samples[middle];
  return 0.5 * (upper + *std::max_element(samples.begin(), samples.begin() + middle));
}

double time_once_ms(const std::function<void()>& fn) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

int repeats_for(double round_ms, const Options& options) {
  if (options.quick) return 1;
  const int affordable = round_ms > 0 ? static_cast<int>(options.budget_s * 1e3 / round_ms) : options.max_repeats;
  return std::clamp(affordable, std::min(3, options.max_repeats), options.max_repeats);
}

Timing time_median(const std::function<void()>& fn, const Options& options) {
  const double first = time_once_ms(fn);
  if (options.quick || first >= options.budget_s * 1e3) return {first, 1};
  time_once_ms(fn);  // first and second call: allocator, lazy initialisation, caches
  std::vector<double> samples;
  const int repeats = repeats_for(first, options);
  for (int r = 0; r < repeats; ++r) samples.push_back(time_once_ms(fn));
  return {median_ms(samples), repeats};
}

double relative_difference(const at::Tensor& a, const at::Tensor& b) {
  if (!a.defined() || !b.defined() || a.sizes() != b.sizes()) return std::numeric_limits<double>::infinity();
  if (b.numel() == 0) return 0.0;
  const at::Tensor x = a.detach().to(at::kDouble), y = b.detach().to(at::kDouble);
  const double scale = std::max(1.0, y.abs().max().item<double>());
  const double difference = (x - y).abs().max().item<double>();
  return std::isnan(difference) ? std::numeric_limits<double>::infinity() : difference / scale;
}

std::string format_ms(double ms) {
  if (std::isnan(ms)) return "-";
  char text[32];
  std::snprintf(text, sizeof text, ms < 10 ? "%.3f" : ms < 1000 ? "%.2f" : "%.0f", ms);
  return text;
}

}  // namespace klay::bench
