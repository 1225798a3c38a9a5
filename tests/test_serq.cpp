// SERQ on stories260K layers against dense references written here: flattening by abs-max, the saliency order,
// two-stage residual quantization of the salient channels in both orders, the rank range and MXFP4 accounting.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/backend/backend.h"
#include "core/quant/int_quant.h"
#include "core/quant/int_quant_reference.h"
#include "experiments/calibrate.h"
#include "methods/serq.h"
#include "tests/model_fixtures.h"
#include "tests/support/random.h"

using namespace serq;

namespace {

using test::relative_error;

Calibration few_samples(const Model& model, const QuantParams& params) {
  return calibrate(model, Serq(), params, test::tinystories("tinystories-calib"), {4, 64, 0});
}

struct SerqRun {
  Model original;
  Model model;
  Calibration calibration;
};

SerqRun run_serq(const QuantParams& params) {
  SerqRun run{test::stories_model("stories260K-hf"), test::stories_model("stories260K-hf"), {}};
  run.calibration = few_samples(run.original, params);
  Serq().quantize(run.model, params, run.calibration);
  return run;
}

// Channels by decreasing s, equal values by increasing channel index.
std::vector<int> expected_order(const Eigen::VectorXf& s) {
  std::vector<int> order(static_cast<std::size_t>(s.size()));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
  return order;
}

// W̃[:, j] = W[:, order[j]] · s[order[j]].
Matrix flattened_weight(const Matrix& w, const Eigen::VectorXf& s, const std::vector<int>& order) {
  Matrix out(w.rows(), w.cols());
  for (Eigen::Index j = 0; j < w.cols(); ++j) out.col(j) = w.col(order[j]) * s[order[j]];
  return out;
}

// X̂[:, j] = X[:, order[j]] / s[order[j]].
Matrix flattened_input(const Matrix& x, const Eigen::VectorXf& s, const std::vector<int>& order) {
  Matrix out(x.rows(), x.cols());
  for (Eigen::Index j = 0; j < x.cols(); ++j) out.col(j) = x.col(order[j]) / s[order[j]];
  return out;
}

// The main weight with R added on its first r columns: what the layer applies to Q(X̂).
Matrix effective_weight(const QuantLinear& layer) {
  Matrix w = layer.weight;
  w.leftCols(layer.salient.rank()) += layer.salient.r;
  return w;
}

const char* const probed[] = {"layers.0.self_attn.q_proj", "layers.1.self_attn.o_proj", "layers.2.mlp.down_proj"};

const QuantLinear& find(const Model& model, const std::string& name) {
  const auto layers = model.linears();
  const auto it = std::find_if(layers.begin(), layers.end(), [&](const QuantLinear* l) { return l->name == name; });
  REQUIRE(it != layers.end());
  return **it;
}

}  // namespace

TEST_CASE("SERQ flattens by abs_max and orders channels by it descending, ties by index, shared per group") {
  Model model = test::stories_model("stories260K-hf");
  QuantParams params;
  params.weight = {4, true, 32};
  params.rank = 8;
  Calibration calibration = few_samples(model, params);
  for (const char* name : {"layers.0.self_attn.q_proj", "layers.0.self_attn.k_proj", "layers.0.self_attn.v_proj"}) {
    Eigen::VectorXf& a = calibration.stats.at(name).abs_max;
    a[9] = a[5] = a.maxCoeff() * 2.0f;  // a tie at the top: channel 5 goes first
  }
  Serq().quantize(model, params, calibration);
  for (const QuantLinear* layer : model.linears()) {
    if (layer->name == "lm_head") continue;
    const Eigen::VectorXf& abs_max = calibration.stats.at(layer->name).abs_max;
    INFO(layer->name);
    CHECK(layer->input.scale == abs_max);
    CHECK(layer->input.order == expected_order(abs_max));
    CHECK(layer->transform == "serq r=8 flatten=absmax order=code");
  }
  const DecoderLayer& l0 = model.layers[0];
  CHECK(l0.q_proj.input.order[0] == 5);
  CHECK(l0.q_proj.input.order[1] == 9);
  CHECK(l0.k_proj.input.order == l0.q_proj.input.order);
  CHECK(l0.v_proj.input.scale == l0.q_proj.input.scale);
  CHECK(l0.up_proj.input.order == l0.gate_proj.input.order);
  CHECK(model.lm_head.input.empty());
}

