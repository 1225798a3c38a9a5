// GPTQ: against an independent, unblocked OBS reference on an explicit inverse Hessian (written here), against RTN
// on a real stories260K layer and Hessian, its errors, MXFP4 grids, dead channels, and the gptq method end to end.
#include <catch2/catch.hpp>

#include <Eigen/Eigenvalues>
#include <Eigen/LU>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/common/error.h"
#include "core/data/windows.h"
#include "core/eval/perplexity.h"
#include "core/quant/gptq.h"
#include "core/quant/int_quant_reference.h"
#include "experiments/calibrate.h"
#include "methods/gptq.h"
#include "methods/rtn.h"
#include "methods/weight_quantizer.h"
#include "tests/model_fixtures.h"

using namespace serq;

namespace {

Matrix random_weight(int rows, int cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  Matrix w(rows, cols);
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = normal(rng);
  return w;
}

// XᵀX of correlated tokens whose channels have scales spread over 0.1..3, so act_order really reorders.
Eigen::MatrixXd random_hessian(int cols, int tokens, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform(0.1, 3.0);
  Eigen::MatrixXd x(tokens, cols);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
  Eigen::MatrixXd mix = Eigen::MatrixXd::Identity(cols, cols);
  for (int i = 0; i < cols; ++i) {
    mix(i, (i + 1) % cols) = 0.6;
    mix(i, (i + 7) % cols) = -0.3;
  }
  x = x * mix;
  for (int j = 0; j < cols; ++j) x.col(j) *= uniform(rng);
  return x.transpose() * x;
}

// Channels by decreasing diag(H), ties in channel order.
std::vector<int> decreasing_diagonal(const Eigen::MatrixXd& h) {
  std::vector<int> order(static_cast<std::size_t>(h.rows()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return h(a, a) > h(b, b); });
  return order;
}

// The OBS update of the paper, one column at a time on an explicit inverse Hessian: quantize column j, spread its
// error w_rest -= (w_j − q_j) / [H⁻¹]_jj · [H⁻¹]_j,rest over the columns not yet quantized, then eliminate j from
// H⁻¹. Groups are fitted on the current values when the first column of a group comes up, or with act_order all
// up front on the original weights (static groups).
Matrix reference_gptq(const Matrix& w, const Eigen::MatrixXd& h, int bits, bool symmetric, int group_size,
                      double damp, bool act_order) {
  const int rows = static_cast<int>(w.rows()), cols = static_cast<int>(w.cols());
  Eigen::MatrixXd damped = h;
  damped.diagonal().array() += damp * h.diagonal().mean();
  Eigen::MatrixXd inverse = damped.inverse();
  std::vector<int> order(static_cast<std::size_t>(cols));
  std::iota(order.begin(), order.end(), 0);
  if (act_order) order = decreasing_diagonal(h);

  const int group = group_size > 0 ? group_size : cols;
  const int groups = (cols + group - 1) / group;
  std::vector<ReferenceIntGrid> quantizers(static_cast<std::size_t>(rows * groups));
  auto fit = [&](int g, const Eigen::MatrixXd& source) {
    const int n = std::min(group, cols - g * group);
    for (int r = 0; r < rows; ++r) {
      std::vector<float> values;
      for (int c = g * group; c < g * group + n; ++c) values.push_back(static_cast<float>(source(r, c)));
      quantizers[static_cast<std::size_t>(r * groups + g)] = ReferenceIntGrid::fit(values, bits, symmetric);
    }
  };
  Eigen::MatrixXd current = w.cast<double>();
  if (act_order) {
    for (int g = 0; g < groups; ++g) fit(g, current);
  }
  std::vector<bool> done(static_cast<std::size_t>(cols), false);
  Matrix q(rows, cols);
  for (int j : order) {
    if (!act_order && j % group == 0) fit(j / group, current);
    for (int r = 0; r < rows; ++r) {
      const ReferenceIntGrid& quantizer = quantizers[static_cast<std::size_t>(r * groups + j / group)];
      q(r, j) = quantizer.fake_quant(static_cast<float>(current(r, j)));
    }
    const Eigen::VectorXd error = (current.col(j) - q.col(j).cast<double>()) / inverse(j, j);
    done[static_cast<std::size_t>(j)] = true;
    for (int k = 0; k < cols; ++k) {
      if (!done[static_cast<std::size_t>(k)]) current.col(k) -= error * inverse(j, k);
    }
    const Eigen::MatrixXd elimination = inverse.col(j) * inverse.row(j) / inverse(j, j);
    inverse -= elimination;
  }
  return q;
}

double relative_difference(const Matrix& a, const Matrix& b) { return (a - b).norm() / b.norm(); }

// The layer-output error tr((W − Q) H (W − Q)ᵀ).
double output_error(const Matrix& w, const Matrix& q, const Eigen::MatrixXd& h) {
  const Eigen::MatrixXd d = (w - q).cast<double>();
  return (d * h * d.transpose()).trace();
}

Matrix gptq(Matrix w, const Eigen::MatrixXd& h, const QuantSpec& spec, const GptqOptions& options) {
  gptq_quantize(w, h, spec, options, "test.layer");
  return w;
}

Matrix rtn(Matrix w, const QuantSpec& spec) {
  fake_quant_rows(w, spec);
  return w;
}

struct IntCase {
  int bits;
  bool symmetric;
  int group_size;
};

// 150 columns with groups of 20: groups start inside blocks of 3 and straddle the block boundary at 128, and the
// last group is short.
const IntCase kIntCases[] = {{4, true, 0}, {4, true, 20}, {3, false, 0}, {3, false, 20}};

void check_against_reference(bool act_order) {
  const Matrix w = random_weight(24, 150, 1);
  const Eigen::MatrixXd h = random_hessian(150, 400, 2);
  for (const IntCase& c : kIntCases) {
    const Matrix expected = reference_gptq(w, h, c.bits, c.symmetric, c.group_size, 0.01, act_order);
    for (int block : {1, 3, 128}) {
      const Matrix q = gptq(w, h, {c.bits, c.symmetric, c.group_size}, {0.01, block, act_order});
      INFO("bits " << c.bits << (c.symmetric ? " sym" : " asym") << ", group " << c.group_size << ", block " << block);
      CHECK(relative_difference(q, expected) < 1e-4);
    }
    // The update matters: rounding alone lands far from GPTQ.
    CHECK(relative_difference(rtn(w, {c.bits, c.symmetric, c.group_size}), expected) > 0.05);
  }
}

Calibration stories_calibration(const QuantParams& params, int samples) {
  QuantParams with_hessians = params;
  with_hessians.weight_quantizer = WeightQuantizerKind::gptq;
  return calibrate(test::stories_model("stories260K-hf"), RoundToNearest(), with_hessians,
                   test::tinystories("tinystories-calib"), {samples, 256, 0});
}

}  // namespace

