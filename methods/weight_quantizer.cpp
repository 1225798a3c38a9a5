// quantize_main_weight: RTN or GPTQ (with the layer's transformed input Hessian), packed as stored and dequantized.
#include "methods/weight_quantizer.h"

#include "core/common/error.h"

namespace serq {

namespace {

void quantize(QuantLinear& layer, const QuantParams& params, const Calibration& calibration) {
  const QuantSpec spec = stored_weight_spec(params.weight, params.half_scales);
  layer.weight_quant = spec;
  if (!spec.enabled()) return;
  if (params.weight_quantizer == WeightQuantizerKind::rtn) {
    try {
      layer.packed = PackedWeight::quantize(layer.weight, spec);  // equal to fake_quant_rows(weight, spec)
    } catch (const Error& e) {
      fail("{}: weight {}", layer.name, e.what());
    }
    layer.packed.dequantize(layer.weight);
    return;
  }
  const Eigen::MatrixXd& hessian = calibration.at(layer.name).hessian;
  SERQ_CHECK(hessian.rows() == layer.d_in() && hessian.cols() == layer.d_in(), "{}: the calibration Hessian is {}×{} "
             "but d_in = {} (a bug: calibrate() collects Hessians only when quant.weight_quantizer is gptq)",
             layer.name, hessian.rows(), hessian.cols(), layer.d_in());
  // Errors from GPTQ already start with the layer name.
  gptq_quantize(layer.weight, layer.input.transform_gram(hessian), spec, params.gptq, layer.name, &layer.packed);
}

}  // namespace

bool uses_gptq(const Method& method, const QuantParams& params) {
  return method.quantizes() && params.gptq_anywhere();
}

void quantize_main_weight(QuantLinear& layer, const QuantParams& params, const Calibration& calibration) {
  quantize(layer, params, calibration);
  if (params.progress) params.progress->advance(1);
}

}  // namespace serq
