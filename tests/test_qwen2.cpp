// The Qwen2 family: a tiny Qwen2-shaped checkpoint with q/k/v biases (written here as safetensors beside its
// config.json, random weights) loads and runs as a plain reference forward written out position by position in
// double, from safetensors and from GGUF; QuaRot's rotations and SERQ's folds carry the biases exactly; its
// config.json fields are parsed.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "core/calib/observers.h"
#include "core/common/gaussian.h"
#include "core/model/fold.h"
#include "core/model/forward.h"
#include "core/model/loader.h"
#include "methods/quarot.h"
#include "methods/serq.h"
#include "tests/gguf_writer.h"
#include "tests/safetensors_writer.h"

using namespace serq;
namespace fs = std::filesystem;

namespace {

constexpr int kDim = 32, kHeads = 4, kHeadDim = 8, kHidden = 48, kLayers = 2, kVocab = 40;
constexpr double kTheta = 1000000.0, kEps = 1e-6;

using Tensors = std::map<std::string, Eigen::MatrixXd>;  // name → values (vectors as one column)

// Random tensors of a Qwen2 model with `kv_heads` key/value heads, written to `dir` with its config.json.
Tensors write_tiny_qwen2(const fs::path& dir, int kv_heads) {
  Tensors t;
  std::uint64_t seed = 100;
  auto add = [&](const std::string& name, Eigen::Index rows, Eigen::Index cols, double scale, double offset) {
    t[name] = (gaussian_matrix(rows, cols, seed++) * scale).array() + offset;
  };
  const int kv = kv_heads * kHeadDim;
  add("model.embed_tokens.weight", kVocab, kDim, 1.0, 0.0);
  for (int l = 0; l < kLayers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", kDim, 1, 0.1, 1.0);
    add(p + "self_attn.q_proj.weight", kDim, kDim, 0.3, 0.0);
    add(p + "self_attn.q_proj.bias", kDim, 1, 0.5, 0.0);
    add(p + "self_attn.k_proj.weight", kv, kDim, 0.3, 0.0);
    add(p + "self_attn.k_proj.bias", kv, 1, 0.5, 0.0);
    add(p + "self_attn.v_proj.weight", kv, kDim, 0.3, 0.0);
    add(p + "self_attn.v_proj.bias", kv, 1, 0.5, 0.0);
    add(p + "self_attn.o_proj.weight", kDim, kDim, 0.2, 0.0);
    add(p + "post_attention_layernorm.weight", kDim, 1, 0.1, 1.0);
    add(p + "mlp.gate_proj.weight", kHidden, kDim, 0.2, 0.0);
    add(p + "mlp.up_proj.weight", kHidden, kDim, 0.2, 0.0);
    add(p + "mlp.down_proj.weight", kDim, kHidden, 0.2, 0.0);
  }
  add("model.norm.weight", kDim, 1, 0.1, 1.0);
  std::vector<test::F32Tensor> tensors;
  for (const auto& [name, m] : t) {
    test::F32Tensor tensor{name, {}, {}};
    tensor.shape = m.cols() == 1 ? std::vector<std::int64_t>{m.rows()} : std::vector<std::int64_t>{m.rows(), m.cols()};
    for (Eigen::Index r = 0; r < m.rows(); ++r)
      for (Eigen::Index c = 0; c < m.cols(); ++c) tensor.values.push_back(static_cast<float>(m(r, c)));
    tensors.push_back(std::move(tensor));
  }
  test::write_safetensors(dir / "model.safetensors", tensors);
  const nlohmann::json config = {
      {"architectures", {"Qwen2ForCausalLM"}}, {"model_type", "qwen2"}, {"hidden_size", kDim},
      {"intermediate_size", kHidden}, {"num_hidden_layers", kLayers}, {"num_attention_heads", kHeads},
      {"num_key_value_heads", kv_heads}, {"vocab_size", kVocab}, {"rms_norm_eps", kEps},
      {"max_position_embeddings", 64}, {"rope_theta", kTheta}, {"tie_word_embeddings", true},
      {"use_sliding_window", false}, {"sliding_window", 16}, {"max_window_layers", kLayers},
      {"hidden_act", "silu"}, {"bos_token_id", 1}, {"eos_token_id", 2}};
  test::write_bytes(dir / "config.json", config.dump());
  return t;
}

// The weights rounded to float, as the model holds them, in double.
Eigen::MatrixXd f(const Tensors& t, const std::string& name) { return t.at(name).cast<float>().cast<double>(); }

Eigen::VectorXd rms_norm(const Eigen::VectorXd& x, const Eigen::VectorXd& gamma) {
  return x.cwiseProduct(gamma) / std::sqrt(x.squaredNorm() / static_cast<double>(x.size()) + kEps);
}

// HF Qwen2 forward, written out: RMSNorm, q/k/v with bias, RoPE on halves, causal GQA softmax attention, o_proj,
// SwiGLU, final norm, tied head. Returns the logits of every position (positions × vocab).
Eigen::MatrixXd reference_logits(const Tensors& t, const std::vector<int>& tokens, int kv_heads) {
  const int n = static_cast<int>(tokens.size()), group = kHeads / kv_heads, half = kHeadDim / 2;
  std::vector<Eigen::VectorXd> x;
  for (int token : tokens) x.push_back(f(t, "model.embed_tokens.weight").row(token).transpose());
  auto rope = [&](Eigen::VectorXd& v, int heads, int position) {
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < half; ++i) {
        const double freq = 1.0 / std::pow(kTheta, 2.0 * i / kHeadDim), angle = position * freq;
        const double a = v[h * kHeadDim + i], b = v[h * kHeadDim + i + half];
        v[h * kHeadDim + i] = a * std::cos(angle) - b * std::sin(angle);
        v[h * kHeadDim + i + half] = a * std::sin(angle) + b * std::cos(angle);
      }
    }
  };
  for (int l = 0; l < kLayers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    std::vector<Eigen::VectorXd> q(n), k(n), v(n);
    for (int s = 0; s < n; ++s) {
      const Eigen::VectorXd h = rms_norm(x[s], f(t, p + "input_layernorm.weight"));
      q[s] = f(t, p + "self_attn.q_proj.weight") * h + f(t, p + "self_attn.q_proj.bias");
      k[s] = f(t, p + "self_attn.k_proj.weight") * h + f(t, p + "self_attn.k_proj.bias");
      v[s] = f(t, p + "self_attn.v_proj.weight") * h + f(t, p + "self_attn.v_proj.bias");
      rope(q[s], kHeads, s);
      rope(k[s], kv_heads, s);
    }
    for (int s = 0; s < n; ++s) {
      Eigen::VectorXd attention = Eigen::VectorXd::Zero(kDim);
      for (int h = 0; h < kHeads; ++h) {
        const int g = h / group;
        std::vector<double> scores;
        double top = -1e300, total = 0.0;
        for (int u = 0; u <= s; ++u) {
          scores.push_back(q[s].segment(h * kHeadDim, kHeadDim).dot(k[u].segment(g * kHeadDim, kHeadDim)) /
                           std::sqrt(static_cast<double>(kHeadDim)));
          top = std::max(top, scores.back());
        }
        for (double& score : scores) total += score = std::exp(score - top);
        for (int u = 0; u <= s; ++u) {
          attention.segment(h * kHeadDim, kHeadDim) += scores[u] / total * v[u].segment(g * kHeadDim, kHeadDim);
        }
      }
      x[s] += f(t, p + "self_attn.o_proj.weight") * attention;
      const Eigen::VectorXd h = rms_norm(x[s], f(t, p + "post_attention_layernorm.weight"));
      const Eigen::VectorXd gate = f(t, p + "mlp.gate_proj.weight") * h, up = f(t, p + "mlp.up_proj.weight") * h;
      const Eigen::VectorXd silu = gate.array() / (1.0 + (-gate.array()).exp());
      x[s] += f(t, p + "mlp.down_proj.weight") * silu.cwiseProduct(up);
    }
  }
  Eigen::MatrixXd logits(n, kVocab);
  for (int s = 0; s < n; ++s) {
    logits.row(s) = (f(t, "model.embed_tokens.weight") * rms_norm(x[s], f(t, "model.norm.weight"))).transpose();
  }
  return logits;
}

