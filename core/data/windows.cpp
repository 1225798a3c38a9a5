// Splits a token stream into non-overlapping evaluation windows.
#include "core/data/windows.h"

#include "core/common/error.h"

namespace serq {

std::vector<std::span<const int>> eval_windows(const TokenStream& stream, int seq_len, int max_windows) {
  SERQ_CHECK(seq_len >= 2, "eval.seq_len: {} leaves no token to score; use 2 or more", seq_len);
  SERQ_CHECK(max_windows >= 0, "eval.max_windows: {} is negative; use 0 for all windows or a positive count",
             max_windows);
  const std::span<const int> tokens(stream.tokens);
  const std::size_t window = static_cast<std::size_t>(seq_len);
  std::vector<std::span<const int>> windows;
  const std::size_t least = stream.partial_window == PartialWindow::drop ? window : 2;
  for (std::size_t begin = 0; begin + least <= tokens.size(); begin += window) {
    if (max_windows > 0 && windows.size() == static_cast<std::size_t>(max_windows)) break;
    windows.push_back(tokens.subspan(begin, std::min(window, tokens.size() - begin)));
  }
  return windows;
}

}  // namespace serq
