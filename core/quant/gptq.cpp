// GPTQ: the algorithm of Frantar et al. in the lazy-batch form of the reference code, in double precision for the
// Cholesky factor of H⁻¹ and float for the weights.
#include "core/quant/gptq.h"

#include <Eigen/Cholesky>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/common/error.h"

namespace serq {
namespace {

// One row's quantizer for one group, its parameters fixed from the values the group held when GPTQ reached it.
struct FrozenGroup {
  float scale = 0.0f;
  float zero = 0.0f;
  float qmin = 0.0f, qmax = 0.0f;
  NumberFormat format = NumberFormat::integer;

  static FrozenGroup fit(const float* values, int n, const QuantSpec& spec) {
    FrozenGroup g;
    g.format = spec.format;
    const Eigen::Map<const Eigen::ArrayXf> x(values, n);
    if (spec.format == NumberFormat::mxfp4) {
      const float amax = x.abs().maxCoeff();
      if (amax > 0.0f) {
        int exponent = 0;
        std::frexp(amax, &exponent);
        g.scale = std::ldexp(1.0f, std::clamp(exponent - 3, -127, 127));  // 2^(floor(log2 amax) - 2)
      }
    } else if (spec.symmetric) {
      g.qmax = static_cast<float>((1 << (spec.bits - 1)) - 1);
      g.qmin = -g.qmax - 1.0f;
      g.scale = x.abs().maxCoeff() / g.qmax;
    } else {
      const float lo = std::min(x.minCoeff(), 0.0f), hi = std::max(x.maxCoeff(), 0.0f);
      g.qmax = static_cast<float>((1 << spec.bits) - 1);
      g.scale = (hi - lo) / g.qmax;
      if (g.scale > 0.0f) g.zero = std::nearbyint(-lo / g.scale);
    }
    return g;
  }

