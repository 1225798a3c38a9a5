// The hidden states of calibration samples, kept on the model's backend while a layer-wise pipeline walks the layers
// (GPTQ's and QuaRot's protocol, serq's calibration): the samples' token ids go in once, each decoder layer is made
// resident when it is reached, and what comes out is what observers take (Backend::observe's statistics), never
// the states themselves.
#pragma once

#include <memory>
#include <vector>

#include "core/backend/backend.h"
#include "core/model/forward.h"
#include "core/model/model.h"

namespace serq {

class SampleStates {
 public:
  // Embeds each sample (its tokens, at most max_position_embeddings of them) on model.backend.
  SampleStates(const Model& model, const std::vector<std::vector<int>>& samples);

  // Runs decoder layer `index` of `model` (as it is now) over every sample, the observer seeing each linear's input.
  // With `advance` the states become the layer's outputs (the next layer's inputs); without, they stay.
  void run_layer(const Model& model, int index, LinearInputObserver* observer, bool advance);
  // Shows the observer lm_head's input for every sample: the final RMSNorm of the states.
  void observe_head(const Model& model, LinearInputObserver& observer);

 private:
  Backend& backend_;
  std::unique_ptr<Buffer> storage_, work_;  // the states; one sample's temporaries
  std::vector<Tensor> states_;
};

}  // namespace serq
