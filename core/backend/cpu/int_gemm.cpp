// The integer low-bit GEMM (see int_gemm.h): activation codes, the int8 weight layout, the plain reference, and the
// dispatch to the per-ISA kernels (int_gemm_avx2.cpp, int_gemm_avx512.cpp), chosen at run time.
#include "core/backend/cpu/int_gemm.h"

#include <algorithm>
#include <cmath>

#include "core/backend/cpu/cpu_isa.h"
#include "core/backend/cpu/int_gemm_tile.h"
#include "core/backend/cpu/parallel.h"
#include "core/common/error.h"
#include "core/quant/grid.h"

namespace serq {
namespace {

int round_up(int n, int multiple) { return (n + multiple - 1) / multiple * multiple; }

// One group of activations to codes, with fake_quant_group's formula (int_quant.cpp) step for step, vectorized the
// same way through Eigen array maps; `work` holds the group's codes as floats on the way to bytes.
void quantize_group(const float* x, int n, int bits, bool symmetric, std::uint8_t* codes, float& scale,
                    std::int32_t& offset, Eigen::ArrayXf& work) {
  const Eigen::Map<const Eigen::ArrayXf> in(x, n);
  const IntCodeRange range = int_code_range(bits, symmetric);
  const float lo = std::min(in.minCoeff<Eigen::PropagateNaN>(), 0.0f);
  const float hi = std::max(in.maxCoeff<Eigen::PropagateNaN>(), 0.0f);
  SERQ_CHECK(std::isfinite(lo) && std::isfinite(hi), "non-finite value in a quantization group; the input has NaN/Inf "
             "— check the weights/activations");
  scale = symmetric ? std::max(-lo, hi) / range.max : (hi - lo) / range.max;
  offset = symmetric ? -static_cast<std::int32_t>(range.min) : 0;
  if (scale == 0.0f) {  // all zeros: every value is the offset's code, which dequantizes to 0
    std::fill(codes, codes + n, static_cast<std::uint8_t>(offset));
    return;
  }
  const float zero = symmetric ? 0.0f : int_zero(lo, scale, range);
  if (!symmetric) offset = static_cast<std::int32_t>(zero);
  const float shift = symmetric ? static_cast<float>(offset) : zero;  // symmetric codes stored as q + 2^(b−1)
  work = ((in / scale).rint() + zero).max(range.min).min(range.max) + (shift - zero);  // exact small integers
  const float* q = work.data();
  for (int i = 0; i < n; ++i) codes[i] = static_cast<std::uint8_t>(static_cast<int>(q[i]));
}

void check_shapes(const IntActivations& x, const Int8Weight& w) {
  SERQ_CHECK(x.cols == w.cols() && x.group_width == w.group_width(), "integer GEMM: activations of {} columns in "
             "groups of {} against a weight of {} columns in groups of {}; quantize both with the same groups",
             x.cols, x.group_width, w.cols(), w.group_width());
}

bool has_vnni() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vnni");
}

bool has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

// The codes' shape for rows × cols under `spec`, with room for every row.
IntActivations activations_for(int rows, int cols, const QuantSpec& spec) {
  SERQ_CHECK(spec.enabled() && spec.format == NumberFormat::integer, "integer activations need an INT spec of 2..8 "
             "bits, not {}", spec.describe());
  IntActivations a;
  a.rows = rows;
  a.cols = cols;
  a.group_width = spec.group_size > 0 ? std::min(spec.group_size, a.cols) : a.cols;
  a.groups = (a.cols + a.group_width - 1) / a.group_width;
  a.padded_group = round_up(a.group_width, 4);
  a.codes.assign(static_cast<std::size_t>(a.rows) * a.groups * a.padded_group, 0);
  a.scales.resize(static_cast<std::size_t>(a.rows) * a.groups);
  a.offsets.resize(a.scales.size());
  return a;
}

// Rows first .. first + x.rows() − 1 of `a` from x.
void quantize_rows(ConstMatrixRef x, int first, const QuantSpec& spec, IntActivations& a, Eigen::ArrayXf& work) {
  const std::size_t stride = static_cast<std::size_t>(a.groups) * a.padded_group;
  for (int i = 0; i < x.rows(); ++i) {
    const int r = first + i;
    for (int g = 0; g < a.groups; ++g) {
      const int c0 = g * a.group_width, n = std::min(a.group_width, a.cols - c0);
      const std::size_t at = static_cast<std::size_t>(r) * a.groups + g;
      quantize_group(x.row(i).data() + c0, n, spec.bits, spec.symmetric,
                     a.codes.data() + r * stride + std::size_t(g) * a.padded_group, a.scales[at], a.offsets[at], work);
    }
  }
}

constexpr int kSourceBlockRows = 32;  // rows a source makes at a time: a block of d_in floats that stays in L2

}  // namespace

