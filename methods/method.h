// The method interface: a method is an offline transform of a full-precision Model into QuantLinear layers, given
// the calibration statistics it asked for.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/calib/observers.h"
#include "core/config/layer_overrides.h"
#include "core/common/progress.h"
#include "core/linear/truncated_svd.h"
#include "core/model/model.h"
#include "core/quant/gptq.h"
#include "core/quant/int_quant.h"

namespace serq {

enum class WeightQuantizerKind { rtn, gptq };
enum class SaliencyOrder { abs_max, mean_abs, act_weight };
// How serq orders input channels of equal saliency: lower channel index first (a stable sort), higher first, or in a
// random order drawn from quant.seed (the tie order of an unstable sort, such as the official code's torch argsort).
enum class SaliencyTies { first, last, seeded };

// What every method is asked for, resolved from the run config. The method-specific fields are read only by the
// methods that list their config key in Method::parameters().
struct QuantParams {
  QuantSpec weight;               // bits 16 = keep weights in full precision; format int or mxfp4
  QuantSpec activation;           // bits 16 = keep activations in full precision; same format as weight
  bool quantize_lm_head = false;  // PTQ papers keep the head in full precision
  WeightQuantizerKind weight_quantizer = WeightQuantizerKind::rtn;  // quant.weight_quantizer
  GptqOptions gptq;                                                 // gptq.*

  int rank = 0;                       // quant.rank: salient channels (serq) or factor rank (lorc, lqer, l2qer)
  double alpha = 0.5;                 // quant.alpha: SmoothQuant migration strength, in [0, 1]
  int factor_bits = 8;                // quant.factor_bits: A and B of lqer/l2qer (16 = full precision)
  bool requant_intermediate = true;   // quant.requant_intermediate: lqer/l2qer re-quantize Xq·Aᵀ per token
  bool paper_residual_order = false;  // quant.residual_order: serq "paper" (main = Q(W), R = Q(error)) vs "code"
  SaliencyOrder saliency = SaliencyOrder::abs_max;  // quant.saliency: serq's order of salient channels
  SaliencyTies saliency_ties = SaliencyTies::first;  // quant.saliency_ties: serq's order among equal scores
  bool half_scales = true;  // quant.scale_dtype: INT weight scales stored as IEEE half (true) or float32
  double flatten_alpha = 1.0;         // quant.flatten_alpha: serq's flattening s = max|x|^α / max|W|^(1−α)
  double flatten_percentile = 100.0;  // quant.flatten_percentile: serq's max|x| as this percentile of |x_j|
  SvdAlgorithm svd = SvdAlgorithm::randomized;  // quant.svd: the truncated SVD of lorc, lqer and l2qer
  std::uint64_t seed = 0;  // quant.seed: random rotations (quarot), SVD sketches (lorc, lqer, l2qer), tie order (serq)

  std::vector<LayerOverride> overrides;  // quant.overrides: per-layer rules, the first match wins
  std::map<std::string, int> layer_ranks;  // quant.rank_allocation's choice by layer name (methods/rank_budget.h);
                                           // a rule that sets rank wins over it

  // Whether a rule keeps `layer` in full precision (skip: true).
  bool skips(std::string_view layer) const;
  // These params as `layer` takes them: the first matching rule's settings over the global ones (a rule's
  // group_size sets the activation group too, unless it gives a_group_size). The copy has no rules.
  QuantParams for_layer(std::string_view layer) const;
  // These params with one rule's settings over the global ones.
  QuantParams with_rule(const LayerOverride& rule) const;
  // Whether some layer's main weight is rounded by GPTQ (the global setting or a rule), so calibration keeps Hessians.
  bool gptq_anywhere() const;