  float quantize(float w) const {
    if (scale == 0.0f) return 0.0f;
    if (format == NumberFormat::mxfp4) {
      // E2M1 as in mxfp4.cpp: grid spacing 0.5 below 2, 1 in [2, 4), 2 from 4; ties to even; saturate at 6.
      const float scaled = w / scale;
      const float magnitude = std::abs(scaled);
      const float step = magnitude >= 4.0f ? 2.0f : magnitude >= 2.0f ? 1.0f : 0.5f;
      return std::clamp(std::nearbyint(scaled / step) * step, -6.0f, 6.0f) * scale;
    }
    return (std::clamp(std::nearbyint(w / scale) + zero, qmin, qmax) - zero) * scale;
  }
};

}  // namespace

void gptq_quantize(Matrix& w, const Eigen::MatrixXd& hessian, const QuantSpec& spec, const GptqOptions& options,
                   const std::string& what) {
  if (!spec.enabled()) return;
  const Eigen::Index rows = w.rows(), cols = w.cols();
  SERQ_CHECK(hessian.rows() == cols && hessian.cols() == cols, "{}: GPTQ Hessian is {}×{}, the weight has {} input "
             "channels (calibration does not match the model)", what, hessian.rows(), hessian.cols(), cols);
  SERQ_CHECK(hessian.allFinite(), "{}: GPTQ Hessian has NaN/Inf; the calibration activations are corrupt", what);
  SERQ_CHECK(options.damp >= 0.0, "{}: gptq.damp {} is negative; use a small positive value such as 0.01", what,
             options.damp);
  SERQ_CHECK(options.block_size >= 1, "{}: gptq.block_size {} is below 1", what, options.block_size);

  Eigen::MatrixXd h = hessian;
  // Dead input channels: no information about them; the reference sets H_jj = 1 and zeroes the weights. We keep
  // the weights (RTN for that column), which the unit diagonal gives.
  for (Eigen::Index j = 0; j < cols; ++j) {
    if (h(j, j) == 0.0) h(j, j) = 1.0;
  }

  std::vector<Eigen::Index> perm(static_cast<std::size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  if (options.act_order) {
    std::stable_sort(perm.begin(), perm.end(), [&](Eigen::Index a, Eigen::Index b) { return h(a, a) > h(b, b); });
  }
  Eigen::MatrixXd hp(cols, cols);
  for (Eigen::Index i = 0; i < cols; ++i)
    for (Eigen::Index j = 0; j < cols; ++j) hp(i, j) = h(perm[i], perm[j]);
  const double damp = options.damp * hp.diagonal().mean();
  hp.diagonal().array() += damp;

  // Hinv = upper Cholesky factor of H⁻¹ (the reference's torch.linalg.cholesky(H⁻¹, upper=True)).
  Eigen::LLT<Eigen::MatrixXd> llt(hp);
  SERQ_CHECK(llt.info() == Eigen::Success, "{}: GPTQ Hessian is not positive definite after dampening by {} · mean "
             "diag; use more calibration samples (calib.samples) or a larger gptq.damp", what, options.damp);
  const Eigen::MatrixXd inverse = llt.solve(Eigen::MatrixXd::Identity(cols, cols));
  Eigen::LLT<Eigen::MatrixXd> llt_inverse(inverse);
  SERQ_CHECK(llt_inverse.info() == Eigen::Success, "{}: GPTQ inverse Hessian is not positive definite (badly "
             "conditioned); use a larger gptq.damp", what);
  const Eigen::MatrixXd upper = llt_inverse.matrixU();

  // Columns in processing order, as doubles.
  Eigen::MatrixXd wp(rows, cols);
  for (Eigen::Index j = 0; j < cols; ++j) wp.col(j) = w.col(perm[j]).cast<double>();

  // Group parameters, rows × groups. Without act_order a group is fitted when GPTQ reaches its first column, on the
  // error-updated values (as the reference does); with act_order, columns of a group are visited out of order, so
  // every group is fitted up front on the original weights (the reference's static_groups).
  const Eigen::Index group = spec.group_size > 0 ? std::min<Eigen::Index>(spec.group_size, cols) : cols;
  const Eigen::Index groups = (cols + group - 1) / group;
  std::vector<FrozenGroup> frozen(static_cast<std::size_t>(rows * groups));
  auto fit_group = [&](Eigen::Index g, const Matrix& source) {
    const Eigen::Index g0 = g * group, n = std::min(group, cols - g0);
    for (Eigen::Index r = 0; r < rows; ++r) {
      frozen[static_cast<std::size_t>(r * groups + g)] = FrozenGroup::fit(&source(r, g0), static_cast<int>(n), spec);
    }
  };
  if (options.act_order) {
    for (Eigen::Index g = 0; g < groups; ++g) fit_group(g, w);
  }

  Matrix quantized(rows, cols);
  for (Eigen::Index b0 = 0; b0 < cols; b0 += options.block_size) {
    const Eigen::Index b1 = std::min<Eigen::Index>(b0 + options.block_size, cols);
    Eigen::MatrixXd errors(rows, b1 - b0);
    for (Eigen::Index i = b0; i < b1; ++i) {
      const Eigen::Index channel = perm[i];
      const Eigen::Index g = channel / group;
      if (!options.act_order && channel % group == 0) {
        const Eigen::Index n = std::min(group, cols - channel);
        const Matrix current = wp.middleCols(i, n).cast<float>();  // perm is the identity here
        for (Eigen::Index r = 0; r < rows; ++r) {
          frozen[static_cast<std::size_t>(r * groups + g)] =
              FrozenGroup::fit(current.row(r).data(), static_cast<int>(n), spec);
        }
      }
      const double d = upper(i, i);
      for (Eigen::Index r = 0; r < rows; ++r) {
        const float q = frozen[static_cast<std::size_t>(r * groups + g)].quantize(static_cast<float>(wp(r, i)));
        quantized(r, channel) = q;
        errors(r, i - b0) = (wp(r, i) - q) / d;
      }
      // Spread this column's error over the rest of the block.
      wp.block(0, i + 1, rows, b1 - i - 1) -= errors.col(i - b0) * upper.row(i).segment(i + 1, b1 - i - 1);
    }
    // Lazy update of every later column.
    if (b1 < cols) wp.rightCols(cols - b1) -= errors * upper.block(b0, b1, b1 - b0, cols - b1);
  }
  w = quantized;
}

}  // namespace serq
