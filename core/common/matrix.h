// Dense float matrices and the one orientation convention of the project.
//
// A linear layer's weight W is stored (d_out × d_in), row-major, exactly as PyTorch/HF store `weight`.
// Activations X are (tokens × d_in), row-major, and a linear layer computes Y = X · Wᵀ (tokens × d_out).
// The SERQ paper writes Y = X·W with W (d_in × d_out); its "rows" are our columns (input channels).
#pragma once

#include <Eigen/Core>

namespace serq {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vector = Eigen::VectorXf;
// A row-major block of contiguous rows without a copy: a Matrix, or a tensor in host memory (core/backend/tensor.h).
using MatrixRef = Eigen::Ref<Matrix>;
using ConstMatrixRef = Eigen::Ref<const Matrix>;

}  // namespace serq
