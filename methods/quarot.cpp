// `quarot`: rotates each linear in place (exact in full precision), then quantizes its activations and main
// weight. In one pass, rotating and quantizing one layer at a time keeps at most one carried GPTQ Hessian in memory;
// the prepare stages rotate only.
#include "methods/quarot.h"

#include <fmt/format.h>

#include <algorithm>
#include <unsupported/Eigen/KroneckerProduct>

#include "core/common/error.h"
#include "core/common/splitmix64.h"
#include "core/linear/orthogonal.h"
#include "methods/weight_quantizer.h"

namespace serq {
namespace {

// Streams of quant.seed: one for the residual rotation, one for the per-head rotation, two per decoder layer.
constexpr std::uint64_t kResidualStream = 0, kHeadStream = 1;
std::uint64_t down_stream(int layer) { return 2 + 2 * static_cast<std::uint64_t>(layer); }
std::uint64_t across_heads_stream(int layer) { return 3 + 2 * static_cast<std::uint64_t>(layer); }

// The rotation across the heads of o_proj's input, (G ⊗ I_head_dim) with G the online rotation of n_heads, in
// InputRotation form: a Hadamard over heads, with G's odd factor (n_heads not a power of two) widened by I_head_dim.
InputRotation across_heads(int n_heads, int head_dim, std::uint64_t seed) {
  const InputRotation heads = online_rotation(n_heads, seed);
  InputRotation rotation;
  rotation.hadamard_size = heads.hadamard_size;
  if (heads.factor.size() > 0) {
    rotation.factor = Eigen::kroneckerProduct(heads.factor, Matrix::Identity(head_dim, head_dim));
  }
  rotation.description = heads.description + " across heads";
  return rotation;
}

// Whether linear `id` produces the input of a group read through attention (v_proj), whose heads turn by P.
bool feeds_attention_output(LinearId id) {
  for (const InputGroupDesc& group : layer_input_groups_desc()) {
    if (group.through_attention && std::ranges::find(group.producers, id) != group.producers.end()) return true;
  }
  return false;
}

// Everything one run of the method shares: its inputs and the rotations common to all layers.
struct Rotations {
  const QuantParams& params;
  const Calibration& calibration;
  bool quantize_now;       // quantize each linear once rotated (one pass); false: rotate only (prepare)
  bool gptq;               // carry calibration Hessians through the offline rotations
  DenseRotation residual;  // Q (dim × dim) on the residual stream
  Matrix head;             // P (head_dim × head_dim) on each head of v's output and o's input
  std::string head_description;

  // The offline rotation of an RMSNorm reader's input, diag(1/γ)·Q (the raw input carried γ), for GPTQ.
  Eigen::MatrixXd norm_reader_basis(const Vector& gamma, const std::string& norm) const {
    SERQ_CHECK((gamma.array() != 0.0f).all(), "{}: γ has a zero channel, so GPTQ Hessians cannot be carried into "
               "the rotated basis; use quant.weight_quantizer rtn with quarot", norm);
    return gamma.cast<double>().cwiseInverse().asDiagonal() * residual.matrix.cast<double>();
  }

  // Quantizes a rotated layer. With GPTQ the Hessian H of its raw input becomes Mᵀ H M, M = `offline` the offline
  // rotation of that input (empty: none); quantize_main_weight applies the online part.
  // A layer quant.overrides skips keeps its exact rotations, unquantized.
  void quantize(QuantLinear& layer, const Eigen::MatrixXd& offline) const {
    if (!quantize_now) return;
    if (params.skips(layer.name)) {
      if (params.progress) params.progress->advance(1);
      return;
    }
    const QuantParams planned = params.for_layer(layer.name);
    layer.act_quant = planned.activation;
    const bool layer_gptq = planned.weight.enabled() && planned.weight_quantizer == WeightQuantizerKind::gptq;
    if (!gptq || !layer_gptq || offline.size() == 0) {
      quantize_main_weight(layer, planned, calibration);
      return;
    }
    Calibration carried;
    ChannelStats& stats = carried.stats[layer.name] = calibration.at(layer.name);
    stats.hessian = offline.transpose() * stats.hessian * offline;
    quantize_main_weight(layer, planned, carried);
  }

