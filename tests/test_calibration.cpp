// Calibration observers on the real stories260K against independent formulas: layer 0's q_proj input is
// RMSNorm(embedding) · γ, so its abs-max, mean |x| and XᵀX can be computed without the forward pass.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "core/calib/observers.h"
#include "core/data/calibration_sampler.h"
#include "tests/model_fixtures.h"

using namespace serq;

namespace {

std::vector<std::vector<int>> samples() {
  return sample_calibration(test::tinystories("tinystories-calib"), 4, 64, CalibrationSampling::random, 7);
}

// Layer 0's attention input for every token of the samples, computed directly from the weights.
Matrix layer0_attention_inputs(const Model& model, const std::vector<std::vector<int>>& data) {
  std::vector<Eigen::RowVectorXf> rows;
  for (const auto& sample : data) {
    for (int token : sample) {
      const Eigen::RowVectorXf e = model.embed.row(token);
      const float inv = 1.0f / std::sqrt(e.squaredNorm() / e.size() + model.config.rms_norm_eps);
      rows.push_back((e * inv).cwiseProduct(model.layers[0].attn_norm.transpose()));
    }
  }
  Matrix x(static_cast<Eigen::Index>(rows.size()), model.config.dim);
  for (std::size_t i = 0; i < rows.size(); ++i) x.row(static_cast<Eigen::Index>(i)) = rows[i];
  return x;
}

}  // namespace

TEST_CASE("calibration statistics of layers.0.self_attn.q_proj match RMSNorm of the embeddings") {
  const Model& model = test::stories_model("stories260K-hf");
  const auto data = samples();
  const auto stats = collect_calibration_stats(model, data, {{"layers.0.self_attn.q_proj"}, true});
  REQUIRE(stats.size() == 1);
  const ChannelStats& s = stats.at("layers.0.self_attn.q_proj");
  const Matrix x = layer0_attention_inputs(model, data);
  CHECK(s.tokens == 4 * 64);
  CHECK((s.abs_max - x.cwiseAbs().colwise().maxCoeff().transpose()).cwiseAbs().maxCoeff() < 1e-5f);
  const Eigen::VectorXd mean = x.cwiseAbs().colwise().mean().transpose().cast<double>();
  CHECK((s.mean_abs - mean).cwiseAbs().maxCoeff() < 1e-5);
  const Eigen::MatrixXd xtx = (x.transpose() * x).cast<double>();
  CHECK((s.hessian - xtx).cwiseAbs().maxCoeff() < 1e-3 * xtx.cwiseAbs().maxCoeff());
}

TEST_CASE("calibration keeps statistics only for the layers asked for, without a Hessian unless asked") {
  const auto stats = collect_calibration_stats(test::stories_model("stories260K-hf"), samples(),
                                               {{"layers.4.mlp.down_proj", "layers.2.self_attn.o_proj"}, false});
  CHECK(stats.size() == 2);
  CHECK(stats.at("layers.4.mlp.down_proj").abs_max.size() == 172);
  CHECK(stats.at("layers.4.mlp.down_proj").hessian.size() == 0);
}

TEST_CASE("an all-zero calibration channel is reported by layer and channel") {
  Model model = test::stories_model("stories260K-hf");
  model.layers[1].attn_norm[5] = 0.0f;  // channel 5 of layers.1's attention input is now always zero
  CHECK_THROWS_WITH(collect_calibration_stats(model, samples(), {{"layers.1.self_attn.k_proj"}, false}),
                    Catch::Contains("layers.1.self_attn.k_proj input channel 5 is zero"));
}

TEST_CASE("a non-finite calibration channel is reported by layer and channel") {
  Model model = test::stories_model("stories260K-hf");
  model.layers[2].ffn_norm[3] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(collect_calibration_stats(model, samples(), {{"layers.2.mlp.up_proj"}, false}),
                    Catch::Contains("layers.2.mlp.up_proj input channel 3 has NaN/Inf"));
}

TEST_CASE("asking for a layer the model does not have is an error") {
  CHECK_THROWS_WITH(collect_calibration_stats(test::stories_model("stories260K-hf"), samples(),
                                              {{"layers.9.mlp.up_proj"}, false}),
                    Catch::Contains("layers.9.mlp.up_proj"));
}

TEST_CASE("a NaN calibration channel is reported by layer and channel") {
  Model model = test::stories_model("stories260K-hf");
  model.layers[3].attn_norm[7] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(collect_calibration_stats(model, samples(), {{"layers.3.self_attn.v_proj"}, false}),
                    Catch::Contains("layers.3.self_attn.v_proj input channel 7 has NaN/Inf"));
}

TEST_CASE("calibration keeps each channel's largest |x| in decreasing order when asked (for percentiles), equal to "
          "the directly computed inputs of layer 0's q_proj") {
  const Model& model = test::stories_model("stories260K-hf");
  const auto data = samples();
  StatsRequest request{{"layers.0.self_attn.q_proj"}, false};
  request.top_k = 5;
  const ChannelStats stats = collect_calibration_stats(model, data, request).at("layers.0.self_attn.q_proj");
  const Matrix x = layer0_attention_inputs(model, data);
  REQUIRE(stats.top_abs.rows() == 5);
  REQUIRE(stats.top_abs.cols() == x.cols());
  for (Eigen::Index j = 0; j < x.cols(); ++j) {
    std::vector<float> column(static_cast<std::size_t>(x.rows()));
    for (Eigen::Index r = 0; r < x.rows(); ++r) column[static_cast<std::size_t>(r)] = std::fabs(x(r, j));
    std::sort(column.begin(), column.end(), std::greater<>());
    for (Eigen::Index i = 0; i < 5; ++i) {
      CHECK(stats.top_abs(i, j) == Approx(column[static_cast<std::size_t>(i)]).epsilon(1e-5));
    }
    CHECK(stats.top_abs(0, j) == stats.abs_max[j]);
  }
  // Without the request nothing is kept.
  CHECK(collect_calibration_stats(model, data, {{"layers.0.self_attn.q_proj"}, false})
            .at("layers.0.self_attn.q_proj")
            .top_abs.size() == 0);
}