const std::vector<int> kTokens = {1, 7, 30, 2, 19, 19, 5, 38, 11, 0, 26, 14};

Matrix logits_of(const Model& model) {
  return forward_logits(model, forward_hidden(model, kTokens, 1, static_cast<int>(kTokens.size())));
}

// max |a − b| relative to max |b|.
double relative_difference(const Matrix& a, const Matrix& b) {
  return (a - b).cwiseAbs().maxCoeff() / b.cwiseAbs().maxCoeff();
}

}  // namespace

TEST_CASE("qwen2: a tiny checkpoint with q/k/v biases matches a plain reference forward, with GQA and without") {
  for (const int kv_heads : {2, 4}) {
    const fs::path dir = test::scratch_dir("qwen2_tiny_kv" + std::to_string(kv_heads));
    const Tensors tensors = write_tiny_qwen2(dir, kv_heads);
    const Model model = load_model(dir);
    REQUIRE(model.config.family == ModelFamily::qwen2);
    REQUIRE(model.config.has_bias(LinearId::v));
    REQUIRE(!model.config.has_bias(LinearId::o));
    CHECK(model.config.n_kv_heads == kv_heads);
    CHECK(model.config.max_seq_len == 64);  // use_sliding_window false: the window does not cap the context
    CHECK(model.layers[1].v_proj.bias.size() == kv_heads * kHeadDim);
    CHECK(model.layers[1].o_proj.bias.size() == 0);
    const Eigen::MatrixXd want = reference_logits(tensors, kTokens, kv_heads);
    const Matrix got = logits_of(model);
    INFO("kv heads " << kv_heads << ": max |Δlogit| / max |logit| = " << relative_difference(got, want.cast<float>()));
    CHECK(relative_difference(got, want.cast<float>()) < 1e-5);
    // The biases matter: the same model without them is far from the reference.
    Model unbiased = model;
    for (DecoderLayer& layer : unbiased.layers) layer.q_proj.bias.setZero(), layer.v_proj.bias.setZero();
    CHECK(relative_difference(logits_of(unbiased), want.cast<float>()) > 1e-2);
  }
}

