// Shared by the benchmarks under tools/: the median wall time of repeated runs, random matrices, and random decoder
// layers of a model's shape (LLaMA-2-7B's among them).
#pragma once

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "core/data/token_stream.h"
#include "core/model/model.h"

namespace serq::bench {

template <class F>
double median_seconds(int repeats, F&& f) {
  f();  // warm-up
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Medians of a baseline and a candidate timed in alternation (baseline, candidate, baseline, ...), so that a load
// change on the machine during the measurement shifts both and leaves their ratio alone.
struct PairedMedians {
  double baseline = 0;
  double candidate = 0;
};

template <class F, class G>
PairedMedians paired_median_seconds(int repeats, F&& baseline, G&& candidate) {
  baseline();  // warm-up
  candidate();
  std::vector<double> base_times, candidate_times;
  auto time = [](auto& f) {
    const auto start = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  for (int i = 0; i < repeats; ++i) {
    base_times.push_back(time(baseline));
    candidate_times.push_back(time(candidate));
  }
  std::sort(base_times.begin(), base_times.end());
  std::sort(candidate_times.begin(), candidate_times.end());
  return {base_times[base_times.size() / 2], candidate_times[candidate_times.size() / 2]};
}

// m filled with N(0, stddev²) draws of rng, in storage order.
inline void fill_normal(Matrix& m, std::mt19937& rng, float stddev) {
  std::normal_distribution<float> normal(0.0f, stddev);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
}

// rows × cols of N(0, stddev²) draws of rng.
inline Matrix random_normal(int rows, int cols, float stddev, std::mt19937& rng) {
  Matrix m(rows, cols);
  fill_normal(m, rng, stddev);
  return m;
}

// One decoder layer of `config`'s shape (n_layers is set to 1) with RANDOM N(0, 0.02²) linear weights (seed 1234),
// unit norms, and a 32-token vocabulary whose embeddings are N(0, 50²).
inline Model random_decoder_layer(ModelConfig config, int max_tokens) {
  config.n_layers = 1;
  config.vocab_size = 32;  // the embedding and head are not part of the measurement
  config.max_seq_len = std::max(4096, max_tokens);
  Model model = make_empty_model(config);
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (QuantLinear* linear : model.linears())
    for (Eigen::Index i = 0; i < linear->weight.size(); ++i) linear->weight.data()[i] = normal(rng);
  for (Eigen::Index i = 0; i < model.embed.size(); ++i) model.embed.data()[i] = normal(rng) * 50.0f;
  model.layers[0].attn_norm.setOnes();
  model.layers[0].ffn_norm.setOnes();
  model.final_norm.setOnes();
  return model;
}

// `count` uniformly random token ids below `vocab` (seed 99), as calibration text for random layers.
inline TokenStream random_tokens(int vocab, int count) {
  TokenStream stream;
  stream.name = "random tokens";
  std::mt19937 rng(99);
  std::uniform_int_distribution<int> id(0, vocab - 1);
  for (int i = 0; i < count; ++i) stream.tokens.push_back(id(rng));
  return stream;
}

// LLaMA-2-7B's decoder layer: hidden 4096, FFN 11008, 32 heads, MHA.
inline Model seven_b_shaped_layer(int max_tokens) {
  ModelConfig config;
  config.dim = 4096;
  config.hidden_dim = 11008;
  config.n_heads = 32;
  config.n_kv_heads = 32;
  return random_decoder_layer(config, max_tokens);
}

}  // namespace serq::bench
