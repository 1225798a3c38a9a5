// Tests for offline folding (core/model/fold.h) on stories260K: random input scales and permutations are put on
// every linear layer with the weights adjusted so the model is unchanged; folding must keep the logits (in full
// precision and with W4A4), move corrections' rows with the weight rows, fold only what the header allows (o_proj
// only without GQA) and report each fold.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "core/common/error.h"
#include "core/model/fold.h"
#include "core/model/forward.h"
#include "tests/model_fixtures.h"
#include "tests/support/random.h"

namespace serq {
namespace {

using test::random_matrix;
using test::relative_error;

constexpr int kSeq = 48;

Matrix logits_of(const Model& model) {
  const std::vector<int>& stream = test::tinystories("tinystories-eval").tokens;
  const std::span<const int> tokens(stream.data(), kSeq);
  return forward_logits(model, forward_hidden(model, tokens, 1, kSeq));
}

Vector random_scale(int d, std::mt19937& rng) {
  std::uniform_real_distribution<float> log_scale(-1.0f, 1.0f);
  Vector s(d);
  for (int j = 0; j < d; ++j) s[j] = std::exp(log_scale(rng));
  return s;
}

// A random permutation of 0..d-1; with block > 0, each block of `block` channels is shuffled within itself.
std::vector<int> random_order(int d, int block, std::mt19937& rng) {
  std::vector<int> order(static_cast<std::size_t>(d));
  for (int j = 0; j < d; ++j) order[static_cast<std::size_t>(j)] = j;
  if (block == 0) block = d;
  for (int b = 0; b < d; b += block) std::shuffle(order.begin() + b, order.begin() + b + block, rng);
  return order;
}

// Puts X̂ = (X / s)[:, order] in front of the layer and rewrites its weight as W ← (W·diag(s))[:, order], so that
// X̂·Wᵀ is the old X·Wᵀ.
void add_input_transform(QuantLinear& layer, const Vector& s, const std::vector<int>& order) {
  const Matrix scaled = layer.weight * s.asDiagonal();
  for (std::size_t j = 0; j < order.size(); ++j) layer.weight.col(static_cast<Eigen::Index>(j)) = scaled.col(order[j]);
  layer.input.scale = s;
  layer.input.order = order;
}

// Every decoder linear gets a random positive scale and a random permutation: q/k/v share their scale, as do
// gate/up; o_proj's permutation stays inside each head when o_within_heads. The up_proj's first 16 weight columns
// move into a salient R, and gate_proj and v_proj get two factors B·A taken out of their weight, so the model is
// unchanged.
Model transformed(const Model& original, bool o_within_heads, std::mt19937& rng) {
  Model model = original;
  const ModelConfig& c = model.config;
  for (DecoderLayer& layer : model.layers) {
    const Vector attn_scale = random_scale(c.dim, rng), ffn_scale = random_scale(c.dim, rng);
    for (QuantLinear* qkv : {&layer.q_proj, &layer.k_proj, &layer.v_proj})
      add_input_transform(*qkv, attn_scale, random_order(c.dim, 0, rng));
    const int o_block = o_within_heads ? c.head_dim() : 0;
    add_input_transform(layer.o_proj, random_scale(c.dim, rng), random_order(c.dim, o_block, rng));
    for (QuantLinear* gate_up : {&layer.gate_proj, &layer.up_proj})
      add_input_transform(*gate_up, ffn_scale, random_order(c.dim, 0, rng));
    add_input_transform(layer.down_proj, random_scale(c.hidden_dim, rng), random_order(c.hidden_dim, 0, rng));

    layer.up_proj.salient.r = layer.up_proj.weight.leftCols(16);
    layer.up_proj.weight.leftCols(16).setZero();
    for (QuantLinear* factored : {&layer.gate_proj, &layer.v_proj}) {
      factored->low_rank.a = random_matrix(8, c.dim, rng, 0.1f);
      factored->low_rank.b = random_matrix(factored->d_out(), 8, rng, 0.1f);
      factored->weight -= factored->low_rank.b * factored->low_rank.a;
    }
  }
  return model;
}

// stories260K with n_kv_heads = n_heads: each kv head's k/v rows repeated for every query head of its group,
// which computes exactly the same attention.
Model with_full_kv_heads(const Model& gqa) {
  Model mha = gqa;
  const int group = gqa.config.n_heads / gqa.config.n_kv_heads, head_dim = gqa.config.head_dim();
  for (DecoderLayer& layer : mha.layers)
    for (QuantLinear* kv : {&layer.k_proj, &layer.v_proj}) {
      Matrix repeated(gqa.config.dim, kv->d_in());
      for (int h = 0; h < gqa.config.n_heads; ++h)
        repeated.middleRows(h * head_dim, head_dim) = kv->weight.middleRows(h / group * head_dim, head_dim);
      kv->weight = repeated;
    }
  mha.config.n_kv_heads = mha.config.n_heads;
  return mha;
}

std::vector<std::string> ffn_and_norm_folds(int i) {
  return {fmt::format("layers.{}.self_attn.q_proj/k_proj/v_proj: scale -> attn_norm γ", i),
          fmt::format("layers.{}.mlp.gate_proj/up_proj: scale -> ffn_norm γ", i),
          fmt::format("layers.{}.mlp.down_proj: scale -> up_proj rows", i),
          fmt::format("layers.{}.mlp.down_proj: order -> gate_proj and up_proj rows", i)};
}

std::string fold_error(Model model) {
  try {
    fold_input_transforms(model);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("Folding keeps stories260K's logits under GQA, moves correction rows and leaves o_proj unfolded") {
  const Model& original = test::stories_model("stories260K-hf");
  REQUIRE(original.config.n_kv_heads < original.config.n_heads);
  std::mt19937 rng(5);
  Model unfolded = transformed(original, true, rng);
  // Layer 0's k_proj gets a scale of its own (weights adjusted): q/k/v no longer agree, so nothing folds into γ.
  const Vector k_scale = random_scale(original.config.dim, rng);
  unfolded.layers[0].k_proj = original.layers[0].k_proj;
  add_input_transform(unfolded.layers[0].k_proj, k_scale, random_order(original.config.dim, 0, rng));

  Model folded = unfolded;
  const std::vector<std::string> report = fold_input_transforms(folded);

  std::vector<std::string> expected;
  for (int i = 0; i < original.config.n_layers; ++i)
    for (const std::string& line : ffn_and_norm_folds(i))
      if (i > 0 || line.find("attn_norm") == std::string::npos) expected.push_back(line);
  CHECK(report == expected);

  const Matrix fp = logits_of(original), before = logits_of(unfolded), after = logits_of(folded);
  CHECK(relative_error(before, fp) < 1e-4);
  CHECK(relative_error(after, before) < 1e-4);
  CHECK(relative_error(after, fp) < 1e-4);

  const DecoderLayer &was = unfolded.layers[2], &now = folded.layers[2];
  for (const QuantLinear* qkv : {&now.q_proj, &now.k_proj, &now.v_proj}) {
    CHECK(qkv->input.scale.size() == 0);
    CHECK(qkv->input.order.size() == 64);  // a permutation cannot fold into RMSNorm
  }
  CHECK(folded.layers[0].k_proj.input.scale == k_scale);
  CHECK(folded.layers[0].q_proj.input.scale.size() == 64);
  CHECK(now.o_proj.input.scale == was.o_proj.input.scale);
  CHECK(now.o_proj.input.order == was.o_proj.input.order);
  CHECK(now.down_proj.input.empty());
  CHECK(now.ffn_norm.isApprox(was.ffn_norm.cwiseQuotient(was.up_proj.input.scale)));

  // up/gate output row j is the old row order[j] of down_proj's input order; up's rows also divided by s there.
  const Vector& s = was.down_proj.input.scale;
  const std::vector<int>& order = was.down_proj.input.order;
  for (const int j : {0, 17, 171}) {
    const int o = order[static_cast<std::size_t>(j)];
    INFO("row " << j << " <- " << o);
    CHECK(now.up_proj.weight.row(j).isApprox(was.up_proj.weight.row(o) / s[o]));
    CHECK(now.up_proj.salient.r.row(j).isApprox(was.up_proj.salient.r.row(o) / s[o]));
    CHECK(now.gate_proj.weight.row(j) == was.gate_proj.weight.row(o));
    CHECK(now.gate_proj.low_rank.b.row(j) == was.gate_proj.low_rank.b.row(o));
    CHECK(now.gate_proj.low_rank.a == was.gate_proj.low_rank.a);
  }
}

TEST_CASE("Folding o_proj into v_proj rows without GQA keeps the logits") {
  const Model& gqa = test::stories_model("stories260K-hf");
  const Model mha = with_full_kv_heads(gqa);
  const Matrix fp = logits_of(gqa);
  REQUIRE(relative_error(logits_of(mha), fp) < 1e-6);  // repeating kv heads is exact

  std::mt19937 rng(7);
  Model unfolded = transformed(mha, true, rng);
  // Layer 1's o_proj permutation crosses heads: only its scale may fold.
  unfolded.layers[1].o_proj = mha.layers[1].o_proj;
  add_input_transform(unfolded.layers[1].o_proj, random_scale(mha.config.dim, rng), random_order(64, 0, rng));
  Model folded = unfolded;
  const std::vector<std::string> report = fold_input_transforms(folded);

  std::vector<std::string> expected;
  for (int i = 0; i < mha.config.n_layers; ++i) {
    const std::vector<std::string> common = ffn_and_norm_folds(i);  // o_proj's folds come after q/k/v's
    expected.push_back(common.front());
    expected.push_back(fmt::format("layers.{}.self_attn.o_proj: scale -> v_proj rows", i));
    if (i != 1) expected.push_back(fmt::format("layers.{}.self_attn.o_proj: order -> v_proj rows", i));
    expected.insert(expected.end(), common.begin() + 1, common.end());
  }
  CHECK(report == expected);
  CHECK(folded.layers[0].o_proj.input.empty());
  CHECK(folded.layers[1].o_proj.input.scale.size() == 0);
  CHECK(folded.layers[1].o_proj.input.order == unfolded.layers[1].o_proj.input.order);

  const Matrix before = logits_of(unfolded), after = logits_of(folded);
  CHECK(relative_error(before, fp) < 1e-4);
  CHECK(relative_error(after, before) < 1e-4);
  CHECK(relative_error(after, fp) < 1e-4);
}

TEST_CASE("Folding a W4A4 stories260K keeps its logits up to float rounding") {
  const Model& original = test::stories_model("stories260K-hf");
  std::mt19937 rng(11);
  Model unfolded = transformed(original, true, rng);
  for (DecoderLayer& layer : unfolded.layers)
    for (QuantLinear* linear : {&layer.q_proj, &layer.k_proj, &layer.v_proj, &layer.o_proj, &layer.gate_proj,
                                &layer.up_proj, &layer.down_proj}) {
      linear->act_quant = QuantSpec{4, false, 32};
      linear->weight_quant = QuantSpec{4, true, 32};
      fake_quant_rows(linear->weight, linear->weight_quant);
    }
  Model folded = unfolded;
  CHECK(fold_input_transforms(folded).size() == 4u * original.config.n_layers);

  const Matrix fp = logits_of(original), before = logits_of(unfolded), after = logits_of(folded);
  INFO("W4A4 vs fp " << relative_error(before, fp) << ", folded vs unfolded " << relative_error(after, before));
  CHECK(relative_error(before, fp) > 1e-2);  // quantization really changes the model
  CHECK(relative_error(after, before) < 1e-3);
}

TEST_CASE("Folding an input order that is not a permutation of d_in channels is an error naming the layer") {
  Model model = test::stories_model("stories260K-hf");
  model.layers[3].down_proj.input.order = {0, 1, 2};
  CHECK(fold_error(model) == "layers.3.mlp.down_proj: input order has 3 channels but the layer takes d_in = 172; "
                             "give a permutation of 0..171");
  std::mt19937 rng(3);
  model.layers[3].down_proj.input.order = random_order(172, 0, rng);
  model.layers[3].down_proj.input.order[5] = model.layers[3].down_proj.input.order[6];
  const int repeated = model.layers[3].down_proj.input.order[6];
  CHECK(fold_error(model) == fmt::format("layers.3.mlp.down_proj: input order names channel {} twice or out of "
                                         "range; give a permutation of 0..171", repeated));
}

}  // namespace serq