TEST_CASE("qwen2: QuaRot's rotations and SERQ's folds carry the biases, leaving the outputs unchanged") {
  const fs::path dir = test::scratch_dir("qwen2_tiny_transforms");
  write_tiny_qwen2(dir, 4);  // without GQA, o_proj's scale folds into v_proj's rows and bias
  const Model fp = load_model(dir);
  const Matrix before = logits_of(fp);

  Model rotated = fp;
  QuaRot().prepare(rotated, QuantParams{}, Calibration{});
  CHECK(relative_difference(logits_of(rotated), before) < 1e-5);
  CHECK(rotated.layers[0].v_proj.bias != fp.layers[0].v_proj.bias);  // rotated per head with v's rows

  QuantParams params;
  params.rank = 4;
  StatsRequest request;
  for (const QuantLinear* layer : fp.linears()) request.layers.insert(layer->name);
  std::vector<std::vector<int>> samples = {kTokens, {3, 9, 27, 1, 33, 8, 8, 20}};
  Calibration calibration;
  calibration.stats = collect_calibration_stats(fp, samples, request);
  Model flattened = fp;
  Serq().prepare(flattened, params, calibration);
  const std::vector<std::string> folds = fold_input_transforms(flattened);
  CHECK(std::find(folds.begin(), folds.end(), "layers.0.self_attn.o_proj: scale -> v_proj rows") != folds.end());
  CHECK(relative_difference(logits_of(flattened), before) < 1e-5);
}

