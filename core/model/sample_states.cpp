// Calibration samples' hidden states on the backend (see sample_states.h).
#include "core/model/sample_states.h"

#include "core/common/error.h"
#include "core/model/resident_model.h"

namespace serq {

SampleStates::SampleStates(const Model& model, const std::vector<std::vector<int>>& samples)
    : backend_(*model.backend),
      storage_(std::make_unique<Buffer>(backend_)),
      work_(std::make_unique<Buffer>(backend_)) {
  const Tensor table =
      backend_.resident(model.embed.data(), model.embed.rows(), model.embed.cols(), *work_, "weights");
  for (const std::vector<int>& sample : samples) {
    SERQ_CHECK(sample.size() <= static_cast<std::size_t>(model.config.max_seq_len), "calibration: a sample of {} "
               "tokens exceeds max_position_embeddings = {}; use a shorter calib.seq_len", sample.size(),
               model.config.max_seq_len);
    Tensor state = storage_->alloc(static_cast<std::int64_t>(sample.size()), model.config.dim);
    backend_.embedding(table, token_tensor(model.config, *storage_, sample), state);
    states_.push_back(state);
  }
  work_->reset();
}

void SampleStates::run_layer(const Model& model, int index, LinearInputObserver* observer, bool advance) {
  const ResidentLayer layer(model.layers[static_cast<std::size_t>(index)], backend_);
  work_->reset();
  const Tensor frequencies = rope_frequency_tensor(model.config, *work_);
  Buffer scratch(backend_);  // one sample's temporaries at a time
  for (Tensor& state : states_) {
    scratch.reset();
    Tensor h = state;
    if (!advance) {  // a copy runs, the state stays
      h = scratch.alloc(state.rows, state.cols);
      backend_.copy(state, h);
    }
    LayerWorkspace workspace(model.config, scratch, state.rows);
    decoder_layer_forward(model, layer, frequencies, index, h, 1, static_cast<int>(state.rows), workspace,
                          nullptr, observer);
  }
}

void SampleStates::observe_head(const Model& model, LinearInputObserver& observer) {
  work_->reset();
  const Tensor gamma = backend_.resident(model.final_norm.data(), 1, model.final_norm.size(), *work_, "weights");
  Buffer scratch(backend_);
  for (const Tensor& state : states_) {
    scratch.reset();
    Tensor normed = scratch.alloc(state.rows, state.cols);
    backend_.rms_norm(state, gamma, model.config.rms_norm_eps, normed);
    observer.observe(model.lm_head, normed);
  }
}

}  // namespace serq
