// Seeded standard-normal matrices from splitmix64 and Box–Muller, in double: the same values on every platform and
// compiler for a given seed (random rotations, randomized SVD sketches).
#pragma once

#include <cstdint>

#include <Eigen/Core>

namespace serq {

// rows × cols independent N(0, 1) values, filled in column-major order two at a time.
Eigen::MatrixXd gaussian_matrix(Eigen::Index rows, Eigen::Index cols, std::uint64_t seed);

}  // namespace serq
