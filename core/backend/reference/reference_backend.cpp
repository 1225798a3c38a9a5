// The reference backend: every op written from its definition in plain loops, accumulated in double, with no
// blocking, no vectorization and no shared work between linears. It is slow and obviously correct; test_backend_ops
// holds every other backend to it, and `runtime.device: reference` runs a whole model on it.
#include <algorithm>
#include <bit>
#include <cmath>

#include "core/backend/backend.h"
#include "core/backend/cpu/cpu_quant_linear.h"
#include "core/backend/host_backend.h"
#include "core/common/error.h"
#include "core/linear/quant_linear.h"
#include "core/quant/int_quant_reference.h"

namespace serq {
namespace {

// MXFP4 by the letter of core/quant/mxfp4.h: X = 2^clamp(floor(log2 amax) − 2, −127, 127), x / X to the nearest of
// {0, 0.5, 1, 1.5, 2, 3, 4, 6} (the index parity is the mantissa bit, so a tie takes the even index), at most 6.
void mxfp4_block(float* values, int n) {
  static constexpr double magnitudes[] = {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0};
  double amax = 0.0;
  for (int i = 0; i < n; ++i) {
    SERQ_CHECK(std::isfinite(values[i]), "non-finite value in an MXFP4 block; check the activations");
    amax = std::max(amax, std::fabs(static_cast<double>(values[i])));
  }
  if (amax == 0.0) {
    std::fill(values, values + n, 0.0f);
    return;
  }
  const double scale = std::ldexp(1.0, std::clamp(static_cast<int>(std::floor(std::log2(amax))) - 2, -127, 127));
  for (int i = 0; i < n; ++i) {
    const double v = std::min(std::fabs(static_cast<double>(values[i])) / scale, 6.0);
    int best = 0;
    for (int k = 1; k < 8; ++k) {
      const double gap = std::fabs(v - magnitudes[k]), best_gap = std::fabs(v - magnitudes[best]);
      if (gap < best_gap || (gap == best_gap && k % 2 == 0)) best = k;
    }
    values[i] = static_cast<float>(std::copysign(magnitudes[best] * scale, static_cast<double>(values[i])));
  }
}

void fake_quant(Matrix& x, const QuantSpec& spec) {
  if (!spec.enabled()) return;
  if (spec.format == NumberFormat::integer) {
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      SERQ_CHECK(x.row(r).allFinite(), "row {}: non-finite value in a quantization group; the input has NaN/Inf — "
                 "check the weights/activations", r);
    }
    x = reference_int_fake_quant(x, spec.bits, spec.symmetric, spec.group_size, spec.f16_scales);
    return;
  }
  const int block = static_cast<int>(std::min<Eigen::Index>(spec.group_size, x.cols()));
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    for (Eigen::Index c0 = 0; c0 < x.cols(); c0 += block) {
      mxfp4_block(&x(r, c0), static_cast<int>(std::min<Eigen::Index>(block, x.cols() - c0)));
    }
  }
}

// Entry (i, j) of Sylvester's Hadamard matrix H_n: (−1)^popcount(i & j).
double hadamard_entry(int i, int j) { return std::popcount(static_cast<unsigned>(i & j)) % 2 ? -1.0 : 1.0; }

// x ← x · R with R = (H_n / √n) ⊗ F entry by entry: R(a·m + b, c·m + e) = H(a, c)/√n · F(b, e).
void rotate(Matrix& x, const InputRotation& rotation) {
  const int n = rotation.hadamard_size, d = static_cast<int>(x.cols());
  SERQ_CHECK(n >= 1 && d % n == 0, "rotation {}: {} channels do not split into {} Hadamard blocks",
             rotation.description, d, n);
  const int m = d / n;
  const bool has_factor = rotation.factor.size() > 0;
  SERQ_CHECK(!has_factor || (rotation.factor.rows() == m && rotation.factor.cols() == m),
             "rotation {}: factor is {}×{}, blocks are {} wide", rotation.description, rotation.factor.rows(),
             rotation.factor.cols(), m);
  const double norm = 1.0 / std::sqrt(static_cast<double>(n));
  std::vector<double> out(static_cast<std::size_t>(d));
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    for (int c = 0; c < n; ++c) {
      for (int e = 0; e < m; ++e) {
        double sum = 0.0;
        for (int a = 0; a < n; ++a) {
          for (int b = 0; b < m; ++b) {
            const double f = has_factor ? rotation.factor(b, e) : (b == e ? 1.0 : 0.0);
            sum += static_cast<double>(x(r, a * m + b)) * hadamard_entry(a, c) * norm * f;
          }
        }
        out[static_cast<std::size_t>(c * m + e)] = sum;
      }
    }
    for (int j = 0; j < d; ++j) x(r, j) = static_cast<float>(out[static_cast<std::size_t>(j)]);
  }
}

