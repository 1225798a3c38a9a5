// GPTQ in the lazy-batch form of the reference code, with the factor and the error feedback in double and the
// quantizer in float (so its grid values are exactly those of fake_quant_rows).
//
// The math. The paper quantizes column j, then updates every later column k by the OBS step
//   w_k -= (w_j - q_j) / U_jj · U_jk,   U = the upper Cholesky factor of H⁻¹ (H⁻¹ = UᵀU),
// where w_j is column j as updated by the columns before it. Summed up, W - Q = E·U (W the original weights, E_j the
// scaled error of step j), so E = (W - Q)·V with V = U⁻¹. V is upper triangular with H = V·Vᵀ: the Cholesky factor
// of H taken in reverse order, V = J·chol(J·H·J)·J with J the exchange matrix. Column k, when its turn comes, is
//   w_k + Σ_{j<k} (w_j - q_j) · Ṽ_jk,   Ṽ = V with each column divided by its diagonal entry,
// with w_j the original weights: no inverse of H is needed (one factorization where the reference factors, inverts
// and factors again: 4× fewer flops, and better conditioned). Between steps, the updated values of the columns R
// not yet quantized are w_R + F_R·Ṽ_RR⁻¹, F = the sum above over the columns done so far; only fitting a group
// needs them, for the group's own columns. tests/test_gptq.cpp checks all of it against the explicit-inverse OBS
// update. Columns of a block take their feedback eagerly; columns after the block in one GEMM per block.
#include "core/quant/gptq.h"

#include <Eigen/Cholesky>
#include <cblas.h>

#include <algorithm>
#include <cassert>
#include <cfenv>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/common/error.h"
#include "core/quant/grid.h"

namespace serq {
namespace {

// The quantizer of one column: per-row parameters of every group, fitted once per group and then frozen. Formulas
// from grid.h, as fake_quant_rows uses them; with a diagonal H, GPTQ reduces to fake_quant_rows (a test pins that).
class ColumnQuantizer {
 public:
  ColumnQuantizer(const QuantSpec& spec, Eigen::Index rows, Eigen::Index groups)
      : spec_(spec), scale_(rows, groups), divisor_(rows, groups), zero_(Eigen::ArrayXXf::Zero(rows, groups)) {
    if (spec.format == NumberFormat::integer) codes_ = int_code_range(spec.bits, spec.symmetric);
  }

  // Fits group g's parameters on its current values (rows × n).
  void fit(Eigen::Index g, const Eigen::MatrixXf& values) {
    Eigen::ArrayXf scale;
    if (spec_.format == NumberFormat::mxfp4) {
      scale = values.cwiseAbs().rowwise().maxCoeff().array().unaryExpr(&mxfp4_scale);
    } else {
      const bool f16 = spec_.f16_scales;
      const auto as_used = [f16](float computed) { return int_scale(computed, f16); };
      const Eigen::ArrayXf lo = spec_.symmetric ? Eigen::ArrayXf(-values.cwiseAbs().rowwise().maxCoeff().array())
                                                : Eigen::ArrayXf(values.rowwise().minCoeff().array().min(0.0f));
      const Eigen::ArrayXf hi = spec_.symmetric ? Eigen::ArrayXf(-lo) : values.rowwise().maxCoeff().array().max(0.0f);
      scale = ((spec_.symmetric ? hi : hi - lo) / codes_.max).unaryExpr(as_used);
      SERQ_CHECK(scale.allFinite(), "a weight group's scale exceeds the IEEE half range of packed weights; the "
                 "weights are corrupt or need rescaling — check the checkpoint");
      if (!spec_.symmetric) {
        for (Eigen::Index r = 0; r < scale.size(); ++r) {
          zero_(r, g) = scale(r) > 0.0f ? int_zero(lo(r), scale(r), codes_) : 0.0f;
        }
      }
    }
    scale_.col(g) = scale;
    divisor_.col(g) = (scale == 0.0f).select(1.0f, scale);  // a group of zeros dequantizes to 0 (times scale 0)
  }

  const Eigen::ArrayXXf& scales() const { return scale_; }
  const Eigen::ArrayXXf& zeros() const { return zero_; }

  // The dequantized values of one column of group g.
  Eigen::ArrayXf quantize(Eigen::Index g, const Eigen::ArrayXf& column) const {
    const Eigen::ArrayXf scaled = column / divisor_.col(g);
    if (spec_.format == NumberFormat::mxfp4) return e2m1_round(scaled) * scale_.col(g);
    return ((scaled.rint() + zero_.col(g)).max(codes_.min).min(codes_.max) - zero_.col(g)) * scale_.col(g);
  }

