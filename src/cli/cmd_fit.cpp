// `klay fit MODEL.yaml DATA.xyz [options]`: trains a model's parameters on labelled extended-XYZ
// frames (src/fit) and writes the best weights as torch.save(state_dict) does. On a terminal a
// progress bar with the running training errors is redrawn during each epoch; every epoch ends
// with one summary line, and without a terminal a progress comment line marks every 30 s of a
// long epoch. Ctrl-C stops after the current step; the best weights so far are in --out at every
// moment.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/Context.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

#include "cli/commands.hpp"
#include "fit/trainer.hpp"
#include "fit/training_set.hpp"
#include "md/md_model.hpp"
#include "md/xyz.hpp"
#include "base/error.hpp"
#include "weights/torch_save_writer.hpp"

namespace {

constexpr const char* kUsage =
    "usage: klay fit MODEL.yaml DATA.xyz [options]\n"
    "  --out FILE                 best weights (torch.save state_dict)       [model.pth]\n"
    "  --init WEIGHTS             start from these weights                   [random initialisation]\n"
    "  --epochs N                                                            [100]\n"
    "  --batch-size N             frames per optimizer step                  [4]\n"
    "  --lr X                     Adam learning rate                         [0.01]\n"
    "  --schedule cosine|plateau  cosine to lr*0.01, or halve lr after\n"
    "                             --patience epochs without improvement      [cosine]\n"
    "  --patience N                                                          [10]\n"
    "  --energy-weight X          weight of mean((dE/N)^2)                   [1]\n"
    "  --force-weight X           weight of mean(dF^2)                       [1]\n"
    "  --virial-weight X          weight of mean((dW/N)^2), W = sum x (x) F   [0]\n"
    "  --validation-fraction X    frames held out for validation             [0.1]\n"
    "  --seed N                   split, batch order and initialisation      [0]\n"
    "  --threads N                torch intra-op threads                     [torch's default]\n"
    "                             (with N > 1 set OMP_WAIT_POLICY=passive on a busy machine)\n"
    "  --dtype float64|float32    training precision                         [float64]\n"
    "  --write-dtype float64|float32  dtype of the written weights           [float64]\n"
    "  --checkpoint-every N       also write OUT-stem.epochK.pth every N epochs\n"
    "DATA.xyz: extended XYZ frames with energy= and/or a forces:R:3 column (eV, eV/Angstrom).\n";

std::atomic<bool> g_stop{false};

void on_interrupt(int) {
  g_stop = true;
  static const char kMessage[] = "\nklay fit: interrupted, stopping after this step (Ctrl-C again to abort)\n";
  ssize_t ignored = write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
  (void)ignored;
}

struct Arguments {
  std::string model, data, init, out = "model.pth";
  klay::fit::FitOptions options;
  double validation_fraction = 0.1;
  int threads = 0;
  bool single_precision = false;
  at::ScalarType write_dtype = at::kDouble;
  int checkpoint_every = 0;
};

double number(const char* option, const char* text) {
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  if (end == text || *end != '\0') throw klay::Error(std::string(option) + ": '" + text + "' is not a number");
  return value;
}

long long integer(const char* option, const char* text) {
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || value < 0)
    throw klay::Error(std::string(option) + ": '" + text + "' is not a non-negative integer");
  return value;
}

at::ScalarType dtype_named(const char* option, const std::string& name) {
  if (name == "float64") return at::kDouble;
  if (name == "float32") return at::kFloat;
  throw klay::Error(std::string(option) + ": '" + name + "' is not float64 or float32");
}

