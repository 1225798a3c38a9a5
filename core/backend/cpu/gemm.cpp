// Y = X · Wᵀ (and Y += X[:, :k] · Wᵀ) as one cblas_sgemm call each: row-major, X not transposed, W transposed.
#include "core/backend/cpu/gemm.h"

#include <cblas.h>

#include <cassert>

namespace serq {

void gemm_xwt(const Matrix& x, const Matrix& w, Matrix& y) {
  assert(&y != &x && &y != &w);
  y.resize(x.rows(), w.rows());
  gemm_xwt_into(x, w, y);
}

void gemm_xwt_into(ConstMatrixRef x, ConstMatrixRef w, MatrixRef y) {
  assert(x.cols() == w.cols());
  assert(y.rows() == x.rows() && y.cols() == w.rows());
  const auto rows = static_cast<int>(x.rows());
  const auto d_out = static_cast<int>(w.rows());
  const auto d_in = static_cast<int>(x.cols());
  if (y.size() == 0) return;
  if (d_in == 0) {  // BLAS rejects a leading dimension of 0; an empty sum is 0
    y.setZero();
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, d_out, d_in, 1.0f, x.data(),
              static_cast<int>(x.outerStride()), w.data(), static_cast<int>(w.outerStride()), 0.0f, y.data(),
              static_cast<int>(y.outerStride()));
}

void gemm_xwt_add(ConstMatrixRef x, const Matrix& w, MatrixRef y) {
  assert(w.cols() <= x.cols());
  assert(y.rows() == x.rows() && y.cols() == w.rows());
  const auto rows = static_cast<int>(x.rows());
  const auto d_out = static_cast<int>(w.rows());
  const auto k = static_cast<int>(w.cols());
  if (y.size() == 0 || k == 0) return;  // an empty sum adds nothing
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, d_out, k, 1.0f, x.data(), static_cast<int>(x.outerStride()),
              w.data(), k, 1.0f, y.data(), static_cast<int>(y.outerStride()));
}

}  // namespace serq