 private:
  QuantSpec spec_;
  Eigen::ArrayXXf scale_, divisor_, zero_;  // rows × groups
  IntCodeRange codes_;
};

void check_inputs(const Matrix& w, const Eigen::MatrixXd& hessian, const GptqOptions& options,
                  const std::string& what) {
  const Eigen::Index cols = w.cols();
  SERQ_CHECK(hessian.rows() == cols && hessian.cols() == cols, "{}: the GPTQ Hessian is {}×{} but the weight has {} "
             "input channels; recalibrate for this model", what, hessian.rows(), hessian.cols(), cols);
  SERQ_CHECK(hessian.allFinite(), "{}: the GPTQ Hessian has NaN/Inf; the calibration activations are corrupt "
             "(check the model in full precision, then recalibrate)", what);
  SERQ_CHECK(w.allFinite(), "{}: the weight has NaN/Inf; check the checkpoint", what);
  SERQ_CHECK(std::isfinite(options.damp) && options.damp >= 0.0, "{}: gptq.damp {} is not a fraction >= 0; use a "
             "small positive value such as 0.01", what, options.damp);
  SERQ_CHECK(options.block_size >= 1, "{}: gptq.block_size {} is below 1; use 128", what, options.block_size);
}

// The processing order of the channels: channel order, or decreasing diag(H) with act_order.
std::vector<Eigen::Index> processing_order(const Eigen::VectorXd& diagonal, bool act_order) {
  std::vector<Eigen::Index> order(static_cast<std::size_t>(diagonal.size()));
  std::iota(order.begin(), order.end(), 0);
  if (act_order) {
    std::stable_sort(order.begin(), order.end(),
                     [&](Eigen::Index a, Eigen::Index b) { return diagonal(a) > diagonal(b); });
  }
  return order;
}

// Ṽ: the upper triangular V with H_order + λI = V·Vᵀ (rows and columns of H in processing order), each column
// divided by its diagonal entry. Only the strict upper triangle of the result is meaningful.
Eigen::MatrixXd update_factor(const Eigen::MatrixXd& hessian, const Eigen::VectorXd& diagonal,
                              const std::vector<Eigen::Index>& order, double damp, const std::string& what) {
  const Eigen::Index n = hessian.rows();
  const double lambda = damp * diagonal.mean();
  Eigen::MatrixXd f = Eigen::MatrixXd::Zero(n, n);  // J·H_order·J (lower triangle): reverse processing order
  for (Eigen::Index j = 0; j < n; ++j) {
    const Eigen::Index cj = order[static_cast<std::size_t>(n - 1 - j)];
    for (Eigen::Index i = j; i < n; ++i) f(i, j) = hessian(order[static_cast<std::size_t>(n - 1 - i)], cj);
    f(j, j) = diagonal(cj) + lambda;
  }
  Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>> llt(f);  // in place: L in the lower triangle
  SERQ_CHECK(llt.info() == Eigen::Success, "{}: the GPTQ Hessian is not positive definite after adding gptq.damp {} × "
             "mean(diag H) = {:.3g} to its diagonal; raise gptq.damp (e.g. 0.1) or calibrate on more tokens "
             "(calib.samples)", what, damp, lambda);
  f.reverseInPlace();  // V = J·L·J: upper triangular
  for (Eigen::Index k = 1; k < n; ++k) f.col(k).head(k) /= f(k, k);
  return f;
}

// The values GPTQ's column-by-column update gives columns i..i+n-1 once every column before i is quantized:
// w_G + F_G·Ṽ_GG⁻¹, with F_G their feedback so far (columns from b1 on still lack that of block columns b0..i-1)
// and Ṽ_GG the unit upper triangular block of the group (derivation at the top of this file).
Eigen::MatrixXf group_values(const Eigen::MatrixXf& weights, const Eigen::MatrixXd& feedback,
                             const Eigen::MatrixXd& errors, const Eigen::MatrixXd& factor, Eigen::Index i,
                             Eigen::Index n, Eigen::Index b0, Eigen::Index b1) {
  if (i == 0) return weights.leftCols(n);  // no feedback yet
  Eigen::MatrixXd shift = feedback.middleCols(i, n);
  const Eigen::Index pending = i + n - b1;
  if (pending > 0 && i > b0) {
    shift.rightCols(pending).noalias() += errors.leftCols(i - b0) * factor.block(b0, b1, i - b0, pending);
  }
  factor.block(i, i, n, n).triangularView<Eigen::UnitUpper>().solveInPlace<Eigen::OnTheRight>(shift);
  return (weights.middleCols(i, n).cast<double>() + shift).cast<float>();
}

// feedback[:, b1:] += errors[:, :b1-b0] · Ṽ[b0:b1, b1:], the lazy update and GPTQ's main cost (d_out · d_in² flops
// per layer), as one OpenBLAS DGEMM so it runs on the BLAS threads (runtime.threads).
void lazy_update(Eigen::MatrixXd& feedback, const Eigen::MatrixXd& errors, const Eigen::MatrixXd& factor,
                 Eigen::Index b0, Eigen::Index b1) {
  const auto rows = static_cast<int>(feedback.rows()), n = static_cast<int>(factor.rows());
  const auto later = static_cast<int>(feedback.cols() - b1), block = static_cast<int>(b1 - b0);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, rows, later, block, 1.0, errors.data(), rows,
              &factor(b0, b1), n, 1.0, &feedback(0, b1), rows);
}

}  // namespace

