// The op interface that the forward pass, the evaluation and the calibration run on, and the explicit list of
// backends that implement it (ggml's pattern).
//
// An op is a pure function of its arguments. Every backend computes the same values up to float rounding; the
// reference backend (core/backend/reference/) does it in plain loops in double and is the ground truth that
// tests/test_backend_ops.cpp holds every other backend to. A backend may have several kernels for one op (the
// CPU's QuantLinear: fake-quant float GEMM or integer dot products); each op records which kernel ran, and the
// result file says so.
//
// Matrices are row-major, one token per row (core/common/matrix.h). Adding a backend: implement this class, list it
// in backends() (backend.cpp), and test_backend_ops runs it on every op.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/common/matrix.h"
#include "core/quant/int_quant.h"

namespace serq {

struct QuantLinear;
struct InputRotation;

enum class Op {
  embedding,     // rows of the embedding table
  rms_norm,      // x · γ / sqrt(mean(x²) + ε), per row
  rope,          // rotary position embedding, interleaved pairs or halves
  attention,     // causal grouped-query attention
  swiglu,        // silu(gate) · up
  add,           // the residual connection h += x
  quant_linear,  // the linears of one input group (core/linear/quant_linear.h)
  act_quant,     // fake quantization of activations: INT per token or group, MXFP4
  hadamard,      // an online rotation X·R (core/linear/rotation.h)
  observe,       // calibration observers: per-channel abs-max and Σ|x|, and XᵀX
  nll,           // Σ −log softmax(logits)[target]
  kld,           // KL(P_ref ‖ Q) per row, with top-1 agreement and Δp
};
inline constexpr int kOpCount = 12;
std::string_view op_name(Op op);

// RoPE over (batch · seq) rows of n_heads heads of head_dim; row t of each sequence sits at position pos0 + t.
// Interleaved rotates pairs (2i, 2i+1) (llama2.c, GGUF); otherwise halves (i, i + head_dim/2) (Hugging Face).
struct RopeShape {
  int n_heads = 0, head_dim = 0, batch = 0, seq = 0, pos0 = 0;
  std::span<const float> frequencies;  // head_dim / 2 angles per position (ModelConfig::rope_frequencies)
  bool interleaved = false;
};

// Causal GQA: q ((batch · seq) × n_heads·head_dim), keys and values ((batch · kv_rows) × n_kv_heads·head_dim), with
// sequence b's keys from row b · kv_rows. Query t of a sequence sits at position pos0 + t and sees keys 0 .. pos0 + t;
// query head h reads key head h / (n_heads / n_kv_heads). Scores are scaled by 1/sqrt(head_dim).
struct AttentionShape {
  int n_heads = 0, n_kv_heads = 0, head_dim = 0, batch = 0, seq = 0, pos0 = 0, kv_rows = 0;
};

// Running per-channel statistics of a linear's input, as observe() accumulates them. A NaN in channel j makes
// abs_max[j] NaN, so that the caller can name the channel.
struct ChannelSums {
  Eigen::VectorXf abs_max;  // max |x_j|
  Eigen::VectorXd sum_abs;  // Σ |x_j|
  Eigen::MatrixXd gram;     // Σ xᵀx (d × d), accumulated only when it is not empty
  std::int64_t tokens = 0;
};

// One scored position of kld(): the reference model's distribution P against the evaluated model's Q.
struct KldRow {
  double kld = 0;              // Σ_v p(v)(log p(v) − log q(v)), nats, never below 0
  double delta_p = 0;          // q(target) − p(target)
  double reference_nll = 0;    // −log p(target)
  double nll = 0;              // −log q(target)
  bool top1_agrees = false;    // argmax p = argmax q
};

// Which kernel ran each op, how often and for how long; thread-safe.
class KernelRecord {
 public:
  void add(Op op, std::string_view kernel, double seconds = 0.0);
  // e.g. "attention: cpu-sgemm-blocked (960); quant_linear: cpu-int-avx512-vnni (630), cpu-sgemm (30)"
  std::string describe() const;
  // The time of each op and kernel, most first, with its share: one line each, e.g.
  // "quant_linear  cpu-fakequant-sgemm   630 calls   12.310 s   61.2%".
  std::string profile() const;
  void clear();