IntActivations quantize_activations(ConstMatrixRef x, const QuantSpec& spec, int threads) {
  IntActivations a = activations_for(static_cast<int>(x.rows()), static_cast<int>(x.cols()), spec);
  parallel_slices(a.rows, threads, [&](int begin, int end) {
    Eigen::ArrayXf work;
    quantize_rows(x.middleRows(begin, end - begin), begin, spec, a, work);
  });
  return a;
}

IntActivations quantize_activations(int rows, int cols, const RowBlockSource& source, const QuantSpec& spec,
                                    int threads) {
  IntActivations a = activations_for(rows, cols, spec);
  parallel_slices(rows, threads, [&](int begin, int end) {
    Eigen::ArrayXf work;
    Matrix block;
    for (int b = begin; b < end; b += kSourceBlockRows) {
      const int e = std::min(end, b + kSourceBlockRows);
      block.resize(e - b, cols);
      source(b, e, block);
      SERQ_CHECK(block.rows() == e - b && block.cols() == cols, "integer activations: a source gave {} × {} for rows "
                 "{}..{} of {} columns", block.rows(), block.cols(), b, e, cols);
      quantize_rows(block, b, spec, a, work);
    }
  });
  return a;
}

bool Int8Weight::fits_salient(const PackedWeight& weight, const PackedWeight& salient) {
  if (salient.storage() != PackedWeight::Storage::int_codes || weight.storage() != PackedWeight::Storage::int_codes) {
    return false;
  }
  if (!salient.spec().symmetric && salient.spec().bits > 7) return false;
  const int act_width = weight.group_width(), r_width = salient.group_width();
  if (salient.cols() > weight.cols() || (r_width < salient.cols() && r_width % act_width != 0)) return false;
  return weight.row_divisor().size() == salient.row_divisor().size() && weight.row_divisor() == salient.row_divisor();
}

Int8Weight::Int8Weight(const PackedWeight& weight, const PackedWeight* salient) {
  const PackedWeight::SignedCodes codes = weight.signed_codes();
  rows_ = weight.rows();
  cols_ = weight.cols();
  group_width_ = codes.group_width;
  main_groups_ = codes.groups;
  PackedWeight::SignedCodes r_codes;
  if (salient) {
    SERQ_CHECK(salient->rows() == rows_ && fits_salient(weight, *salient), "integer GEMM: R ({}×{}) cannot ride "
               "along with a weight of {} rows in groups of {}", salient->rows(), salient->cols(), rows_, group_width_);
    r_codes = salient->signed_codes();
    salient_cols_ = salient->cols();
  }
  groups_ = main_groups_ + (salient_cols_ + group_width_ - 1) / group_width_;
  padded_group_ = round_up(group_width_, 4);
  padded_rows_ = round_up(rows_, kIntGemmTileRows);
  divisor_ = codes.divisor;
  scales_.assign(static_cast<std::size_t>(padded_rows_) * groups_, 0.0f);
  sums_.assign(scales_.size(), 0);
  const int quads = padded_group_ / 4;
  blocks_.assign(static_cast<std::size_t>(padded_rows_) * groups_ * padded_group_, 0);
  for (int r = 0; r < rows_; ++r) {
    for (int g = 0; g < groups_; ++g) {
      const bool main = g < main_groups_;
      const int first = (main ? g : g - main_groups_) * group_width_;  // the group's first column in W or R
      const int r_group = main ? 0 : first / r_codes.group_width;      // R's own group holding these columns
      const std::size_t at = lane_index(r, g);
      scales_[at] = main ? codes.scales[static_cast<std::size_t>(r) * main_groups_ + g]
                         : r_codes.scales[static_cast<std::size_t>(r) * r_codes.groups + r_group];
      for (int k = 0; k < group_columns(g); ++k) {
        const std::int8_t v = main ? codes.values[static_cast<std::size_t>(r) * cols_ + first + k]
                                   : r_codes.values[static_cast<std::size_t>(r) * salient_cols_ + first + k];
        sums_[at] += static_cast<float>(v);
        max_abs_ = std::max(max_abs_, std::abs(static_cast<int>(v)));
        const std::size_t quad = (static_cast<std::size_t>(r / kIntGemmLanes) * groups_ + g) * quads + k / 4;
        blocks_[quad * 64 + static_cast<std::size_t>(r % kIntGemmLanes) * 4 + k % 4] = v;
      }
    }
  }
}

int Int8Weight::group_columns(int group) const {
  const int first = activation_group(group) * group_width_;
  return std::min(group_width_, (group < main_groups_ ? cols_ : salient_cols_) - first);
}

std::int8_t Int8Weight::group_value(int row, int group, int k) const {
  const std::size_t quad =
      (static_cast<std::size_t>(row / kIntGemmLanes) * groups_ + group) * (padded_group_ / 4) + k / 4;
  return blocks_[quad * 64 + static_cast<std::size_t>(row % kIntGemmLanes) * 4 + k % 4];
}

std::int8_t Int8Weight::value(int row, int col) const {
  return group_value(row, col / group_width_, col % group_width_);
}

