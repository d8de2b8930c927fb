// The `klay` command-line tool: dispatches to the subcommands of commands.hpp.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "base/error.hpp"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* usage;
};

const Command kCommands[] = {
    {"validate", cmd_validate, "validate MODEL.yaml [--dot OUT.dot] [--allow-dangling]   check a model YAML"},
    {"layers", cmd_layers, "layers [--type CATEGORY]                               list the registered layers"},
    {"weights", cmd_weights, "weights FILE                                           list the tensors of a weights file"},
    {"run", cmd_run, "run MODEL.yaml (WEIGHTS | --no-weights) INPUTS.json [--grads] [--out OUT.json] [--float32]"},
    {"eval", cmd_eval, "eval MODEL.yaml WEIGHTS STRUCTURE.xyz [--json]          energy and forces of a structure"},
    {"bench", cmd_bench, "bench accuracy|speed MODEL.yaml WEIGHTS ...             errors on labelled data, MD speed"},
    {"fit", cmd_fit, "fit MODEL.yaml DATA.xyz [--out model.pth] [--epochs N] ...   train a model on labelled frames"},
};

void print_usage(FILE* out) {
  std::fprintf(out, "usage: klay COMMAND [ARGS]\n\ncommands:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  klay %s\n", c.usage);
}

// The subcommands report their own errors; whatever escapes them (a library's exception, a bug)
// still ends as one line and exit status 1, never as std::terminate's abort.
int run_command(const Command& command, int argc, char** argv) {
  try {
    return command.run(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "klay %s: error: %s\n", command.name, klay::exception_message(error).c_str());
  } catch (...) {
    std::fprintf(stderr, "klay %s: error: unknown exception\n", command.name);
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  const std::string name = argv[1];
  if (name == "-h" || name == "--help" || name == "help") {
    print_usage(stdout);
    return 0;
  }
  std::vector<std::string> names;
  for (const Command& c : kCommands) {
    if (name == c.name) return run_command(c, argc - 1, argv + 1);
    names.emplace_back(c.name);
  }
  const std::string suggestion = klay::closest_match(name, names);
  std::fprintf(stderr, "klay: unknown command '%s'%s\n", name.c_str(),
               suggestion.empty() ? "" : (" (did you mean '" + suggestion + "'?)").c_str());
  print_usage(stderr);
  return 2;
}
