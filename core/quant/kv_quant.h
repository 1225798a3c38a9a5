// KV-cache quantization (W4A4KV4, as QuaRot, SpinQuant and FlatQuant report): each key row (after RoPE) and value
// row is fake-quantized as it is written to the cache, so attention reads the dequantized cache. A row of
// n_kv_heads · head_dim channels is cut into groups of group_size channels that never straddle a head (group_size
// divides head_dim; one group per head by default); each group is INT-b, asymmetric by default, with an optional clip
// ratio on its range (int_quant.h's fake_quant_group). With `rotate`, queries and keys also take an online
// Walsh–Hadamard rotation per head after RoPE (QuaRot): q·kᵀ is unchanged, and the keys' outlier channels are
// spread before they are quantized.
#pragma once

#include <string>

#include "core/common/matrix.h"

namespace serq {

struct KvQuantSpec {
  int bits = 16;          // 2..8; 16 = the cache is not quantized
  int group_size = 0;     // channels per group; 0 = one group per head (KvCacheSettings::op_spec resolves it)
  bool symmetric = false;
  float clip = 1.0f;      // (0, 1]: the range is scaled by it, and values beyond saturate

  bool enabled() const { return bits < 16; }
  bool operator==(const KvQuantSpec&) const = default;
  // e.g. "int4-asym-head", "int4-sym-g32-clip0.95", "fp"
  std::string describe() const;
};

struct KvCacheSettings {
  KvQuantSpec quant;
  bool rotate = false;  // online Hadamard of head_dim on q and k after RoPE

  bool any() const { return quant.enabled() || rotate; }
  // The spec the kv_quant op takes: group_size resolved to a width that divides head_dim.
  KvQuantSpec op_spec(int head_dim) const;
  // e.g. "keys and values int4-asym-head, q and k rotated (Hadamard 64)", "fp16 (not quantized)"
  std::string describe(int head_dim) const;
};

// Throws a one-line serq::Error naming the config key when the settings cannot run on heads of head_dim channels:
// bits out of 2..8 (or 16), a group size that does not divide head_dim, a clip outside (0, 1], or a rotation of a
// head_dim that is not a power of two. `source` names where the model comes from, for the message.
void validate(const KvCacheSettings& settings, int head_dim, const std::string& source);

// x (tokens × kv_dim) fake-quantized in place, group by group; spec.group_size ≥ 1 divides x.cols(). The cpu
// backend's kv_quant.
void fake_quant_kv_rows(Matrix& x, const KvQuantSpec& spec);

}  // namespace serq
