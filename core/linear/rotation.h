// Orthogonal input rotations of a linear layer (QuaRot's online Hadamard): R = (H_n / √n) ⊗ F on d_in = n · m
// channels, applied to activations as X·R and fused into weights as W·R, so X·Wᵀ = (X·R)·(W·R)ᵀ.
#pragma once

#include <string>

#include "core/common/matrix.h"

namespace serq {

// R = (H_n / √n) ⊗ F: H_n is the Sylvester Hadamard matrix of a power of two n (n = 1: none), F an m × m orthogonal
// factor (empty: identity). Channel j = a·m + b sits in Hadamard block a at position b. QuaRot's online Hadamard
// is F empty when d_in is a power of two; 172 channels take H_4 ⊗ (a random orthogonal 43 × 43).
struct InputRotation {
  int hadamard_size = 1;    // n, a power of two
  Matrix factor;            // F (m × m), orthogonal; empty = identity
  std::string description;  // what was built, for result files, e.g. "hadamard(4) x random-orthogonal(43)"

  bool enabled() const { return hadamard_size > 1 || factor.size() > 0; }
  // x ← x · R in place (rows × d_in): a GEMM by F within each block of m, then a fast Walsh–Hadamard transform
  // across the n blocks.
  void apply(Matrix& x) const;
  // R as a dense d × d matrix (reference for tests and offline fusion).
  Matrix dense(int d) const;
};

}  // namespace serq