// y (double, rows × w.rows()) += x[:, :w.cols()] · wᵀ.
void add_product(const Matrix& x, const Matrix& w, Eigen::MatrixXd& y) {
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    for (Eigen::Index j = 0; j < w.rows(); ++j) {
      double sum = 0.0;
      for (Eigen::Index k = 0; k < w.cols(); ++k) sum += static_cast<double>(x(i, k)) * static_cast<double>(w(j, k));
      y(i, j) += sum;
    }
  }
}

// One linear by QuantLinear's formula: Xq = Q_a(T(X)), Y = Xq·Wᵀ + Q_i(Xq·Aᵀ)·Bᵀ + Xq[:, :r]·Rᵀ + b.
Matrix reference_linear(const QuantLinear& layer, const Matrix& x) {
  SERQ_CHECK(x.cols() == layer.d_in(), "{}: the input has {} columns but the layer takes d_in = {}", layer.name,
             x.cols(), layer.d_in());
  Matrix xq = x;
  const InputTransform& t = layer.input;
  for (Eigen::Index r = 0; r < xq.rows(); ++r) {
    for (Eigen::Index j = 0; j < xq.cols(); ++j) {
      const Eigen::Index source = t.order.empty() ? j : t.order[static_cast<std::size_t>(j)];
      xq(r, j) = t.scale.size() > 0 ? x(r, source) / t.scale[source] : x(r, source);
    }
  }
  if (t.rotation.enabled()) rotate(xq, t.rotation);
  try {
    fake_quant(xq, layer.act_quant);
  } catch (const Error& e) {
    fail("{}: {}", layer.name, e.what());
  }
  const Matrix weight = layer.weight.size() > 0 || layer.packed.empty() ? layer.weight : layer.packed.dequantize();
  Eigen::MatrixXd y = Eigen::MatrixXd::Zero(x.rows(), layer.d_out());
  add_product(xq, weight, y);
  if (layer.low_rank.rank() > 0) {
    Eigen::MatrixXd t_double = Eigen::MatrixXd::Zero(x.rows(), layer.low_rank.rank());
    add_product(xq, layer.low_rank.a, t_double);
    Matrix intermediate = t_double.cast<float>();
    fake_quant(intermediate, layer.low_rank.intermediate_quant);
    add_product(intermediate, layer.low_rank.b, y);
  }
  if (layer.salient.rank() > 0) add_product(xq, layer.salient.r, y);
  if (layer.bias.size() > 0) y.rowwise() += layer.bias.cast<double>().transpose();
  return y.cast<float>();
}

// log softmax of one row, in double.
std::vector<double> log_softmax(const Matrix& logits, Eigen::Index row) {
  double max = -INFINITY;
  for (Eigen::Index v = 0; v < logits.cols(); ++v) max = std::max(max, static_cast<double>(logits(row, v)));
  double sum = 0.0;
  for (Eigen::Index v = 0; v < logits.cols(); ++v) sum += std::exp(static_cast<double>(logits(row, v)) - max);
  std::vector<double> out(static_cast<std::size_t>(logits.cols()));
  for (Eigen::Index v = 0; v < logits.cols(); ++v) out[v] = static_cast<double>(logits(row, v)) - max - std::log(sum);
  return out;
}

// The argmax of a row, the first among ties.
int first_argmax(const std::vector<double>& row) {
  return static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
}

// Every op reads its tensors as host matrices (HostBackend's memory is the host's) and writes its outputs in place.
class ReferenceBackend final : public HostBackend {
 public:
  std::string_view name() const override { return "reference"; }

  // The layer as it lies: the formula reads its floats (or its stored form), never an integer layout.
  std::unique_ptr<ResidentLinear> make_resident(const QuantLinear& layer, const Tensor* shared_weight) override {
    counted(KernelRecord::Direction::host_to_backend, "weights",
            linear_bytes(layer, nullptr) - (shared_weight ? shared_weight->bytes() : 0));
    return std::make_unique<ResidentLinear>(layer);
  }

