// Layer-wise (sequential) GPTQ calibration on stories260K: against a plain reference that recomputes every layer's
// inputs from the embeddings through the layers already quantized; equal to one-pass calibration where the two
// protocols see the same inputs (layer 0, and RTN weights everywhere); different from it where they must be.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "core/calib/observers.h"
#include "core/data/calibration_sampler.h"
#include "core/data/windows.h"
#include "core/eval/perplexity.h"
#include "core/model/forward.h"
#include "core/quant/gptq.h"
#include "experiments/calibrate.h"
#include "methods/registry.h"
#include "methods/rtn.h"
#include "methods/sequential.h"
#include "methods/serq.h"
#include "tests/model_fixtures.h"

using namespace serq;

namespace {

QuantParams w4a4_gptq() {
  QuantParams params;
  params.weight = {4, true, 32};
  params.activation = {4, false, 32};
  params.weight_quantizer = WeightQuantizerKind::gptq;
  params.rank = 8;
  return params;
}

const std::vector<std::vector<int>>& samples() {
  static const auto s = sample_calibration(test::tinystories("tinystories-calib"), 8, 128,
                                           CalibrationSampling::random, 0);
  return s;
}

// Keeps the raw input Gram matrix of each linear it sees.
class Grams final : public LinearInputObserver {
 public:
  void observe(const QuantLinear& layer, const Tensor& input) override {
    ChannelSums& sums = all[layer.name];
    const auto d = static_cast<Eigen::Index>(input.cols);
    if (sums.tokens == 0) sums = {Eigen::VectorXf::Zero(d), Eigen::VectorXd::Zero(d), Eigen::MatrixXd::Zero(d, d)};
    input.backend->observe(input, sums);
    grams[layer.name] = sums.gram;
  }
  std::map<std::string, ChannelSums> all;
  std::map<std::string, Eigen::MatrixXd> grams;
};

// The protocol written out plainly: for layer i, run the whole model from the embeddings (layers before i already
// hold GPTQ weights, and no layer quantizes activations yet), take each linear's own input Gram matrix, and GPTQ its
// weight. Activation quantizers go on at the end.
Model plain_sequential_gptq(const Model& fp, const QuantParams& params) {
  Model model = fp;
  for (int i = 0; i < model.config.n_layers; ++i) {
    Grams grams;
    for (const std::vector<int>& sample : samples()) {
      Matrix h = embed_tokens(model, sample);
      for (int l = 0; l <= i; ++l) {
        decoder_layer_forward(model, l, h, 1, static_cast<int>(sample.size()), l == i ? &grams : nullptr);
      }
    }
    DecoderLayer& layer = model.layers[static_cast<std::size_t>(i)];
    for (QuantLinear* linear : {&layer.q_proj, &layer.k_proj, &layer.v_proj, &layer.o_proj, &layer.gate_proj,
                                &layer.up_proj, &layer.down_proj}) {
      linear->weight_quant = stored_weight_spec(params.weight);  // half scales, as the weight quantizer stores them
      gptq_quantize(linear->weight, grams.grams.at(linear->name), linear->weight_quant, params.gptq, linear->name);
    }
  }
  for (QuantLinear* linear : model.linears()) {
    if (linear->name != model.lm_head.name) linear->act_quant = params.activation;
  }
  return model;
}

double max_difference(const Model& a, const Model& b) {
  double most = 0.0;
  const auto la = a.linears(), lb = b.linears();
  for (std::size_t i = 0; i < la.size(); ++i) {
    most = std::max(most, static_cast<double>((la[i]->weight - lb[i]->weight).cwiseAbs().maxCoeff()));
  }
  return most;
}

double ppl(const Model& model) {
  return evaluate_perplexity(model, eval_windows(test::tinystories("tinystories-eval"), 512, 8), 8).ppl;
}

}  // namespace

