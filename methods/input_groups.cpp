// Input groups of a model and per-channel input scaling (see input_groups.h).
#include "methods/input_groups.h"

#include "core/common/error.h"

namespace serq {

std::vector<InputGroup> layer_input_groups(DecoderLayer& l) {
  std::vector<InputGroup> groups;
  for (const InputGroupDesc& desc : layer_input_groups_desc()) {
    InputGroup& group = groups.emplace_back();
    for (const LinearId reader : desc.readers) group.push_back(&l.linear(reader));
  }
  return groups;
}

std::vector<InputGroup> input_groups(Model& model, const QuantParams& params) {
  std::vector<InputGroup> groups;
  for (DecoderLayer& l : model.layers) {
    for (InputGroup& group : layer_input_groups(l)) groups.push_back(std::move(group));
  }
  if (params.quantize_lm_head) groups.push_back({&model.lm_head});
  return groups;
}

Eigen::VectorXf group_abs_max(const InputGroup& group, const Calibration& calibration) {
  Eigen::VectorXf abs_max;
  for (const QuantLinear* layer : group) {
    const Eigen::VectorXf& observed = calibration.at(layer->name).abs_max;
    SERQ_CHECK(observed.size() == layer->d_in(),
               "{}: calibration abs_max has {} channels but the layer takes d_in = {}; calibrate this model again",
               layer->name, observed.size(), layer->d_in());
    abs_max = abs_max.size() == 0 ? observed : abs_max.cwiseMax(observed);
  }
  return abs_max;
}

void scale_input_channels(QuantLinear& layer, const Vector& scale) {
  layer.input.scale = scale;
  layer.weight.array().rowwise() *= scale.transpose().array();
}

}  // namespace serq
