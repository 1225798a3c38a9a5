// KLD reference (see kld_reference.h): full-precision final hidden states by batch, computed once.
#include "core/eval/kld_reference.h"

#include <cstring>

#include "core/common/error.h"
#include "core/model/forward.h"

namespace serq {

KldReference::KldReference(const Model& model, std::int64_t budget_bytes)
    : model_(model), budget_bytes_(budget_bytes) {}

const Matrix& KldReference::hidden(std::span<const int> tokens, int batch, int seq) {
  SERQ_CHECK(tokens.size() == static_cast<std::size_t>(batch) * static_cast<std::size_t>(seq),
             "KLD reference: {} tokens are not {} windows of {}", tokens.size(), batch, seq);
  // The key is the token ids themselves (not a hash), so two batches can never be confused.
  std::string key(sizeof(int) * 2 + tokens.size_bytes(), '\0');
  std::memcpy(key.data(), &batch, sizeof(int));
  std::memcpy(key.data() + sizeof(int), &seq, sizeof(int));
  std::memcpy(key.data() + 2 * sizeof(int), tokens.data(), tokens.size_bytes());
  if (const auto found = kept_.find(key); found != kept_.end()) {
    ++reused_;
    return found->second;
  }
  Matrix states = forward_hidden(model_, tokens, batch, seq);
  const auto bytes = static_cast<std::int64_t>(states.size() * sizeof(float) + key.size());
  if (kept_bytes_ + bytes > budget_bytes_) {
    scratch_ = std::move(states);
    return scratch_;
  }
  kept_bytes_ += bytes;
  return kept_.emplace(std::move(key), std::move(states)).first->second;
}

}  // namespace serq
