// An INT weight (with SERQ's R as extra groups) in the CUDA low-bit GEMM's layout (lowbit_layout.h), built on the
// host from the CPU's Int8Weight. Plain C++: it is built and tested wherever serq builds, with or without nvcc.
#pragma once

#include <cstdint>
#include <vector>

#include "core/backend/cpu/int_gemm.h"

namespace serq::cuda {

struct LowbitWeight {
  int rows = 0, cols = 0;        // d_out × d_in of the main weight
  int n_pad = 0;                 // rows padded to kTileN
  int groups = 0, main_groups = 0, group_width = 0, group_pad = 0;
  int bits = 8;                  // 4: every |w| ≤ 7 (Int8Weight::max_abs_value), two a byte; else 8: int8
  std::vector<std::uint8_t> codes;   // n_pad × (groups · group_pad · bits / 8)
  std::vector<float> scales;         // n_pad × groups
  std::vector<std::int32_t> sums;    // n_pad × groups
  std::vector<float> divisors;       // n_pad
  std::vector<int> activation_group; // groups: the activation group each reads
  std::vector<int> group_columns;    // groups: its real columns (the rest are zeros)

  std::int64_t k_pad() const { return std::int64_t(groups) * group_pad; }
  std::int64_t row_bytes() const { return k_pad() * bits / 8; }
};

// The layout of `w`; 4-bit when every |w| ≤ 7.
LowbitWeight lowbit_weight(const Int8Weight& w);

// Activation codes, scales and offsets of x in the layout of `w` (rows padded to kTileM), from the CPU's
// quantize_activations: what the fused activation kernel writes. For the host-side tests of the layout.
struct LowbitActivations {
  int rows = 0, rows_pad = 0;
  std::vector<std::uint8_t> codes;    // rows_pad × k_pad
  std::vector<float> scales;          // rows_pad × groups
  std::vector<std::int32_t> offsets;  // rows_pad × groups
};
LowbitActivations lowbit_activations(const IntActivations& x, const LowbitWeight& w);

}  // namespace serq::cuda
