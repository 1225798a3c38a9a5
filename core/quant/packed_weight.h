// PackedWeight: a weight matrix (rows × cols, d_out × d_in as in core/common/matrix.h) as serq stores it, with its
// one dequantization. The integer kernels and an export read this form; fake quantization (int_quant.h, mxfp4.h,
// gptq.h) gives exactly the values it dequantizes to.
//
//   f32    float32 values: weights of a GGUF block type, widened when loaded, or any full-precision weight
//   bf16   bfloat16 values as a checkpoint stores them, widened when the layer runs
//   f16    IEEE half values, likewise
//   int    INT-b codes (b = 2..8) of a QuantSpec, symmetric or asymmetric, per row or per group of columns. Each row
//          is a bit stream that starts on a byte: code c of the row sits at bits [c·b, (c+1)·b), low bits first,
//          so b = 4 is two codes a byte, low nibble first. Symmetric codes are stored offset by 2^(b-1) (unsigned).
//          Per (row, group): a scale, IEEE half (spec.f16_scales, the default: GGUF, GPTQ and Marlin store half) or
//          float32 (quant.scale_dtype: float, as the official SERQ and QuaRot code keep them), and, asymmetric only, a
//          b-bit zero point in a bit stream of its own. value = (code − zero) · scale.
//   mxfp4  E2M1 codes, two a byte, low nibble first (bit 3 the sign, bits 0–2 the magnitude's index in
//          {0, 0.5, 1, 1.5, 2, 3, 4, 6}); per (row, block) one E8M0 byte e, scale 2^(e − 127). value = ±m · scale.
//
// A row divisor (from folding a later layer's input scale into this layer's output rows, core/model/fold.h) can
// be attached to int and mxfp4 weights: row r dequantizes to its grid values divided by divisor_r, the same float
// operations as dividing the fake-quantized row.
//
// Storage counts what is held: codes, scales, zero points and row divisors (16 bits each). Full precision counts
// as 16 bits per weight whatever its container, the FP16 baseline of PTQ papers.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/common/matrix.h"
#include "core/quant/int_quant.h"

namespace serq {

// The spec a stored weight is quantized with: `spec`, with IEEE-half scales where it is INT and half_scales is set
// (quant.scale_dtype: half), else float32 scales.
QuantSpec stored_weight_spec(QuantSpec spec, bool half_scales = true);

class PackedWeight {
 public:
  enum class Storage { none, f32, bf16, f16, int_codes, mxfp4 };

  PackedWeight() = default;
  static PackedWeight full_precision(Matrix values);
  // 16-bit checkpoint values as stored, row-major; is_bf16 false means IEEE half.
  static PackedWeight sixteen_bit(int rows, int cols, std::vector<std::uint16_t> bits, bool is_bf16);
  // The same, shared (rows × cols values that `bits` keeps alive): with file_mapped, they lie in a read-only file
  // mapping, read in place, and release_pages() can hand their resident pages back to the file.
  static PackedWeight sixteen_bit(int rows, int cols, std::shared_ptr<const std::uint16_t> bits, bool is_bf16,
                                  bool file_mapped);
  // Round to nearest on the grid of `spec`: dequantize() then equals fake_quant_rows(w, spec). NaN/Inf, or a scale
  // beyond the half range (f16_scales), is a serq::Error naming the row.
  static PackedWeight quantize(const Matrix& w, const QuantSpec& spec);
  // Values already on the grid of `spec` with the given scales and (asymmetric) zero points, rows × groups, as
  // GPTQ leaves them: the codes are recovered from the values. A value off its grid is a serq::Error.
  static PackedWeight from_grid(const Matrix& values, const QuantSpec& spec, const Eigen::ArrayXXf& scales,
                                const Eigen::ArrayXXf& zeros);

  Storage storage() const { return storage_; }
  const QuantSpec& spec() const { return spec_; }  // int and mxfp4: the grid the codes are on
  bool empty() const { return storage_ == Storage::none; }
  int rows() const { return rows_; }
  int cols() const { return cols_; }

