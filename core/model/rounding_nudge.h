// A float-rounding-sized change of a model's arithmetic, for measuring evaluation noise: every RMSNorm weight γ moves
// by one unit in the last place, up or down by a seeded coin per element. The quantized weights stay as they are;
// what changes is what a different summation order or kernel changes, the last bits of the activations that reach
// each quantizer, so activation codes near a rounding boundary flip and the flips propagate as they do between
// kernels.
#pragma once

#include <cstdint>

#include "core/model/model.h"

namespace serq {

// Nudges the final norm and every decoder layer's two norms (after folding, so folded scales move too). The same
// seed gives the same nudges on every platform; seed 0 is refused (eval.rounding_seed: 0 means off).
void nudge_norms_by_one_ulp(Model& model, std::uint64_t seed);

}  // namespace serq