TEST_CASE("sequential GPTQ equals a plain layer-by-layer reference on stories260K") {
  const Model& fp = test::stories_model("stories260K-hf");
  const QuantParams params = w4a4_gptq();
  Model sequential = fp;
  const MethodReport report = quantize_sequential(sequential, RoundToNearest(), params, Calibration{}, samples());
  const Model reference = plain_sequential_gptq(fp, params);
  CHECK(max_difference(sequential, reference) == 0.0);
  CHECK(report.quantized_weights == 5 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 172 * 64));
  for (const QuantLinear* layer : sequential.linears()) {
    if (layer->name == sequential.lm_head.name) continue;
    CHECK(layer->act_quant.bits == 4);
  }
  CHECK(ppl(sequential) == ppl(reference));
}

TEST_CASE("sequential and one-pass SERQ (GPTQ) agree where their inputs agree and differ from layer 1 on") {
  const Model& fp = test::stories_model("stories260K-hf");
  const QuantParams params = w4a4_gptq();
  const Calibration one_pass = calibrate(fp, Serq(), params, test::tinystories("tinystories-calib"), {8, 128, 0});
  Calibration activations = one_pass;
  for (auto& [name, stats] : activations.stats) stats.hessian.resize(0, 0);  // the layer-wise run observes its own
  Model a = fp, b = fp;
  Serq().quantize(a, params, one_pass);
  quantize_sequential(b, Serq(), params, activations, samples());
  for (const char* name : {"q_proj", "o_proj", "gate_proj", "down_proj"}) {
    INFO(name);
    const auto find = [&](Model& m, int l) {
      DecoderLayer& layer = m.layers[static_cast<std::size_t>(l)];
      const std::string n = name;
      return n == "q_proj" ? &layer.q_proj : n == "o_proj" ? &layer.o_proj : n == "gate_proj" ? &layer.gate_proj
                                                                                              : &layer.down_proj;
    };
    const auto differing = [&](int l) {
      return static_cast<double>((find(a, l)->weight.array() != find(b, l)->weight.array()).count()) /
             static_cast<double>(find(a, l)->weight.size());
    };
    // Layer 0's q/k/v read the same normalized embeddings in both protocols: the same Hessian, the same weights.
    // Its later linears read the unquantized layer 0 in both, but through SERQ's input transforms in the
    // layer-wise run, which changes float rounding: GPTQ's error feedback spreads a flipped rounding along its row
    // (13% of o_proj's weights, 26% of down_proj's). From layer 1 on, the inputs come from a quantized layer 0.
    if (std::string(name) == "q_proj") CHECK(differing(0) == 0.0);
    CHECK(differing(1) > 0.3);  // above what float rounding alone flips in layer 0 (26% at most)
  }
  const double one_pass_ppl = ppl(a), sequential_ppl = ppl(b), fp_ppl = ppl(fp);
  INFO("serq gptq w4a4: one-pass " << one_pass_ppl << ", sequential " << sequential_ppl << ", fp " << fp_ppl);
  CHECK(sequential_ppl > fp_ppl);
  CHECK(sequential_ppl < 1.2 * one_pass_ppl);
}

TEST_CASE("with RTN weights the layer-wise pipeline observes nothing and equals one-pass quantization") {
  const Model& fp = test::stories_model("stories260K-hf");
  QuantParams params = w4a4_gptq();
  params.weight_quantizer = WeightQuantizerKind::rtn;
  for (const char* name : {"serq", "quarot"}) {
    const std::unique_ptr<Method> method = make_method(name);
    const Calibration stats =
        method->needs_activation_stats()
            ? calibrate(fp, *method, params, test::tinystories("tinystories-calib"), {8, 128, 0})
            : Calibration{};
    Model a = fp, b = fp;
    method->quantize(a, params, stats);
    quantize_sequential(b, *method, params, stats, samples());
    INFO(method->name());
    CHECK(max_difference(a, b) == 0.0);
  }
}
