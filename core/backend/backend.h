// The op interface that the forward pass, the evaluation and the calibration run on, and the explicit list of
// backends that implement it (ggml's pattern).
//
// Memory belongs to the backend (core/backend/tensor.h): every op reads and writes Tensors in the backend's own
// memory, host data crosses only through set() and get(), and the kernel record counts every byte that crosses in
// either direction. A backend keeps its own prepared copy of each QuantLinear (make_resident: the CPU's int8
// panels, the GPU's low-bit layout and float weights), made once after folding and kernel choice. Per forward, token
// ids go in and per-row results come out (nll, kld, observe).
//
// An op is a pure function of its arguments. Every backend computes the same values up to float rounding; the
// reference backend (core/backend/reference/) does it in plain loops in double and is the ground truth that
// tests/test_backend_ops.cpp holds every other backend to. A backend may have several kernels for one op (the
// CPU's QuantLinear: fake-quant float GEMM or integer dot products); each op records which kernel ran, and the
// result file says so.
//
// Tensors are row-major, one token per row (core/common/matrix.h); outputs are allocated by the caller in the
// shape the op documents. Adding a backend: implement this class, list it in backends() (backend.cpp), and
// test_backend_ops runs it on every op.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/backend/tensor.h"
#include "core/common/matrix.h"
#include "core/quant/int_quant.h"
#include "core/quant/kv_quant.h"

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
  head_nll,      // lm_head's logits and their nll in one pass over the vocabulary
  kld,           // KL(P_ref ‖ Q) per row, with top-1 agreement and Δp
  copy,          // rows of one tensor into another (the KV cache)
  kv_quant,      // fake quantization of keys and values as they are written to the cache (core/quant/kv_quant.h)
  count          // the number of ops; not an op
};
inline constexpr int kOpCount = static_cast<int>(Op::count);
std::string_view op_name(Op op);

// RoPE over (batch · seq) rows of n_heads heads of head_dim; row t of each sequence sits at position pos0 + t.
// Interleaved rotates pairs (2i, 2i+1) (llama2.c, GGUF); otherwise halves (i, i + head_dim/2) (Hugging Face).
struct RopeShape {
  int n_heads = 0, head_dim = 0, batch = 0, seq = 0, pos0 = 0;
  Tensor frequencies;  // head_dim / 2 angles (1 × head_dim / 2, ModelConfig::rope_frequencies), on the backend
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

// One scored position of nll(): −log softmax(logits)[target] and the row's argmax (the first index among ties, as
// torch.argmax), for greedy decoding and lm-eval's is_greedy.
struct NllRow {
  double nll = 0;
  int argmax = 0;
};

// Bytes that crossed between the host and a backend, by direction and by what crossed ("weights", "token ids",
// "nll rows", ...).
struct Transfers {
  std::map<std::string, std::int64_t, std::less<>> host_to_backend, backend_to_host;

  std::int64_t host_to_backend_bytes() const;
  std::int64_t backend_to_host_bytes() const;
  // e.g. "host→backend 538.2 MB (weights 538.1 MB, token ids 24.6 kB); backend→host 98.3 kB (nll rows 98.3 kB)"
  std::string describe() const;
};

// Which kernel ran each op, how often and for how long, and the bytes set and got; thread-safe.
class KernelRecord {
 public:
  void add(Op op, std::string_view kernel, double seconds = 0.0);
  enum class Direction { host_to_backend, backend_to_host };
  void transferred(Direction direction, std::string_view what, std::size_t bytes);
  Transfers transfers() const;
  // e.g. "attention: cpu-flash-avx512 (960); quant_linear: cpu-int-avx512-vnni (630), cpu-sgemm (30)"
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
  Transfers transfers_;
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

// A backend's own prepared copy of one QuantLinear (Backend::make_resident). The QuantLinear must outlive it and stay
// unchanged: it is the portable form that methods produce, and the backend may read its small host-side parts.
class ResidentLinear {
 public:
  explicit ResidentLinear(const QuantLinear& layer) : layer_(layer) {}
  virtual ~ResidentLinear() = default;
  const QuantLinear& layer() const { return layer_; }

 private:
  const QuantLinear& layer_;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  // Why this backend cannot run here (not built, no device), or empty when it can.
  virtual std::string unavailable() const { return {}; }

  // Memory. A backend whose memory is the host's (cpu, reference) may make a resident tensor of host data without a
  // copy; the bytes count as crossing all the same, so that the ledger says what a device would receive.
  virtual bool host_memory() const = 0;
  // Bytes this backend can still allocate (a device's free memory); a host-memory backend answers -1, since the
  // model it runs already lies in its memory.
  virtual std::int64_t memory_available() const { return -1; }
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* data) = 0;

  // Host → tensor and tensor → host, each counted in the kernel record under `what`. Sizes must match exactly.
  void set(const Tensor& t, std::span<const float> values, std::string_view what);
  void set(const Tensor& t, std::span<const int> values, std::string_view what);
  void get(const Tensor& t, std::span<float> values, std::string_view what);
  // A host matrix as a new tensor of `buffer`, and a tensor as a host matrix.
  Tensor upload(const Matrix& m, Buffer& buffer, std::string_view what);
  Matrix download(const Tensor& t, std::string_view what);
  // Host values that outlive the tensor, resident on this backend: the host memory itself where the backend's memory
  // is the host's, else a copy in `buffer`. Counted as set under `what` either way.
  Tensor resident(const float* values, std::int64_t rows, std::int64_t cols, Buffer& buffer, std::string_view what);

