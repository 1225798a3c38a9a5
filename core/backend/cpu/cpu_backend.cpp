// The CPU backend: OpenBLAS for the float linears and XᵀX, a flash-style attention kernel (flash_attention.h), Eigen's
// vectorized arrays for the elementwise ops and the softmaxes, and the integer GEMM (int_gemm.h) for linears on
// integer codes.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/backend/backend.h"
#include "core/backend/cpu/cpu_backend.h"
#include "core/backend/host_backend.h"
#include "core/backend/cpu/cpu_quant_linear.h"
#include "core/backend/cpu/flash_attention.h"
#include "core/backend/cpu/head_nll.h"
#include "core/backend/cpu/parallel.h"
#include "core/common/error.h"
#include "core/linear/rotation.h"

namespace serq {
namespace {

// log softmax of one row of logits, in double (Eigen's exp is vectorized for doubles).
void log_softmax(const float* row, Eigen::Index n, Eigen::ArrayXd& out) {
  out = Eigen::Map<const Eigen::ArrayXf>(row, n).cast<double>();
  const double max = out.maxCoeff();
  out -= max + std::log((out - max).exp().sum());
}

// The CPU's copies of a group of linears (all made by CpuBackend::make_resident).
std::vector<const CpuLinear*> cpu_linears(std::span<const ResidentLinear* const> group) {
  std::vector<const CpuLinear*> linears;
  linears.reserve(group.size());
  for (const ResidentLinear* resident : group) linears.push_back(static_cast<const CpuLinear*>(resident));
  return linears;
}

class CpuBackend final : public HostBackend {
 public:
  std::string_view name() const override { return "cpu"; }

  // The kernels read layer.weight where it lies, so a shared weight (the same values) costs nothing more.
  std::unique_ptr<ResidentLinear> make_resident(const QuantLinear& layer, const Tensor* shared_weight) override {
    auto linear = std::make_unique<CpuLinear>(layer);
    counted(KernelRecord::Direction::host_to_backend, "weights",
            linear->bytes() - (shared_weight && !linear->int8 ? shared_weight->bytes() : 0));
    return linear;
  }

  void embedding(const Tensor& table_t, const Tensor& tokens_t, Tensor& out_t) override {
    const TimedOp timed = ran(Op::embedding, "cpu");
    const auto table = host_matrix(table_t);
    const std::span<const int> tokens = host_ints(tokens_t);
    check_shape(out_t, static_cast<std::int64_t>(tokens.size()), table.cols(), "embedding");
    auto out = host_matrix(out_t);
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      SERQ_CHECK(tokens[i] >= 0 && tokens[i] < table.rows(), "token id {} is outside the vocabulary (size {}); the "
                 "tokenizer does not match the model", tokens[i], table.rows());
      out.row(static_cast<Eigen::Index>(i)) = table.row(tokens[i]);
    }
  }

