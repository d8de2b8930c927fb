// e3nn.o3.Irrep / Irreps algebra (docs/layers.md#irreps).
#include "e3nn/irreps.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <numeric>

#include "base/error.hpp"

namespace klay::e3nn {
namespace {

std::string strip_spaces(const std::string& text) {
  std::string out;
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c))) out.push_back(c);
  return out;
}

// Parses a non-negative decimal integer that makes up the whole of `digits`.
bool parse_count(const std::string& digits, int64_t& value) {
  if (digits.empty() || digits.size() > 9) return false;
  for (char c : digits)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  value = std::stoll(digits);
  return true;
}

}  // namespace

std::string Irrep::to_string() const { return std::to_string(l) + (p == 1 ? "e" : "o"); }

Irrep Irrep::parse(const std::string& raw) {
  const std::string text = strip_spaces(raw);
  int64_t l = 0;
  if (text.size() < 2 || !parse_count(text.substr(0, text.size() - 1), l))
    throw Error("invalid irrep '" + raw + "' (expected e.g. '1o', '2e' or '3y')");
  switch (text.back()) {
    case 'e': return Irrep{static_cast<int>(l), 1};
    case 'o': return Irrep{static_cast<int>(l), -1};
    case 'y': return Irrep{static_cast<int>(l), l % 2 == 0 ? 1 : -1};
    default: throw Error("invalid irrep '" + raw + "': parity must be 'e', 'o' or 'y'");
  }
}

std::vector<Irrep> irrep_product(const Irrep& a, const Irrep& b) {
  std::vector<Irrep> out;
  for (int l = std::abs(a.l - b.l); l <= a.l + b.l; ++l) out.push_back(Irrep{l, a.p * b.p});
  return out;
}

Irreps::Irreps(const std::string& raw) {
  const std::string text = strip_spaces(raw);
  if (text.empty()) return;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t plus = text.find('+', start);
    const std::string token = text.substr(start, plus == std::string::npos ? std::string::npos : plus - start);
    const size_t x = token.find('x');
    int64_t mul = 1;
    if (x != std::string::npos && !parse_count(token.substr(0, x), mul))
      throw Error("invalid irreps '" + raw + "': bad multiplicity in '" + token + "'");
    try {
      entries_.push_back(MulIrrep{mul, Irrep::parse(x == std::string::npos ? token : token.substr(x + 1))});
    } catch (const Error& e) {
      throw Error("invalid irreps '" + raw + "': " + e.what());
    }
    if (plus == std::string::npos) break;
    start = plus + 1;
  }
}

Irreps Irreps::spherical_harmonics(int lmax) {
  std::vector<MulIrrep> entries;
  for (int l = 0; l <= lmax; ++l) entries.push_back(MulIrrep{1, Irrep{l, l % 2 == 0 ? 1 : -1}});
  return Irreps(std::move(entries));
}

int64_t Irreps::dim() const {
  int64_t d = 0;
  for (const auto& e : entries_) d += e.dim();
  return d;
}

int64_t Irreps::num_irreps() const {
  int64_t n = 0;
  for (const auto& e : entries_) n += e.mul;
  return n;
}

int64_t Irreps::count(const Irrep& ir) const {
  int64_t n = 0;
  for (const auto& e : entries_)
    if (e.ir == ir) n += e.mul;
  return n;
}

std::vector<int64_t> Irreps::columns_of(const std::vector<Irrep>& irreps) const {
  std::vector<int64_t> columns;
  int64_t offset = 0;
  for (const auto& e : entries_) {
    if (std::find(irreps.begin(), irreps.end(), e.ir) != irreps.end())
      for (int64_t c = 0; c < e.dim(); ++c) columns.push_back(offset + c);
    offset += e.dim();
  }
  return columns;
}

Irreps Irreps::keeping(const std::vector<Irrep>& irreps) const {
  std::vector<MulIrrep> kept;
  for (const auto& e : entries_)
    if (std::find(irreps.begin(), irreps.end(), e.ir) != irreps.end()) kept.push_back(e);
  return Irreps(std::move(kept));
}

std::vector<Irrep> Irreps::irreps_at(const std::vector<int64_t>& columns) const {
  std::vector<Irrep> irreps;
  int64_t offset = 0;
  for (const auto& e : entries_) {
    const bool held = std::any_of(columns.begin(), columns.end(),
                                  [&](int64_t c) { return c >= offset && c < offset + e.dim(); });
    if (held && std::find(irreps.begin(), irreps.end(), e.ir) == irreps.end()) irreps.push_back(e.ir);
    offset += e.dim();
  }
  return irreps;
}

bool Irreps::contains(const Irrep& ir) const {
  return std::any_of(entries_.begin(), entries_.end(), [&](const MulIrrep& e) { return e.ir == ir; });
}

int Irreps::lmax() const {
  int lmax = -1;
  for (const auto& e : entries_)
    if (e.mul > 0) lmax = std::max(lmax, e.ir.l);
  if (lmax < 0) throw Error("lmax of irreps '" + to_string() + "' is undefined (no entry with mul > 0)");
  return lmax;
}

std::vector<int64_t> Irreps::offsets() const {
  std::vector<int64_t> out{0};
  for (const auto& e : entries_) out.push_back(out.back() + e.dim());
  return out;
}

std::vector<int64_t> Irreps::widths() const {
  std::vector<int64_t> out;
  for (const auto& e : entries_) out.push_back(e.dim());
  return out;
}

Irreps Irreps::simplify() const {
  std::vector<MulIrrep> out;
  for (const auto& e : entries_) {
    if (!out.empty() && out.back().ir == e.ir)
      out.back().mul += e.mul;
    else if (e.mul > 0)
      out.push_back(e);
  }
  return Irreps(std::move(out));
}

Irreps::Sorted Irreps::sort() const {
  Sorted s;
  s.inverse.resize(entries_.size());
  std::iota(s.inverse.begin(), s.inverse.end(), 0);
  std::stable_sort(s.inverse.begin(), s.inverse.end(),
                   [&](int a, int b) { return entries_[a].ir < entries_[b].ir; });
  s.perm.resize(entries_.size());
  std::vector<MulIrrep> sorted;
  for (size_t n = 0; n < s.inverse.size(); ++n) {
    s.perm[s.inverse[n]] = static_cast<int>(n);
    sorted.push_back(entries_[s.inverse[n]]);
  }
  s.irreps = Irreps(std::move(sorted));
  return s;
}

Irreps Irreps::repeat(int n) const {
  std::vector<MulIrrep> out;
  for (int k = 0; k < n; ++k) out.insert(out.end(), entries_.begin(), entries_.end());
  return Irreps(std::move(out));
}

Irreps Irreps::operator+(const Irreps& other) const {
  std::vector<MulIrrep> out = entries_;
  out.insert(out.end(), other.entries_.begin(), other.entries_.end());
  return Irreps(std::move(out));
}

std::string Irreps::to_string() const {
  std::string out;
  for (const auto& e : entries_) {
    if (!out.empty()) out += "+";
    out += std::to_string(e.mul) + "x" + e.ir.to_string();
  }
  return out;
}

}  // namespace klay::e3nn
