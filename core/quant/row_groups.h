// Walks every row of a matrix in groups of consecutive columns (the last group shorter where the size does not
// divide the row), in place, and prefixes a serq::Error from one group with its row and columns. Shared by the
// number formats (INT groups, MX blocks).
#pragma once

#include <algorithm>

#include "core/common/error.h"
#include "core/common/matrix.h"

namespace serq {

// Calls quantize_group(float* values, int n) for each group of `group` columns (1 ≤ group ≤ m.cols()).
template <class QuantizeGroup>
void for_each_row_group(Matrix& m, Eigen::Index group, QuantizeGroup&& quantize_group) {
  const Eigen::Index cols = m.cols();
  Eigen::Index row = 0, start = 0;
  try {
    for (row = 0; row < m.rows(); ++row) {
      float* data = m.row(row).data();
      for (start = 0; start < cols; start += group) {
        quantize_group(data + start, static_cast<int>(std::min(group, cols - start)));
      }
    }
  } catch (const Error& e) {
    fail("row {}, columns {}..{}: {}", row, start, std::min(start + group, cols) - 1, e.what());
  }
}

}  // namespace serq
