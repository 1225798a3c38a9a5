// The full-precision model a KL divergence is measured against, with the final hidden states it computed for each
// evaluated batch kept (up to a byte budget). A sweep scores the same windows in every run, so the full-precision
// decoder runs once per window and each later run pays only for the lm_head. The kept states are exactly those a
// new forward would give, so results do not depend on whether a batch was kept.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "core/common/matrix.h"
#include "core/model/model.h"

namespace serq {

class KldReference {
 public:
  // `model` must outlive this object and stay unchanged.
  KldReference(const Model& model, std::int64_t budget_bytes);

  const Model& model() const { return model_; }
  // forward_hidden(model(), tokens, batch, seq): kept from an earlier call with the same tokens, else computed
  // (and kept while the budget allows). Valid until the next call.
  const Matrix& hidden(std::span<const int> tokens, int batch, int seq);

  std::int64_t kept_batches() const { return static_cast<std::int64_t>(kept_.size()); }
  std::int64_t reused_batches() const { return reused_; }

 private:
  const Model& model_;
  std::int64_t budget_bytes_, kept_bytes_ = 0, reused_ = 0;
  std::map<std::string, Matrix> kept_;  // by the batch's shape and token ids
  Matrix scratch_;                      // the last batch that did not fit the budget
};

}  // namespace serq
