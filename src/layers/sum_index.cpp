// Segment sums of per-atom values (docs/layers.md#sum-index).
//
// AtomwiseSumIndex
//   ports:   src (float [N] or [N, F]), index (int64 [N]) → h [max(index)+1, F…]
//   config:  none
//   state:   none
//
// KIMAPISumIndex
//   ports:   src, index → h = row 0 of the AtomwiseSumIndex result (shape src.shape[1:])
//   config:  none
//   state:   none (Python's sub-module `scatter_sum` holds nothing)
//   quirks:  Python returns the whole segment sum in train() mode and row 0 in eval() mode; the
//            runtime only evaluates, so row 0 (the atoms with index 0: the contributing atoms in the
//            KIM convention) is what it returns.
//
// Quirk replicated from KLay (docs/layers.md#quirk-sum-index): the index is unsqueezed to src's
// rank but not expanded, so for a 2-D src only column 0 is summed and the other columns of the
// result stay 0 (and, as in Python, differentiating that case fails). For the usual [N, 1]
// per-atom energies this is a plain segment sum.
// Deviation: an empty index raises in Python (max of nothing); here it gives one zero row, so that
// an MPI rank with no atoms gets energy 0 and the row-0 convention still holds.
#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

#include "kernels/segment_sum.hpp"
#include "layers/named_layer.hpp"

namespace klay {
namespace {

class AtomwiseSumIndex : public NamedLayer {
 public:
  explicit AtomwiseSumIndex(const Config& config, const char* type = "AtomwiseSumIndex")
      : NamedLayer(type, config) {
  }

  c10::IValue call(const CallArgs& call) override { return segment_sum(call); }

 protected:
  at::Tensor segment_sum(const CallArgs& call) const {
    const at::Tensor src = tensor_input(call, 0, "src");
    const at::Tensor index = index_input(call, 1, "index");
    if (src.dim() == 0) fail("input src must have one row per atom, got a scalar");
    if (index.dim() != 1 || index.size(0) != src.size(0))
      fail("input index must be [" + std::to_string(src.size(0)) + "] (one entry per row of src), got " +
           c10::str(index.sizes()));
    if (first_outside(index, 0, std::numeric_limits<int64_t>::max())) fail("input index has negative entries");
    return kernels::segment_sum(src, index, index.numel() == 0 ? 1 : largest(index) + 1);
  }

 private:
  // The largest entry of a non-empty int64 index: a loop on the CPU, where ATen's reduction and
  // .item() cost more than the sum itself every MD step.
  static int64_t largest(const at::Tensor& index) {
    if (!index.device().is_cpu()) return index.max().item<int64_t>();
    const at::Tensor values = index.contiguous();
    const int64_t* p = values.data_ptr<int64_t>();
    return *std::max_element(p, p + values.numel());
  }
};

class KIMAPISumIndex : public AtomwiseSumIndex {
 public:
  explicit KIMAPISumIndex(const Config& config) : AtomwiseSumIndex(config, "KIMAPISumIndex") {}

  c10::IValue call(const CallArgs& call) override { return segment_sum(call)[0]; }
};

}  // namespace

KLAY_REGISTER_LAYER(AtomwiseSumIndex, make_layer<AtomwiseSumIndex>, {"src", "index"}, {"h"});
KLAY_REGISTER_LAYER(KIMAPISumIndex, make_layer<KIMAPISumIndex>, {"src", "index"}, {"h"});

}  // namespace klay