  void rms_norm(const Tensor& x_t, const Tensor& gamma_t, float eps, Tensor& out_t) override {
    const TimedOp timed = ran(Op::rms_norm, "cpu");
    check_shape(out_t, x_t.rows, x_t.cols, "rms_norm");
    check_shape(gamma_t, 1, x_t.cols, "rms_norm γ");
    const auto x = host_matrix(x_t);
    auto out = host_matrix(out_t);
    const float* gamma = gamma_t.f32();
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
  void rope(Tensor& x_t, const RopeShape& s) override {
    const TimedOp timed = ran(Op::rope, "cpu");
    check_shape(x_t, static_cast<std::int64_t>(s.batch) * s.seq, static_cast<std::int64_t>(s.n_heads) * s.head_dim,
                "rope");
    check_shape(s.frequencies, 1, s.head_dim / 2, "rope frequencies");
    auto x = host_matrix(x_t);
    const float* frequencies = s.frequencies.f32();
    const int half = s.head_dim / 2;
    std::vector<float> cos_table(static_cast<std::size_t>(s.seq) * half), sin_table(cos_table.size());
    for (int t = 0; t < s.seq; ++t) {
      for (int i = 0; i < half; ++i) {
        const float angle = static_cast<float>(s.pos0 + t) * frequencies[i];
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

  void attention(const Tensor& q, const Tensor& keys, const Tensor& values, const AttentionShape& s,
                 Tensor& out) override {
    const FlashKernel kernel = flash_kernel();
    const TimedOp timed = ran(Op::attention, kernel == FlashKernel::avx512 ? "cpu-flash-avx512" : "cpu-flash-avx2");
    const int width = s.n_heads * s.head_dim, kv_width = s.n_kv_heads * s.head_dim;
    check_shape(q, static_cast<std::int64_t>(s.batch) * s.seq, width, "attention q");
    check_shape(keys, static_cast<std::int64_t>(s.batch) * s.kv_rows, kv_width, "attention keys");
    check_shape(values, static_cast<std::int64_t>(s.batch) * s.kv_rows, kv_width, "attention values");
    check_shape(out, q.rows, width, "attention output");
    flash_attention(q.f32(), keys.f32(), values.f32(), s, out.f32(), kernel, 0);
  }

  void swiglu(Tensor& gate_t, const Tensor& up_t) override {
    const TimedOp timed = ran(Op::swiglu, "cpu");
    check_shape(up_t, gate_t.rows, gate_t.cols, "swiglu");
    auto g = host_matrix(gate_t).array();
    g = g / (1.0f + (-g).exp()) * host_matrix(up_t).array();
  }

  void add(Tensor& h, const Tensor& x) override {
    const TimedOp timed = ran(Op::add, "cpu");
    check_shape(x, h.rows, h.cols, "add");
    host_matrix(h) += host_matrix(x);
  }

  void quant_linear(std::span<const ResidentLinear* const> group, const Tensor& x,
                    std::span<Tensor* const> outputs) override {
    std::vector<MatrixRef> out;
    out.reserve(outputs.size());
    for (Tensor* t : outputs) out.emplace_back(host_matrix(*t));
    cpu_quant_linear(cpu_linears(group), host_matrix(x), out, strict, kernels());
  }

  void act_quant(Tensor& x, const QuantSpec& spec) override {
    const TimedOp timed = ran(Op::act_quant, "cpu");
    Matrix m = host_matrix(x);
    fake_quant_rows(m, spec);
    host_matrix(x) = m;
  }

  void hadamard(Tensor& x, const InputRotation& rotation) override {
    const TimedOp timed = ran(Op::hadamard, "cpu-fwht");
    Matrix m = host_matrix(x);
    rotation.apply(m);
    host_matrix(x) = m;
  }

  void kv_quant(Tensor& x, const KvQuantSpec& spec) override {
    if (!spec.enabled()) return;
    const TimedOp timed = ran(Op::kv_quant, "cpu");
    Matrix m = host_matrix(x);
    fake_quant_kv_rows(m, spec);
    host_matrix(x) = m;
  }

  // abs-max and Σ|x| by columns, XᵀX as one float SYRK per call accumulated in double.
  void observe(const Tensor& x_t, ChannelSums& sums) override {
    const TimedOp timed = ran(Op::observe, "cpu");
    const auto x = host_matrix(x_t);
    // max() drops NaN, so NaN channels are marked explicitly.
    sums.abs_max = sums.abs_max.array().max(x.cwiseAbs().colwise().maxCoeff().transpose().array()).matrix();
    if (x.hasNaN()) {
      for (Eigen::Index j = 0; j < x.cols(); ++j) {
        if (x.col(j).hasNaN()) sums.abs_max[j] = std::numeric_limits<float>::quiet_NaN();
      }
    }
    sums.sum_abs += x.cwiseAbs().colwise().sum().transpose().cast<double>();
    if (sums.gram.size() > 0) {  // XᵀX is symmetric: one triangle by a rank-k update (half a GEMM's FLOPs), mirrored
      const int d = static_cast<int>(x.cols());
      Matrix xtx(d, d);
      cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, d, static_cast<int>(x.rows()), 1.0f, x.data(), d, 0.0f,
                  xtx.data(), d);
      for (int i = 1; i < d; ++i)
        for (int j = 0; j < i; ++j) xtx(i, j) = xtx(j, i);
      sums.gram += xtx.cast<double>();
    }
    sums.tokens += x.rows();
    counted(KernelRecord::Direction::backend_to_host, "observer statistics", observed_bytes(sums));
  }

  void nll(const Tensor& logits_t, const Tensor& targets_t, std::vector<NllRow>& rows) override {
    const TimedOp timed = ran(Op::nll, "cpu");
    const auto logits = host_matrix(logits_t);
    const std::span<const int> targets = host_ints(targets_t);
    check_shape(targets_t, logits.rows(), 1, "nll targets");
    const std::size_t base = rows.size();
    rows.resize(base + static_cast<std::size_t>(logits.rows()));
    parallel_slices(static_cast<int>(logits.rows()), 0, [&](int begin, int end) {
      Eigen::ArrayXd row;  // one buffer for a slice: a vocabulary-wide allocation per row would cost page faults
      for (int r = begin; r < end; ++r) {
        row = logits.row(r).transpose().array().cast<double>();
        Eigen::Index argmax = 0;
        const double max = row.maxCoeff(&argmax);  // the first maximum, as torch.argmax
        rows[base + static_cast<std::size_t>(r)] = {
            std::log((row - max).exp().sum()) + max - row[targets[static_cast<std::size_t>(r)]],
            static_cast<int>(argmax)};
      }
    });
    counted(KernelRecord::Direction::backend_to_host, "nll rows", static_cast<std::size_t>(logits.rows()) * sizeof(NllRow));
  }

  void head_nll(const ResidentLinear& head, const Tensor& hidden_t, const Tensor& targets_t,
                std::vector<NllRow>& rows) override {
    if (!head_nll_fuses(head.layer())) {
      head_nll_through_logits(head, hidden_t, targets_t, rows);
      return;
    }
    const TimedOp timed = ran(Op::head_nll, "cpu-sgemm-online-softmax");
    check_shape(hidden_t, hidden_t.rows, head.layer().d_in(), "head_nll hidden states");
    check_shape(targets_t, hidden_t.rows, 1, "head_nll targets");
    const std::size_t base = rows.size();
    rows.resize(base + static_cast<std::size_t>(hidden_t.rows));
    cpu_head_nll(head.layer(), host_matrix(hidden_t), host_ints(targets_t), std::span<NllRow>(rows).subspan(base));
    counted(KernelRecord::Direction::backend_to_host, "nll rows",
            static_cast<std::size_t>(hidden_t.rows) * sizeof(NllRow));
  }

  void kld(const Tensor& reference_t, const Tensor& logits_t, const Tensor& targets_t,
           std::vector<KldRow>& rows) override {
    const TimedOp timed = ran(Op::kld, "cpu");
    const auto reference_logits = host_matrix(reference_t), logits = host_matrix(logits_t);
    const std::span<const int> targets = host_ints(targets_t);
    check_shape(reference_t, logits.rows(), logits.cols(), "kld reference logits");
    check_shape(targets_t, logits.rows(), 1, "kld targets");
    const Eigen::Index vocab = logits.cols();
    const std::size_t base = rows.size();
    rows.resize(base + static_cast<std::size_t>(logits.rows()));
    parallel_slices(static_cast<int>(logits.rows()), 0, [&](int begin, int end) {
      Eigen::ArrayXd log_p, log_q;
      for (int r = begin; r < end; ++r) {
        log_softmax(reference_logits.row(r).data(), vocab, log_p);
        log_softmax(logits.row(r).data(), vocab, log_q);
        KldRow& row = rows[base + static_cast<std::size_t>(r)];
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
      }
    });
    counted(KernelRecord::Direction::backend_to_host, "kld rows", static_cast<std::size_t>(logits.rows()) * sizeof(KldRow));
  }

  void copy(const Tensor& src, Tensor& dst) override {
    const TimedOp timed = ran(Op::copy, "cpu");
    check_shape(dst, src.rows, src.cols, "copy");
    SERQ_CHECK(src.type == dst.type, "copy: tensors of different element types (a bug in the caller)");
    std::memmove(dst.data, src.data, src.bytes());
  }
};

}  // namespace

void set_cpu_threads(int threads) { openblas_set_num_threads(threads); }

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace serq
