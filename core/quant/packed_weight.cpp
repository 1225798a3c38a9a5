// PackedWeight: codes, scales and zero points written from a quantizer's grid and read back as float (the layout is
// in packed_weight.h). Rounding is rint(), half to even, as in fake quantization.
#include "core/quant/packed_weight.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/common/error.h"
#include "core/common/half.h"
#include "core/common/mapped_file.h"
#include "core/quant/grid.h"

namespace serq {
namespace {

constexpr float kE2M1[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

// b-bit field `index` of a bit stream, low bits first (b <= 8, so a field spans at most two bytes).
void put_field(std::uint8_t* stream, std::int64_t index, int bits, unsigned value) {
  const std::int64_t bit = index * bits;
  const unsigned shifted = value << (bit & 7);
  stream[bit >> 3] |= static_cast<std::uint8_t>(shifted & 0xffu);
  if ((bit & 7) + bits > 8) stream[(bit >> 3) + 1] |= static_cast<std::uint8_t>(shifted >> 8);
}

unsigned get_field(const std::uint8_t* stream, std::int64_t index, int bits) {
  const std::int64_t bit = index * bits;
  const int shift = static_cast<int>(bit & 7);
  unsigned value = static_cast<unsigned>(stream[bit >> 3]) >> shift;
  if (shift + bits > 8) value |= static_cast<unsigned>(stream[(bit >> 3) + 1]) << (8 - shift);
  return value & ((1u << bits) - 1u);
}

// The E2M1 code of a value already on the grid (sign bit 3, magnitude index bits 0..2); -1 when it is not.
int e2m1_code(float element) {
  const float magnitude = std::fabs(element);
  for (int i = 0; i < 8; ++i) {
    if (magnitude == kE2M1[i]) return (std::signbit(element) ? 8 : 0) | i;
  }
  return -1;
}

[[noreturn]] void fail_at(int row, int c0, int n, const std::string& what) {
  fail("row {}, columns {}..{}: {}", row, c0, c0 + n - 1, what);
}

}  // namespace

QuantSpec stored_weight_spec(QuantSpec spec, bool half_scales) {
  spec.f16_scales = spec.format == NumberFormat::integer && half_scales;
  return spec;
}

PackedWeight::PackedWeight(const QuantSpec& spec, int rows, int cols)
    : storage_(spec.format == NumberFormat::mxfp4 ? Storage::mxfp4 : Storage::int_codes),
      rows_(rows), cols_(cols), spec_(spec) {
  SERQ_CHECK(spec.enabled(), "packing a weight needs a quantized format, not {}", spec.describe());
  codes_.assign(static_cast<std::size_t>(rows * code_row_bytes()), 0);
  if (storage_ == Storage::mxfp4) {
    exponents_.assign(static_cast<std::size_t>(rows) * groups_per_row(), 0);
  } else {
    if (spec.f16_scales) {
      half_.assign(static_cast<std::size_t>(rows) * groups_per_row(), 0);
    } else {
      float_scales_.assign(static_cast<std::size_t>(rows) * groups_per_row(), 0.0f);
    }
    if (!spec.symmetric) zeros_.assign(static_cast<std::size_t>(rows * zero_row_bytes()), 0);
  }
}

PackedWeight PackedWeight::full_precision(Matrix values) {
  PackedWeight packed;
  packed.storage_ = Storage::f32;
  packed.rows_ = static_cast<int>(values.rows());
  packed.cols_ = static_cast<int>(values.cols());
  packed.f32_ = std::move(values);
  return packed;
}

PackedWeight PackedWeight::sixteen_bit(int rows, int cols, std::vector<std::uint16_t> bits, bool is_bf16) {
  SERQ_CHECK(bits.size() == static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols),
             "a {}×{} weight needs {} 16-bit values, not {}", rows, cols, std::int64_t(rows) * cols, bits.size());
  auto owned = std::make_shared<std::vector<std::uint16_t>>(std::move(bits));
  return sixteen_bit(rows, cols, {owned, owned->data()}, is_bf16, false);
}

PackedWeight PackedWeight::sixteen_bit(int rows, int cols, std::shared_ptr<const std::uint16_t> bits, bool is_bf16,
                                       bool file_mapped) {
  PackedWeight packed;
  packed.storage_ = is_bf16 ? Storage::bf16 : Storage::f16;
  packed.rows_ = rows;
  packed.cols_ = cols;
  packed.sixteen_ = std::move(bits);
  packed.mapped_ = file_mapped;
  return packed;
}

void PackedWeight::release_pages() const {
  if (mapped_) MappedFile::release_pages(sixteen_.get(), std::size_t(rows_) * std::size_t(cols_) * 2);
}

int PackedWeight::group_width() const {
  return spec_.group_size > 0 ? std::min(spec_.group_size, cols_) : cols_;
}

int PackedWeight::groups_per_row() const { return (cols_ + group_width() - 1) / group_width(); }

std::int64_t PackedWeight::code_row_bytes() const { return (std::int64_t(cols_) * spec_.bits + 7) / 8; }

std::int64_t PackedWeight::zero_row_bytes() const { return (std::int64_t(groups_per_row()) * spec_.bits + 7) / 8; }

void PackedWeight::set_code(int row, int col, unsigned code) {
  put_field(codes_.data() + row * code_row_bytes(), col, spec_.bits, code);
}

int PackedWeight::zero_point(int row, int group) const {
  SERQ_CHECK(storage_ == Storage::int_codes && !spec_.symmetric, "{} has no zero points", spec_.describe());
  return static_cast<int>(get_field(zeros_.data() + row * zero_row_bytes(), group, spec_.bits));
}

float PackedWeight::scale(std::size_t at) const { return spec_.f16_scales ? f16_to_f32(half_[at]) : float_scales_[at]; }

PackedWeight PackedWeight::quantize(const Matrix& w, const QuantSpec& spec) {
  PackedWeight packed(spec, static_cast<int>(w.rows()), static_cast<int>(w.cols()));
  const int width = packed.group_width(), groups = packed.groups_per_row();
  Eigen::ArrayXXf scales = Eigen::ArrayXXf::Zero(w.rows(), groups), zeros = Eigen::ArrayXXf::Zero(w.rows(), groups);
  Matrix values(w.rows(), w.cols());
  const IntCodeRange range = int_code_range(spec.bits, spec.symmetric);
  for (int r = 0; r < packed.rows_; ++r) {
    for (int g = 0; g < groups; ++g) {
      const int c0 = g * width, n = std::min(width, packed.cols_ - c0);
      const Eigen::ArrayXf x = w.row(r).segment(c0, n).array();
      if (!x.allFinite()) fail_at(r, c0, n, "non-finite value in a weight group; check the checkpoint");
      float scale = 0.0f, zero = 0.0f;
      Eigen::ArrayXf v;
      if (spec.format == NumberFormat::mxfp4) {
        scale = mxfp4_scale(x.abs().maxCoeff());
        v = scale == 0.0f ? Eigen::ArrayXf::Zero(n) : Eigen::ArrayXf(e2m1_round(x * (1.0f / scale)) * scale);
      } else {
        const float lo = spec.symmetric ? -x.abs().maxCoeff() : std::min(x.minCoeff(), 0.0f);
        const float hi = spec.symmetric ? -lo : std::max(x.maxCoeff(), 0.0f);
        scale = int_scale((spec.symmetric ? hi : hi - lo) / range.max, spec.f16_scales);
        if (!std::isfinite(scale)) fail_at(r, c0, n, "the group's scale exceeds the IEEE half range of packed weights "
                                                     "(quant.scale_dtype: float keeps float32 scales)");
        if (scale > 0.0f && !spec.symmetric) zero = int_zero(lo, scale, range);
        v = scale == 0.0f ? Eigen::ArrayXf::Zero(n)
                          : Eigen::ArrayXf((((x / scale).rint() + zero).max(range.min).min(range.max) - zero) * scale);
      }
      scales(r, g) = scale;
      zeros(r, g) = zero;
      values.row(r).segment(c0, n) = v.matrix().transpose();
    }
  }
  return from_grid(values, spec, scales, zeros);
}

PackedWeight PackedWeight::from_grid(const Matrix& values, const QuantSpec& spec, const Eigen::ArrayXXf& scales,
                                     const Eigen::ArrayXXf& zeros) {
  PackedWeight packed(spec, static_cast<int>(values.rows()), static_cast<int>(values.cols()));
  const int width = packed.group_width(), groups = packed.groups_per_row();
  SERQ_CHECK(scales.rows() == values.rows() && scales.cols() == groups && zeros.rows() == scales.rows() &&
             zeros.cols() == groups, "packing a {}×{} weight needs {}×{} scales and zero points, not {}×{}",
             values.rows(), values.cols(), values.rows(), groups, scales.rows(), scales.cols());
  const IntCodeRange range = int_code_range(spec.bits, spec.symmetric);
  const float offset = spec.symmetric ? -range.min : 0.0f;  // symmetric codes are stored unsigned
  for (int r = 0; r < packed.rows_; ++r) {
    for (int g = 0; g < groups; ++g) {
      const int c0 = g * width, n = std::min(width, packed.cols_ - c0);
      const float scale = scales(r, g), zero = spec.symmetric ? offset : zeros(r, g);
      if (spec.format == NumberFormat::mxfp4) {
        int exponent = -127;
        if (scale != 0.0f) exponent = std::ilogb(scale);
        SERQ_CHECK(scale == 0.0f || (scale == std::ldexp(1.0f, exponent) && exponent >= -127 && exponent <= 127),
                   "row {}, block {}: MXFP4 scale {} is not a power of two in the E8M0 range", r, g, scale);
        packed.exponents_[static_cast<std::size_t>(r) * groups + g] = static_cast<std::uint8_t>(exponent + 127);
      } else {
        const std::size_t at = static_cast<std::size_t>(r) * groups + g;
        if (spec.f16_scales) {
          SERQ_CHECK(round_to_f16(scale) == scale && scale >= 0.0f, "row {}, group {}: scale {} is not a non-negative "
                     "IEEE half", r, g, scale);
          packed.half_[at] = f32_to_f16(scale);
        } else {
          SERQ_CHECK(std::isfinite(scale) && scale >= 0.0f, "row {}, group {}: scale {} is not a non-negative finite "
                     "float", r, g, scale);
          packed.float_scales_[at] = scale;
        }
        if (!spec.symmetric) {
          SERQ_CHECK(zero >= range.min && zero <= range.max && zero == std::nearbyint(zero), "row {}, group {}: zero "
                     "point {} is not a code of {}", r, g, zero, spec.describe());
          put_field(packed.zeros_.data() + r * packed.zero_row_bytes(), g, spec.bits, static_cast<unsigned>(zero));
        }
      }
      for (int c = c0; c < c0 + n; ++c) {
        const float v = values(r, c);
        int code = 0;
        bool on_grid = false;
        if (spec.format == NumberFormat::mxfp4) {
          code = scale == 0.0f ? 0 : e2m1_code(v / scale);
          on_grid = scale == 0.0f ? v == 0.0f : code >= 0 && kE2M1[code & 7] * scale == std::fabs(v);
        } else {
          const float q = scale == 0.0f ? zero : std::nearbyint(v / scale) + zero;
          code = static_cast<int>(q);
          on_grid = q >= range.min + offset && q <= range.max + offset && (q - zero) * scale == v;
        }
        if (!on_grid) fail("row {}, column {}: {} is not on the {} grid of its group", r, c, v, spec.describe());
        packed.set_code(r, c, static_cast<unsigned>(code));
      }
    }
  }
  return packed;
}

Matrix PackedWeight::dequantize() const {
  Matrix out;
  dequantize(out);
  return out;
}

void PackedWeight::dequantize(Matrix& out) const {
  out.resize(rows_, cols_);
  switch (storage_) {
    case Storage::none: return;
    case Storage::f32: out = f32_; return;
    case Storage::bf16:  // the top half of a float32: a shift the compiler vectorizes
      for (Eigen::Index i = 0; i < out.size(); ++i) out.data()[i] = bf16_to_f32(sixteen_.get()[i]);
      return;
    case Storage::f16:
      for (Eigen::Index i = 0; i < out.size(); ++i) out.data()[i] = f16_to_f32(sixteen_.get()[i]);
      return;
    case Storage::int_codes:
    case Storage::mxfp4: break;
  }
  // Each row in two passes: codes to floats (a table lookup per nibble where codes are 4 bits, MXFP4's table
  // signed), then (code − zero) · scale, or element · scale, per group over contiguous floats.
  float table[16];
  for (int e = 0; e < 16; ++e) {
    table[e] = storage_ == Storage::mxfp4 ? ((e & 8) ? -kE2M1[e & 7] : kE2M1[e & 7]) : static_cast<float>(e);
  }
  const int width = group_width(), groups = groups_per_row();
  const float offset = spec_.symmetric ? static_cast<float>(1 << (spec_.bits - 1)) : 0.0f;
  for (int r = 0; r < rows_; ++r) {
    float* row = out.row(r).data();
    const std::uint8_t* stream = codes_.data() + r * code_row_bytes();
    if (spec_.bits == 4) {
      for (int c = 0; c + 1 < cols_; c += 2) {
        row[c] = table[stream[c / 2] & 15u];
        row[c + 1] = table[stream[c / 2] >> 4];
      }
      if (cols_ % 2) row[cols_ - 1] = table[stream[cols_ / 2] & 15u];
    } else {
      for (int c = 0; c < cols_; ++c) row[c] = static_cast<float>(get_field(stream, c, spec_.bits));
    }
    for (int g = 0; g < groups; ++g) {
      const int c0 = g * width, n = std::min(width, cols_ - c0);
      const std::size_t at = static_cast<std::size_t>(r) * groups + g;
      Eigen::Map<Eigen::ArrayXf> values(row + c0, n);
      if (storage_ == Storage::mxfp4) {
        values *= std::ldexp(1.0f, static_cast<int>(exponents_[at]) - 127);
        continue;
      }
      const float zero = spec_.symmetric
                             ? offset
                             : static_cast<float>(get_field(zeros_.data() + r * zero_row_bytes(), g, spec_.bits));
      values = (values - zero) * scale(at);
    }
  }
  if (divisor_.size() > 0) out.array().colwise() /= divisor_.array();
}

PackedWeight::SignedCodes PackedWeight::signed_codes() const {
  SERQ_CHECK(storage_ == Storage::int_codes && (spec_.symmetric || spec_.bits <= 7), "an integer kernel reads INT "
             "weights whose codes fit int8 (symmetric, or asymmetric up to 7 bits), not {}", spec_.describe());
  SignedCodes out;
  out.group_width = group_width();
  out.groups = groups_per_row();
  out.values.resize(static_cast<std::size_t>(rows_) * cols_);
  out.scales.resize(static_cast<std::size_t>(rows_) * out.groups);
  out.divisor = divisor_;
  const int offset = spec_.symmetric ? 1 << (spec_.bits - 1) : 0;
  for (int r = 0; r < rows_; ++r) {
    const std::uint8_t* stream = codes_.data() + r * code_row_bytes();
    for (int g = 0; g < out.groups; ++g) {
      const std::size_t at = static_cast<std::size_t>(r) * out.groups + g;
      const int zero =
          spec_.symmetric ? offset : static_cast<int>(get_field(zeros_.data() + r * zero_row_bytes(), g, spec_.bits));
      out.scales[at] = scale(at);
      for (int c = g * out.group_width; c < std::min(cols_, (g + 1) * out.group_width); ++c) {
        out.values[static_cast<std::size_t>(r) * cols_ + c] =
            static_cast<std::int8_t>(static_cast<int>(get_field(stream, c, spec_.bits)) - zero);
      }
    }
  }
  return out;
}

void PackedWeight::divide_rows(const Vector& divisor) {
  SERQ_CHECK(divisor.size() == rows_, "dividing the rows of a {}-row weight needs {} divisors, not {}", rows_, rows_,
             divisor.size());
  if (storage_ == Storage::bf16 || storage_ == Storage::f16) *this = full_precision(dequantize());
  if (storage_ == Storage::f32) {
    f32_.array().colwise() /= divisor.array();
    return;
  }
  SERQ_CHECK(divisor_.size() == 0, "a packed weight's rows are divided once (one folded input scale per layer)");
  divisor_ = divisor;
}

void PackedWeight::permute_rows(const std::vector<int>& order) {
  if (storage_ == Storage::none) return;
  SERQ_CHECK(order.size() == static_cast<std::size_t>(rows_), "permuting a {}-row weight needs {} indices, not {}",
             rows_, rows_, order.size());
  auto permute = [&](auto& data, std::size_t per_row) {
    auto copy = data;
    for (std::size_t i = 0; i < order.size(); ++i) {
      std::copy_n(copy.begin() + static_cast<std::ptrdiff_t>(order[i] * per_row), per_row,
                  data.begin() + static_cast<std::ptrdiff_t>(i * per_row));
    }
  };
  switch (storage_) {
    case Storage::none: return;
    case Storage::f32: {
      Matrix permuted(rows_, cols_);
      for (int i = 0; i < rows_; ++i) permuted.row(i) = f32_.row(order[static_cast<std::size_t>(i)]);
      f32_.swap(permuted);
      return;
    }
    case Storage::bf16:
    case Storage::f16: {  // the values may be shared (a file mapping, a copy of the model): permute a copy
      const std::uint16_t* values = sixteen_.get();
      std::vector<std::uint16_t> bits(values, values + std::size_t(rows_) * std::size_t(cols_));
      permute(bits, static_cast<std::size_t>(cols_));
      *this = sixteen_bit(rows_, cols_, std::move(bits), storage_ == Storage::bf16);
      return;
    }
    case Storage::int_codes:
    case Storage::mxfp4: break;
  }
  permute(codes_, static_cast<std::size_t>(code_row_bytes()));
  const auto groups = static_cast<std::size_t>(groups_per_row());
  if (storage_ == Storage::mxfp4) permute(exponents_, groups);
  if (storage_ == Storage::int_codes && spec_.f16_scales) permute(half_, groups);
  if (storage_ == Storage::int_codes && !spec_.f16_scales) permute(float_scales_, groups);
  if (!zeros_.empty()) permute(zeros_, static_cast<std::size_t>(zero_row_bytes()));
  if (divisor_.size() > 0) {
    Vector permuted(rows_);
    for (int i = 0; i < rows_; ++i) permuted(i) = divisor_(order[static_cast<std::size_t>(i)]);
    divisor_.swap(permuted);
  }
}

std::int64_t PackedWeight::storage_bits() const {
  const std::int64_t weights = std::int64_t(rows_) * cols_;
  switch (storage_) {
    case Storage::none: return 0;
    case Storage::f32:
    case Storage::bf16:
    case Storage::f16: return 16 * weights;
    case Storage::int_codes:
    case Storage::mxfp4: break;
  }
  return 8 * std::int64_t(codes_.size() + zeros_.size() + exponents_.size()) + 16 * std::int64_t(half_.size()) +
         32 * std::int64_t(float_scales_.size()) + 16 * std::int64_t(divisor_.size());
}

PackedWeight::StoredParts PackedWeight::stored_parts() const {
  StoredParts parts;
  parts.codes = codes_;
  parts.zeros = zeros_;
  parts.exponents = exponents_;
  parts.half_scales = half_;
  parts.float_scales = float_scales_;
  if (storage_ == Storage::f32) parts.f32 = f32_;
  if (storage_ == Storage::bf16 || storage_ == Storage::f16) {
    parts.sixteen.assign(sixteen_.get(), sixteen_.get() + std::size_t(rows_) * std::size_t(cols_));
  }
  parts.divisor = divisor_;
  return parts;
}

PackedWeight PackedWeight::from_stored(Storage storage, const QuantSpec& spec, int rows, int cols, StoredParts parts) {
  SERQ_CHECK(rows > 0 && cols > 0, "a stored weight of {} × {} (rows and columns must be positive)", rows, cols);
  const std::size_t count = std::size_t(rows) * std::size_t(cols);
  auto check_size = [](const char* part, std::size_t got, std::size_t want) {
    SERQ_CHECK(got == want, "its {} hold {} entries, {} expected", part, got, want);
  };
  if (storage == Storage::f32) {
    SERQ_CHECK(parts.f32.rows() == rows && parts.f32.cols() == cols && parts.f32.allFinite(),
               "its float32 values are not {} × {} finite numbers", rows, cols);
    return full_precision(std::move(parts.f32));
  }
  if (storage == Storage::bf16 || storage == Storage::f16) {
    check_size("16-bit values", parts.sixteen.size(), count);
    const std::uint16_t exponent = storage == Storage::bf16 ? 0x7f80 : 0x7c00;
    for (const std::uint16_t bits : parts.sixteen) {
      SERQ_CHECK((bits & exponent) != exponent, "a 16-bit value is NaN or infinite");
    }
    return sixteen_bit(rows, cols, std::move(parts.sixteen), storage == Storage::bf16);
  }
  SERQ_CHECK(storage == Storage::int_codes || storage == Storage::mxfp4, "a stored weight needs a storage kind");
  SERQ_CHECK((storage == Storage::mxfp4) == (spec.format == NumberFormat::mxfp4),
             "its storage and its format {} disagree", spec.describe());
  validate(spec, "stored weight");
  SERQ_CHECK(spec.enabled(), "a packed weight needs a quantized format, not {}", spec.describe());
  PackedWeight packed(spec, rows, cols);
  check_size("codes", parts.codes.size(), packed.codes_.size());
  check_size("zero points", parts.zeros.size(), packed.zeros_.size());
  check_size("exponents", parts.exponents.size(), packed.exponents_.size());
  check_size("IEEE-half scales", parts.half_scales.size(), packed.half_.size());
  check_size("float32 scales", parts.float_scales.size(), packed.float_scales_.size());
  for (const std::uint16_t bits : parts.half_scales) {
    const float scale = f16_to_f32(bits);
    SERQ_CHECK(std::isfinite(scale) && scale >= 0.0f, "a scale is {}, not a non-negative finite number", scale);
  }
  for (const std::uint8_t exponent : parts.exponents) {
    SERQ_CHECK(exponent != 255, "an MXFP4 block exponent is 255, E8M0's NaN");
  }
  for (const float scale : parts.float_scales) {
    SERQ_CHECK(std::isfinite(scale) && scale >= 0.0f, "a scale is {}, not a non-negative finite number", scale);
  }
  if (parts.divisor.size() > 0) {
    check_size("row divisors", static_cast<std::size_t>(parts.divisor.size()), static_cast<std::size_t>(rows));
    SERQ_CHECK(parts.divisor.allFinite() && (parts.divisor.array() != 0.0f).all(),
               "a row divisor is zero or not finite");
  }
  packed.codes_ = std::move(parts.codes);
  packed.zeros_ = std::move(parts.zeros);
  packed.exponents_ = std::move(parts.exponents);
  packed.half_ = std::move(parts.half_scales);
  packed.float_scales_ = std::move(parts.float_scales);
  packed.divisor_ = std::move(parts.divisor);
  return packed;
}

}  // namespace serq
