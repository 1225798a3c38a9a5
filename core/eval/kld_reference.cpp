// KLD reference (see kld_reference.h): full-precision final hidden states by batch, computed once and kept on the
// backend.
#include "core/eval/kld_reference.h"

#include <cstring>

#include "core/common/error.h"
#include "core/model/forward.h"

namespace serq {

KldReference::KldReference(const Model& model, std::int64_t budget_bytes, HiddenStateStore* store)
    : model_(model), store_(store), budget_bytes_(budget_bytes) {}

const ResidentModel& KldReference::resident(Backend& backend) {
  if (!resident_ || &resident_->backend() != &backend) {
    kept_.clear();
    kept_bytes_ = 0;
    scratch_ = std::make_unique<Buffer>(backend);
    resident_ = std::make_unique<ResidentModel>(model_, backend);
  }
  return *resident_;
}

const Tensor& KldReference::hidden(Backend& backend, std::span<const int> tokens, const Tensor& ids, int batch,
                                   int seq) {
  SERQ_CHECK(tokens.size() == static_cast<std::size_t>(batch) * static_cast<std::size_t>(seq),
             "KLD reference: {} tokens are not {} windows of {}", tokens.size(), batch, seq);
  const ResidentModel& model = resident(backend);
  // The key is the token ids themselves (not a hash), so two batches can never be confused.
  std::string key(sizeof(int) * 2 + tokens.size_bytes(), '\0');
  std::memcpy(key.data(), &batch, sizeof(int));
  std::memcpy(key.data() + sizeof(int), &seq, sizeof(int));
  std::memcpy(key.data() + 2 * sizeof(int), tokens.data(), tokens.size_bytes());
  if (const auto found = kept_.find(key); found != kept_.end()) {
    ++reused_;
    return found->second.hidden;
  }
  scratch_->reset();
  const std::optional<Matrix> stored = store_ ? store_->load(tokens, batch, seq) : std::nullopt;
  Tensor states;
  if (stored) {
    states = backend.upload(*stored, *scratch_, "KLD reference states");
    ++loaded_;
  } else {
    states = forward_hidden(model, *scratch_, ids, batch, seq);
    ++computed_;
    if (store_) store_->save(tokens, batch, seq, backend.download(states, "KLD reference states"));
  }
  const auto bytes = static_cast<std::int64_t>(states.bytes() + key.size());
  if (kept_bytes_ + bytes > budget_bytes_) {
    scratch_hidden_ = states;
    return scratch_hidden_;
  }
  kept_bytes_ += bytes;
  Kept kept{std::make_unique<Buffer>(backend), {}};
  kept.hidden = kept.storage->alloc(states.rows, states.cols);
  backend.copy(states, kept.hidden);
  return kept_.emplace(std::move(key), std::move(kept)).first->second.hidden;
}

}  // namespace serq