TEST_CASE("SERQ's tie order among equal saliency scores: first by index, last, or seeded (the same for one seed)") {
  const Model original = test::stories_model("stories260K-hf");
  QuantParams params;
  params.weight = {16, true, 32};  // full precision: the order alone
  params.rank = 8;
  Calibration calibration = few_samples(original, params);
  const char* const name = "layers.0.self_attn.q_proj";
  for (const char* member : {"layers.0.self_attn.q_proj", "layers.0.self_attn.k_proj", "layers.0.self_attn.v_proj"}) {
    Eigen::VectorXf& a = calibration.stats.at(member).abs_max;
    const float top = a.maxCoeff() * 2.0f;
    for (const int j : {3, 9, 17, 40, 50}) a[j] = top;  // a five-way tie at the top
  }
  const auto order_with = [&](SaliencyTies ties, std::uint64_t seed) {
    QuantParams p = params;
    p.saliency_ties = ties;
    p.seed = seed;
    Model model = original;
    Serq().prepare(model, p, calibration);
    return find(model, name).input.order;
  };
  const std::vector<int> first = order_with(SaliencyTies::first, 0), last = order_with(SaliencyTies::last, 0);
  CHECK(std::vector<int>(first.begin(), first.begin() + 5) == std::vector<int>{3, 9, 17, 40, 50});
  CHECK(std::vector<int>(last.begin(), last.begin() + 5) == std::vector<int>{50, 40, 17, 9, 3});
  CHECK(std::vector<int>(first.begin() + 5, first.end()) == std::vector<int>(last.begin() + 5, last.end()));
  const std::vector<int> seeded = order_with(SaliencyTies::seeded, 1);
  CHECK(order_with(SaliencyTies::seeded, 1) == seeded);
  std::vector<int> top(seeded.begin(), seeded.begin() + 5);
  std::sort(top.begin(), top.end());
  CHECK(top == std::vector<int>{3, 9, 17, 40, 50});  // only the tied channels trade places
  bool some_seed_differs = false;  // 5! orders: eight seeds all giving the index order would be a broken draw
  for (std::uint64_t seed = 2; seed < 10; ++seed) some_seed_differs |= order_with(SaliencyTies::seeded, seed) != first;
  CHECK(some_seed_differs);
  Model model = original;
  QuantParams p = params;
  p.saliency_ties = SaliencyTies::seeded;
  p.seed = 1;
  Serq().prepare(model, p, calibration);
  CHECK(find(model, name).transform == "serq r=0 flatten=absmax order=code ties=seeded(1)");
}

TEST_CASE("SERQ at r = d_in is two-stage residual quantization Q(W - Q_R(W)) + Q_R(W) of the flattened weight") {
  QuantParams params;
  params.weight = {4, true, 16};
  params.rank = 64;  // d_in of every attention and gate/up layer; down_proj (172) keeps 108 channels uncorrected
  const SerqRun run = run_serq(params);
  for (const char* name : {"layers.0.self_attn.q_proj", "layers.3.mlp.up_proj"}) {
    INFO(name);
    const QuantLinear& before = find(run.original, name);
    const QuantLinear& after = find(run.model, name);
    const Eigen::VectorXf& s = run.calibration.stats.at(name).abs_max;
    const std::vector<int> order = expected_order(s);
    const Matrix w = flattened_weight(before.weight, s, order);
    const Matrix r = reference_int_fake_quant(w, 4, true, 0, true);
    const Matrix main = reference_int_fake_quant(w - r, 4, true, 16, true);
    REQUIRE(after.salient.rank() == 64);
    CHECK((after.salient.r - r).cwiseAbs().maxCoeff() <= 1e-6f * r.cwiseAbs().maxCoeff());
    CHECK((after.weight - main).cwiseAbs().maxCoeff() <= 1e-6f * main.cwiseAbs().maxCoeff());
    const Matrix x = Matrix::Random(7, before.d_in()) * 3.0f;
    Matrix y;
    y = run_linear(cpu_backend(), after, x);
    CHECK(relative_error(y, flattened_input(x, s, order) * (main + r).transpose()) < 1e-5);
    CHECK(after.extra_parameters() == after.d_out() * 64);
  }
}

