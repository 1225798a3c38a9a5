// Tests for the two-factor corrections lorc, lqer and l2qer (methods/low_rank.h) on the real stories260K, against
// dense references written here: the error W − main from the original weights, singular values from Eigen's
// JacobiSVD (not the BDCSVD the library uses), the activation-weighted norm, and the storage formula of INT groups.
#include <catch2/catch.hpp>

#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "core/common/error.h"
#include "core/data/windows.h"
#include "core/eval/perplexity.h"
#include "experiments/calibrate.h"
#include "methods/l2qer.h"
#include "methods/lorc.h"
#include "methods/lqer.h"
#include "methods/rtn.h"
#include "tests/model_fixtures.h"

namespace serq {
namespace {

const Model& original_model() { return test::stories_model("stories260K-hf"); }

// W4 (INT, symmetric, groups of 32) and A4 (INT, asymmetric, groups of 32), the brief's W4A4 setting.
QuantParams w4a4(int rank, int factor_bits) {
  QuantParams params;
  params.weight = {4, true, 32};
  params.activation = {4, false, 32};
  params.rank = rank;
  params.factor_bits = factor_bits;
  return params;
}

// Mean |x| of every decoder linear's input on a few calibration windows, as l2qer asks for them.
const Calibration& calibration() {
  static const Calibration stats = calibrate(original_model(), ActivationScaledErrorReconstruction(), w4a4(8, 8),
                                             test::tinystories("tinystories-calib"), {8, 128, 0});
  return stats;
}

std::vector<std::unique_ptr<LowRankMethod>> all_low_rank_methods() {
  std::vector<std::unique_ptr<LowRankMethod>> methods;
  methods.push_back(std::make_unique<LowRankCompensation>());
  methods.push_back(std::make_unique<LowRankErrorReconstruction>());
  methods.push_back(std::make_unique<ActivationScaledErrorReconstruction>());
  return methods;
}

// E = W − main, in double.
Eigen::MatrixXd weight_error(const QuantLinear& original, const QuantLinear& quantized) {
  return original.weight.cast<double>() - quantized.weight.cast<double>();
}

// B·A, in double.
Eigen::MatrixXd correction(const QuantLinear& layer) {
  return layer.low_rank.b.cast<double>() * layer.low_rank.a.cast<double>();
}

// Bits of a (rows × cols) INT-b symmetric matrix: b per value plus a 16-bit scale per group of `group` columns.
double int_symmetric_bits(Eigen::Index rows, Eigen::Index cols, int bits, Eigen::Index group) {
  const Eigen::Index width = std::min(group, cols);
  const Eigen::Index groups = (cols + width - 1) / width;
  return static_cast<double>(rows) * static_cast<double>(cols * bits + groups * 16);
}

double perplexity_of(const Model& model) {
  return evaluate_perplexity(model, eval_windows(test::tinystories("tinystories-eval"), 512, 8), 8).ppl;
}

}  // namespace

TEST_CASE("lorc lqer and l2qer reconstruct the weight error exactly at full rank with full-precision factors") {
  for (const auto& method : all_low_rank_methods()) {
    Model model = original_model();
    const std::vector<const QuantLinear*> originals = original_model().linears();
    const std::vector<QuantLinear*> layers = model.linears();
    for (std::size_t i = 0; i + 1 < layers.size(); ++i) {  // lm_head has no calibration statistics
      QuantLinear& layer = *layers[i];
      const int full_rank = std::min(layer.d_in(), layer.d_out());
      const QuantParams params = w4a4(full_rank, 16);
      quantize_low_rank_layer(layer, method->recipe(params), params, calibration());
      const Eigen::MatrixXd error = weight_error(*originals[i], layer);
      INFO(method->name() << " " << layer.name << ": rank " << full_rank);
      REQUIRE(layer.low_rank.rank() == full_rank);
      CHECK(error.norm() > 1e-3 * originals[i]->weight.cast<double>().norm());  // the weight really was quantized
      CHECK((error - correction(layer)).norm() <= 1e-5 * error.norm());
    }
  }
}

TEST_CASE("lorc at rank k leaves exactly the tail of the singular values of the weight error (quant.svd exact), "
          "and the randomized SVD within 1% of it") {
  const int rank = 8;
  QuantParams exact = w4a4(rank, 16), randomized = w4a4(rank, 16);
  exact.svd = SvdAlgorithm::exact;
  randomized.svd = SvdAlgorithm::randomized;
  Model model = original_model(), sketched = original_model();
  LowRankCompensation().quantize(model, exact, Calibration{});
  LowRankCompensation().quantize(sketched, randomized, Calibration{});
  const std::vector<const QuantLinear*> originals = original_model().linears();
  const std::vector<QuantLinear*> layers = model.linears(), sketched_layers = sketched.linears();
  for (std::size_t i = 0; i + 1 < layers.size(); ++i) {  // lm_head is not quantized
    const Eigen::MatrixXd error = weight_error(*originals[i], *layers[i]);
    const Eigen::VectorXd sigma = Eigen::JacobiSVD<Eigen::MatrixXd>(error).singularValues();
    const double tail = sigma.tail(sigma.size() - rank).norm();
    const double sketched_error = (error - correction(*sketched_layers[i])).norm();
    INFO(layers[i]->name << ": ||E|| " << error.norm() << ", tail " << tail << ", randomized " << sketched_error);
    REQUIRE(layers[i]->low_rank.rank() == rank);
    CHECK((error - correction(*layers[i])).norm() == Approx(tail).epsilon(1e-5));
    CHECK(sketched_error >= tail * (1 - 1e-5));
    CHECK(sketched_error <= tail * 1.01);
    CHECK(tail < error.norm());
  }
  CHECK(model.lm_head.low_rank.rank() == 0);
  CHECK(model.lm_head.weight == original_model().lm_head.weight);
}

TEST_CASE("l2qer at rank k has a smaller activation-weighted error than lorc") {
  const int rank = 8;
  Model lorc = original_model();
  Model l2qer = original_model();
  LowRankCompensation().quantize(lorc, w4a4(rank, 16), calibration());
  ActivationScaledErrorReconstruction().quantize(l2qer, w4a4(rank, 16), calibration());
  const std::vector<const QuantLinear*> originals = original_model().linears();
  double total_lorc = 0.0, total_l2qer = 0.0;
  for (std::size_t i = 0; i + 1 < originals.size(); ++i) {
    const QuantLinear& a = *lorc.linears()[i];
    const QuantLinear& b = *l2qer.linears()[i];
    const Eigen::VectorXd s = calibration().at(a.name).mean_abs;  // any positive multiple gives the same order
    const double lorc_error = ((weight_error(*originals[i], a) - correction(a)) * s.asDiagonal()).norm();
    const double l2qer_error = ((weight_error(*originals[i], b) - correction(b)) * s.asDiagonal()).norm();
    INFO(a.name << ": lorc " << lorc_error << ", l2qer " << l2qer_error);
    CHECK(l2qer_error <= lorc_error * (1.0 + 1e-6));
    total_lorc += lorc_error;
    total_l2qer += l2qer_error;
  }
  std::cout << "activation-weighted error at rank " << rank << ": lorc " << total_lorc << ", l2qer " << total_l2qer
            << "\n";
  CHECK(total_l2qer < 0.97 * total_lorc);
}

TEST_CASE("a negative rank or one above min of d_in and d_out is an error that names the layer and changes nothing") {
  Model model = original_model();
  CHECK_THROWS_WITH(LowRankCompensation().quantize(model, w4a4(33, 16), Calibration{}),
                    "layers.0.self_attn.k_proj: quant.rank 33 is above min(d_in, d_out) = 32; use 0..32");
  CHECK_THROWS_WITH(LowRankErrorReconstruction().quantize(model, w4a4(-1, 8), Calibration{}),
                    "layers.0.self_attn.q_proj: quant.rank -1 is negative; use 0..64");
  CHECK_THROWS_WITH(ActivationScaledErrorReconstruction().quantize(model, w4a4(8, 9), calibration()),
                    Catch::Contains("quant.factor_bits: 9 bits is out of range"));
  CHECK(model.layers[0].q_proj.weight == original_model().layers[0].q_proj.weight);
  CHECK(model.layers[0].q_proj.act_quant.bits == 16);
}

TEST_CASE("rank 0 adds no correction") {
  Model model = original_model();
  const MethodReport report = LowRankErrorReconstruction().quantize(model, w4a4(0, 8), Calibration{});
  CHECK(report.extra_parameters == 0);
  for (const QuantLinear* layer : model.linears()) CHECK(layer->low_rank.rank() == 0);
  CHECK(model.layers[0].q_proj.act_quant.bits == 4);
}

TEST_CASE("lorc lqer and l2qer run end to end on stories260K W4A4 at rank 8 and count their factors") {
  const int rank = 8;
  Model rtn = original_model();
  RoundToNearest().quantize(rtn, w4a4(0, 8), Calibration{});
  const double rtn_ppl = perplexity_of(rtn);
  std::cout << "W4A4 g32 ppl on 8 windows of tinystories-eval: rtn " << rtn_ppl;
  CHECK(std::isfinite(rtn_ppl));

  // Storage from the layer shapes: INT4 g32 main weights plus factors (FP16 for lorc, INT8 g32 for lqer/l2qer).
  double main_bits = 0.0, fp16_factor_bits = 0.0, int8_factor_bits = 0.0;
  std::int64_t weights = 0, factor_parameters = 0;
  for (const QuantLinear* layer : rtn.linears()) {
    if (layer == &rtn.lm_head) continue;
    const Eigen::Index d_in = layer->d_in(), d_out = layer->d_out();
    main_bits += int_symmetric_bits(d_out, d_in, 4, 32);
    fp16_factor_bits += 16.0 * static_cast<double>(rank * (d_in + d_out));
    int8_factor_bits += int_symmetric_bits(rank, d_in, 8, 32) + int_symmetric_bits(d_out, rank, 8, 32);
    weights += d_in * d_out;
    factor_parameters += rank * (d_in + d_out);
  }

  for (const auto& method : all_low_rank_methods()) {
    Model model = original_model();
    const Calibration stats = calibrate(model, *method, w4a4(rank, 8), test::tinystories("tinystories-calib"),
                                        {8, 128, 0});
    const MethodReport report = method->quantize(model, w4a4(rank, 8), stats);
    const double ppl = perplexity_of(model);
    std::cout << ", " << method->name() << " " << ppl << " (" << report.bits_per_weight << " bits/weight)";
    INFO(method->name() << ": ppl " << ppl << ", rtn " << rtn_ppl);
    CHECK(std::isfinite(ppl));
    CHECK(ppl < rtn_ppl);
    const bool fp16_factors = method->name() == "lorc";
    const double expected_bits = main_bits + (fp16_factors ? fp16_factor_bits : int8_factor_bits);
    CHECK(report.bits_per_weight == Approx(expected_bits / static_cast<double>(weights)).epsilon(1e-12));
    CHECK(report.extra_parameters == factor_parameters);
    CHECK(report.quantized_weights == weights);
    const std::string formats =
        std::string(fp16_factors ? "fp intermediate=fp" : "int8-sym-g32 intermediate=int8-asym-row") + " svd=randomized";
    CHECK(model.layers[0].q_proj.transform == method->name() + " k=8 factors=" + formats);
  }
  std::cout << "\n";
}

TEST_CASE("lqer factors follow the weight format: MXFP4 at 4 bits and INT at any other width") {
  QuantParams params = w4a4(8, 4);
  params.weight = {4, true, 32, NumberFormat::mxfp4};
  params.activation = {4, true, 32, NumberFormat::mxfp4};
  CHECK(lqer_factor_quant(params).format == NumberFormat::mxfp4);
  CHECK(lqer_factor_quant(params).group_size == 32);
  params.factor_bits = 8;
  CHECK(lqer_factor_quant(params).format == NumberFormat::integer);
  CHECK(lqer_factor_quant(params).bits == 8);
  CHECK(lqer_intermediate_quant(params).group_size == 0);
  params.requant_intermediate = false;
  CHECK_FALSE(lqer_intermediate_quant(params).enabled());

  Model model = original_model();
  params.factor_bits = 4;
  ActivationScaledErrorReconstruction().quantize(model, params, calibration());
  const QuantLinear& layer = model.layers[0].q_proj;
  REQUIRE(layer.low_rank.rank() == 8);
  // MXFP4 values are a power-of-two scale times an E2M1 magnitude: every A value over its block's scale is one.
  const float block_max = layer.low_rank.a.row(0).head(32).cwiseAbs().maxCoeff();
  const float scale = std::exp2(std::floor(std::log2(block_max)) - 2.0f);
  for (Eigen::Index j = 0; j < 32; ++j) {
    const float e2m1 = std::abs(layer.low_rank.a(0, j)) / scale;
    CHECK((e2m1 == 0.0f || e2m1 == 0.5f || e2m1 == 1.0f || e2m1 == 1.5f || e2m1 == 2.0f || e2m1 == 3.0f ||
           e2m1 == 4.0f || e2m1 == 6.0f));
  }
}

}  // namespace serq
