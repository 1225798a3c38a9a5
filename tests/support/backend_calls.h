// Each op of a backend called on host matrices for tests: inputs cross by Backend::set into a buffer of the backend,
// the op runs on its tensors, and outputs come back by Backend::get, so a test of any backend (cpu, reference, cuda)
// goes through the same seam as the forward pass.
#pragma once

#include <span>
#include <vector>

#include "core/backend/backend.h"
#include "core/linear/quant_linear.h"

namespace serq::test {

inline Tensor ids(Buffer& work, std::span<const int> values) {
  const Tensor t = work.alloc(static_cast<std::int64_t>(values.size()), 1, ElementType::i32);
  work.backend().set(t, values, "test ids");
  return t;
}

inline Matrix embedding(Backend& b, const Matrix& table, std::span<const int> tokens) {
  Buffer work(b);
  Tensor out = work.alloc(static_cast<std::int64_t>(tokens.size()), table.cols());
  b.embedding(b.upload(table, work, "test"), ids(work, tokens), out);
  return b.download(out, "test");
}

inline Matrix rms_norm(Backend& b, const Matrix& x, const Vector& gamma, float eps) {
  Buffer work(b);
  Tensor out = work.alloc(x.rows(), x.cols());
  b.rms_norm(b.upload(x, work, "test"), b.upload(gamma.transpose(), work, "test"), eps, out);
  return b.download(out, "test");
}

// RoPE with `frequencies` (head_dim / 2) in place of shape.frequencies.
inline Matrix rope(Backend& b, const Matrix& x, RopeShape shape, const std::vector<float>& frequencies) {
  Buffer work(b);
  shape.frequencies = b.upload(Eigen::Map<const Matrix>(frequencies.data(), 1, static_cast<Eigen::Index>(
                                   frequencies.size())), work, "test");
  Tensor t = b.upload(x, work, "test");
  b.rope(t, shape);
  return b.download(t, "test");
}

inline Matrix attention(Backend& b, const Matrix& q, const Matrix& k, const Matrix& v, const AttentionShape& shape) {
  Buffer work(b);
  Tensor out = work.alloc(q.rows(), static_cast<std::int64_t>(shape.n_heads) * shape.head_dim);
  b.attention(b.upload(q, work, "test"), b.upload(k, work, "test"), b.upload(v, work, "test"), shape, out);
  return b.download(out, "test");
}

inline Matrix swiglu(Backend& b, const Matrix& gate, const Matrix& up) {
  Buffer work(b);
  Tensor g = b.upload(gate, work, "test");
  b.swiglu(g, b.upload(up, work, "test"));
  return b.download(g, "test");
}

inline Matrix add(Backend& b, const Matrix& h, const Matrix& x) {
  Buffer work(b);
  Tensor t = b.upload(h, work, "test");
  b.add(t, b.upload(x, work, "test"));
  return b.download(t, "test");
}

inline std::vector<Matrix> quant_linear(Backend& b, std::span<const QuantLinear* const> group, const Matrix& x) {
  Buffer work(b);
  std::vector<std::unique_ptr<ResidentLinear>> resident;
  std::vector<const ResidentLinear*> layers;
  std::vector<Tensor> outputs;
  for (const QuantLinear* layer : group) {
    resident.push_back(b.make_resident(*layer, nullptr));
    layers.push_back(resident.back().get());
    outputs.push_back(work.alloc(x.rows(), layer->d_out()));
  }
  std::vector<Tensor*> output_pointers;
  for (Tensor& t : outputs) output_pointers.push_back(&t);
  b.quant_linear(layers, b.upload(x, work, "test"), output_pointers);
  std::vector<Matrix> y;
  for (const Tensor& t : outputs) y.push_back(b.download(t, "test"));
  return y;
}

inline Matrix act_quant(Backend& b, const Matrix& x, const QuantSpec& spec) {
  Buffer work(b);
  Tensor t = b.upload(x, work, "test");
  b.act_quant(t, spec);
  return b.download(t, "test");
}

inline Matrix kv_quant(Backend& b, const Matrix& x, const KvQuantSpec& spec) {
  Buffer work(b);
  Tensor t = b.upload(x, work, "test");
  b.kv_quant(t, spec);
  return b.download(t, "test");
}

inline Matrix hadamard(Backend& b, const Matrix& x, const InputRotation& rotation) {
  Buffer work(b);
  Tensor t = b.upload(x, work, "test");
  b.hadamard(t, rotation);
  return b.download(t, "test");
}

inline void observe(Backend& b, const Matrix& x, ChannelSums& sums) {
  Buffer work(b);
  b.observe(b.upload(x, work, "test"), sums);
}

inline std::vector<NllRow> nll(Backend& b, const Matrix& logits, std::span<const int> targets) {
  Buffer work(b);
  std::vector<NllRow> rows;
  b.nll(b.upload(logits, work, "test"), ids(work, targets), rows);
  return rows;
}

inline std::vector<NllRow> head_nll(Backend& b, const QuantLinear& head, const Matrix& hidden,
                                    std::span<const int> targets) {
  Buffer work(b);
  const std::unique_ptr<ResidentLinear> resident = b.make_resident(head, nullptr);
  std::vector<NllRow> rows;
  b.head_nll(*resident, b.upload(hidden, work, "test"), ids(work, targets), rows);
  return rows;
}

inline double nll_sum(Backend& b, const Matrix& logits, std::span<const int> targets) {
  double sum = 0.0;
  for (const NllRow& row : nll(b, logits, targets)) sum += row.nll;
  return sum;
}

inline std::vector<KldRow> kld(Backend& b, const Matrix& reference_logits, const Matrix& logits,
                               std::span<const int> targets) {
  Buffer work(b);
  std::vector<KldRow> rows;
  b.kld(b.upload(reference_logits, work, "test"), b.upload(logits, work, "test"), ids(work, targets), rows);
  return rows;
}

}  // namespace serq::test
