#include "layers/convolution_tensor_product.hpp"

#include <vector>

namespace klay {

e3nn::TensorProduct convolution_tensor_product(const e3nn::Irreps& node_irreps, const e3nn::Irreps& edge_irreps,
                                               const e3nn::Irreps& target) {
  std::vector<e3nn::MulIrrep> mid;
  std::vector<e3nn::TPInstruction> instructions;
  for (size_t i = 0; i < node_irreps.size(); ++i)
    for (size_t j = 0; j < edge_irreps.size(); ++j)
      for (const e3nn::Irrep& ir_out : e3nn::irrep_product(node_irreps[i].ir, edge_irreps[j].ir))
        if (target.contains(ir_out)) {
          instructions.push_back({static_cast<int>(i), static_cast<int>(j), static_cast<int>(mid.size()),
                                  e3nn::ConnectionMode::uvu, true});
          mid.push_back(e3nn::MulIrrep{node_irreps[i].mul, ir_out});
        }
  const e3nn::Irreps::Sorted sorted_mid = e3nn::Irreps(mid).sort();
  for (e3nn::TPInstruction& ins : instructions) ins.i_out = sorted_mid.perm[ins.i_out];
  return e3nn::TensorProduct(node_irreps, edge_irreps, sorted_mid.irreps, instructions, /*internal_weights=*/false);
}

}  // namespace klay