TEST_CASE("GPTQ equals the unblocked OBS reference for blocks of 1, 3 and 128, sym and asym, with and without groups") {
  check_against_reference(false);
}

TEST_CASE("GPTQ with act_order equals the OBS reference run in decreasing diag(H) order with static groups") {
  const Eigen::MatrixXd h = random_hessian(150, 400, 2);
  const std::vector<int> order = decreasing_diagonal(h);
  REQUIRE_FALSE(std::is_sorted(order.begin(), order.end()));  // the order really is a permutation
  check_against_reference(true);
}

TEST_CASE("GPTQ with a diagonal Hessian is RTN, for INT and MXFP4 formats") {
  const Matrix w = random_weight(16, 150, 3);
  // Increasing, so act_order visits the channels backwards.
  const Eigen::MatrixXd h = Eigen::VectorXd::LinSpaced(150, 0.5, 5.0).asDiagonal();
  const QuantSpec specs[] = {{4, true, 0}, {4, true, 32}, {3, false, 20}, {8, false, 0},
                             {4, true, 32, NumberFormat::integer, true}, {3, false, 20, NumberFormat::integer, true},
                             {4, true, 32, NumberFormat::mxfp4}, {4, true, 20, NumberFormat::mxfp4}};
  for (const QuantSpec& spec : specs) {
    for (bool act_order : {false, true}) {
      INFO(spec.describe() << (spec.f16_scales ? " half scales" : "") << ", act_order " << act_order);
      CHECK((gptq(w, h, spec, {0.01, 7, act_order}) - rtn(w, spec)).cwiseAbs().maxCoeff() == 0.0f);
    }
  }
}

TEST_CASE("MXFP4 GPTQ values are E2M1 grid points times a power-of-two scale per block") {
  Matrix w = random_weight(32, 150, 4);
  for (Eigen::Index c = 0; c < w.cols(); ++c) w.col(c) *= std::pow(2.0f, static_cast<float>(c % 9) - 4.0f);
  const Eigen::MatrixXd h = random_hessian(150, 400, 5);
  const QuantSpec spec{4, true, 32, NumberFormat::mxfp4};
  for (bool act_order : {false, true}) {
    const Matrix q = gptq(w, h, spec, {0.01, 128, act_order});
    const float grid[] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    auto on_grid = [&](float v) { return std::find(std::begin(grid), std::end(grid), std::abs(v)) != std::end(grid); };
    int off_grid_blocks = 0;
    for (Eigen::Index r = 0; r < q.rows(); ++r) {
      for (Eigen::Index c0 = 0; c0 < q.cols(); c0 += 32) {
        const auto block = q.row(r).segment(c0, std::min<Eigen::Index>(32, q.cols() - c0));
        bool found = false;
        for (int e = -40; e <= 40 && !found; ++e) {
          found = std::all_of(block.begin(), block.end(), [&](float v) { return on_grid(std::ldexp(v, -e)); });
        }
        if (!found) ++off_grid_blocks;
      }
    }
    INFO("act_order " << act_order);
    CHECK(off_grid_blocks == 0);
    CHECK(output_error(w, q, h) < 0.8 * output_error(w, rtn(w, spec), h));
  }
}

