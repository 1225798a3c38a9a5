// Orthogonal matrices for rotation methods (QuaRot): Sylvester Hadamard matrices, seeded Haar-random orthogonal
// matrices, and the two rotations QuaRot builds from them — the online input rotation of a layer and the dense
// rotation of the residual stream. Every random choice comes from splitmix64, so a seed gives the same matrices on
// every platform.
#pragma once

#include <cstdint>
#include <string>

#include "core/common/matrix.h"
#include "core/linear/rotation.h"

namespace serq {

// The n × n Sylvester Hadamard matrix (entries ±1, unnormalized: H·Hᵀ = n·I); n a power of two.
Matrix sylvester_hadamard(int n);

// A Haar-distributed n × n orthogonal matrix: a Gaussian matrix (splitmix64 + Box–Muller, in double) factored by
// Householder QR, with Q's columns signed so that R has a positive diagonal.
Matrix random_orthogonal(int n, std::uint64_t seed);

// The online rotation of a layer with d input channels, d = 2^k · m with m odd: H_{2^k}/√2^k alone when m = 1,
// otherwise H_{2^k}/√2^k ⊗ random_orthogonal(m) (172 = 4 × 43: "hadamard(4) x random-orthogonal(43)").
InputRotation online_rotation(int d, std::uint64_t seed);

// A dense orthogonal matrix and what it is, for result files.
struct DenseRotation {
  Matrix matrix;
  std::string description;
};

// The rotation of a d-wide residual stream: the online_rotation of d as a dense matrix, with its columns multiplied
// by random signs. For d a power of two this is the randomized Hadamard H_d·diag(±1)/√d.
DenseRotation residual_rotation(int d, std::uint64_t seed);

}  // namespace serq
