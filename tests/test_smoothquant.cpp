// SmoothQuant on stories260K against an independent dense formula: the smoothing scale per input group, the
// unchanged layer outputs before quantization, the α range check, and a W4A4 run end to end.
#include <catch2/catch.hpp>

#include <cmath>
#include <initializer_list>

#include "core/data/windows.h"
#include "core/eval/perplexity.h"
#include "experiments/calibrate.h"
#include "methods/rtn.h"
#include "methods/smoothquant.h"
#include "tests/model_fixtures.h"
#include "tests/support/random.h"

using namespace serq;

namespace {

using test::relative_error;

Calibration few_samples(const Model& model, const QuantParams& params) {
  return calibrate(model, SmoothQuant(), params, test::tinystories("tinystories-calib"), {4, 64, 0});
}

// s_j = a_j^α / max_{layers, rows} |W_ij|^(1−α), 1 where a_j or the column maximum is 0; written out per element.
Eigen::VectorXd expected_scale(std::initializer_list<const QuantLinear*> group, const Eigen::VectorXf& abs_max,
                               double alpha) {
  Eigen::VectorXd s(abs_max.size());
  for (Eigen::Index j = 0; j < abs_max.size(); ++j) {
    double w = 0.0;
    for (const QuantLinear* layer : group) {
      for (Eigen::Index i = 0; i < layer->weight.rows(); ++i) w = std::max(w, std::abs(double(layer->weight(i, j))));
    }
    const double a = abs_max[j];
    s[j] = (a == 0.0 || w == 0.0) ? 1.0 : std::pow(a, alpha) / std::pow(w, 1.0 - alpha);
  }
  return s;
}

}  // namespace

TEST_CASE("SmoothQuant scales follow the formula per group and keep every output before quantization") {
  const Model original = [] {
    Model m = test::stories_model("stories260K-hf");
    for (QuantLinear* p : {&m.layers[0].q_proj, &m.layers[0].k_proj, &m.layers[0].v_proj}) p->weight.col(7).setZero();
    return m;
  }();
  Model model = original;
  QuantParams params;  // weights and activations in full precision
  params.alpha = 0.5;
  Calibration calibration = few_samples(model, params);
  for (const char* name : {"layers.0.self_attn.q_proj", "layers.0.self_attn.k_proj", "layers.0.self_attn.v_proj"})
    calibration.stats.at(name).abs_max[3] = 0.0f;  // a channel never seen non-zero
  SmoothQuant().quantize(model, params, calibration);

  const DecoderLayer& before = original.layers[0];
  const DecoderLayer& after = model.layers[0];
  const auto abs_max = [&](const char* name) { return calibration.stats.at(name).abs_max; };
  const Eigen::VectorXd s_qkv =
      expected_scale({&before.q_proj, &before.k_proj, &before.v_proj}, abs_max("layers.0.self_attn.q_proj"), 0.5);
  CHECK(s_qkv[3] == 1.0);
  CHECK(s_qkv[7] == 1.0);
  CHECK((after.q_proj.input.scale.cast<double>() - s_qkv).cwiseAbs().maxCoeff() < 1e-6 * s_qkv.maxCoeff());
  CHECK(after.k_proj.input.scale == after.q_proj.input.scale);
  CHECK(after.v_proj.input.scale == after.q_proj.input.scale);
  const Eigen::VectorXd s_ffn =
      expected_scale({&before.gate_proj, &before.up_proj}, abs_max("layers.0.mlp.gate_proj"), 0.5);
  CHECK((after.gate_proj.input.scale.cast<double>() - s_ffn).cwiseAbs().maxCoeff() < 1e-6 * s_ffn.maxCoeff());
  CHECK(after.up_proj.input.scale == after.gate_proj.input.scale);
  const Eigen::VectorXd s_down = expected_scale({&before.down_proj}, abs_max("layers.0.mlp.down_proj"), 0.5);
  CHECK((after.down_proj.input.scale.cast<double>() - s_down).cwiseAbs().maxCoeff() < 1e-6 * s_down.maxCoeff());
  CHECK(after.o_proj.transform == "smoothquant alpha=0.5");
  CHECK(model.lm_head.input.empty());

  const auto layers_after = model.linears();
  const auto layers_before = original.linears();
  for (std::size_t i = 0; i < layers_after.size(); ++i) {
    const Matrix x = Matrix::Random(6, layers_before[i]->d_in());
    const Matrix y = run_linear(cpu_backend(), *layers_after[i], x);
    const Matrix want = x * layers_before[i]->weight.transpose();
    INFO(layers_after[i]->name);
    CHECK(relative_error(y, want) < 1e-5);
  }
}

TEST_CASE("SmoothQuant refuses a migration strength outside 0..1") {
  Model model = test::stories_model("stories260K-hf");
  QuantParams params;
  const Calibration calibration = few_samples(model, params);
  for (double alpha : {-0.1, 1.5}) {
    params.alpha = alpha;
    CHECK_THROWS_WITH(SmoothQuant().quantize(model, params, calibration), Catch::Contains("quant.alpha"));
  }
  CHECK(model.layers[0].q_proj.input.empty());  // refused before touching the model
}

TEST_CASE("SmoothQuant W4A4 on stories260K lands between full precision and RTN") {
  const Model& fp = test::stories_model("stories260K-hf");
  QuantParams params;
  params.weight = {4, true, 32};
  params.activation = {4, false, 32};
  params.alpha = 0.5;
  const auto windows = eval_windows(test::tinystories("tinystories-eval"), 512, 8);
  Model smooth = fp;
  const MethodReport report = SmoothQuant().quantize(smooth, params, few_samples(fp, params));
  Model rtn = fp;
  RoundToNearest().quantize(rtn, params, Calibration{});
  const double ppl_smooth = evaluate_perplexity(smooth, windows, 8).ppl;
  const double ppl_rtn = evaluate_perplexity(rtn, windows, 8).ppl;
  const double ppl_fp = evaluate_perplexity(fp, windows, 8).ppl;
  INFO("smoothquant W4A4 (8 windows): ppl " << ppl_smooth << ", rtn " << ppl_rtn << ", fp " << ppl_fp);
  CHECK(ppl_smooth > ppl_fp);
  CHECK(ppl_smooth < ppl_rtn);  // 5.72 against 6.04: migrating the activation range to the weights helps at W4A4
  CHECK(report.bits_per_weight > 4.5);
  CHECK(report.bits_per_weight < 4.6);
  CHECK(smooth.layers[2].down_proj.act_quant.bits == 4);
}
