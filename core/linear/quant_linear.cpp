// QuantLinear's parts: the input transform, the stored main weight, the integer kernel's weight, and accounting.
// The arithmetic of a forward runs on a backend (core/backend/cpu/cpu_quant_linear.cpp on the CPU).
#include "core/linear/quant_linear.h"

#include <algorithm>

#include "core/common/error.h"

namespace serq {

void InputTransform::apply(Matrix& x) const {
  if (!order.empty()) {  // a gather needs a second matrix
    Matrix out;
    apply(x, out);
    x.swap(out);
    return;
  }
  SERQ_CHECK(scale.size() == 0 || scale.size() == x.cols(), "input scale has {} channels, the input {}", scale.size(),
             x.cols());
  if (scale.size() > 0) x.array().rowwise() /= scale.transpose().array();
  if (rotation.enabled()) rotation.apply(x);
}

void InputTransform::apply(ConstMatrixRef x, Matrix& out) const {
  const Eigen::Index d = x.cols();
  SERQ_CHECK(scale.size() == 0 || scale.size() == d, "input scale has {} channels, the input {}", scale.size(), d);
  SERQ_CHECK(order.empty() || static_cast<Eigen::Index>(order.size()) == d, "input order has {} channels, the input "
             "{}", order.size(), d);
  out.resize(x.rows(), d);
  for (Eigen::Index r = 0; r < x.rows(); ++r) {  // X̂[:, j] = X[:, order[j]] / s[order[j]], a gather within each row
    const float* in = x.row(r).data();
    float* to = out.row(r).data();
    if (order.empty() && scale.size() == 0) {
      std::copy_n(in, d, to);
    } else if (order.empty()) {
      for (Eigen::Index j = 0; j < d; ++j) to[j] = in[j] / scale[j];
    } else if (scale.size() == 0) {
      for (Eigen::Index j = 0; j < d; ++j) to[j] = in[order[j]];
    } else {
      for (Eigen::Index j = 0; j < d; ++j) to[j] = in[order[j]] / scale[order[j]];
    }
  }
  if (rotation.enabled()) rotation.apply(out);
}

Eigen::MatrixXd InputTransform::transform_gram(const Eigen::MatrixXd& gram) const {
  // T̂ = D⁻¹ P R, so T̂ᵀ H T̂ = Rᵀ Pᵀ D⁻¹ H D⁻¹ P R: divide by s_i s_j, permute, then rotate both sides.
  Eigen::MatrixXd h = gram;
  if (scale.size() > 0) {
    const Eigen::VectorXd inv = scale.cast<double>().cwiseInverse();
    h = inv.asDiagonal() * h * inv.asDiagonal();
  }
  if (!order.empty()) {
    const Eigen::Index d = h.rows();
    Eigen::MatrixXd permuted(d, d);
    for (Eigen::Index i = 0; i < d; ++i)
      for (Eigen::Index j = 0; j < d; ++j) permuted(i, j) = h(order[i], order[j]);
    h.swap(permuted);
  }
  if (rotation.enabled()) {
    const Eigen::MatrixXd r = rotation.dense(static_cast<int>(h.rows())).cast<double>();
    h = r.transpose() * h * r;
  }
  return h;
}

const Matrix& QuantLinear::main_weight() const {
  if (weight.size() > 0 || packed.empty()) return weight;
  thread_local Matrix workspace;  // one layer's floats at a time, reused across layers and calls
  packed.dequantize(workspace);
  return workspace;
}

void QuantLinear::release_weight() {
  if (!packed.empty()) weight = Matrix();
}

void QuantLinear::restore_weight() {
  if (weight.size() > 0 || packed.empty()) return;
  weight = packed.dequantize();
  const PackedWeight::Storage stored = packed.storage();
  if (stored == PackedWeight::Storage::int_codes || stored == PackedWeight::Storage::mxfp4) return;
  packed.release_pages();  // the widening read them in
  packed = PackedWeight();
}

bool InputTransform::same_as(const InputTransform& other) const {
  return scale.size() == other.scale.size() && scale == other.scale && order == other.order &&
         rotation.hadamard_size == other.rotation.hadamard_size &&
         rotation.factor.size() == other.rotation.factor.size() && rotation.factor == other.rotation.factor;
}

bool QuantLinear::int_kernel_applies() const {
  if (packed.storage() != PackedWeight::Storage::int_codes || !act_quant.enabled() ||
      act_quant.format != NumberFormat::integer) {
    return false;
  }
  const QuantSpec& w = packed.spec();
  const int act_group = act_quant.group_size > 0 ? std::min(act_quant.group_size, d_in()) : d_in();
  return (w.symmetric || w.bits <= 7) && act_group == packed.group_width();
}

void QuantLinear::use_int_kernel() {
  SERQ_CHECK(int_kernel_applies(), "{}: the integer kernel runs INT weights with INT activations in the same groups, "
             "not weights {} with activations {}", name, weight_quant.describe(), act_quant.describe());
  int_kernel = true;
}

namespace {

// What a matrix costs as stored: its packed form, or 16 bits per value in full precision.
double stored_bits(const PackedWeight& packed, Eigen::Index values) {
  return packed.empty() ? 16.0 * static_cast<double>(values) : static_cast<double>(packed.storage_bits());
}

}  // namespace

double QuantLinear::storage_bits() const {
  double bits = stored_bits(packed, static_cast<Eigen::Index>(d_out()) * d_in());
  if (low_rank.rank() > 0) {
    bits += stored_bits(low_rank.packed_a, low_rank.a.size()) + stored_bits(low_rank.packed_b, low_rank.b.size());
  }
  if (salient.rank() > 0) bits += stored_bits(salient.packed, salient.r.size());
  return bits + 16.0 * static_cast<double>(bias.size());
}

Matrix QuantLinear::effective_weight() const {
  Matrix effective = weight.size() > 0 ? weight : packed.dequantize();
  if (low_rank.rank() > 0) effective += low_rank.b * low_rank.a;
  if (salient.rank() > 0) effective.leftCols(salient.rank()) += salient.r;
  return effective;
}

std::int64_t QuantLinear::extra_parameters() const {
  return static_cast<std::int64_t>(low_rank.a.size() + low_rank.b.size() + salient.r.size());
}

}  // namespace serq
