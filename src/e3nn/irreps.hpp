// Reproduces e3nn.o3.Irrep / e3nn.o3.Irreps (e3nn >= 0.5) as plain value types (docs/layers.md#irreps).
// An Irreps is an *ordered* list of (mul, (l, p)) entries: nothing is merged or reordered unless
// simplify()/sort() is called, because the list structure changes o3.Linear normalisation and the
// tensor-product weight layout. Feature layout (docs/layers.md#feature-layout): entry k occupies
// [offset_k, offset_k + mul·(2l+1)) of the last axis, multiplicity-major (copy u, component i at
// offset_k + u·(2l+1) + i).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace klay::e3nn {

struct Irrep {
  int l = 0;
  int p = 1;  // parity, +1 (even, "e") or -1 (odd, "o")

  int64_t dim() const { return 2 * l + 1; }
  std::string to_string() const;  // "1o"
  // Parses "1o", "2e", "3y" (y = (-1)^l).
  static Irrep parse(const std::string& text);

  bool operator==(const Irrep& other) const { return l == other.l && p == other.p; }
  bool operator!=(const Irrep& other) const { return !(*this == other); }
  // e3nn's order: by l, then parity with -1 before +1 (parity is stored as the integer ±1).
  bool operator<(const Irrep& other) const { return l != other.l ? l < other.l : p < other.p; }
};

// ir1 ⊗ ir2 = (l, p1·p2) for l = |l1-l2| … l1+l2, ascending.
std::vector<Irrep> irrep_product(const Irrep& a, const Irrep& b);

struct MulIrrep {
  int64_t mul = 0;
  Irrep ir;

  int64_t dim() const { return mul * ir.dim(); }
  bool operator==(const MulIrrep& other) const { return mul == other.mul && ir == other.ir; }
  bool operator!=(const MulIrrep& other) const { return !(*this == other); }
};

class Irreps {
 public:
  struct Sorted;

  Irreps() = default;
  explicit Irreps(std::vector<MulIrrep> entries) : entries_(std::move(entries)) {}
  // Parses "32x0e + 16x1o" (whitespace ignored, "1o" means "1x1o", "" is the empty list).
  // Throws klay::Error on malformed text.
  explicit Irreps(const std::string& text);

  // 1x0e + 1x1o + 1x2e + … + 1x(lmax)(-1)^lmax.
  static Irreps spherical_harmonics(int lmax);

  const std::vector<MulIrrep>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const MulIrrep& operator[](size_t i) const { return entries_[i]; }
  std::vector<MulIrrep>::const_iterator begin() const { return entries_.begin(); }
  std::vector<MulIrrep>::const_iterator end() const { return entries_.end(); }

  int64_t dim() const;
  int64_t num_irreps() const;
  int64_t count(const Irrep& ir) const;
  bool contains(const Irrep& ir) const;
  int lmax() const;  // max l over entries with mul > 0; throws if there is none
  // Offset of each entry in the feature vector; size() + 1 values, the last one is dim().
  std::vector<int64_t> offsets() const;
  // Width of each entry: the sizes to split a feature vector into its blocks with
  // split_with_sizes, whose backward is one cat (narrow per block zero-fills a full-width
  // gradient per block).
  std::vector<int64_t> widths() const;
  // The feature columns of the entries whose irrep is one of `irreps`, ascending.
  std::vector<int64_t> columns_of(const std::vector<Irrep>& irreps) const;
  // The entries whose irrep is one of `irreps`, in order.
  Irreps keeping(const std::vector<Irrep>& irreps) const;
  // The distinct irreps of the entries that hold any of `columns`, in entry order.
  std::vector<Irrep> irreps_at(const std::vector<int64_t>& columns) const;

  // Merges adjacent equal irreps and drops mul-0 entries; never reorders.
  Irreps simplify() const;
  // Stable sort by (l, p), p = -1 first; perm[old_index] = new_index.
  Sorted sort() const;
  // The list repeated n times (e3nn's Irreps * int).
  Irreps repeat(int n) const;
  Irreps operator+(const Irreps& other) const;  // concatenation

  std::string to_string() const;  // "32x0e+16x1o" (e3nn's str uses the same tokens)

  bool operator==(const Irreps& other) const { return entries_ == other.entries_; }
  bool operator!=(const Irreps& other) const { return !(*this == other); }

 private:
  std::vector<MulIrrep> entries_;
};

struct Irreps::Sorted {
  Irreps irreps;
  std::vector<int> perm;     // perm[old] = new
  std::vector<int> inverse;  // inverse[new] = old
};

}  // namespace klay::e3nn
