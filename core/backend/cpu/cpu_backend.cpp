// The CPU backend: OpenBLAS for the GEMMs (attention and the float linears), Eigen's vectorized arrays for the
// elementwise ops and the softmaxes, and the integer GEMM (int_gemm.h) for linears on integer codes.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/backend/backend.h"
#include "core/backend/cpu/cpu_backend.h"
#include "core/backend/cpu/cpu_quant_linear.h"
#include "core/common/error.h"
#include "core/linear/rotation.h"

namespace serq {
namespace {

// Causal attention for one sequence and one query head: q holds seq rows of head_dim (stride q_stride); k and v
// the keys the sequence sees (stride kv_stride). Query t sits at position pos0 + t and sees keys 0 .. pos0 + t.
// Queries go in blocks of kAttentionQueryBlock rows, so that each block multiplies only the keys it can see.
void attend_head(const float* q, int q_stride, const float* k, const float* v, int kv_stride, int seq, int pos0,
                 int head_dim, float* out, int out_stride, Eigen::VectorXf& scores) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  for (int t0 = 0; t0 < seq; t0 += kAttentionQueryBlock) {
    const int rows = std::min(kAttentionQueryBlock, seq - t0);
    const int keys = pos0 + t0 + rows;  // keys visible to the last query of the block
    // Rows padded to a multiple of 8 floats in an aligned buffer: every row starts 32-byte aligned, so Eigen's
    // vectorized exp/max/sum take the same path (and give the same bits) wherever the heap puts the buffer.
    const int stride = (keys + 7) & ~7;
    scores.resize(static_cast<Eigen::Index>(rows) * stride);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, head_dim, scale,
                q + static_cast<std::size_t>(t0) * q_stride, q_stride, k, kv_stride, 0.0f, scores.data(), stride);
    for (int r = 0; r < rows; ++r) {
      float* row = scores.data() + static_cast<std::size_t>(r) * stride;
      const int visible = pos0 + t0 + r + 1;
      Eigen::Map<Eigen::ArrayXf> p(row, visible);  // Eigen's exp is vectorized; std::exp is not
      p = (p - p.maxCoeff()).exp();
      p *= 1.0f / p.sum();
      std::fill(row + visible, row + keys, 0.0f);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, head_dim, keys, 1.0f, scores.data(), stride, v,
                kv_stride, 0.0f, out + static_cast<std::size_t>(t0) * out_stride, out_stride);
  }
}

// log softmax of one row of logits, in double (Eigen's exp is vectorized for doubles).
void log_softmax(const float* row, Eigen::Index n, Eigen::ArrayXd& out) {
  out = Eigen::Map<const Eigen::ArrayXf>(row, n).cast<double>();
  const double max = out.maxCoeff();
  out -= max + std::log((out - max).exp().sum());
}

class CpuBackend final : public Backend {
 public:
  std::string_view name() const override { return "cpu"; }