std::size_t Int8Weight::lane_index(int row, int group) const {
  return int_gemm_lane_index(groups_, row, group);
}

std::size_t Int8Weight::bytes() const {
  return blocks_.size() + (scales_.size() + sums_.size() + static_cast<std::size_t>(divisor_.size())) * sizeof(float);
}

float Int8Weight::scale(int row, int group) const { return scales_[lane_index(row, group)]; }

std::int32_t Int8Weight::group_sum(int row, int group) const {
  return static_cast<std::int32_t>(sums_[lane_index(row, group)]);
}

void int_gemm_reference(const IntActivations& x, const Int8Weight& w, Matrix& y) {
  check_shapes(x, w);
  y.resize(x.rows, w.rows());
  const std::size_t stride = static_cast<std::size_t>(x.groups) * x.padded_group;
  for (int t = 0; t < x.rows; ++t) {
    for (int n = 0; n < w.rows(); ++n) {
      double sum = 0.0;
      for (int g = 0; g < w.groups(); ++g) {
        const int a = w.activation_group(g);
        const std::size_t at = static_cast<std::size_t>(t) * x.groups + a;
        std::int64_t dot = 0;
        for (int k = 0; k < w.group_columns(g); ++k) {
          const int u = x.codes[t * stride + std::size_t(a) * x.padded_group + k];
          dot += std::int64_t(u - x.offsets[at]) * w.group_value(n, g, k);
        }
        sum += static_cast<double>(x.scales[at]) * w.scale(n, g) * static_cast<double>(dot);
      }
      y(t, n) = static_cast<float>(sum / w.divisor(n));
    }
  }
}

const char* int_kernel_name(IntKernel kernel) {
  switch (kernel) {
    case IntKernel::avx512_vnni: return "avx512-vnni";
    case IntKernel::avx2: return "avx2";
    case IntKernel::reference: break;
  }
  return "reference";
}

bool cpu_has(IntKernel kernel) {
  return kernel == IntKernel::reference || (kernel == IntKernel::avx2 ? has_avx2() : has_vnni());
}

bool kernel_fits(IntKernel kernel, const Int8Weight& w) {
  return kernel != IntKernel::avx2 || 2 * 255 * w.max_abs_value() <= 32767;
}

IntKernel int_gemm_kernel() {
  if (has_vnni() && avx512_allowed()) return IntKernel::avx512_vnni;
  return has_avx2() ? IntKernel::avx2 : IntKernel::reference;
}

IntKernel int_gemm_kernel(const Int8Weight& w) {
  const IntKernel best = int_gemm_kernel();
  return kernel_fits(best, w) ? best : IntKernel::reference;
}

void int_gemm(const IntActivations& x, const Int8Weight& w, Matrix& y, int threads) {
  int_gemm(x, w, y, int_gemm_kernel(w), threads);
}

void int_gemm(const IntActivations& x, const Int8Weight& w, Matrix& y, IntKernel kernel, int threads) {
  y.resize(x.rows, w.rows());
  int_gemm_into(x, w, y, kernel, threads);
}

void int_gemm_into(const IntActivations& x, const Int8Weight& w, MatrixRef y, IntKernel kernel, int threads) {
  SERQ_CHECK(cpu_has(kernel), "integer GEMM: this CPU cannot run the {} kernel", int_kernel_name(kernel));
  SERQ_CHECK(kernel_fits(kernel, w), "integer GEMM: the {} kernel's int16 pair sums would saturate on weights up to "
             "|{}|; use another kernel", int_kernel_name(kernel), w.max_abs_value());
  check_shapes(x, w);
  SERQ_CHECK(y.rows() == x.rows && y.cols() == w.rows(), "integer GEMM: the output is {} × {}, not {} × {}", y.rows(),
             y.cols(), x.rows, w.rows());
  if (kernel == IntKernel::reference) {
    Matrix reference;
    int_gemm_reference(x, w, reference);
    y = reference;
    return;
  }
  const auto run = kernel == IntKernel::avx2 ? int_gemm_pairs_avx2 : int_gemm_pairs_avx512_vnni;
  const IntGemmTask task{.codes = x.codes.data(), .code_stride = static_cast<std::size_t>(x.groups) * x.padded_group,
                         .act_scales = x.scales.data(), .act_offsets = x.offsets.data(), .tokens = x.rows,
                         .act_groups = x.groups, .blocks = w.blocks(), .lane_scales = w.lane_scales(),
                         .lane_sums = w.lane_sums(), .divisors = w.divisors(), .rows = w.rows(), .groups = w.groups(),
                         .main_groups = w.main_groups(), .padded_group = w.padded_group(), .y = y.data(),
                         .y_stride = static_cast<std::size_t>(y.outerStride())};
  const int pairs = w.padded_rows() / kIntGemmTileRows;
  parallel_slices(pairs, threads, [&](int begin, int end) { run(task, begin, end); });
}

}  // namespace serq
