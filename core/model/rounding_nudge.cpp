// One-ulp nudges of the RMSNorm weights; see rounding_nudge.h.
#include "core/model/rounding_nudge.h"

#include <cmath>
#include <limits>

#include "core/common/error.h"
#include "core/common/splitmix64.h"

namespace serq {
namespace {

void nudge(Vector& weights, SplitMix64& random) {
  constexpr float kUp = std::numeric_limits<float>::infinity();
  std::uint64_t bits = 0;
  for (Eigen::Index i = 0; i < weights.size(); ++i) {
    if (i % 64 == 0) bits = random.next();
    weights[i] = std::nextafter(weights[i], (bits >> (i % 64)) & 1u ? kUp : -kUp);
  }
}

}  // namespace

void nudge_norms_by_one_ulp(Model& model, std::uint64_t seed) {
  SERQ_CHECK(seed != 0, "a rounding nudge needs a seed of 1 or more (0 means no nudge)");
  SplitMix64 random(seed);
  for (DecoderLayer& layer : model.layers) {
    nudge(layer.attn_norm, random);
    nudge(layer.ffn_norm, random);
  }
  nudge(model.final_norm, random);
}

}  // namespace serq