// Returns false after printing the usage for --help.
bool parse(int argc, char** argv, Arguments& a) {
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string option = argv[i];
    if (option == "-h" || option == "--help") return false;
    if (option.size() < 2 || option.compare(0, 2, "--") != 0) {
      positional.push_back(option);
      continue;
    }
    if (i + 1 >= argc) throw klay::Error(option + " needs a value");
    const char* value = argv[++i];
    const char* name = option.c_str();
    if (option == "--out") a.out = value;
    else if (option == "--init") a.init = value;
    else if (option == "--epochs") a.options.epochs = static_cast<int>(integer(name, value));
    else if (option == "--batch-size") a.options.batch_size = static_cast<int>(integer(name, value));
    else if (option == "--lr") a.options.lr = number(name, value);
    else if (option == "--patience") a.options.plateau_patience = static_cast<int>(integer(name, value));
    else if (option == "--energy-weight") a.options.energy_weight = number(name, value);
    else if (option == "--force-weight") a.options.force_weight = number(name, value);
    else if (option == "--virial-weight") a.options.virial_weight = number(name, value);
    else if (option == "--validation-fraction") a.validation_fraction = number(name, value);
    else if (option == "--seed") a.options.seed = static_cast<uint64_t>(integer(name, value));
    else if (option == "--threads") a.threads = static_cast<int>(integer(name, value));
    else if (option == "--dtype") a.single_precision = dtype_named(name, value) == at::kFloat;
    else if (option == "--write-dtype") a.write_dtype = dtype_named(name, value);
    else if (option == "--checkpoint-every") a.checkpoint_every = static_cast<int>(integer(name, value));
    else if (option == "--schedule") {
      const std::string schedule = value;
      if (schedule == "cosine") a.options.schedule = klay::fit::Schedule::Cosine;
      else if (schedule == "plateau") a.options.schedule = klay::fit::Schedule::Plateau;
      else throw klay::Error("--schedule: '" + schedule + "' is not cosine or plateau");
    } else {
      const std::string hint = klay::closest_match(
          option, {"--out", "--init", "--epochs", "--batch-size", "--lr", "--schedule", "--patience", "--energy-weight",
                   "--force-weight", "--virial-weight", "--validation-fraction", "--seed", "--threads", "--dtype",
                   "--write-dtype", "--checkpoint-every"});
      throw klay::Error("unknown option '" + option + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
    }
  }
  if (positional.size() != 2)
    throw klay::Error("expected MODEL.yaml and DATA.xyz, got " + std::to_string(positional.size()) + " argument(s)");
  a.model = positional[0];
  a.data = positional[1];
  return true;
}

// The virial columns come last, and only when the data has virials, so scripts reading the
// earlier columns keep working.
void print_epoch_header(bool virials) {
  std::printf("%6s %9s %12s %11s %12s %11s %8s", "epoch", "lr", "train E", "train F", "valid E", "valid F", "time");
  if (virials) std::printf(" %12s %12s", "train W", "valid W");
  std::printf("\n%6s %9s %12s %11s %12s %11s %8s", "", "", "meV/atom", "eV/A", "meV/atom", "eV/A", "s");
  if (virials) std::printf(" %12s %12s", "meV/atom", "meV/atom");
  std::printf("\n");
}

void print_progress(int epoch, int epochs, int step, int n_steps, const klay::fit::Errors& running) {
  constexpr int kWidth = 30;
  const int filled = n_steps > 0 ? kWidth * step / n_steps : kWidth;
  std::printf("\r\033[Kepoch %d/%d [%.*s%*s] %d/%d  E %.3f meV/atom  F %.4f eV/A", epoch, epochs, filled,
              "##############################", kWidth - filled, "", step, n_steps, 1000 * running.energy_rmse,
              running.force_rmse);
  std::fflush(stdout);
}

// Without a terminal (a log file): a comment line now and then, so a long epoch shows life.
void print_progress_line(int epoch, int epochs, int step, int n_steps, const klay::fit::Errors& running) {
  std::printf("# epoch %d/%d step %d/%d: running E %.3f meV/atom, F %.4f eV/A\n", epoch, epochs, step, n_steps,
              1000 * running.energy_rmse, running.force_rmse);
  std::fflush(stdout);
}

void print_epoch(const klay::fit::EpochReport& r, bool virials) {
  std::printf("%6d %9.2e %12.3f %11.5f ", r.epoch, r.lr, 1000 * r.train.energy_rmse, r.train.force_rmse);
  if (r.validation.n_frames > 0)
    std::printf("%12.3f %11.5f", 1000 * r.validation.energy_rmse, r.validation.force_rmse);
  else
    std::printf("%12s %11s", "-", "-");
  std::printf(" %8.2f", r.seconds);
  if (virials) {
    std::printf(" %12.3f", 1000 * r.train.virial_rmse);
    if (r.validation.has_virials)
      std::printf(" %12.3f", 1000 * r.validation.virial_rmse);
    else
      std::printf(" %12s", "-");
  }
  std::printf("%s\n", r.best ? "  *" : "");
  std::fflush(stdout);
}

// The weights are written after training: a path that cannot be written is reported first.
void check_writable(const std::string& path) {
  const bool existed = access(path.c_str(), F_OK) == 0;
  FILE* file = std::fopen(path.c_str(), "ab");
  if (!file) throw klay::Error(path + ": cannot write the weights: " + std::strerror(errno));
  std::fclose(file);
  if (!existed) std::remove(path.c_str());
}

}  // namespace