  // A reader of the residual stream after an RMSNorm: W ← W·diag(γ)·Q.
  void read_residual(QuantLinear& layer, const Vector& gamma, const std::string& norm) const {
    layer.weight = (layer.weight * gamma.asDiagonal()) * residual.matrix;
    layer.transform = fmt::format("{} γ fused; residual {}", norm, residual.description);
  }

  // A writer into the residual stream: W ← Qᵀ·W (and b ← Qᵀ·b), so its output lands in the rotated basis.
  void write_residual(QuantLinear& layer) const {
    layer.weight = residual.matrix.transpose() * layer.weight;
    if (layer.bias.size() > 0) layer.bias = residual.matrix.transpose() * layer.bias;
  }

  // v_proj: the output of each kv head times P, W ← (I ⊗ Pᵀ)·W (and its bias); attention carries it to o_proj's
  // input per head.
  void rotate_value_heads(QuantLinear& v) const {
    const Eigen::Index d = head.rows();
    for (Eigen::Index r = 0; r < v.weight.rows(); r += d) {
      v.weight.middleRows(r, d) = head.transpose() * v.weight.middleRows(r, d);
      if (v.bias.size() > 0) v.bias.segment(r, d) = head.transpose() * v.bias.segment(r, d);
    }
    v.transform += fmt::format("; {} per head on the output", head_description);
  }

  // o_proj: input per head in P's basis, W ← W·(I ⊗ P), then the online rotation R across heads, W ← W·R.
  void rotate_output_heads(QuantLinear& o, InputRotation across) const {
    const Eigen::Index d = head.rows();
    for (Eigen::Index c = 0; c < o.weight.cols(); c += d) {
      o.weight.middleCols(c, d) = o.weight.middleCols(c, d) * head;
    }
    across.apply(o.weight);
    o.transform = fmt::format("{} per head; online {}; residual {} on the output", head_description,
                              across.description, residual.description);
    o.input.rotation = std::move(across);
  }