TEST_CASE("GPTQ lowers RTN's layer-output error on stories260K layers with a real calibration Hessian") {
  QuantParams params;
  params.weight = {4, true, 32};
  const Calibration calibration = stories_calibration(params, 32);
  const Model& model = test::stories_model("stories260K-hf");
  for (const QuantLinear* layer : {&model.layers[0].q_proj, &model.layers[0].v_proj, &model.layers[2].up_proj,
                                   &model.layers[4].down_proj}) {
    const Eigen::MatrixXd& h = calibration.at(layer->name).hessian;
    QuantLinear by_gptq = *layer, by_rtn = *layer;
    QuantParams gptq_params = params;
    gptq_params.weight_quantizer = WeightQuantizerKind::gptq;
    quantize_main_weight(by_gptq, gptq_params, calibration);
    quantize_main_weight(by_rtn, params, calibration);
    const double gptq_error = output_error(layer->weight, by_gptq.weight, h);
    const double rtn_error = output_error(layer->weight, by_rtn.weight, h);
    INFO(layer->name << ": tr((W-Q)H(W-Q)^T) gptq " << gptq_error << ", rtn " << rtn_error);
    CHECK(gptq_error < 0.9 * rtn_error);
  }
}

TEST_CASE("a Hessian that is not positive definite after dampening is an error naming the layer and gptq.damp") {
  const Matrix w = random_weight(8, 16, 6);
  const QuantSpec spec{4, true, 0};
  const auto names_layer = Catch::StartsWith("test.layer: ");
  const auto names_damp = Catch::Contains("gptq.damp");
  CHECK_THROWS_WITH(gptq(w, -Eigen::MatrixXd::Identity(16, 16), spec, {}), names_layer && names_damp);

  // Rank 4 of 16, shifted down: 12 eigenvalues of -1e-3. Without damp that fails; damp 0.01 · mean diag covers it.
  const Eigen::MatrixXd x = random_weight(4, 16, 7).cast<double>();
  Eigen::MatrixXd h = x.transpose() * x;
  h.diagonal().array() -= 1e-3;
  REQUIRE(Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(h).eigenvalues().minCoeff() < 0.0);
  CHECK_THROWS_WITH(gptq(w, h, spec, {0.0, 128, false}), names_layer && names_damp);
  CHECK(gptq(w, h, spec, {0.01, 128, false}).allFinite());
}

TEST_CASE("a NaN or wrongly shaped Hessian, a NaN weight and bad options are errors naming the layer") {
  const Matrix w = random_weight(8, 16, 8);
  const Eigen::MatrixXd h = random_hessian(16, 64, 9);
  const QuantSpec spec{4, true, 0};
  Eigen::MatrixXd with_nan = h;
  with_nan(3, 5) = with_nan(5, 3) = std::nan("");
  CHECK_THROWS_WITH(gptq(w, with_nan, spec, {}), Catch::StartsWith("test.layer: ") && Catch::Contains("NaN"));
  CHECK_THROWS_WITH(gptq(w, random_hessian(15, 64, 9), spec, {}),
                    Catch::StartsWith("test.layer: ") && Catch::Contains("15×15") && Catch::Contains("16 input"));
  Matrix nan_weight = w;
  nan_weight(2, 2) = std::nanf("");
  CHECK_THROWS_WITH(gptq(nan_weight, h, spec, {}), Catch::StartsWith("test.layer: the weight has NaN"));
  CHECK_THROWS_WITH(gptq(w, h, spec, {-0.1, 128, false}), Catch::StartsWith("test.layer: gptq.damp -0.1"));
  CHECK_THROWS_WITH(gptq(w, h, spec, {0.01, 0, false}), Catch::StartsWith("test.layer: gptq.block_size 0"));
}

