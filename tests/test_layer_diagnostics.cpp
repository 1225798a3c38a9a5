// Per-layer diagnostics on stories260K: errors against the method applied without quantization, checked against a
// dense computation on inputs captured by the test's own hook, ordered by bit-width, and for the references of every
// method against the full-precision logits.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>

#include "core/data/calibration_sampler.h"
#include "core/model/forward.h"
#include "core/quant/int_quant_reference.h"
#include "experiments/calibrate.h"
#include "experiments/layer_diagnostics.h"
#include "experiments/run_one.h"
#include "methods/registry.h"
#include "tests/model_fixtures.h"

using namespace serq;

namespace {

const Model& fp_model() { return test::stories_model("stories260K-hf"); }

// Two calibration windows of 64 tokens.
const std::vector<std::vector<int>>& windows() {
  static const auto samples =
      sample_calibration(test::tinystories("tinystories-calib"), 2, 64, CalibrationSampling::random, 0);
  return samples;
}

QuantParams int_params(int w_bits, int a_bits) {
  QuantParams params;
  params.weight = {w_bits, true, 32};
  params.activation = {a_bits, false, 32};
  return params;
}

// The diagnostics of `method_name` with `params`, calibrated on four windows of 64 tokens.
std::vector<LayerDiagnostics> diagnose(const std::string& method_name, const QuantParams& params) {
  const std::unique_ptr<Method> method = make_method(method_name);
  const Calibration calibration = calibrate(fp_model(), *method, params, test::tinystories("tinystories-calib"),
                                            {4, 64, 0});
  const Model reference = reference_model(fp_model(), *method, params, calibration);
  Model quantized = fp_model();
  method->quantize(quantized, params, calibration);
  std::vector<std::string> names;
  for (const QuantLinear* layer : layers_to_quantize(quantized, params)) names.push_back(layer->name);
  return layer_diagnostics(reference, quantized, names, windows());
}

// max |logits(model) − logits(fp)| / max |logits(fp)| over the first window.
double logit_distance_to_fp(const Model& model) {
  const std::vector<int>& tokens = windows()[0];
  const int seq = static_cast<int>(tokens.size());
  const Matrix expected = forward_logits(fp_model(), forward_hidden(fp_model(), tokens, 1, seq));
  const Matrix actual = forward_logits(model, forward_hidden(model, tokens, 1, seq));
  return (actual - expected).cwiseAbs().maxCoeff() / expected.cwiseAbs().maxCoeff();
}

// Records the input of one linear layer on every forward.
class InputCapture final : public LinearInputObserver {
 public:
  explicit InputCapture(std::string layer) : layer_(std::move(layer)) {}
  void observe(const QuantLinear& layer, const Tensor& input) override {
    if (layer.name == layer_) inputs.push_back(input.backend->download(input, "test"));
  }
  std::vector<Matrix> inputs;

 private:
  std::string layer_;
};

}  // namespace

TEST_CASE("rtn W4A4: every decoder linear gets an output error in (0, 1), its QSNR, and its storage") {
  const std::vector<LayerDiagnostics> layers = diagnose("rtn", int_params(4, 4));
  REQUIRE(layers.size() == 35);  // 5 layers × 7 linears; lm_head stays in full precision
  CHECK(layers.front().name == "layers.0.self_attn.q_proj");
  CHECK(layers.back().name == "layers.4.mlp.down_proj");
  for (const LayerDiagnostics& layer : layers) {
    INFO(layer.name << ": output " << layer.output_rel_error << ", weight " << layer.weight_rel_error);
    CHECK(layer.output_rel_error > 0.0);
    CHECK(layer.output_rel_error < 1.0);
    CHECK(layer.output_qsnr_db == Approx(-20.0 * std::log10(layer.output_rel_error)).epsilon(1e-12));
    CHECK(layer.weight_rel_error > 0.0);
    CHECK(layer.weight_rel_error < 1.0);
    // 4-bit codes plus a 16-bit scale per group of 32; down_proj's 172 inputs make 6 groups.
    const bool down = layer.name.ends_with("down_proj");
    CHECK(layer.bits_per_weight == Approx(down ? 4.0 + 6 * 16.0 / 172 : 4.0 + 2 * 16.0 / 64));
    CHECK(layer.extra_parameters == 0);
  }
}

TEST_CASE("rtn W4A16: a layer's errors equal a dense computation on inputs captured by the test's own hook") {
  const std::string name = "layers.2.mlp.down_proj";
  const std::vector<LayerDiagnostics> layers = diagnose("rtn", int_params(4, 16));
  const auto found = std::find_if(layers.begin(), layers.end(), [&](const auto& l) { return l.name == name; });
  REQUIRE(found != layers.end());

  InputCapture capture(name);
  for (const std::vector<int>& window : windows()) {
    forward_hidden(fp_model(), window, 1, static_cast<int>(window.size()), &capture);
  }
  REQUIRE(capture.inputs.size() == windows().size());
  const Matrix& weight = fp_model().layers[2].down_proj.weight;
  const Eigen::MatrixXd w = weight.cast<double>();
  const Eigen::MatrixXd w_hat = reference_int_fake_quant(weight, 4, true, 32, true).cast<double>();  // half scales
  double error = 0.0, reference = 0.0;
  for (const Matrix& input : capture.inputs) {
    const Eigen::MatrixXd x = input.cast<double>();
    error += (x * w_hat.transpose() - x * w.transpose()).squaredNorm();
    reference += (x * w.transpose()).squaredNorm();
  }
  const double expected = std::sqrt(error / reference);
  INFO("diagnostics " << found->output_rel_error << ", dense " << expected);
  CHECK(found->output_rel_error == Approx(expected).epsilon(1e-5));
  CHECK(found->weight_rel_error == Approx((w_hat - w).norm() / w.norm()).epsilon(1e-6));
}