 private:
  struct Entry {
    std::int64_t calls = 0;
    double seconds = 0.0;
  };
  mutable std::mutex mutex_;
  std::array<std::map<std::string, Entry, std::less<>>, kOpCount> entries_;
};

// Adds `kernel` for `op` to a record when it goes out of scope, with the time it lived.
class TimedOp {
 public:
  TimedOp(KernelRecord& record, Op op, std::string_view kernel)
      : record_(record), op_(op), kernel_(kernel), start_(std::chrono::steady_clock::now()) {}
  TimedOp(const TimedOp&) = delete;
  TimedOp& operator=(const TimedOp&) = delete;
  ~TimedOp() {
    record_.add(op_, kernel_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }

 private:
  KernelRecord& record_;
  Op op_;
  std::string_view kernel_;  // a literal, or a string that outlives the op
  std::chrono::steady_clock::time_point start_;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  // Why this backend cannot run here (not built, no device), or empty when it can.
  virtual std::string unavailable() const { return {}; }

  // out (tokens × dim) = table rows of `tokens`; an id outside the table is a serq::Error.
  virtual void embedding(const Matrix& table, std::span<const int> tokens, Matrix& out) = 0;
  virtual void rms_norm(const Matrix& x, const Vector& gamma, float eps, Matrix& out) = 0;
  virtual void rope(Matrix& x, const RopeShape& shape) = 0;
  // out ((batch · seq) × n_heads·head_dim), resized as needed.
  virtual void attention(const Matrix& q, const Matrix& keys, const Matrix& values, const AttentionShape& shape,
                         Matrix& out) = 0;
  // gate ← silu(gate) · up, elementwise.
  virtual void swiglu(Matrix& gate, const Matrix& up) = 0;
  virtual void add(Matrix& h, const Matrix& x) = 0;
  // outputs[i] = group[i](x), each as QuantLinear's formula says. The linears read the same input; where their
  // transforms and activation quantizers agree a backend may compute T(X) and Q_a once.
  virtual void quant_linear(std::span<const QuantLinear* const> group, const Matrix& x,
                            std::span<Matrix* const> outputs) = 0;
  // x ← Q(x) in place, row by row (a spec that is not enabled leaves x).
  virtual void act_quant(Matrix& x, const QuantSpec& spec) = 0;
  // x ← x · R in place.
  virtual void hadamard(Matrix& x, const InputRotation& rotation) = 0;
  // Adds x (tokens × d) to sums, whose vectors (and gram, when wanted) are already sized d.
  virtual void observe(const Matrix& x, ChannelSums& sums) = 0;
  // Σ over rows of −log softmax(logits_row)[target], in double.
  virtual double nll(const Matrix& logits, std::span<const int> targets) = 0;
  // Appends one KldRow per row of the logits (rows × vocab, the same shape from both models).
  virtual void kld(const Matrix& reference_logits, const Matrix& logits, std::span<const int> targets,
                   std::vector<KldRow>& rows) = 0;

  KernelRecord& kernels() { return kernels_; }
  const KernelRecord& kernels() const { return kernels_; }
  // runtime.strict: when set, an op that would fall back to a slower kernel (e.g. the integer GEMM's scalar
  // reference on a CPU without AVX2 or VNNI) is a serq::Error instead.
  bool strict = false;

 protected:
  // Keep the result alive for the op's work: `const TimedOp timed = ran(Op::rope, "cpu");`
  [[nodiscard]] TimedOp ran(Op op, std::string_view kernel) { return TimedOp(kernels_, op, kernel); }

 private:
  KernelRecord kernels_;
};

// The backends, listed by hand: "reference" (plain loops, slow, the ground truth), "cpu" (OpenBLAS, Eigen and
// integer kernels) and, in a build with nvcc, "cuda" (core/backend/cuda/). A backend that is listed may still be
// unavailable here (Backend::unavailable: no GPU, say).
std::span<Backend* const> backends();
// The backend named `name`; an unknown or unavailable one is a serq::Error naming `what` (e.g. "runtime.device")
// and the choices.
Backend& find_backend(std::string_view name, std::string_view what);
// runtime.device and runtime.strict: the backend named, or, where it cannot run here and strict is off, the cpu
// backend with `fallback` saying why (the result file records it). Strict, or an unknown name, is a serq::Error.
struct ResolvedBackend {
  Backend* backend = nullptr;
  std::string fallback;  // empty when the backend named runs
};
ResolvedBackend resolve_backend(std::string_view name, bool strict, std::string_view what);
Backend& reference_backend();
Backend& cpu_backend();
#ifdef SERQ_HAVE_CUDA
Backend& cuda_backend();
#endif

}  // namespace serq