  void embedding(const Tensor& table_t, const Tensor& tokens_t, Tensor& out_t) override {
    const TimedOp timed = ran(Op::embedding, "reference");
    const auto table = host_matrix(table_t);
    const std::span<const int> tokens = host_ints(tokens_t);
    check_shape(out_t, static_cast<std::int64_t>(tokens.size()), table.cols(), "embedding");
    auto out = host_matrix(out_t);
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      SERQ_CHECK(tokens[i] >= 0 && tokens[i] < table.rows(), "token id {} is outside the vocabulary (size {}); the "
                 "tokenizer does not match the model", tokens[i], table.rows());
      for (Eigen::Index j = 0; j < table.cols(); ++j) out(static_cast<Eigen::Index>(i), j) = table(tokens[i], j);
    }
  }

  void rms_norm(const Tensor& x_t, const Tensor& gamma_t, float eps, Tensor& out_t) override {
    const TimedOp timed = ran(Op::rms_norm, "reference");
    check_shape(out_t, x_t.rows, x_t.cols, "rms_norm");
    check_shape(gamma_t, 1, x_t.cols, "rms_norm γ");
    const auto x = host_matrix(x_t);
    auto out = host_matrix(out_t);
    const float* gamma = gamma_t.f32();
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      double sum = 0.0;
      for (Eigen::Index j = 0; j < x.cols(); ++j) sum += static_cast<double>(x(r, j)) * x(r, j);
      const double inv = 1.0 / std::sqrt(sum / static_cast<double>(x.cols()) + eps);
      for (Eigen::Index j = 0; j < x.cols(); ++j) out(r, j) = static_cast<float>(x(r, j) * inv * gamma[j]);
    }
  }

  void rope(Tensor& x_t, const RopeShape& s) override {
    const TimedOp timed = ran(Op::rope, "reference");
    check_shape(x_t, static_cast<std::int64_t>(s.batch) * s.seq, static_cast<std::int64_t>(s.n_heads) * s.head_dim,
                "rope");
    check_shape(s.frequencies, 1, s.head_dim / 2, "rope frequencies");
    auto x = host_matrix(x_t);
    const int half = s.head_dim / 2;
    for (int b = 0; b < s.batch; ++b) {
      for (int t = 0; t < s.seq; ++t) {
        const Eigen::Index row = static_cast<Eigen::Index>(b) * s.seq + t;
        for (int h = 0; h < s.n_heads; ++h) {
          for (int i = 0; i < half; ++i) {
            const double angle = static_cast<double>(s.pos0 + t) * s.frequencies.f32()[i];
            const int first = h * s.head_dim + (s.interleaved ? 2 * i : i);
            const int second = first + (s.interleaved ? 1 : half);
            const double x0 = x(row, first), x1 = x(row, second);
            x(row, first) = static_cast<float>(x0 * std::cos(angle) - x1 * std::sin(angle));
            x(row, second) = static_cast<float>(x0 * std::sin(angle) + x1 * std::cos(angle));
          }
        }
      }
    }
  }

  void attention(const Tensor& q_t, const Tensor& keys_t, const Tensor& values_t, const AttentionShape& s,
                 Tensor& out_t) override {
    const TimedOp timed = ran(Op::attention, "reference");
    const std::int64_t width = static_cast<std::int64_t>(s.n_heads) * s.head_dim;
    const std::int64_t kv_width = static_cast<std::int64_t>(s.n_kv_heads) * s.head_dim;
    check_shape(q_t, static_cast<std::int64_t>(s.batch) * s.seq, width, "attention q");
    check_shape(keys_t, static_cast<std::int64_t>(s.batch) * s.kv_rows, kv_width, "attention keys");
    check_shape(values_t, static_cast<std::int64_t>(s.batch) * s.kv_rows, kv_width, "attention values");
    check_shape(out_t, q_t.rows, width, "attention output");
    const auto q = host_matrix(q_t), keys = host_matrix(keys_t), values = host_matrix(values_t);
    auto out = host_matrix(out_t);
    const int group = s.n_heads / s.n_kv_heads;
    const double scale = 1.0 / std::sqrt(static_cast<double>(s.head_dim));
    for (int b = 0; b < s.batch; ++b) {
      for (int t = 0; t < s.seq; ++t) {
        const Eigen::Index row = static_cast<Eigen::Index>(b) * s.seq + t;
        const int visible = s.pos0 + t + 1;
        for (int h = 0; h < s.n_heads; ++h) {
          const int kv_col = (h / group) * s.head_dim, q_col = h * s.head_dim;
          std::vector<double> scores(static_cast<std::size_t>(visible));
          double max = -INFINITY;
          for (int k = 0; k < visible; ++k) {
            const Eigen::Index key_row = static_cast<Eigen::Index>(b) * s.kv_rows + k;
            double dot = 0.0;
            for (int i = 0; i < s.head_dim; ++i) {
              dot += static_cast<double>(q(row, q_col + i)) * keys(key_row, kv_col + i);
            }
            scores[static_cast<std::size_t>(k)] = dot * scale;
            max = std::max(max, dot * scale);
          }
          double sum = 0.0;
          for (double& score : scores) sum += score = std::exp(score - max);
          for (int i = 0; i < s.head_dim; ++i) {
            double acc = 0.0;
            for (int k = 0; k < visible; ++k) {
              const Eigen::Index value_row = static_cast<Eigen::Index>(b) * s.kv_rows + k;
              acc += scores[static_cast<std::size_t>(k)] * values(value_row, kv_col + i);
            }
            out(row, q_col + i) = static_cast<float>(acc / sum);
          }
        }
      }
    }
  }

  void swiglu(Tensor& gate_t, const Tensor& up_t) override {
    const TimedOp timed = ran(Op::swiglu, "reference");
    check_shape(up_t, gate_t.rows, gate_t.cols, "swiglu");
    auto gate = host_matrix(gate_t);
    const auto up = host_matrix(up_t);
    for (Eigen::Index i = 0; i < gate.size(); ++i) {
      const double g = gate.data()[i];
      gate.data()[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up.data()[i]);
    }
  }

  void add(Tensor& h_t, const Tensor& x_t) override {
    const TimedOp timed = ran(Op::add, "reference");
    check_shape(x_t, h_t.rows, h_t.cols, "add");
    auto h = host_matrix(h_t);
    const auto x = host_matrix(x_t);
    for (Eigen::Index i = 0; i < h.size(); ++i) h.data()[i] += x.data()[i];
  }

  void quant_linear(std::span<const ResidentLinear* const> group, const Tensor& x,
                    std::span<Tensor* const> outputs) override {
    SERQ_CHECK(group.size() == outputs.size() && !group.empty(), "quant_linear: {} linears and {} outputs",
               group.size(), outputs.size());
    const Matrix input = host_matrix(x);
    for (std::size_t i = 0; i < group.size(); ++i) {
      const TimedOp timed = ran(Op::quant_linear, "reference");
      const QuantLinear& layer = group[i]->layer();
      check_shape(*outputs[i], x.rows, layer.d_out(), layer.name);
      host_matrix(*outputs[i]) = reference_linear(layer, input);
    }
  }

  void act_quant(Tensor& x, const QuantSpec& spec) override {
    const TimedOp timed = ran(Op::act_quant, "reference");
    Matrix m = host_matrix(x);
    fake_quant(m, spec);
    host_matrix(x) = m;
  }

  void hadamard(Tensor& x, const InputRotation& rotation) override {
    const TimedOp timed = ran(Op::hadamard, "reference");
    Matrix m = host_matrix(x);
    rotate(m, rotation);
    host_matrix(x) = m;
  }

  // Group by group with the scalar grid of int_quant_reference.h.
  void kv_quant(Tensor& x, const KvQuantSpec& spec) override {
    if (!spec.enabled()) return;
    const TimedOp timed = ran(Op::kv_quant, "reference");
    SERQ_CHECK(spec.group_size >= 1 && x.cols % spec.group_size == 0, "kv_quant: groups of {} do not divide {} "
               "channels", spec.group_size, x.cols);
    auto m = host_matrix(x);
    for (Eigen::Index r = 0; r < m.rows(); ++r) {
      SERQ_CHECK(m.row(r).allFinite(), "kv_quant: row {}: non-finite value in a key or value; check the activations",
                 r);
      for (Eigen::Index c0 = 0; c0 < m.cols(); c0 += spec.group_size) {
        const ReferenceIntGrid grid = ReferenceIntGrid::fit(
            std::span<const float>(&m(r, c0), static_cast<std::size_t>(spec.group_size)), spec.bits, spec.symmetric,
            false, spec.clip);
        for (Eigen::Index c = c0; c < c0 + spec.group_size; ++c) m(r, c) = grid.fake_quant(m(r, c));
      }
    }
  }

  void observe(const Tensor& x_t, ChannelSums& sums) override {
    const TimedOp timed = ran(Op::observe, "reference");
    const auto x = host_matrix(x_t);
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      for (Eigen::Index j = 0; j < x.cols(); ++j) {
        const float a = std::fabs(x(r, j));
        if (std::isnan(a)) {
          sums.abs_max[j] = a;
        } else if (!std::isnan(sums.abs_max[j])) {
          sums.abs_max[j] = std::max(sums.abs_max[j], a);
        }
        sums.sum_abs[j] += a;
        if (sums.gram.size() == 0) continue;
        for (Eigen::Index k = 0; k < x.cols(); ++k) sums.gram(j, k) += static_cast<double>(x(r, j)) * x(r, k);
      }
    }
    sums.tokens += x.rows();
    counted(KernelRecord::Direction::backend_to_host, "observer statistics", observed_bytes(sums));
  }

  void nll(const Tensor& logits_t, const Tensor& targets_t, std::vector<NllRow>& rows) override {
    const TimedOp timed = ran(Op::nll, "reference");
    const Matrix logits = host_matrix(logits_t);
    const std::span<const int> targets = host_ints(targets_t);
    check_shape(targets_t, logits.rows(), 1, "nll targets");
    for (Eigen::Index r = 0; r < logits.rows(); ++r) {
      const std::vector<double> log_q = log_softmax(logits, r);
      rows.push_back({-log_q[static_cast<std::size_t>(targets[static_cast<std::size_t>(r)])], first_argmax(log_q)});
    }
    counted(KernelRecord::Direction::backend_to_host, "nll rows", static_cast<std::size_t>(logits.rows()) * sizeof(NllRow));
  }

  void head_nll(const ResidentLinear& head, const Tensor& hidden, const Tensor& targets,
                std::vector<NllRow>& rows) override {
    head_nll_through_logits(head, hidden, targets, rows);  // the two ops are the reference's definition
  }

  void kld(const Tensor& reference_t, const Tensor& logits_t, const Tensor& targets_t,
           std::vector<KldRow>& rows) override {
    const TimedOp timed = ran(Op::kld, "reference");
    const Matrix reference_logits = host_matrix(reference_t), logits = host_matrix(logits_t);
    const std::span<const int> targets = host_ints(targets_t);
    check_shape(reference_t, logits.rows(), logits.cols(), "kld reference logits");
    check_shape(targets_t, logits.rows(), 1, "kld targets");
    for (Eigen::Index r = 0; r < logits.rows(); ++r) {
      const std::vector<double> log_p = log_softmax(reference_logits, r), log_q = log_softmax(logits, r);
      KldRow row;
      for (std::size_t v = 0; v < log_p.size(); ++v) row.kld += std::exp(log_p[v]) * (log_p[v] - log_q[v]);
      row.kld = std::max(row.kld, 0.0);
      const auto target = static_cast<std::size_t>(targets[static_cast<std::size_t>(r)]);
      row.delta_p = std::exp(log_q[target]) - std::exp(log_p[target]);
      row.reference_nll = -log_p[target];
      row.nll = -log_q[target];
      row.top1_agrees = first_argmax(log_p) == first_argmax(log_q);
      rows.push_back(row);
    }
    counted(KernelRecord::Direction::backend_to_host, "kld rows", static_cast<std::size_t>(logits.rows()) * sizeof(KldRow));
  }

  void copy(const Tensor& src, Tensor& dst) override {
    const TimedOp timed = ran(Op::copy, "reference");
    check_shape(dst, src.rows, src.cols, "copy");
    SERQ_CHECK(src.type == dst.type, "copy: tensors of different element types (a bug in the caller)");
    const auto* from = static_cast<const unsigned char*>(src.data);
    auto* to = static_cast<unsigned char*>(dst.data);
    std::vector<unsigned char> staged(from, from + src.bytes());  // overlapping rows copy as if through a temporary
    std::copy(staged.begin(), staged.end(), to);
  }
};

}  // namespace

Backend& reference_backend() {
  static ReferenceBackend backend;
  return backend;
}

}  // namespace serq