TEST_CASE("quantize_main_weight names the layer once in a GPTQ error and asks for a Hessian it lacks") {
  QuantLinear layer;
  layer.name = "layers.0.mlp.up_proj";
  layer.weight = random_weight(8, 16, 10);
  QuantParams params;
  params.weight = {4, true, 0};
  params.weight_quantizer = WeightQuantizerKind::gptq;
  Calibration calibration;
  calibration.stats[layer.name].hessian = -Eigen::MatrixXd::Identity(16, 16);
  std::string message;
  try {
    quantize_main_weight(layer, params, calibration);
  } catch (const Error& e) {
    message = e.what();
  }
  INFO(message);
  CHECK(message.rfind("layers.0.mlp.up_proj: ", 0) == 0);
  CHECK(message.find("layers.0.mlp.up_proj", 1) == std::string::npos);
  CHECK(message.find("gptq.damp") != std::string::npos);

  calibration.stats[layer.name].hessian.resize(0, 0);  // statistics collected without a Hessian
  CHECK_THROWS_WITH(quantize_main_weight(layer, params, calibration),
                    Catch::StartsWith("layers.0.mlp.up_proj: the calibration Hessian is 0×0"));
}

TEST_CASE("a dead input channel (H_jj = 0) is rounded as it is and exchanges no error with the others") {
  const Matrix w = random_weight(12, 40, 11);
  Eigen::MatrixXd h = random_hessian(40, 200, 12);
  h.row(5).setZero();
  h.col(5).setZero();
  // The reference, with the dead channel given a positive diagonal entry: that decouples it in H⁻¹.
  Eigen::MatrixXd decoupled = h;
  decoupled(5, 5) = 1.0;
  for (const IntCase& c : {IntCase{4, true, 0}, IntCase{4, false, 8}}) {
    const QuantSpec spec{c.bits, c.symmetric, c.group_size};
    const Matrix q = gptq(w, h, spec, {0.01, 16, false});
    INFO(spec.describe());
    REQUIRE(q.allFinite());
    CHECK(q.col(5) == rtn(w, spec).col(5));
    CHECK(relative_difference(q, reference_gptq(w, decoupled, c.bits, c.symmetric, c.group_size, 0.01, false)) <
          1e-4);
  }
}

TEST_CASE("the gptq method quantizes with GPTQ whatever quant.weight_quantizer says") {
  const Gptq method;
  CHECK(method.name() == "gptq");
  CHECK(method.parameters().empty());
  CHECK_FALSE(method.needs_activation_stats());
  QuantParams params;
  params.weight = {4, true, 32};
  params.activation = {8, false, 32};
  const Calibration calibration = stories_calibration(params, 8);
  Model by_method = test::stories_model("stories260K-hf");
  Model by_rtn_with_gptq = by_method, by_rtn = by_method;
  const MethodReport report = method.quantize(by_method, params, calibration);  // params.weight_quantizer is rtn
  QuantParams gptq_params = params;
  gptq_params.weight_quantizer = WeightQuantizerKind::gptq;
  RoundToNearest().quantize(by_rtn_with_gptq, gptq_params, calibration);
  RoundToNearest().quantize(by_rtn, params, calibration);
  CHECK(report.bits_per_weight == Approx(4.5).epsilon(0.05));
  CHECK(by_method.layers[1].o_proj.act_quant.bits == 8);
  for (std::size_t i = 0; i + 1 < by_method.linears().size(); ++i) {
    INFO(by_method.linears()[i]->name);
    CHECK(by_method.linears()[i]->weight == by_rtn_with_gptq.linears()[i]->weight);
    CHECK(by_method.linears()[i]->weight != by_rtn.linears()[i]->weight);
  }
  CHECK(by_method.lm_head.weight == test::stories_model("stories260K-hf").lm_head.weight);
}

TEST_CASE("gptq on stories260K: W4A16 perplexity is at most RTN's, W4A4 g32 printed") {
  const auto windows = eval_windows(test::tinystories("tinystories-eval"), 512, 8);
  const double fp = evaluate_perplexity(test::stories_model("stories260K-hf"), windows, 8).ppl;
  QuantParams params;
  params.weight = {4, true, 32};
  const Calibration calibration = stories_calibration(params, 128);  // activations are not quantized in calibration
  auto ppl = [&](const Method& method, int a_bits) {
    params.activation = {a_bits, false, 32};
    Model model = test::stories_model("stories260K-hf");
    method.quantize(model, params, calibration);
    return evaluate_perplexity(model, windows, 8).ppl;
  };
  const double gptq_w4a16 = ppl(Gptq(), 16), rtn_w4a16 = ppl(RoundToNearest(), 16);
  const double gptq_w4a4 = ppl(Gptq(), 4), rtn_w4a4 = ppl(RoundToNearest(), 4);
  std::cout << "stories260K ppl (8 windows of 512): fp " << fp << "; W4A16 g32 gptq " << gptq_w4a16 << ", rtn "
            << rtn_w4a16 << "; W4A4 g32 gptq " << gptq_w4a4 << ", rtn " << rtn_w4a4 << "\n";
  CHECK(gptq_w4a16 <= rtn_w4a16);
  CHECK(gptq_w4a16 > fp);
  CHECK(std::isfinite(gptq_w4a4));
  CHECK(std::isfinite(rtn_w4a4));
}