  // The backend's copy of a linear, made once after folding and kernel choice; its bytes count as "weights".
  // `shared_weight`, where not null, is the layer's main weight (d_out × d_in floats equal to layer.weight) already
  // on this backend, read in place (a tied lm_head shares the embedding table); it then neither crosses nor counts.
  virtual std::unique_ptr<ResidentLinear> make_resident(const QuantLinear& layer, const Tensor* shared_weight) = 0;

  // out (tokens × dim) = table rows of `tokens` (tokens × 1, int32); an id outside the table is a serq::Error.
  virtual void embedding(const Tensor& table, const Tensor& tokens, Tensor& out) = 0;
  virtual void rms_norm(const Tensor& x, const Tensor& gamma, float eps, Tensor& out) = 0;
  virtual void rope(Tensor& x, const RopeShape& shape) = 0;
  // out ((batch · seq) × n_heads·head_dim).
  virtual void attention(const Tensor& q, const Tensor& keys, const Tensor& values, const AttentionShape& shape,
                         Tensor& out) = 0;
  // gate ← silu(gate) · up, elementwise.
  virtual void swiglu(Tensor& gate, const Tensor& up) = 0;
  virtual void add(Tensor& h, const Tensor& x) = 0;
  // outputs[i] (rows × d_out) = group[i](x), each as QuantLinear's formula says. The linears read the same input;
  // where their transforms and activation quantizers agree a backend may compute T(X) and Q_a once.
  virtual void quant_linear(std::span<const ResidentLinear* const> group, const Tensor& x,
                            std::span<Tensor* const> outputs) = 0;
  // x ← Q(x) in place, row by row (a spec that is not enabled leaves x).
  virtual void act_quant(Tensor& x, const QuantSpec& spec) = 0;
  // x ← x · R in place.
  virtual void hadamard(Tensor& x, const InputRotation& rotation) = 0;
  // Keys or values (tokens × kv_dim) ← Q(x) in place, in groups of spec.group_size channels (≥ 1, dividing kv_dim),
  // clipped by spec.clip; a spec that is not enabled leaves x.
  virtual void kv_quant(Tensor& x, const KvQuantSpec& spec) = 0;
  // Adds x (tokens × d) to sums, whose vectors (and gram, when wanted) are already sized d: the statistics cross to
  // the host, the activations do not.
  virtual void observe(const Tensor& x, ChannelSums& sums) = 0;
  // Appends one NllRow per row of the logits (rows × vocab); targets are rows × 1 (int32).
  virtual void nll(const Tensor& logits, const Tensor& targets, std::vector<NllRow>& rows) = 0;
  // Appends one NllRow per row of hidden (rows × d_in of `head`): nll() of head's logits (quant_linear of `head`
  // alone), without the rows × vocab logits leaving the op: a backend may score them a block of the vocabulary at a
  // time while the block is in cache.
  virtual void head_nll(const ResidentLinear& head, const Tensor& hidden, const Tensor& targets,
                        std::vector<NllRow>& rows) = 0;
  // Appends one KldRow per row of the logits (rows × vocab, the same shape from both models).
  virtual void kld(const Tensor& reference_logits, const Tensor& logits, const Tensor& targets,
                   std::vector<KldRow>& rows) = 0;
  // dst ← src, tensors of the same shape and dtype.
  virtual void copy(const Tensor& src, Tensor& dst) = 0;

  KernelRecord& kernels() { return kernels_; }
  const KernelRecord& kernels() const { return kernels_; }
  // runtime.strict: when set, an op that would fall back to a slower kernel (e.g. the integer GEMM's scalar
  // reference on a CPU without AVX2 or VNNI) is a serq::Error instead.
  bool strict = false;

 protected:
  // Keep the result alive for the op's work: `const TimedOp timed = ran(Op::rope, "cpu");`
  [[nodiscard]] TimedOp ran(Op op, std::string_view kernel) { return TimedOp(kernels_, op, kernel); }
  // The byte copies behind set and get.
  virtual void copy_to_backend(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, std::size_t bytes) = 0;
  // head_nll as its two ops: the logits in a buffer of this backend, then nll().
  void head_nll_through_logits(const ResidentLinear& head, const Tensor& hidden, const Tensor& targets,
                               std::vector<NllRow>& rows);
  // Counts bytes that an op hands to the host (its per-row results) or took from it.
  void counted(KernelRecord::Direction direction, std::string_view what, std::size_t bytes) {
    kernels_.transferred(direction, what, bytes);
  }

 private:
  KernelRecord kernels_;
};

// The bytes of statistics one observe() call hands to the host: abs-max, Σ|x| and, when kept, XᵀX.
std::size_t observed_bytes(const ChannelSums& sums);

// One linear on host matrices (methods, diagnostics and tests that run a single layer): made resident, x set, the
// op run and y got, each counted. Returns x.rows() × d_out.
Matrix run_linear(Backend& backend, const QuantLinear& layer, const Matrix& x);

// Sizes and dtype checks shared by the backends: a shape bug in a caller is a serq::Error naming the op.
void check_shape(const Tensor& t, std::int64_t rows, std::int64_t cols, std::string_view what);

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
