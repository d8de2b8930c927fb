// RAII helpers shared by the builder tests: load YAML (text or file), build a plan, and read the
// diagnostics as the "file:line:col: severity: message" text users see.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "klay_builder.h"
#include "klay_layer_table.h"

struct Loaded {
  klay_diags diags;
  klay_doc* doc = nullptr;
  klay_plan* plan = nullptr;

  Loaded() { klay_diags_init(&diags); }
  Loaded(const Loaded&) = delete;
  Loaded& operator=(const Loaded&) = delete;
  ~Loaded() {
    klay_plan_free(plan);
    klay_doc_free(doc);
    klay_diags_free(&diags);
  }

  static void from_text(Loaded& out, const std::string& yaml, const char* name = "test.yaml") {
    out.doc = klay_doc_load_string(yaml.data(), yaml.size(), name, &out.diags);
  }
  static void from_file(Loaded& out, const std::string& path) {
    out.doc = klay_doc_load_file(path.c_str(), &out.diags);
  }
  // Builds the plan (when the document loaded).
  klay_plan* build(unsigned flags = 0) {
    if (doc) plan = klay_plan_build(doc, klay_layer_table_get(), flags, &diags);
    return plan;
  }
  const klay_node* root() const { return klay_doc_root(doc); }

  std::string messages() const {
    std::vector<char> text(klay_diags_format(&diags, nullptr, 0) + 1);
    klay_diags_format(&diags, text.data(), text.size());
    return text.data();
  }
  size_t errors() const { return klay_diags_errors(&diags); }
  size_t warnings() const { return diags.count - klay_diags_errors(&diags); }
};

// Path lookup "a.b.0.c" through maps (string keys) and lists (indices), for assertions.
inline const klay_node* at_path(const klay_node* node, const std::string& path) {
  size_t start = 0;
  while (node && start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string seg = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (node->kind == KLAY_SEQ) {
      size_t i = std::stoul(seg);
      node = i < node->len ? node->items[i] : nullptr;
    } else {
      node = klay_map_get(node, seg.c_str());
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return node;
}
