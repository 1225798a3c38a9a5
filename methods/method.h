// The method interface: a method is an offline transform of a full-precision Model into QuantLinear layers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/model/model.h"
#include "core/quant/int_quant.h"

namespace serq {

// What every method is asked for, resolved from the run config.
struct QuantParams {
  QuantSpec weight;               // bits 16 = keep weights in full precision
  QuantSpec activation;           // bits 16 = keep activations in full precision
  bool quantize_lm_head = false;  // PTQ papers keep the head in full precision
};

// What a method reports about the model it produced.
struct MethodReport {
  double bits_per_weight = 32.0;  // over the quantized linear layers, scales and corrections included
  std::int64_t quantized_weights = 0;
  std::int64_t extra_parameters = 0;  // e.g. correction factors
  double quantize_seconds = 0.0;
};

class Method {
 public:
  virtual ~Method() = default;
  virtual std::string name() const = 0;
  virtual std::string describe() const = 0;  // one line for --help and tables
  virtual MethodReport quantize(Model& model, const QuantParams& params) const = 0;
};

// The linear layers a method quantizes: every decoder linear, plus lm_head if asked.
std::vector<QuantLinear*> layers_to_quantize(Model& model, const QuantParams& params);

}  // namespace serq
