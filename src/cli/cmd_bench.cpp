// `klay bench accuracy|speed`: dispatch and the helpers both subcommands share (cmd_bench.hpp).
#include "cli/cmd_bench.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "cli/commands.hpp"
#include "base/error.hpp"

namespace klay::bench {

const char* option_value(int& i, int argc, char** argv) {
  if (i + 1 >= argc) throw UsageError(std::string("option ") + argv[i] + " needs a value");
  return argv[++i];
}

int positive_int_option(const char* option, const std::string& text) {
  char* end = nullptr;
  const long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || value <= 0 || value > 1000000000)
    throw UsageError(std::string(option) + ": expected a positive integer, got '" + text + "'");
  return static_cast<int>(value);
}

double positive_real_option(const char* option, const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(value > 0) || !std::isfinite(value))
    throw UsageError(std::string(option) + ": expected a positive number, got '" + text + "'");
  return value;
}

json::Value json_number(double value) {
  json::Value v;
  if (std::isfinite(value)) {
    v.kind = json::Value::Kind::Float;
    v.real = value;
  }
  return v;
}

json::Value json_integer(int64_t value) {
  json::Value v;
  v.kind = json::Value::Kind::Int;
  v.integer = value;
  return v;
}

void write_json_file(const std::string& path, const json::Value& value) {
  const std::string partial = path + ".tmp";
  {
    std::ofstream out(partial);
    if (!out) throw Error("cannot write " + partial + ": " + std::strerror(errno));
    json::write(out, value);
    out << '\n';
    if (!out.flush()) throw Error("cannot write " + partial + ": " + std::strerror(errno));
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0)
    throw Error("cannot rename " + partial + " to " + path + ": " + std::strerror(errno));
}

void run_gnuplot(const std::string& script) {
  FILE* gnuplot = popen("gnuplot 2>&1", "w");
  if (!gnuplot) throw Error(std::string("cannot start gnuplot: ") + std::strerror(errno));
  std::fwrite(script.data(), 1, script.size(), gnuplot);
  const int status = pclose(gnuplot);
  if (status != 0)
    throw Error("gnuplot failed (exit status " + std::to_string(status) +
                "; the plots need gnuplot with the pngcairo terminal, Debian package gnuplot-nox)");
}

std::string gnuplot_string(const std::string& text) {
  std::string quoted = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return quoted + "\"";
}

}  // namespace klay::bench

int cmd_bench(int argc, char** argv) {
  constexpr const char* kUsage =
      "usage: klay bench accuracy MODEL.yaml WEIGHTS DATA.xyz [--model MODEL2.yaml WEIGHTS2]... [--json OUT]\n"
      "                           [--plot PARITY.png] [--worst K] [--float32]\n"
      "       klay bench speed MODEL.yaml WEIGHTS --elements Si [--sizes 512,4096,32768] [--ranks 1,2]\n"
      "                        [--dtype float64,float32] [--threads N] [--steps N] [--warmup N]\n"
      "                        [--timestep PS] [--baseline \"pair_style sw; pair_coeff * * Si.sw Si\"]\n"
      "                        [--compare-largest-graph] [--json OUT] [--plot SPEED.png] [--lmp PATH]\n"
      "                        [--mpirun PATH] [--lattice A] [--mass M]\n"
      "run `klay bench accuracy --help` or `klay bench speed --help` for details\n";
  if (argc >= 2 && std::strcmp(argv[1], "accuracy") == 0) return klay::bench::accuracy(argc - 1, argv + 1);
  if (argc >= 2 && std::strcmp(argv[1], "speed") == 0) return klay::bench::speed(argc - 1, argv + 1);
  if (argc >= 2 && (std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0)) {
    std::printf("%s", kUsage);
    return 0;
  }
  std::fprintf(stderr, "klay bench: %s\n%s",
               argc < 2 ? "expected 'accuracy' or 'speed'" : ("unknown benchmark '" + std::string(argv[1]) + "'").c_str(),
               kUsage);
  return 2;
}