TEST_CASE("SERQ with r = 0 is round-to-nearest of the flattened, permuted layer") {
  QuantParams params;
  params.weight = {4, true, 32};
  params.activation = {4, true, 0};  // symmetric per token, so the dense reference below can quantize X̂ too
  const SerqRun run = run_serq(params);
  for (const char* name : probed) {
    INFO(name);
    const QuantLinear& before = find(run.original, name);
    const QuantLinear& after = find(run.model, name);
    const Eigen::VectorXf& s = run.calibration.stats.at(name).abs_max;
    const std::vector<int> order = expected_order(s);
    CHECK(after.salient.rank() == 0);
    CHECK(after.extra_parameters() == 0);
    const Matrix x = Matrix::Random(5, before.d_in());
    Matrix y;
    y = run_linear(cpu_backend(), after, x);
    const Matrix want = reference_int_fake_quant(flattened_input(x, s, order), 4, true, 0) *
                        reference_int_fake_quant(flattened_weight(before.weight, s, order), 4, true, 32, true).transpose();
    CHECK(relative_error(y, want) < 1e-5);
  }
}

TEST_CASE("SERQ in the paper and the code order both reconstruct the flattened weight better than plain RTN") {
  QuantParams params;
  params.weight = {4, true, 32};
  params.rank = 64;
  const SerqRun code = run_serq(params);
  params.paper_residual_order = true;
  const SerqRun paper = run_serq(params);
  CHECK(paper.model.layers[0].q_proj.transform == "serq r=64 flatten=absmax order=paper");
  for (const char* name : {"layers.0.self_attn.q_proj", "layers.4.mlp.gate_proj"}) {
    INFO(name);
    const auto flattened = [&](const SerqRun& run) {  // each run's own calibration: a second pass may differ by ulps
      const Eigen::VectorXf& s = run.calibration.stats.at(name).abs_max;
      return flattened_weight(find(run.original, name).weight, s, expected_order(s));
    };
    const Matrix w = flattened(code);
    const Matrix w_paper = flattened(paper);
    const double plain = (w - reference_int_fake_quant(w, 4, true, 32, true)).norm();
    const double by_code = (w - effective_weight(find(code.model, name))).norm();
    const double by_paper = (w_paper - effective_weight(find(paper.model, name))).norm();
    // paper: main = Q(W̃), R = Q_R(W̃ − main); written out here to show it is not the code order.
    const Matrix main = reference_int_fake_quant(w_paper, 4, true, 32, true);
    CHECK((find(paper.model, name).weight - main).cwiseAbs().maxCoeff() < 1e-6f);
    const Matrix r = reference_int_fake_quant(w_paper - main, 4, true, 0, true);
    CHECK((find(paper.model, name).salient.r - r).cwiseAbs().maxCoeff() < 1e-6f);
    INFO("plain " << plain << ", code " << by_code << ", paper " << by_paper);
    CHECK(by_code < 0.5 * plain);
    CHECK(by_paper < 0.5 * plain);
  }
}

TEST_CASE("SERQ with full-precision weights keeps the outputs and adds no correction") {
  QuantParams params;
  params.rank = 16;
  const SerqRun run = run_serq(params);
  for (const char* name : probed) {
    INFO(name);
    const QuantLinear& before = find(run.original, name);
    const QuantLinear& after = find(run.model, name);
    CHECK(after.salient.rank() == 0);
    CHECK(after.transform == "serq r=0 flatten=absmax order=code");
    const Matrix x = Matrix::Random(5, before.d_in());
    Matrix y;
    y = run_linear(cpu_backend(), after, x);
    CHECK(relative_error(y, x * before.weight.transpose()) < 1e-5);
  }
}

TEST_CASE("SERQ refuses a rank outside 0..d_in and names the layer, before changing the model") {
  Model model = test::stories_model("stories260K-hf");
  QuantParams params;
  params.weight = {4, true, 32};
  const Calibration calibration = few_samples(model, params);
  params.rank = 100;
  CHECK_THROWS_WITH(Serq().quantize(model, params, calibration),
                    "layers.0.self_attn.q_proj: quant.rank 100 is above d_in = 64; use 0..64");
  params.rank = -1;
  CHECK_THROWS_WITH(Serq().quantize(model, params, calibration),
                    "layers.0.self_attn.q_proj: quant.rank -1 is negative; use 0..64");
  CHECK(model.layers[0].q_proj.input.empty());
  CHECK(model.layers[0].q_proj.weight == test::stories_model("stories260K-hf").layers[0].q_proj.weight);
}

