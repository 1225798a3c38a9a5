// The full-precision model a KL divergence is measured against, with the final hidden states it computed for each
// evaluated batch kept on the evaluating backend (up to a byte budget). A sweep scores the same windows in every run, so the full-precision
// decoder runs once per window and each later run pays only for the lm_head. The kept states are exactly those a
// new forward would give, so results do not depend on whether a batch was kept. A HiddenStateStore (files, in
// experiments/reference_state_files.h) keeps them across processes too: a batch found there is not computed again.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "core/common/matrix.h"
#include "core/model/model.h"
#include "core/model/resident_model.h"

namespace serq {

// Final hidden states of the reference model kept outside this process, by the batch's token ids and shape. It must
// hand back exactly what it was given for the same tokens, and only for states of the same model, code and kernels.
class HiddenStateStore {
 public:
  virtual ~HiddenStateStore() = default;
  // The (batch · seq) × hidden states stored for these tokens, or nullopt.
  virtual std::optional<Matrix> load(std::span<const int> tokens, int batch, int seq) = 0;
  virtual void save(std::span<const int> tokens, int batch, int seq, const Matrix& hidden) = 0;
};

class KldReference {
 public:
  // `model` (and `store`, if given) must outlive this object and stay unchanged.
  KldReference(const Model& model, std::int64_t budget_bytes, HiddenStateStore* store = nullptr);

  const Model& model() const { return model_; }
  // The full-precision model resident on `backend` (made on first use; a new backend drops what was kept).
  const ResidentModel& resident(Backend& backend);
  // forward_hidden(resident(backend), ids): kept on the backend from an earlier call with the same tokens, else
  // computed (and kept while the budget allows). `ids` are the tokens already on the backend. Valid until the next
  // call.
  const Tensor& hidden(Backend& backend, std::span<const int> tokens, const Tensor& ids, int batch, int seq);

  std::int64_t kept_batches() const { return static_cast<std::int64_t>(kept_.size()); }
  std::int64_t reused_batches() const { return reused_; }
  // Batches the reference model ran, and batches the store gave.
  std::int64_t computed_batches() const { return computed_; }
  std::int64_t stored_batches() const { return loaded_; }

 private:
  const Model& model_;
  HiddenStateStore* store_;
  std::int64_t budget_bytes_, kept_bytes_ = 0, reused_ = 0, computed_ = 0, loaded_ = 0;
  std::unique_ptr<ResidentModel> resident_;
  struct Kept {
    std::unique_ptr<Buffer> storage;  // its own, so that what is kept takes its bytes and no more
    Tensor hidden;
  };
  std::unique_ptr<Buffer> scratch_;   // on resident_'s backend
  std::map<std::string, Kept> kept_;  // by the batch's shape and token ids
  Tensor scratch_hidden_;             // the last batch that did not fit the budget
};

}  // namespace serq
