// The runtime's on/off switches in the environment (KLAY_FUSED_KERNELS, KLAY_PRUNE_FEATURES,
// KLAY_SPATIAL_BLOCKS): each is on unless its variable is set to 0.
#pragma once

namespace klay {

bool switched_on_by_environment(const char* variable);

}  // namespace klay
