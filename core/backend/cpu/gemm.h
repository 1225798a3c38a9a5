// CPU GEMM for linear layers: Y = X · Wᵀ with X (rows × d_in) and W (d_out × d_in), the orientation of
// core/common/matrix.h, through OpenBLAS.
#pragma once

#include "core/common/matrix.h"

namespace serq {

// Y (x.rows() × w.rows()) = X · Wᵀ; requires x.cols() == w.cols(). Y is resized as needed; it must not alias
// X or W.
void gemm_xwt(const Matrix& x, const Matrix& w, Matrix& y);
// The same into y already sized x.rows() × w.rows() (a tensor's rows, say); x and w may be any blocks of contiguous
// rows.
void gemm_xwt_into(ConstMatrixRef x, ConstMatrixRef w, MatrixRef y);

// Y += X[:, :k] · Wᵀ with k = w.cols() ≤ x.cols(): the first k columns of X are read in place (no copy) and the
// product is added into Y (x.rows() × w.rows()) without a temporary. For correction paths (SERQ's R on the first r
// channels, the second factor of a low-rank correction).
void gemm_xwt_add(ConstMatrixRef x, const Matrix& w, MatrixRef y);

}  // namespace serq