  void embedding(const Matrix& table, std::span<const int> tokens, Matrix& out) override {
    const TimedOp timed = ran(Op::embedding, "cpu");
    out.resize(static_cast<Eigen::Index>(tokens.size()), table.cols());
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      SERQ_CHECK(tokens[i] >= 0 && tokens[i] < table.rows(), "token id {} is outside the vocabulary (size {}); the "
                 "tokenizer does not match the model", tokens[i], table.rows());
      out.row(static_cast<Eigen::Index>(i)) = table.row(tokens[i]);
    }
  }

  void rms_norm(const Matrix& x, const Vector& gamma, float eps, Matrix& out) override {
    const TimedOp timed = ran(Op::rms_norm, "cpu");
    out.resize(x.rows(), x.cols());
    const int n = static_cast<int>(x.cols());
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      const float* in = x.row(r).data();
      float sum = 0.0f;
      for (int i = 0; i < n; ++i) sum += in[i] * in[i];
      const float inv = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
      float* o = out.row(r).data();
      for (int i = 0; i < n; ++i) o[i] = in[i] * inv * gamma[i];
    }
  }

  // Angles in float from a table per position, then the rotation of each pair.
  void rope(Matrix& x, const RopeShape& s) override {
    const TimedOp timed = ran(Op::rope, "cpu");
    const int half = s.head_dim / 2;
    std::vector<float> cos_table(static_cast<std::size_t>(s.seq) * half), sin_table(cos_table.size());
    for (int t = 0; t < s.seq; ++t) {
      for (int i = 0; i < half; ++i) {
        const float angle = static_cast<float>(s.pos0 + t) * s.frequencies[static_cast<std::size_t>(i)];
        cos_table[t * half + i] = std::cos(angle);
        sin_table[t * half + i] = std::sin(angle);
      }
    }
    for (int b = 0; b < s.batch; ++b) {
      for (int t = 0; t < s.seq; ++t) {
        float* row = x.row(static_cast<Eigen::Index>(b) * s.seq + t).data();
        const float* c = &cos_table[t * half];
        const float* sn = &sin_table[t * half];
        for (int h = 0; h < s.n_heads; ++h) {
          float* head = row + h * s.head_dim;
          for (int i = 0; i < half; ++i) {
            float& a = s.interleaved ? head[2 * i] : head[i];
            float& bv = s.interleaved ? head[2 * i + 1] : head[i + half];
            const float x0 = a, x1 = bv;
            a = x0 * c[i] - x1 * sn[i];
            bv = x0 * sn[i] + x1 * c[i];
          }
        }
      }
    }
  }

  void attention(const Matrix& q, const Matrix& keys, const Matrix& values, const AttentionShape& s,
                 Matrix& out) override {
    const TimedOp timed = ran(Op::attention, "cpu-sgemm-blocked");
    const int width = s.n_heads * s.head_dim, kv_width = s.n_kv_heads * s.head_dim, group = s.n_heads / s.n_kv_heads;
    out.resize(q.rows(), width);
    Eigen::VectorXf scores;
    for (int b = 0; b < s.batch; ++b) {
      for (int head = 0; head < s.n_heads; ++head) {
        const std::size_t q_offset = static_cast<std::size_t>(b) * s.seq * width + head * s.head_dim;
        const std::size_t kv_offset = static_cast<std::size_t>(b) * s.kv_rows * kv_width + (head / group) * s.head_dim;
        attend_head(q.data() + q_offset, width, keys.data() + kv_offset, values.data() + kv_offset, kv_width, s.seq,
                    s.pos0, s.head_dim, out.data() + q_offset, width, scores);
      }
    }
  }

  void swiglu(Matrix& gate, const Matrix& up) override {
    const TimedOp timed = ran(Op::swiglu, "cpu");
    auto g = gate.array();
    g = g / (1.0f + (-g).exp()) * up.array();
  }

  void add(Matrix& h, const Matrix& x) override {
    const TimedOp timed = ran(Op::add, "cpu");
    h += x;
  }

  void quant_linear(std::span<const QuantLinear* const> group, const Matrix& x,
                    std::span<Matrix* const> outputs) override {
    cpu_quant_linear(group, x, outputs, strict, kernels());
  }

  void act_quant(Matrix& x, const QuantSpec& spec) override {
    const TimedOp timed = ran(Op::act_quant, "cpu");
    fake_quant_rows(x, spec);
  }

  void hadamard(Matrix& x, const InputRotation& rotation) override {
    const TimedOp timed = ran(Op::hadamard, "cpu-fwht");
    rotation.apply(x);
  }

  // abs-max and Σ|x| by columns, XᵀX as one float GEMM per call accumulated in double.
  void observe(const Matrix& x, ChannelSums& sums) override {
    const TimedOp timed = ran(Op::observe, "cpu");
    // max() drops NaN, so NaN channels are marked explicitly.
    sums.abs_max = sums.abs_max.array().max(x.cwiseAbs().colwise().maxCoeff().transpose().array()).matrix();
    if (x.hasNaN()) {
      for (Eigen::Index j = 0; j < x.cols(); ++j) {
        if (x.col(j).hasNaN()) sums.abs_max[j] = std::numeric_limits<float>::quiet_NaN();
      }
    }
    sums.sum_abs += x.cwiseAbs().colwise().sum().transpose().cast<double>();
    if (sums.gram.size() > 0) {
      const Matrix xtx = x.transpose() * x;
      sums.gram += xtx.cast<double>();
    }
    sums.tokens += x.rows();
  }

  double nll(const Matrix& logits, std::span<const int> targets) override {
    const TimedOp timed = ran(Op::nll, "cpu");
    double total = 0.0;
    Eigen::ArrayXd row;  // one buffer for every row: a vocabulary-wide allocation per row would cost page faults
    for (Eigen::Index r = 0; r < logits.rows(); ++r) {
      row = logits.row(r).transpose().array().cast<double>();
      const double max = row.maxCoeff();
      total += std::log((row - max).exp().sum()) + max - row[targets[static_cast<std::size_t>(r)]];
    }
    return total;
  }

  void kld(const Matrix& reference_logits, const Matrix& logits, std::span<const int> targets,
           std::vector<KldRow>& rows) override {
    const TimedOp timed = ran(Op::kld, "cpu");
    Eigen::ArrayXd log_p, log_q;
    const Eigen::Index vocab = logits.cols();
    for (Eigen::Index r = 0; r < logits.rows(); ++r) {
      log_softmax(reference_logits.row(r).data(), vocab, log_p);
      log_softmax(logits.row(r).data(), vocab, log_q);
      KldRow row;
      // Rounding can leave a tiny negative sum where the distributions are equal; KL is never below 0.
      row.kld = std::max((log_p.exp() * (log_p - log_q)).sum(), 0.0);
      Eigen::Index argmax_p = 0, argmax_q = 0;
      log_p.maxCoeff(&argmax_p);
      log_q.maxCoeff(&argmax_q);
      row.top1_agrees = argmax_p == argmax_q;
      const auto target = static_cast<Eigen::Index>(targets[static_cast<std::size_t>(r)]);
      row.delta_p = std::exp(log_q[target]) - std::exp(log_p[target]);
      row.reference_nll = -log_p[target];
      row.nll = -log_q[target];
      rows.push_back(row);
    }
  }
};

}  // namespace

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace serq
