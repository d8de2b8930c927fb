// Irreps given in a layer's config. KLay writes them as a list of blocks
// `[{l: 0, mul: 32}, {l: 1, mul: 16, p: e}, …]` (docs/layers.md#irreps-blocks: one entry per
// block, in order, never merged or sorted; `l` and `mul` may be integers or digit strings; `p` is
// e/even/o/odd in any case, default (−1)^l). Layers built from irreps strings ("32x0e + 16x1o")
// accept those too.
#pragma once
#include <string>

#include "e3nn/irreps.hpp"
#include "layers/config.hpp"

namespace klay {

// The block list under `key` (required). Errors carry the position of the offending block.
e3nn::Irreps irreps_from_blocks(const Config& config, const std::string& key);

// Either an e3nn irreps string or a block list under `key` (required).
e3nn::Irreps irreps_from_config(const Config& config, const std::string& key);

}  // namespace klay