TEST_CASE("rtn W8A8 has smaller errors than W4A4 on every layer") {
  const std::vector<LayerDiagnostics> w8 = diagnose("rtn", int_params(8, 8));
  const std::vector<LayerDiagnostics> w4 = diagnose("rtn", int_params(4, 4));
  REQUIRE(w8.size() == w4.size());
  for (std::size_t i = 0; i < w8.size(); ++i) {
    INFO(w8[i].name << ": W8A8 " << w8[i].output_rel_error << ", W4A4 " << w4[i].output_rel_error);
    CHECK(w8[i].output_rel_error < w4[i].output_rel_error);
    CHECK(w8[i].weight_rel_error < w4[i].weight_rel_error);
    CHECK(w8[i].output_qsnr_db > w4[i].output_qsnr_db);
  }
}

TEST_CASE("serq W4A16: a correction R on 64 channels lowers every layer's errors below r = 0 in the same basis") {
  QuantParams params = int_params(4, 16);
  params.rank = 0;
  const std::vector<LayerDiagnostics> plain = diagnose("serq", params);
  params.rank = 64;  // every input channel of the attention and gate/up layers, 64 of down_proj's 172
  const std::vector<LayerDiagnostics> corrected = diagnose("serq", params);
  REQUIRE(plain.size() == corrected.size());
  for (std::size_t i = 0; i < plain.size(); ++i) {
    INFO(plain[i].name << ": r=0 " << plain[i].output_rel_error << ", r=64 " << corrected[i].output_rel_error);
    CHECK(corrected[i].weight_rel_error < plain[i].weight_rel_error);
    CHECK(corrected[i].output_rel_error < plain[i].output_rel_error);
    // Where r = d_in the whole weight is quantized twice (R, then the residual): a far smaller error.
    if (!plain[i].name.ends_with("down_proj")) CHECK(corrected[i].output_rel_error < 0.25 * plain[i].output_rel_error);
    const std::int64_t d_out = plain[i].name.ends_with("k_proj") || plain[i].name.ends_with("v_proj") ? 32
                               : plain[i].name.find("mlp.gate") != std::string::npos ||
                                       plain[i].name.find("mlp.up") != std::string::npos
                                   ? 172
                                   : 64;
    CHECK(plain[i].extra_parameters == 0);
    CHECK(corrected[i].extra_parameters == d_out * 64);
  }
}

TEST_CASE("quarot W4A4: finite diagnostics, and its reference computes the full-precision logits") {
  const QuantParams params = int_params(4, 4);
  for (const LayerDiagnostics& layer : diagnose("quarot", params)) {
    INFO(layer.name);
    CHECK(std::isfinite(layer.output_rel_error));
    CHECK(std::isfinite(layer.output_qsnr_db));
    CHECK(std::isfinite(layer.weight_rel_error));
    CHECK(layer.output_rel_error > 0.0);
    CHECK(layer.output_rel_error < 1.0);
  }
  const Model reference = reference_model(fp_model(), *make_method("quarot"), params, Calibration{});
  CHECK(reference.layers[0].down_proj.input.rotation.enabled());  // the reference really is rotated
  CHECK(logit_distance_to_fp(reference) < 1e-4);
}

TEST_CASE("every method with quantization switched off is an exact transform of the full-precision model") {
  for (const std::string& name : method_names()) {
    const std::unique_ptr<Method> method = make_method(name);
    QuantParams params = int_params(4, 4);
    params.rank = 16;
    if (name == "gptq") params.weight_quantizer = WeightQuantizerKind::gptq;
    const Calibration calibration = calibrate(fp_model(), *method, params, test::tinystories("tinystories-calib"),
                                              {4, 64, 0});
    const double distance = logit_distance_to_fp(reference_model(fp_model(), *method, params, calibration));
    INFO(name << ": max logit difference / max |logit| = " << distance);
    CHECK(distance < 1e-4);
  }
}

TEST_CASE("a run records diagnostics only when something was quantized") {
  const auto dir = test::scratch_dir("layer_diagnostics_runs");
  std::ofstream(dir / "config.yaml") << "model:\n  path: " << test::asset("models/stories260K-hf").string()
                                     << "\nquant:\n  method: rtn\n  w_bits: 4\n  a_bits: 4\n  group_size: 32\n"
                                        "calib:\n  seq_len: 64\neval:\n  max_windows: 1\n  layer_error_samples: 1\n";
  AssetCache assets({});
  struct Case {
    std::vector<std::string> sets;
    std::size_t layers;
    std::string info;
  };
  const std::vector<Case> cases = {
      {{}, 35, "1 window of 64 tokens from tinystories-calib (calib.seed 0)"},
      {{"quant.method=fp"}, 0, "none: nothing quantized"},
      {{"quant.w_bits=16", "quant.a_bits=16"}, 0, "none: nothing quantized"},
      {{"eval.layer_error_samples=0"}, 0, "off"}};
  for (const Case& c : cases) {
    const ExperimentPlan plan = load_experiment(dir / "config.yaml", c.sets, method_catalog());
    const RunRecord record = execute_run(plan.runs.at(0), plan.experiment, assets);
    INFO(plan.runs[0].label() << " with " << c.sets.size() << " overrides");
    CHECK(record.layers.size() == c.layers);
    CHECK(record.info.at("layer_diagnostics") == c.info);
    CHECK((record.metrics.at("layer_diagnostics_seconds") > 0.0) == (c.layers > 0));
  }
}