  // out (rows × cols) ← the values; out is resized as needed.
  void dequantize(Matrix& out) const;
  Matrix dequantize() const;

  // Row r of the dequantized values is divided by divisor(r) (int and mxfp4; full precision is divided in place).
  void divide_rows(const Vector& divisor);
  const Vector& row_divisor() const { return divisor_; }  // empty when none is attached
  // Rows reordered: new row i = old row order[i] (codes, scales and divisors move with their row).
  void permute_rows(const std::vector<int>& order);

  // A file-mapped 16-bit weight gives its resident pages back (they no longer count in this process's memory, and
  // the next read faults them in from the page cache or the file); anything else is left as it is.
  void release_pages() const;

  // An INT weight as an integer kernel reads it (core/backend/cpu/int_gemm.h): value = (code − zero) · scale / divisor.
  struct SignedCodes {
    int group_width = 0, groups = 0;
    std::vector<std::int8_t> values;  // rows × cols, code − zero
    std::vector<float> scales;        // rows × groups
    Vector divisor;                   // one per row, or empty
  };
  // Requires int storage whose code − zero fits int8: symmetric, or asymmetric up to 7 bits (serq::Error otherwise).
  SignedCodes signed_codes() const;

  // Asymmetric INT: the zero point (a code) of (row, group).
  int zero_point(int row, int group) const;

  // int and mxfp4: the columns of a group (the last one may be shorter).
  int group_width() const;

  // The stored parts, as an export writes them (core/model/export.h), copied: INT and MXFP4 codes (rows × row
  // bytes), scales (IEEE-half bits with spec().f16_scales, else float32), zero points (asymmetric INT), MXFP4
  // exponents, the row divisor, 16-bit values (bf16, f16) or float32 values (f32).
  struct StoredParts {
    std::vector<std::uint8_t> codes, zeros, exponents;
    std::vector<std::uint16_t> half_scales, sixteen;
    std::vector<float> float_scales;
    Matrix f32;
    Vector divisor;
  };
  StoredParts stored_parts() const;
  // A weight from its parts (storage int_codes, mxfp4, f32, bf16 or f16). Each part's size is checked against the
  // storage, spec and shape, every scale must be non-negative and finite, every divisor finite and non-zero, every
  // value finite: a damaged or hand-edited export is a serq::Error saying what is wrong.
  static PackedWeight from_stored(Storage storage, const QuantSpec& spec, int rows, int cols, StoredParts parts);

  std::int64_t storage_bits() const;
  double bits_per_weight() const { return static_cast<double>(storage_bits()) / (double(rows_) * double(cols_)); }

 private:
  PackedWeight(const QuantSpec& spec, int rows, int cols);  // int or mxfp4, codes zeroed
  int groups_per_row() const;
  std::int64_t code_row_bytes() const;
  std::int64_t zero_row_bytes() const;
  void set_code(int row, int col, unsigned code);
  float scale(std::size_t at) const;  // int: the scale of (row, group) at row · groups + group

  Storage storage_ = Storage::none;
  int rows_ = 0, cols_ = 0;
  QuantSpec spec_;
  Matrix f32_;                        // f32
  std::shared_ptr<const std::uint16_t> sixteen_;  // bf16, f16: rows × cols values, owned or in a file mapping
  bool mapped_ = false;               // sixteen_ lies in a read-only file mapping
  std::vector<std::uint16_t> half_;   // int with f16_scales: the scales, rows × groups (IEEE half bits)
  std::vector<float> float_scales_;   // int without f16_scales: the scales, rows × groups
  std::vector<std::uint8_t> codes_;   // int, mxfp4: rows × row_bytes
  std::vector<std::uint8_t> zeros_;   // int asymmetric: rows × zero_bytes, b bits each
  std::vector<std::uint8_t> exponents_;  // mxfp4: the E8M0 byte of each (row, block)
  Vector divisor_;                    // optional, one per row
};

}  // namespace serq
