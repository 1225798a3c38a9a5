// MXFP4 fake quantization (quantize, then dequantize, in float), after OCP Microscaling Formats (MX) v1.0.
//
// A row of a matrix (input channels, K) is cut into blocks of 32 consecutive columns; the last block is shorter
// where 32 does not divide K (K = 172: five blocks of 32 and one of 12). Each block shares one E8M0 scale
//   X = 2^(floor(log2(amax)) - 2),   amax = max |x| over the block,  2 = emax of E2M1,
// whose exponent is clamped to the E8M0 range [-127, 127]. Each element is stored as E2M1 (sign, magnitudes
// {0, 0.5, 1, 1.5, 2, 3, 4, 6}): x / X is rounded to the nearest E2M1 value, ties to the value with the even
// mantissa (0.25 -> 0, 0.75 -> 1, 1.25 -> 1, 1.75 -> 2, 2.5 -> 2, 3.5 -> 4, 5 -> 4), and saturates at ±6.
// The dequantized value is X · element; the sign is kept, so a negative value that rounds to 0 becomes -0.0.
// A block whose values are all zero (or -0.0) dequantizes to +0. A non-finite value in a block is an error
// (serq::Error), never a silent NaN.
#pragma once


#include "core/common/matrix.h"

namespace serq {

// Fake-quantizes n >= 1 values of one block from x into y (x == y allowed).
void mxfp4_fake_quant_block(const float* x, float* y, int n);

// Fake-quantizes every row of m in place, block by block along the columns. block_size < 1 is a serq::Error;
// errors on a block name its row and columns.
void mxfp4_fake_quant_rows(Matrix& m, int block_size = 32);

}  // namespace serq