void gptq_quantize(Matrix& w, const Eigen::MatrixXd& hessian, const QuantSpec& spec, const GptqOptions& options,
                   const std::string& what, PackedWeight* packed) {
  if (!spec.enabled()) return;
  assert(std::fegetround() == FE_TONEAREST);  // rint(): round half to even, as fake_quant_rows
  check_inputs(w, hessian, options, what);
  if (w.size() == 0) return;
  const Eigen::Index rows = w.rows(), cols = w.cols();

  // A channel that never fired has a zero row and column in H; a unit diagonal decouples it (the reference's fix).
  const Eigen::VectorXd diagonal = (hessian.diagonal().array() == 0.0).select(1.0, hessian.diagonal().array());
  const std::vector<Eigen::Index> order = processing_order(diagonal, options.act_order);
  const Eigen::MatrixXd factor = update_factor(hessian, diagonal, order, options.damp, what);

  // The weights in processing order; column i is replaced by its quantized values once GPTQ has passed it.
  Eigen::MatrixXf weights(rows, cols);
  for (Eigen::Index i = 0; i < cols; ++i) weights.col(i) = w.col(order[static_cast<std::size_t>(i)]);

  const Eigen::Index group = spec.group_size > 0 ? std::min<Eigen::Index>(spec.group_size, cols) : cols;
  const Eigen::Index groups = (cols + group - 1) / group;
  ColumnQuantizer quantizer(spec, rows, groups);
  if (options.act_order) {  // static groups, on the original weights in channel order
    for (Eigen::Index g = 0; g < groups; ++g) {
      quantizer.fit(g, w.middleCols(g * group, std::min(group, cols - g * group)));
    }
  }

  Eigen::MatrixXd feedback = Eigen::MatrixXd::Zero(rows, cols);  // Σ_j (w_j − q_j)·Ṽ_jk over the columns done
  Eigen::MatrixXd errors(rows, std::min<Eigen::Index>(options.block_size, cols));  // w_j − q_j of the block
  for (Eigen::Index b0 = 0; b0 < cols; b0 += options.block_size) {
    const Eigen::Index b1 = std::min<Eigen::Index>(b0 + options.block_size, cols);
    for (Eigen::Index i = b0; i < b1; ++i) {
      const Eigen::Index g = order[static_cast<std::size_t>(i)] / group;
      if (!options.act_order && i % group == 0) {  // channel order: i is the channel
        quantizer.fit(g, group_values(weights, feedback, errors, factor, i, std::min(group, cols - i), b0, b1));
      }
      const Eigen::ArrayXf q = quantizer.quantize(g, (weights.col(i).cast<double>() + feedback.col(i)).cast<float>());
      errors.col(i - b0) = weights.col(i).cast<double>() - q.cast<double>().matrix();
      weights.col(i) = q;
      feedback.middleCols(i + 1, b1 - i - 1).noalias() += errors.col(i - b0) * factor.row(i).segment(i + 1, b1 - i - 1);
    }
    if (b1 < cols) lazy_update(feedback, errors, factor, b0, b1);
  }
  SERQ_CHECK(weights.allFinite(), "{}: GPTQ produced NaN/Inf (the Hessian is too badly conditioned); raise "
             "gptq.damp (e.g. 0.1)", what);
  for (Eigen::Index i = 0; i < cols; ++i) w.col(order[static_cast<std::size_t>(i)]) = weights.col(i);
  if (packed) *packed = PackedWeight::from_grid(w, spec, quantizer.scales(), quantizer.zeros());
}

}  // namespace serq
