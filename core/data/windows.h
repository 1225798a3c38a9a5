// Evaluation windows over a token stream: non-overlapping, each scoring its tokens 1..end given its own prefix.
#pragma once

#include <span>
#include <vector>

#include "core/data/token_stream.h"

namespace serq {

// Consecutive windows of seq_len tokens. A last, shorter window is kept if it has at least 2 tokens (one to score)
// and the stream's convention scores it (stream.partial_window).
// max_windows > 0 keeps only the first max_windows; 0 keeps all. The spans point into stream.tokens.
std::vector<std::span<const int>> eval_windows(const TokenStream& stream, int seq_len, int max_windows);

}  // namespace serq