TEST_CASE("SERQ with MXFP4 quantizes R in 32-blocks and counts 4.25 bits per R weight") {
  QuantParams params;
  params.weight = {4, true, 32, NumberFormat::mxfp4};
  params.activation = {4, true, 32, NumberFormat::mxfp4};
  params.rank = 32;
  const SerqRun run = run_serq(params);
  const QuantLinear& q = run.model.layers[0].q_proj;
  REQUIRE(q.salient.rank() == 32);
  CHECK(q.salient.quant.format == NumberFormat::mxfp4);
  CHECK(q.salient.quant.group_size == 32);
  // Main 64 × 64 and R 64 × 32, each element 4 bits plus one 8-bit scale per 32-block.
  CHECK(q.storage_bits() == Approx(64.0 * 64 * 4.25 + 64.0 * 32 * 4.25));
  // Each row of R is one 32-block: its values are a shared power of two times E2M1 magnitudes.
  const float grid[] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  for (Eigen::Index i = 0; i < q.salient.r.rows(); ++i) {
    const float amax = q.salient.r.row(i).cwiseAbs().maxCoeff();
    if (amax == 0.0f) continue;
    const float scale = std::exp2(std::floor(std::log2(amax)) - 2.0f);
    for (Eigen::Index c = 0; c < 32; ++c) {
      const float e = std::abs(q.salient.r(i, c)) / scale;
      CHECK(std::find(std::begin(grid), std::end(grid), e) != std::end(grid));
    }
  }
}

TEST_CASE("SERQ's open choices: the saliency order from mean |x| or activation × weight norm, a SmoothQuant α and a "
          "percentile for the flattening, each leaving full precision exact — the defaults are the paper's") {
  const Model& original = test::stories_model("stories260K-hf");
  QuantParams params;
  params.weight = {16, true, 32};  // full precision: the transforms alone
  params.rank = 8;
  const Calibration calibration = few_samples(original, params);
  const char* const name = "layers.1.mlp.down_proj";
  const Eigen::VectorXd mean_abs = calibration.stats.at(name).mean_abs;
  const Eigen::VectorXf abs_max = calibration.stats.at(name).abs_max;
  const Matrix weight = find(original, name).weight;

  params.saliency = SaliencyOrder::mean_abs;
  Model by_mean = original;
  Serq().prepare(by_mean, params, calibration);
  CHECK(find(by_mean, name).input.order == expected_order(mean_abs.cast<float>()));
  CHECK(find(by_mean, name).input.scale == abs_max);  // the flattening is still the abs-max
  CHECK(find(by_mean, name).transform == "serq r=0 flatten=absmax order=code saliency=mean_abs");

  params.saliency = SaliencyOrder::act_weight;
  Model by_product = original;
  Serq().prepare(by_product, params, calibration);
  const Eigen::VectorXf product = mean_abs.cast<float>().cwiseProduct(weight.colwise().norm().transpose());
  CHECK(find(by_product, name).input.order == expected_order(product));

  params.saliency = SaliencyOrder::abs_max;
  params.flatten_alpha = 0.5;
  Model smoothed = original;
  Serq().prepare(smoothed, params, calibration);
  const QuantLinear& layer = find(smoothed, name);
  const Eigen::VectorXf weight_max = weight.cwiseAbs().colwise().maxCoeff().transpose();
  for (const int j : {0, 17, 63}) {
    CHECK(layer.input.scale[j] == Approx(std::sqrt(abs_max[j]) / std::sqrt(weight_max[j])).epsilon(1e-6));
  }
  CHECK(layer.input.order == expected_order(abs_max));

  // The 99th percentile of |x| over 4 × 64 calibration tokens: the third largest (nearest rank, index
  // floor(0.01 · 256) = 2), which calibrate() keeps for it.
  params.flatten_alpha = 1.0;
  params.flatten_percentile = 99.0;
  const Calibration with_top = few_samples(original, params);
  const Eigen::MatrixXf& top = with_top.stats.at(name).top_abs;
  REQUIRE(top.rows() == 3);
  Model clipped = original;
  Serq().prepare(clipped, params, with_top);
  CHECK(find(clipped, name).input.scale == Eigen::VectorXf(top.row(2).transpose()));
  CHECK(find(clipped, name).input.order == expected_order(abs_max));  // the order stays the abs-max's
  CHECK(find(clipped, name).transform == "serq r=0 flatten=p99 order=code");
  params.flatten_percentile = 100.0;
  // Each is an exact transform: in full precision the layer's output is unchanged up to float rounding.
  std::mt19937 rng(3);
  const Matrix x = test::random_matrix(16, weight.cols(), rng);
  const Matrix reference = run_linear(cpu_backend(), find(original, name), x);
  for (const Model* model : {&by_mean, &by_product, &smoothed, &clipped}) {
    CHECK(relative_error(run_linear(cpu_backend(), find(*model, name), x), reference) < 1e-5);
  }
}