  bool release_floats = false;   // not a config key: a layer's floats are dropped once it is quantized (its stored
                                 // form holds it; evaluation dequantizes per layer or restores them), bounding memory
  Progress* progress = nullptr;  // not a config key: advanced once per main weight quantized (GPTQ on a 7B model
                                 // takes minutes), with layers_to_quantize(...).size() as its total; may be null
};

// Calibration statistics of every layer's input, on the full-precision model (core/calib/observers.h).
struct Calibration {
  std::map<std::string, ChannelStats> stats;  // by linear name; empty when the method needs none
  double seconds = 0.0;
  // The statistics of one layer; a serq::Error naming the layer when they were not collected.
  const ChannelStats& at(const std::string& layer) const;
};

// What a method reports about the model it produced.
struct MethodReport {
  double bits_per_weight = 16.0;  // over the quantized linear layers as stored, corrections included; FP counts 16
  std::int64_t quantized_weights = 0;
  std::int64_t extra_parameters = 0;  // e.g. correction factors
  double quantize_seconds = 0.0;
  std::vector<double> layer_seconds;  // per decoder layer, where a layer-wise pipeline measured them
};

class Method {
 public:
  virtual ~Method() = default;
  virtual std::string name() const = 0;
  virtual std::string describe() const = 0;  // one line for --help and tables
  // The method-specific config keys it reads, e.g. {"quant.rank"}; setting one for a method that does not list it
  // is a config error.
  virtual std::vector<std::string> parameters() const { return {}; }
  // Whether quantize() reads per-channel activation statistics (abs-max, mean |x|) from the calibration.
  virtual bool needs_activation_stats() const { return false; }
  // Whether the method quantizes weights at all (fp does not), so quant.weight_quantizer applies to it.
  virtual bool quantizes() const { return true; }
  // The largest quant.rank a layer takes (serq: d_in; lorc, lqer, l2qer: min(d_in, d_out)); 0 for a method without
  // a rank. quant.rank_allocation chooses each layer's rank up to it.
  virtual int max_rank(const QuantLinear&) const { return 0; }
  // Whether its main weights are always quantized by GPTQ, whatever quant.weight_quantizer says (the gptq method).
  virtual bool requires_gptq() const { return false; }

  // The method in stages, so that a pipeline can widen, transform and quantize one decoder layer at a time and then
  // give its floats back (methods/sequential.h calibrates each layer on what the layers quantized before it give):
  // - prepare_model(): checks the method's parameters against every layer's shape and the calibration, so a bad
  //   value leaves the model as it was, and transforms what lies outside the decoder layers (QuaRot's embedding).
  // - prepare_layer(): the exact transforms of decoder layer `index` (rotations, scales, permutations); its float
  //   weights are present.
  // - prepare_head(): those of lm_head, its floats present.
  //   Nothing is quantized, and the full-precision outputs are unchanged once every stage has run.
  // - quantize_linear(): quantizes one linear of the prepared model: its main weight by the run's weight quantizer
  //   (GPTQ reads the Hessian of the inputs this layer is given in the prepared model), its activation quantizer
  //   and its correction.
  virtual void prepare_model(Model& model, const QuantParams& params, const Calibration& calibration) const;
  virtual void prepare_layer(Model& model, int index, const QuantParams& params, const Calibration& calibration) const;
  virtual void prepare_head(Model& model, const QuantParams& params, const Calibration& calibration) const;
  virtual void quantize_linear(QuantLinear& layer, const QuantParams& params, const Calibration& calibration) const = 0;
  // Every stage of preparation in order, on a model whose floats are all present.
  void prepare(Model& model, const QuantParams& params, const Calibration& calibration) const;
  // The one-pass form, one decoder layer at a time: widen its weights, prepare_layer(), quantize_linear() of each of
  // its linears, give its floats back (release_layer_weights, with params.release_floats; else only its file pages);
  // then lm_head; and the report. Statistics, Hessians included, are those of the full-precision model. Layers do
  // not depend on each other here, so this equals prepare() followed by quantize_linear() of every layer.
  virtual MethodReport quantize(Model& model, const QuantParams& params, const Calibration& calibration) const;
};

// Quantizes one linear as the per-layer plan says: a skipped layer stays in full precision (its exact transforms
// kept), any other is method.quantize_linear() with params.for_layer(its name). Every pipeline quantizes through it.
void quantize_planned(const Method& method, QuantLinear& layer, const QuantParams& params,
                      const Calibration& calibration);

// The linear layers a method quantizes: every decoder linear, plus lm_head if asked.
std::vector<QuantLinear*> layers_to_quantize(Model& model, const QuantParams& params);

// The report of quantized layers: bits per weight from QuantLinear::storage_bits, their weights and correction
// parameters, and the time since `start`.
MethodReport summarize(const std::vector<QuantLinear*>& layers, std::chrono::steady_clock::time_point start);

}  // namespace serq
