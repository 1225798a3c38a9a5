// Helpers shared by the methods.
#include "methods/method.h"

namespace serq {

std::vector<QuantLinear*> layers_to_quantize(Model& model, const QuantParams& params) {
  std::vector<QuantLinear*> layers = model.linears();
  if (!params.quantize_lm_head) layers.pop_back();  // lm_head is last in forward order
  return layers;
}

}  // namespace serq
