// `klay validate FILE [--dot OUT] [--allow-dangling] [--strict]`: load and check a KLay model YAML
// without building it, and print the build plan (inputs, layer calls in execution order, outputs,
// message-passing stages and depth) or every problem as "file:line:col: error: ...".
// Exit status: 0 valid, 1 invalid (or --dot could not be written), 2 bad command line.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "klay_builder.h"
#include "klay_layer_table.h"

namespace {

void print_usage(FILE* out) {
  std::fputs(
      "usage: klay validate FILE [--dot OUT] [--allow-dangling] [--strict]\n"
      "  --dot OUT         write the layer graph as Graphviz dot (aliases drawn as call-sites)\n"
      "  --allow-dangling  do not report layers that no model output depends on\n"
      "  --strict          dangling layers are errors instead of warnings\n",
      out);
}

void print_diagnostics(const klay_diags& diags) {
  size_t length = klay_diags_format(&diags, nullptr, 0);
  if (length == 0) return;
  std::vector<char> text(length + 1);
  klay_diags_format(&diags, text.data(), text.size());
  std::fputs(text.data(), stderr);
}

std::string describe_source(const klay_plan& plan, const klay_source& source) {
  std::string text;
  if (source.kind == KLAY_SRC_INPUT) return "model_inputs." + std::string(plan.inputs[source.index]);
  text = plan.nodes[source.index].name;
  if (source.kind == KLAY_SRC_ITEM)
    text += source.key_is_int ? "[" + std::to_string(source.key_int) + "]"
                              : "['" + std::string(source.key_str) + "']";
  return text;
}

void print_plan(const klay_plan& plan, const char* file) {
  std::printf("%s: valid KLay model\n", file);
  std::printf("inputs (%zu):", plan.n_inputs);
  for (size_t i = 0; i < plan.n_inputs; ++i) std::printf("%s %s", i ? "," : "", plan.inputs[i]);
  std::printf("\nlayer calls (%zu, execution order; %zu modules):\n", plan.n_nodes, plan.n_modules);
  for (size_t i = 0; i < plan.n_nodes; ++i) {
    const klay_plan_node& node = plan.nodes[i];
    std::string kind = node.type;
    if (node.alias_of >= 0) kind = "alias of " + std::string(plan.nodes[node.alias_of].name) + " (" + node.type + ")";
    std::printf("  %3zu  %-24s %s", i, node.name, kind.c_str());
    if (node.spec->aggregation != KLAY_AGG_NONE) std::printf("  [stage, depth %d]", node.stage_depth);
    std::printf("\n       <-");
    if (node.n_bindings == 0) std::printf(" (no inputs)");
    for (size_t k = 0; k < node.n_bindings; ++k) {
      const klay_binding& b = node.bindings[k];
      std::string port = b.keyword ? b.keyword : std::to_string(b.position);
      std::printf("%s %s=%s", k ? "," : "", port.c_str(), describe_source(plan, b.source).c_str());
    }
    std::printf("\n");
    if (node.n_output_aliases) {
      std::printf("       ->");
      for (size_t k = 0; k < node.n_output_aliases; ++k) {
        const klay_output_alias& alias = node.output_aliases[k];
        std::string key = alias.key_is_int ? std::to_string(alias.key_int) : "'" + std::string(alias.key_str) + "'";
        std::printf("%s [%s] as %s", k ? "," : "", key.c_str(), alias.name);
      }
      std::printf("\n");
    }
  }
  std::printf("outputs (%zu):", plan.n_outputs);
  for (size_t o = 0; o < plan.n_outputs; ++o) {
    const klay_model_output& output = plan.outputs[o];
    std::string source = describe_source(plan, output.source);
    if (output.tail) source += "['" + std::string(output.tail) + "']";
    std::printf("%s %s <- %s", o ? "," : "", output.name, source.c_str());
  }
  std::printf("\nmessage-passing stages (%zu):", plan.n_stages);
  for (size_t s = 0; s < plan.n_stages; ++s) {
    const klay_stage& stage = plan.stages[s];
    std::printf("%s %s (edge_index from %s, depth %d)", s ? "," : "", plan.nodes[stage.node].name,
                stage.edge_input >= 0 ? plan.inputs[stage.edge_input] : "a layer", stage.depth);
  }
  std::printf("\ndepth: %d\n", plan.depth);
}

}  // namespace

int cmd_validate(int argc, char** argv) {
  const char* file = nullptr;
  const char* dot_path = nullptr;
  unsigned flags = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--dot") && i + 1 < argc) {
      dot_path = argv[++i];
    } else if (!std::strcmp(argv[i], "--allow-dangling")) {
      flags |= KLAY_PLAN_ALLOW_DANGLING;
    } else if (!std::strcmp(argv[i], "--strict")) {
      flags |= KLAY_PLAN_STRICT_DANGLING;
    } else if (!std::strcmp(argv[i], "-h") || !std::strcmp(argv[i], "--help")) {
      print_usage(stdout);
      return 0;
    } else if (argv[i][0] != '-' && !file) {
      file = argv[i];
    } else {
      std::fprintf(stderr, "klay validate: unexpected argument '%s'\n", argv[i]);
      print_usage(stderr);
      return 2;
    }
  }
  if (!file) {
    print_usage(stderr);
    return 2;
  }

  klay_diags diags;
  klay_diags_init(&diags);
  klay_doc* doc = klay_doc_load_file(file, &diags);
  klay_plan* plan = doc ? klay_plan_build(doc, klay_layer_table_get(), flags, &diags) : nullptr;
  print_diagnostics(diags);
  int status = plan ? 0 : 1;
  if (plan) {
    print_plan(*plan, file);
    if (dot_path && klay_plan_write_dot(plan, dot_path) != 0) {
      std::fprintf(stderr, "klay validate: cannot write %s\n", dot_path);
      status = 1;
    }
  } else {
    std::fprintf(stderr, "%s: %zu error(s)\n", file, klay_diags_errors(&diags));
  }
  klay_plan_free(plan);
  klay_doc_free(doc);
  klay_diags_free(&diags);
  return status;
}
