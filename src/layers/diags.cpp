#include "layers/diags.hpp"

namespace klay {

std::string diags_text(const klay_diags& diags) {
  const size_t needed = klay_diags_format(&diags, nullptr, 0);
  std::string text(needed + 1, '\0');
  klay_diags_format(&diags, text.data(), text.size());
  text.resize(needed);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

}  // namespace klay