  // Follows the input groups of core/model/architecture.h: an RMSNorm's readers read the rotated residual stream,
  // attention's value heads and o_proj's input turn by P per head (and R across heads online), the MLP's hidden
  // input turns online, and the linears that write the residual stream write it rotated.
  void rotate_layer(DecoderLayer& layer, int index, const ModelConfig& config) const {
    const Eigen::MatrixXd none;
    for (const InputGroupDesc& group : layer_input_groups_desc()) {
      if (group.norm) {
        const NormDesc& norm = norm_desc(*group.norm);
        const Vector& gamma = layer.norm(norm.id);
        const Eigen::MatrixXd basis =
            gptq ? norm_reader_basis(gamma, fmt::format("layers.{}.{}", index, norm.name)) : none;
        for (const LinearId id : group.readers) {
          read_residual(layer.linear(id), gamma, norm.name);
          if (feeds_attention_output(id)) rotate_value_heads(layer.linear(id));
          quantize(layer.linear(id), basis);
        }
        continue;
      }
      for (const LinearId id : group.readers) {
        QuantLinear& linear = layer.linear(id);
        if (linear_desc(id).writes_residual) write_residual(linear);
        if (group.through_attention) {
          rotate_output_heads(linear, across_heads(config.n_heads, config.head_dim(),
                                                   stream_seed(params.seed, across_heads_stream(index))));
          const Eigen::MatrixXd per_head =
              gptq ? Eigen::MatrixXd(Eigen::kroneckerProduct(Eigen::MatrixXd::Identity(config.n_heads, config.n_heads),
                                                             head.cast<double>()))
                   : none;
          quantize(linear, per_head);
        } else {
          InputRotation online =
              online_rotation(width(config, linear_desc(id).d_in), stream_seed(params.seed, down_stream(index)));
          online.apply(linear.weight);
          linear.transform =
              fmt::format("online {}; residual {} on the output", online.description, residual.description);
          linear.input.rotation = std::move(online);
          quantize(linear, none);  // its raw input is not rotated offline
        }
      }
    }
    for (const NormDesc& norm : layer_norms()) layer.norm(norm.id).setOnes();
  }
};

void check_unrotated(const Model& model) {
  for (const QuantLinear* layer : model.linears()) {
    SERQ_CHECK(layer->input.empty(), "{}: already has an input transform; quarot starts from the full-precision "
               "model", layer->name);
  }
}

// The rotations of a run, from quant.seed.
Rotations make_rotations(const ModelConfig& config, const QuantParams& params, const Calibration& calibration,
                         bool quantize_now) {
  const InputRotation per_head = online_rotation(config.head_dim(), stream_seed(params.seed, kHeadStream));
  return Rotations{params,
                   calibration,
                   quantize_now,
                   quantize_now && params.gptq_anywhere(),
                   residual_rotation(config.dim, stream_seed(params.seed, kResidualStream)),
                   per_head.dense(config.head_dim()),
                   per_head.description};
}

// lm_head reads the rotated residual stream (it is rotated even when kept in fp), and the final norm's γ is fused.
void rotate_head(Model& model, const Rotations& rotations) {
  const Eigen::MatrixXd basis = rotations.gptq && rotations.params.quantize_lm_head
                                    ? rotations.norm_reader_basis(model.final_norm, "final_norm")
                                    : Eigen::MatrixXd();
  restore_head_weight(model);
  rotations.read_residual(model.lm_head, model.final_norm, "final_norm");
  if (rotations.params.quantize_lm_head) rotations.quantize(model.lm_head, basis);
  model.final_norm.setOnes();
}

}  // namespace

// The stages rebuild the rotations from quant.seed each time (they are deterministic), so they carry no state.
void QuaRot::prepare_model(Model& model, const QuantParams& params, const Calibration& calibration) const {
  check_unrotated(model);
  model.embed = model.embed * make_rotations(model.config, params, calibration, false).residual.matrix;
}

void QuaRot::prepare_layer(Model& model, int index, const QuantParams& params, const Calibration& calibration) const {
  make_rotations(model.config, params, calibration, false)
      .rotate_layer(model.layers[static_cast<std::size_t>(index)], index, model.config);
}

void QuaRot::prepare_head(Model& model, const QuantParams& params, const Calibration& calibration) const {
  rotate_head(model, make_rotations(model.config, params, calibration, false));
}

void QuaRot::quantize_linear(QuantLinear& layer, const QuantParams& params, const Calibration& calibration) const {
  layer.act_quant = params.activation;
  quantize_main_weight(layer, params, calibration);
}

// One layer at a time, each linear quantized as soon as it is rotated, so that at most one carried GPTQ Hessian and
// one layer's floats exist at a time.
MethodReport QuaRot::quantize(Model& model, const QuantParams& params, const Calibration& calibration) const {
  const auto start = std::chrono::steady_clock::now();
  check_unrotated(model);
  const Rotations rotations = make_rotations(model.config, params, calibration, true);
  model.embed = model.embed * rotations.residual.matrix;
  for (int i = 0; i < model.config.n_layers; ++i) {
    DecoderLayer& layer = model.layers[static_cast<std::size_t>(i)];
    restore_layer_weights(layer);  // rotations edit float weights
    rotations.rotate_layer(layer, i, model.config);
    if (params.release_floats) release_layer_weights(layer);
    release_layer_pages(layer);
  }
  rotate_head(model, rotations);
  return summarize(layers_to_quantize(model, params), start);
}

}  // namespace serq