int cmd_fit(int argc, char** argv) {
  Arguments args;
  try {
    if (!parse(argc, argv, args)) {
      std::printf("%s", kUsage);
      return 0;
    }
  } catch (const klay::Error& e) {
    std::fprintf(stderr, "klay fit: %s\n%s", e.what(), kUsage);
    return 2;
  }
  try {
    check_writable(args.out);
    if (args.threads > 0) at::set_num_threads(args.threads);
    // The data first: a malformed file is reported without waiting for the model to load.
    const std::vector<klay::md::LabelledFrame> labelled = klay::md::read_extended_xyz_frames(args.data);
    at::manual_seed(args.options.seed);  // the random initialisation
    auto model = klay::md::MdModel::load(args.model, args.init, args.single_precision);
    std::vector<klay::fit::TrainingFrame> frames = klay::fit::prepare_training_frames(*model, labelled, args.data);
    klay::fit::Split split = klay::fit::split_frames(frames.size(), args.validation_fraction, args.options.seed);
    const size_t n_train = split.train.size(), n_validation = split.validation.size();
    double cell_atoms = 0, model_atoms = 0, edges = 0;
    for (const klay::fit::TrainingFrame& frame : frames) {
      cell_atoms += static_cast<double>(frame.n_atoms) / frames.size();
      model_atoms += static_cast<double>(frame.prepared.n_model_atoms()) / frames.size();
      edges += static_cast<double>(frame.prepared.edge_pairs.size() / 2) / frames.size();
    }
    klay::fit::Trainer trainer(*model, std::move(frames), std::move(split), args.options);
    std::printf("# %zu frames: %zu training, %zu validation; %zu trainable parameters; %s, %d thread(s)\n",
                labelled.size(), n_train, n_validation, trainer.n_parameters(),
                args.single_precision ? "float32" : "float64", at::get_num_threads());
    std::printf("# per frame on average: %.1f atoms, %.1f fed to the model with padding images, %.1f edges\n",
                cell_atoms, model_atoms, edges);
    const bool virials = std::any_of(labelled.begin(), labelled.end(),
                                     [](const klay::md::LabelledFrame& f) { return f.virial.has_value(); });
    // libgomp's spinning workers make several threads many times slower when other processes share
    // the cores; the policy is read when the program starts, so only the caller can set it.
    if (at::get_num_threads() > 1 && !std::getenv("OMP_WAIT_POLICY"))
      std::printf("# several threads: if other processes share the cores, set OMP_WAIT_POLICY=passive\n");
    print_epoch_header(virials);
    std::fflush(stdout);

    const bool tty = isatty(STDOUT_FILENO);
    int best_epoch = 0;
    klay::fit::FitCallbacks callbacks;
    using Clock = std::chrono::steady_clock;
    constexpr double kProgressSeconds = 30;
    Clock::time_point last_progress = Clock::now();
    callbacks.on_step = [&](int epoch, int step, int n_steps, const klay::fit::Errors& running) {
      if (tty) {
        print_progress(epoch, args.options.epochs, step, n_steps, running);
      } else if (step < n_steps &&
                 std::chrono::duration<double>(Clock::now() - last_progress).count() >= kProgressSeconds) {
        print_progress_line(epoch, args.options.epochs, step, n_steps, running);
        last_progress = Clock::now();
      }
    };
    callbacks.on_epoch = [&](const klay::fit::EpochReport& report) {
      if (tty) std::printf("\r\033[K");
      print_epoch(report, virials);
      last_progress = Clock::now();
      if (report.best) {
        best_epoch = report.epoch;
        klay::write_torch_save(args.out, trainer.best_state(args.write_dtype));
      }
      if (args.checkpoint_every > 0 && report.epoch % args.checkpoint_every == 0)
        klay::write_torch_save(klay::fit::checkpoint_path(args.out, report.epoch), trainer.current_state(args.write_dtype));
    };

    struct sigaction action {};
    action.sa_handler = on_interrupt;
    action.sa_flags = SA_RESETHAND;  // a second Ctrl-C aborts
    sigemptyset(&action.sa_mask);
    struct sigaction previous {};
    sigaction(SIGINT, &action, &previous);
    const int completed = trainer.run(callbacks, &g_stop);
    sigaction(SIGINT, &previous, nullptr);
    if (tty) std::printf("\r\033[K");

    if (best_epoch == 0) {  // interrupted during the first epoch: the current parameters
      klay::write_torch_save(args.out, trainer.current_state(args.write_dtype));
      std::printf("# stopped after %d epoch(s); wrote the current weights to %s\n", completed, args.out.c_str());
    } else {
      std::printf("# %d epoch(s); best %s loss at epoch %d; weights in %s\n", completed,
                  n_validation > 0 ? "validation" : "training", best_epoch, args.out.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "klay fit: %s\n", klay::exception_message(e).c_str());
    return 1;
  }
  return 0;
}
