// Int8Weight → the CUDA low-bit GEMM's layout (lowbit_layout.h).
#include "core/backend/cuda/lowbit_weight.h"

#include "core/backend/cuda/lowbit_layout.h"
#include "core/common/error.h"

namespace serq::cuda {

LowbitWeight lowbit_weight(const Int8Weight& w) {
  LowbitWeight out;
  out.rows = w.rows();
  out.cols = w.cols();
  out.n_pad = round_up(w.rows(), kTileN);
  out.groups = w.groups();
  out.main_groups = w.main_groups();
  out.group_width = w.group_width();
  out.group_pad = round_up(w.group_width(), kTileK);
  for (int g = 0; g < out.groups; ++g) {
    out.activation_group.push_back(w.activation_group(g));
    out.group_columns.push_back(w.group_columns(g));
  }
  const bool nibbles = w.max_abs_value() <= 7;  // every w in [−7, 7] ⊂ [−8, 7]
  out.bits = nibbles ? 4 : 8;
  const std::size_t row_bytes = static_cast<std::size_t>(out.row_bytes());
  out.codes.assign(static_cast<std::size_t>(out.n_pad) * row_bytes, nibbles ? pack_nibbles(0, 0) : 0);
  out.scales.assign(static_cast<std::size_t>(out.n_pad) * out.groups, 0.0f);
  out.sums.assign(out.scales.size(), 0);
  out.divisors.assign(static_cast<std::size_t>(out.n_pad), 1.0f);
  for (int n = 0; n < w.rows(); ++n) {
    std::uint8_t* row = out.codes.data() + static_cast<std::size_t>(n) * row_bytes;
    for (int g = 0; g < out.groups; ++g) {
      const std::size_t at = static_cast<std::size_t>(n) * out.groups + g;
      out.scales[at] = w.scale(n, g);
      out.sums[at] = w.group_sum(n, g);
      for (int k = 0; k < w.group_columns(g); ++k) {
        const int v = w.group_value(n, g, k);
        const std::size_t col = static_cast<std::size_t>(g) * out.group_pad + k;
        if (!nibbles) {
          row[col] = static_cast<std::uint8_t>(static_cast<std::int8_t>(v));
        } else if (col % 2 == 0) {
          row[col / 2] = static_cast<std::uint8_t>((row[col / 2] & 0xF0) | (v + 8));
        } else {
          row[col / 2] = static_cast<std::uint8_t>((row[col / 2] & 0x0F) | ((v + 8) << 4));
        }
      }
    }
    out.divisors[static_cast<std::size_t>(n)] = w.divisor(n);
  }
  return out;
}

LowbitActivations lowbit_activations(const IntActivations& x, const LowbitWeight& w) {
  SERQ_CHECK(x.cols == w.cols && x.group_width == w.group_width, "low-bit GEMM: activations of {} columns in groups "
             "of {} against a weight of {} columns in groups of {}", x.cols, x.group_width, w.cols, w.group_width);
  LowbitActivations a;
  a.rows = x.rows;
  a.rows_pad = round_up(std::max(x.rows, 1), kTileM);
  const std::size_t k_pad = static_cast<std::size_t>(w.k_pad());
  a.codes.assign(static_cast<std::size_t>(a.rows_pad) * k_pad, 0);
  a.scales.assign(static_cast<std::size_t>(a.rows_pad) * w.groups, 0.0f);
  a.offsets.assign(a.scales.size(), 0);
  const std::size_t x_stride = static_cast<std::size_t>(x.groups) * x.padded_group;
  for (int t = 0; t < x.rows; ++t) {
    for (int g = 0; g < w.groups; ++g) {
      const int ag = w.activation_group[static_cast<std::size_t>(g)];
      const std::size_t from = static_cast<std::size_t>(t) * x.groups + ag;
      a.scales[static_cast<std::size_t>(t) * w.groups + g] = x.scales[from];
      a.offsets[static_cast<std::size_t>(t) * w.groups + g] = x.offsets[from];
      for (int k = 0; k < w.group_columns[static_cast<std::size_t>(g)]; ++k) {
        a.codes[t * k_pad + static_cast<std::size_t>(g) * w.group_pad + k] =
            x.codes[t * x_stride + static_cast<std::size_t>(ag) * x.padded_group + k];
      }
    }
  }
  return a;
}

}  // namespace serq::cuda