TEST_CASE("qwen2: the same model as a GGUF file (qwen2.* metadata, biases, q/k rows not permuted), same logits") {
  const fs::path dir = test::scratch_dir("qwen2_tiny_gguf");
  const Tensors t = write_tiny_qwen2(dir, 2);
  // llama.cpp's names for Hugging Face's, written by hand from its converter's tensor map.
  const std::map<std::string, std::string> layer_names = {
      {"input_layernorm.weight", "attn_norm.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},   {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.weight", "attn_k.weight"},   {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.weight", "attn_v.weight"},   {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"}, {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},        {"mlp.down_proj.weight", "ffn_down.weight"}};
  test::GgufWriter w;
  w.add_string("general.architecture", "qwen2");
  w.add_u32("qwen2.block_count", kLayers);
  w.add_u32("qwen2.embedding_length", kDim);
  w.add_u32("qwen2.feed_forward_length", kHidden);
  w.add_u32("qwen2.attention.head_count", kHeads);
  w.add_u32("qwen2.attention.head_count_kv", 2);
  w.add_u32("qwen2.context_length", 64);
  w.add_f32("qwen2.attention.layer_norm_rms_epsilon", static_cast<float>(kEps));
  w.add_f32("qwen2.rope.freq_base", static_cast<float>(kTheta));
  for (const auto& [name, m] : t) {
    std::string gguf = name == "model.embed_tokens.weight" ? "token_embd.weight"
                       : name == "model.norm.weight"       ? "output_norm.weight"
                                                           : "";
    for (int l = 0; gguf.empty() && l < kLayers; ++l) {
      const std::string prefix = "model.layers." + std::to_string(l) + ".";
      if (!name.starts_with(prefix)) continue;
      gguf = "blk." + std::to_string(l) + "." + layer_names.at(name.substr(prefix.size()));
    }
    REQUIRE(!gguf.empty());
    std::vector<float> values;  // row-major: GGUF's ne0 is the row length
    for (Eigen::Index r = 0; r < m.rows(); ++r)
      for (Eigen::Index c = 0; c < m.cols(); ++c) values.push_back(static_cast<float>(m(r, c)));
    const std::vector<std::uint64_t> ne = m.cols() == 1 ? std::vector<std::uint64_t>{std::uint64_t(m.rows())}
                                                        : std::vector<std::uint64_t>{std::uint64_t(m.cols()),
                                                                                     std::uint64_t(m.rows())};
    w.add_f32_tensor(gguf, ne, values);
  }
  test::write_bytes(dir / "model.gguf", w.bytes());

  const Model gguf = load_model(dir / "model.gguf");
  CHECK(gguf.config.family == ModelFamily::qwen2);
  CHECK(gguf.config.rope_layout == RopeLayout::half);
  CHECK(gguf.layers[1].k_proj.bias.size() == 2 * kHeadDim);
  const Eigen::MatrixXd want = reference_logits(t, kTokens, 2);
  CHECK(relative_difference(logits_of(gguf), want.cast<float>()) < 1e-5);
  CHECK(relative_difference(logits_of(gguf), logits_of(load_model(dir))) < 1e-6);
}

TEST_CASE("qwen2: config.json with use_sliding_window true is refused in one line") {
  const fs::path dir = test::scratch_dir("qwen2_sliding");
  write_tiny_qwen2(dir, 2);
  auto config = nlohmann::json::parse(test::read_bytes(dir / "config.json"));
  config["use_sliding_window"] = true;
  test::write_bytes(dir / "config.json", config.dump());
  CHECK_THROWS_WITH(load_model(dir), Catch::Contains("use_sliding_window true is not supported"));
}
