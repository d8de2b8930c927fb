// The YAML front end's diagnostics list owned by C++ code, and its text for a klay::Error.
#pragma once
#include <string>

#include "klay_builder.h"

namespace klay {

struct Diags {
  klay_diags list;
  Diags() { klay_diags_init(&list); }
  ~Diags() { klay_diags_free(&list); }
  Diags(const Diags&) = delete;
  Diags& operator=(const Diags&) = delete;
};

// "file:line:col: error: message", one line per diagnostic, without a trailing newline.
std::string diags_text(const klay_diags& diags);

}  // namespace klay
