// The integer low-bit GEMM (see int_gemm.h): activation codes, the int8 weight layout, the plain reference, and the
// AVX-512 VNNI and AVX2 kernels, each compiled for its ISA alone and chosen at run time.
#include "core/backend/cpu/int_gemm.h"

// GCC 12's _mm512_cvtepi32_ps passes an undefined vector as its unused merge source, which -Wmaybe-uninitialized
// reports from inside the intrinsics header (clang has no such warning).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/backend/cpu/cpu_isa.h"
#include "core/backend/cpu/parallel.h"
#include "core/common/error.h"
#include "core/quant/grid.h"

namespace serq {
namespace {

constexpr int kLanes = 16;     // int32 lanes of a 512-bit register: 16 weight rows per block
constexpr int kTileRows = 32;  // weight rows a kernel tile covers (two blocks)
constexpr int kTileTokens = 6;  // 6 tokens × 2 blocks: 12 int32 and 12 float accumulators of the 32 registers
// Cache blocking: groups (of K) and tokens per block. A 32-row weight panel of a group block (32 × 16 · 64 bytes at
// groups of 64) stays in L1 while every token tile of the token block reads it; the token block's codes (256 × 1024
// bytes) stay in L2 while every panel of the thread reads them.
constexpr int kGroupBlock = 16;
constexpr int kTokenBlock = 256;

// Which part of the product a tile call computes: groups [g0, g1) of the weight. The first block starts its sums
// at zero, the others continue the partial sums held in y, and the last divides by the row divisors; the float sums
// run over the groups in the same order as without blocking, so the result has the same bits.
struct GroupRange {
  int g0 = 0, g1 = 0;
  bool first = true, last = true;
};

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

// Row t's partial sums of weight rows row0 .. row0 + valid − 1 from y into `partial` (`width` floats), zero past them
// (rows past w.rows(), or a block wholly past them where valid ≤ 0).
void load_partial_sums(const MatrixRef& y, int t, int row0, int valid, float* partial, int width) {
  std::fill_n(partial, width, 0.0f);
  std::copy_n(y.row(t).data() + row0, std::max(valid, 0), partial);
}

// One tile: tokens t0..t0+T−1 against weight rows 32·pair .. +31, the groups of `range`.
template <int T>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void vnni_tile(const IntActivations& x, const Int8Weight& w,
                                                                        int t0, int pair, GroupRange range,
                                                                        MatrixRef y) {
  const int groups = w.groups(), quads = w.padded_group() / 4;
  const std::size_t act_stride = static_cast<std::size_t>(x.groups) * w.padded_group();
  const __m512i* block0 = reinterpret_cast<const __m512i*>(w.blocks()) + std::size_t(2 * pair) * groups * quads;
  const __m512i* block1 = block0 + std::size_t(groups) * quads;
  const int row0 = pair * kTileRows, valid = std::min(kTileRows, w.rows() - row0);
  __m512 acc[T][2];
#pragma GCC unroll 8
  for (int i = 0; i < T; ++i) {
    if (range.first) {
      acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    } else {  // the partial sums of the earlier group blocks (rows past w.rows() are zero)
      alignas(64) float partial[kTileRows];
      load_partial_sums(y, t0 + i, row0, valid, partial, kTileRows);
      acc[i][0] = _mm512_load_ps(partial);
      acc[i][1] = _mm512_load_ps(partial + kLanes);
    }
  }
  for (int g = range.g0; g < range.g1; ++g) {
    const int a = w.activation_group(g);
    __m512i dot[T][2];
#pragma GCC unroll 8
    for (int i = 0; i < T; ++i) dot[i][0] = dot[i][1] = _mm512_setzero_si512();
    const __m512i* w0 = block0 + std::size_t(g) * quads;
    const __m512i* w1 = block1 + std::size_t(g) * quads;
    for (int q = 0; q < quads; ++q) {
      const __m512i a0 = _mm512_loadu_si512(w0 + q), a1 = _mm512_loadu_si512(w1 + q);
#pragma GCC unroll 8
      for (int i = 0; i < T; ++i) {
        std::int32_t quad;
        std::memcpy(&quad, &x.codes[(t0 + i) * act_stride + std::size_t(a) * w.padded_group() + 4 * q], 4);
        const __m512i u = _mm512_set1_epi32(quad);
        dot[i][0] = _mm512_dpbusd_epi32(dot[i][0], u, a0);
        dot[i][1] = _mm512_dpbusd_epi32(dot[i][1], u, a1);
      }
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const std::size_t lanes = w.lane_index(row0 + h * kLanes, g);
      const __m512 s_w = _mm512_loadu_ps(w.lane_scales() + lanes);
      const __m512 sums = _mm512_loadu_ps(w.lane_sums() + lanes);
#pragma GCC unroll 8
      for (int i = 0; i < T; ++i) {
        const std::size_t at = std::size_t(t0 + i) * x.groups + a;
        // dot − c · Σw in float: exact while both stay below 2^24 (groups up to 512 of 8-bit codes)
        const __m512 centered = _mm512_fnmadd_ps(_mm512_set1_ps(static_cast<float>(x.offsets[at])), sums,
                                                 _mm512_cvtepi32_ps(dot[i][h]));
        acc[i][h] = _mm512_fmadd_ps(centered, _mm512_mul_ps(s_w, _mm512_set1_ps(x.scales[at])), acc[i][h]);
      }
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < T; ++i) {
    alignas(64) float out[kTileRows];
    _mm512_store_ps(out, acc[i][0]);
    _mm512_store_ps(out + kLanes, acc[i][1]);
    float* y_row = y.row(t0 + i).data();
    for (int r = 0; r < valid; ++r) y_row[row0 + r] = range.last ? out[r] / w.divisor(row0 + r) : out[r];
  }
}

// Weight rows pair_begin·32 .. pair_end·32 − 1 for every token: group blocks outermost, then token blocks, then the
// pairs, so each panel serves a token block and each token block's codes serve every panel.
void vnni_pairs(const IntActivations& x, const Int8Weight& w, int pair_begin, int pair_end, MatrixRef y) {
  for (int g0 = 0; g0 < w.groups(); g0 += kGroupBlock) {
    const GroupRange range{g0, std::min(w.groups(), g0 + kGroupBlock), g0 == 0, g0 + kGroupBlock >= w.groups()};
    for (int t0 = 0; t0 < x.rows; t0 += kTokenBlock) {
      const int t1 = std::min(x.rows, t0 + kTokenBlock);
      for (int pair = pair_begin; pair < pair_end; ++pair) {
        int t = t0;
        for (; t + kTileTokens <= t1; t += kTileTokens) vnni_tile<kTileTokens>(x, w, t, pair, range, y);
        for (; t < t1; ++t) vnni_tile<1>(x, w, t, pair, range, y);
      }
    }
  }
}

// One AVX2 tile: tokens t0..t0+T−1 against the 16 weight rows of `block`, the groups of `range`. A 64-byte quad of the
// layout is two registers (rows 0–7, rows 8–15); vpmaddubsw multiplies u8 × s8 and adds neighbouring pairs into int16
// (which saturates unless 2 · 255 · max|w| ≤ 32767: the caller checks), and vpmaddwd by ones adds the two pairs of
// each row into its int32 lane. The float steps are the VNNI kernel's, so both give the same bits.
template <int T>
__attribute__((target("avx2,fma"))) void avx2_tile(const IntActivations& x, const Int8Weight& w, int t0, int block,
                                                   GroupRange range, MatrixRef y) {
  const int groups = w.groups(), quads = w.padded_group() / 4;
  const std::size_t act_stride = static_cast<std::size_t>(x.groups) * w.padded_group();
  const __m256i* weights = reinterpret_cast<const __m256i*>(w.blocks()) + std::size_t(block) * groups * quads * 2;
  const __m256i ones = _mm256_set1_epi16(1);
  const int row0 = block * kLanes, valid = std::min(kLanes, w.rows() - row0);
  __m256 acc[T][2];
#pragma GCC unroll 8
  for (int i = 0; i < T; ++i) {
    if (range.first) {
      acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    } else {  // the partial sums of the earlier group blocks (rows past w.rows() are zero)
      alignas(32) float partial[kLanes];
      load_partial_sums(y, t0 + i, row0, valid, partial, kLanes);
      acc[i][0] = _mm256_load_ps(partial);
      acc[i][1] = _mm256_load_ps(partial + 8);
    }
  }
  for (int g = range.g0; g < range.g1; ++g) {
    const int a = w.activation_group(g);
    __m256i dot[T][2];
#pragma GCC unroll 8
    for (int i = 0; i < T; ++i) dot[i][0] = dot[i][1] = _mm256_setzero_si256();
    const __m256i* wg = weights + std::size_t(g) * quads * 2;
    for (int q = 0; q < quads; ++q) {
      const __m256i lo = _mm256_loadu_si256(wg + 2 * q), hi = _mm256_loadu_si256(wg + 2 * q + 1);
#pragma GCC unroll 8
      for (int i = 0; i < T; ++i) {
        std::int32_t quad;
        std::memcpy(&quad, &x.codes[(t0 + i) * act_stride + std::size_t(a) * w.padded_group() + 4 * q], 4);
        const __m256i u = _mm256_set1_epi32(quad);
        dot[i][0] = _mm256_add_epi32(dot[i][0], _mm256_madd_epi16(_mm256_maddubs_epi16(u, lo), ones));
        dot[i][1] = _mm256_add_epi32(dot[i][1], _mm256_madd_epi16(_mm256_maddubs_epi16(u, hi), ones));
      }
    }
    const std::size_t lanes = w.lane_index(row0, g);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m256 s_w = _mm256_loadu_ps(w.lane_scales() + lanes + 8 * h);
      const __m256 sums = _mm256_loadu_ps(w.lane_sums() + lanes + 8 * h);
#pragma GCC unroll 8
      for (int i = 0; i < T; ++i) {
        const std::size_t at = std::size_t(t0 + i) * x.groups + a;
        const __m256 centered = _mm256_fnmadd_ps(_mm256_set1_ps(static_cast<float>(x.offsets[at])), sums,
                                                 _mm256_cvtepi32_ps(dot[i][h]));
        acc[i][h] = _mm256_fmadd_ps(centered, _mm256_mul_ps(s_w, _mm256_set1_ps(x.scales[at])), acc[i][h]);
      }
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < T; ++i) {
    alignas(32) float out[kLanes];
    _mm256_store_ps(out, acc[i][0]);
    _mm256_store_ps(out + 8, acc[i][1]);
    float* y_row = y.row(t0 + i).data();
    for (int r = 0; r < valid; ++r) y_row[row0 + r] = range.last ? out[r] / w.divisor(row0 + r) : out[r];
  }
}

constexpr int kAvx2TileTokens = 4;  // 4 tokens × 2 halves: 8 int32 and 8 float accumulators of the 16 registers

// Weight rows in tiles of 32 (two blocks of 16), as the VNNI kernel splits them.
void avx2_pairs(const IntActivations& x, const Int8Weight& w, int pair_begin, int pair_end, MatrixRef y) {
  for (int g0 = 0; g0 < w.groups(); g0 += kGroupBlock) {
    const GroupRange range{g0, std::min(w.groups(), g0 + kGroupBlock), g0 == 0, g0 + kGroupBlock >= w.groups()};
    for (int t0 = 0; t0 < x.rows; t0 += kTokenBlock) {
      const int t1 = std::min(x.rows, t0 + kTokenBlock);
      for (int block = 2 * pair_begin; block < 2 * pair_end; ++block) {
        int t = t0;
        for (; t + kAvx2TileTokens <= t1; t += kAvx2TileTokens) {
          avx2_tile<kAvx2TileTokens>(x, w, t, block, range, y);
        }
        for (; t < t1; ++t) avx2_tile<1>(x, w, t, block, range, y);
      }
    }
  }
}

bool has_vnni() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vnni");
}

bool has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

}  // namespace

IntActivations quantize_activations(ConstMatrixRef x, const QuantSpec& spec, int threads) {
  SERQ_CHECK(spec.enabled() && spec.format == NumberFormat::integer, "integer activations need an INT spec of 2..8 "
             "bits, not {}", spec.describe());
  IntActivations a;
  a.rows = static_cast<int>(x.rows());
  a.cols = static_cast<int>(x.cols());
  a.group_width = spec.group_size > 0 ? std::min(spec.group_size, a.cols) : a.cols;
  a.groups = (a.cols + a.group_width - 1) / a.group_width;
  a.padded_group = round_up(a.group_width, 4);
  const std::size_t stride = static_cast<std::size_t>(a.groups) * a.padded_group;
  a.codes.assign(static_cast<std::size_t>(a.rows) * stride, 0);
  a.scales.resize(static_cast<std::size_t>(a.rows) * a.groups);
  a.offsets.resize(a.scales.size());
  auto rows = [&](int begin, int end) {
    Eigen::ArrayXf work;
    for (int r = begin; r < end; ++r) {
      for (int g = 0; g < a.groups; ++g) {
        const int c0 = g * a.group_width, n = std::min(a.group_width, a.cols - c0);
        const std::size_t at = static_cast<std::size_t>(r) * a.groups + g;
        quantize_group(x.row(r).data() + c0, n, spec.bits, spec.symmetric,
                       a.codes.data() + r * stride + std::size_t(g) * a.padded_group, a.scales[at], a.offsets[at],
                       work);
      }
    }
  };
  parallel_slices(a.rows, threads, rows);
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
  padded_rows_ = round_up(rows_, kTileRows);
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
        const std::size_t quad = (static_cast<std::size_t>(r / kLanes) * groups_ + g) * quads + k / 4;
        blocks_[quad * 64 + static_cast<std::size_t>(r % kLanes) * 4 + k % 4] = v;
      }
    }
  }
}

int Int8Weight::group_columns(int group) const {
  const int first = activation_group(group) * group_width_;
  return std::min(group_width_, (group < main_groups_ ? cols_ : salient_cols_) - first);
}

std::int8_t Int8Weight::group_value(int row, int group, int k) const {
  const std::size_t quad = (static_cast<std::size_t>(row / kLanes) * groups_ + group) * (padded_group_ / 4) + k / 4;
  return blocks_[quad * 64 + static_cast<std::size_t>(row % kLanes) * 4 + k % 4];
}

std::int8_t Int8Weight::value(int row, int col) const {
  return group_value(row, col / group_width_, col % group_width_);
}

std::size_t Int8Weight::lane_index(int row, int group) const {
  return (static_cast<std::size_t>(row / kLanes) * groups_ + group) * kLanes + row % kLanes;
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
  const auto run = kernel == IntKernel::avx2 ? avx2_pairs : vnni_pairs;
  const int pairs = w.padded_rows() / kTileRows;
  parallel_slices(pairs, threads, [&](int begin, int end) { run(x, w, begin, end, y); });
}

}  // namespace serq
