// The CUDA backend: every op of core/backend/backend.h on an NVIDIA GPU. cuBLAS (FP32, no TF32) runs the float
// GEMMs of the linears and of attention; the kernels of cuda_kernels.h run the rest, and linears on integer codes
// (runtime.kernels: int) run the low-bit GEMM on INT8 tensor cores (lowbit_gemm.cu).
//
// The op interface hands over host matrices, so each op copies its inputs to the device and its outputs back, and a
// linear's weights stream to the device on every call: a model of any size runs layer by layer in the GPU's memory.
// The one thing kept between calls is a layer's low-bit weight, keyed by its immutable Int8Weight. Ops are
// serialized on one stream.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <climits>
#include <map>
#include <memory>
#include <mutex>

#include "core/backend/backend.h"
#include "core/backend/cuda/cuda_kernels.h"
#include "core/backend/cuda/device_buffer.h"
#include "core/backend/cuda/lowbit_layout.h"
#include "core/backend/cuda/lowbit_weight.h"
#include "core/common/error.h"
#include "core/linear/quant_linear.h"

namespace serq {
namespace {

using cuda::check;
using cuda::DeviceBuffer;

std::span<const float> values(const Matrix& m) { return {m.data(), static_cast<std::size_t>(m.size())}; }
std::span<const float> values(const Vector& v) { return {v.data(), static_cast<std::size_t>(v.size())}; }

// A layer's low-bit weight on the device, while its Int8Weight lives.
struct DeviceLowbit {
  std::weak_ptr<const Int8Weight> source;
  cuda::LowbitWeight layout;  // metadata (its host vectors are released once uploaded)
  DeviceBuffer<std::uint8_t> codes;
  DeviceBuffer<float> scales, divisors;
  DeviceBuffer<std::int32_t> sums;
  DeviceBuffer<int> activation_group, group_columns;
};

class CudaBackend final : public Backend {
 public:
  std::string_view name() const override { return "cuda"; }

  std::string unavailable() const override {
    int devices = 0;
    const cudaError_t status = cudaGetDeviceCount(&devices);
    if (status != cudaSuccess) return fmt::format("no CUDA device or driver: {}", cudaGetErrorString(status));
    if (devices == 0) return "no CUDA device";
    if (const cudaError_t probe = cuda::probe_kernels(); probe != cudaSuccess) {
      cudaDeviceProp prop{};
      cudaGetDeviceProperties(&prop, 0);
      return fmt::format("the CUDA kernels of this build do not run on {} (sm_{}{}): {}; rebuild with "
                         "-DCMAKE_CUDA_ARCHITECTURES={}{}", prop.name, prop.major, prop.minor,
                         cudaGetErrorString(probe), prop.major, prop.minor);
    }
    return {};
  }

  void embedding(const Matrix& table, std::span<const int> tokens, Matrix& out) override {
    for (const int token : tokens) {
      SERQ_CHECK(token >= 0 && token < table.rows(), "token id {} is outside the vocabulary (size {}); the "
                 "tokenizer does not match the model", token, table.rows());
    }
    const Session s = session();
    const TimedOp timed = ran(Op::embedding, "cuda");
    out.resize(static_cast<Eigen::Index>(tokens.size()), table.cols());
    const DeviceBuffer<float> d_table(values(table), stream_);
    const DeviceBuffer<int> d_tokens(tokens, stream_);
    DeviceBuffer<float> d_out(static_cast<std::size_t>(out.size()), stream_);
    cuda::launch_embedding(d_table.data(), d_tokens.data(), static_cast<int>(tokens.size()),
                           static_cast<int>(table.cols()), d_out.data(), stream_);
    download(d_out, out);
  }

  void rms_norm(const Matrix& x, const Vector& gamma, float eps, Matrix& out) override {
    const Session s = session();
    const TimedOp timed = ran(Op::rms_norm, "cuda");
    out.resize(x.rows(), x.cols());
    const DeviceBuffer<float> d_x(values(x), stream_), d_gamma(values(gamma), stream_);
    DeviceBuffer<float> d_out(static_cast<std::size_t>(x.size()), stream_);
    cuda::launch_rms_norm(d_x.data(), d_gamma.data(), eps, static_cast<int>(x.rows()), static_cast<int>(x.cols()),
                          d_out.data(), stream_);
    download(d_out, out);
  }

  void rope(Matrix& x, const RopeShape& shape) override {
    const Session s = session();
    const TimedOp timed = ran(Op::rope, "cuda");
    DeviceBuffer<float> d_x(values(x), stream_);
    const DeviceBuffer<float> d_freq(shape.frequencies, stream_);
    cuda::launch_rope(d_x.data(), d_freq.data(), shape.batch * shape.seq, shape.seq, shape.pos0, shape.n_heads,
                      shape.head_dim, shape.interleaved, stream_);
    download(d_x, x);
  }

  // Per sequence and head: S = Q·Kᵀ / sqrt(head_dim) by cuBLAS, the causal softmax, then O = P·V.
  void attention(const Matrix& q, const Matrix& keys, const Matrix& values_in, const AttentionShape& s,
                 Matrix& out) override {
    const Session session_lock = session();
    const TimedOp timed = ran(Op::attention, "cuda-cublas-softmax");
    const int width = s.n_heads * s.head_dim, kv_width = s.n_kv_heads * s.head_dim, group = s.n_heads / s.n_kv_heads;
    const int visible = s.pos0 + s.seq;  // keys the last query sees
    out.resize(q.rows(), width);
    const DeviceBuffer<float> d_q(values(q), stream_), d_k(values(keys), stream_), d_v(values(values_in), stream_);
    DeviceBuffer<float> d_out(static_cast<std::size_t>(out.size()), stream_);
    DeviceBuffer<float> scores(static_cast<std::size_t>(s.seq) * visible, stream_);
    const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim)), one = 1.0f, zero = 0.0f;
    for (int b = 0; b < s.batch; ++b) {
      for (int head = 0; head < s.n_heads; ++head) {
        const std::size_t q_offset = static_cast<std::size_t>(b) * s.seq * width + head * s.head_dim;
        const std::size_t kv_offset = static_cast<std::size_t>(b) * s.kv_rows * kv_width + (head / group) * s.head_dim;
        check(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, visible, s.seq, s.head_dim, &scale, d_k.data() + kv_offset,
                          kv_width, d_q.data() + q_offset, width, &zero, scores.data(), visible),
              "cublasSgemm (scores)");
        cuda::launch_causal_softmax(scores.data(), s.seq, visible, visible, s.pos0, stream_);
        check(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, s.head_dim, s.seq, visible, &one, d_v.data() + kv_offset,
                          kv_width, scores.data(), visible, &zero, d_out.data() + q_offset, width),
              "cublasSgemm (values)");
      }
    }
    download(d_out, out);
  }

  void swiglu(Matrix& gate, const Matrix& up) override {
    const Session s = session();
    const TimedOp timed = ran(Op::swiglu, "cuda");
    DeviceBuffer<float> d_gate(values(gate), stream_);
    const DeviceBuffer<float> d_up(values(up), stream_);
    cuda::launch_swiglu(d_gate.data(), d_up.data(), gate.size(), stream_);
    download(d_gate, gate);
  }

  void add(Matrix& h, const Matrix& x) override {
    const Session s = session();
    const TimedOp timed = ran(Op::add, "cuda");
    DeviceBuffer<float> d_h(values(h), stream_);
    const DeviceBuffer<float> d_x(values(x), stream_);
    cuda::launch_add(d_h.data(), d_x.data(), h.size(), stream_);
    download(d_h, h);
  }

  void quant_linear(std::span<const QuantLinear* const> group, const Matrix& x,
                    std::span<Matrix* const> outputs) override {
    SERQ_CHECK(group.size() == outputs.size() && !group.empty(), "quant_linear: {} linears and {} outputs",
               group.size(), outputs.size());
    const Session s = session();
    const DeviceBuffer<float> d_x(values(x), stream_);
    for (std::size_t i = 0; i < group.size(); ++i) {
      const QuantLinear& layer = *group[i];
      SERQ_CHECK(x.cols() == layer.d_in(),
                 "{}: the input has {} columns but the layer takes d_in = {} (a shape bug in the caller)", layer.name,
                 x.cols(), layer.d_in());
      linear(layer, d_x.data(), static_cast<int>(x.rows()), *outputs[i]);
    }
  }

  void act_quant(Matrix& x, const QuantSpec& spec) override {
    if (!spec.enabled()) return;
    const Session s = session();
    const TimedOp timed = ran(Op::act_quant, "cuda");
    DeviceBuffer<float> d_x(values(x), stream_);
    fake_quant(d_x.data(), static_cast<int>(x.rows()), static_cast<int>(x.cols()), spec, "act_quant: ");
    download(d_x, x);
  }

  void hadamard(Matrix& x, const InputRotation& rotation) override {
    const Session s = session();
    const TimedOp timed = ran(Op::hadamard, "cuda-fwht");
    DeviceBuffer<float> d_x(values(x), stream_);
    rotate(d_x, static_cast<int>(x.rows()), static_cast<int>(x.cols()), rotation);
    download(d_x, x);
  }

  void observe(const Matrix& x, ChannelSums& sums) override {
    const Session s = session();
    const TimedOp timed = ran(Op::observe, "cuda");
    const int rows = static_cast<int>(x.rows()), cols = static_cast<int>(x.cols());
    const DeviceBuffer<float> d_x(values(x), stream_);
    DeviceBuffer<float> abs_max(static_cast<std::size_t>(cols), stream_);
    DeviceBuffer<double> sum_abs(static_cast<std::size_t>(cols), stream_);
    cuda::launch_column_stats(d_x.data(), rows, cols, abs_max.data(), sum_abs.data(), stream_);
    const std::vector<float> call_max = abs_max.to_host();
    const std::vector<double> call_sum = sum_abs.to_host();
    for (int j = 0; j < cols; ++j) {
      const float m = call_max[static_cast<std::size_t>(j)];
      float& channel = sums.abs_max[j];
      channel = std::isnan(m) || std::isnan(channel) ? m + channel : std::max(channel, m);  // NaN stays NaN
      sums.sum_abs[j] += call_sum[static_cast<std::size_t>(j)];
    }
    if (sums.gram.size() > 0) {
      DeviceBuffer<float> gram(static_cast<std::size_t>(cols) * cols, stream_);
      const float one = 1.0f, zero = 0.0f;
      check(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_T, cols, cols, rows, &one, d_x.data(), cols, d_x.data(), cols,
                        &zero, gram.data(), cols),
            "cublasSgemm (XᵀX)");
      Matrix xtx(cols, cols);
      download(gram, xtx);
      sums.gram += xtx.cast<double>();
    }
    sums.tokens += x.rows();
  }

  double nll(const Matrix& logits, std::span<const int> targets) override {
    const Session s = session();
    const TimedOp timed = ran(Op::nll, "cuda");
    const int rows = static_cast<int>(logits.rows());
    const DeviceBuffer<float> d_logits(values(logits), stream_);
    const DeviceBuffer<int> d_targets(targets.first(static_cast<std::size_t>(rows)), stream_);
    DeviceBuffer<double> per_row(static_cast<std::size_t>(rows), stream_);
    cuda::launch_nll(d_logits.data(), d_targets.data(), rows, static_cast<int>(logits.cols()), per_row.data(), stream_);
    double total = 0.0;
    for (const double v : per_row.to_host()) total += v;
    return total;
  }

  void kld(const Matrix& reference_logits, const Matrix& logits, std::span<const int> targets,
           std::vector<KldRow>& rows) override {
    const Session s = session();
    const TimedOp timed = ran(Op::kld, "cuda");
    const int n = static_cast<int>(logits.rows());
    const DeviceBuffer<float> d_ref(values(reference_logits), stream_), d_logits(values(logits), stream_);
    const DeviceBuffer<int> d_targets(targets.first(static_cast<std::size_t>(n)), stream_);
    DeviceBuffer<double> kld(n, stream_), delta_p(n, stream_), reference_nll(n, stream_), nll(n, stream_);
    DeviceBuffer<int> top1(n, stream_);
    cuda::launch_kld(d_ref.data(), d_logits.data(), d_targets.data(), n, static_cast<int>(logits.cols()),
                     {kld.data(), delta_p.data(), reference_nll.data(), nll.data(), top1.data()}, stream_);
    const auto k = kld.to_host(), d = delta_p.to_host(), r = reference_nll.to_host(), q = nll.to_host();
    const auto t = top1.to_host();
    for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
      rows.push_back({.kld = k[i], .delta_p = d[i], .reference_nll = r[i], .nll = q[i], .top1_agrees = t[i] != 0});
    }
  }

 private:
  // Holds the backend for one op: its lock, and the stream and cuBLAS handle, made on first use.
  struct Session {
    std::unique_lock<std::mutex> lock;
  };
  Session session() {
    Session s{std::unique_lock(mutex_)};
    if (!blas_) {
      const std::string why = unavailable();
      SERQ_CHECK(why.empty(), "runtime.device: cuda cannot run here: {}", why);
      check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
      check(cublasCreate(&blas_), "cublasCreate");
      check(cublasSetStream(blas_, stream_), "cublasSetStream");
      check(cublasSetMathMode(blas_, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");  // FP32 as FP32: no TF32
    }
    return s;
  }

  void download(const DeviceBuffer<float>& d, Matrix& m) const {
    d.download(std::span<float>(m.data(), static_cast<std::size_t>(m.size())));
  }

  // y (rows × n, row stride n) = x (rows × k, row stride ldx) · wᵀ (w: n × k) + beta · y.
  void gemm_xwt(const float* x, int rows, int k, int ldx, const float* w, int n, float* y, float beta) {
    const float one = 1.0f;
    check(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, n, rows, k, &one, w, k, x, ldx, &beta, y, n), "cublasSgemm");
  }

  // Fake quantization in place on the device; a non-finite value is a serq::Error naming its row.
  void fake_quant(float* x, int rows, int cols, const QuantSpec& spec, std::string_view what) {
    if (!spec.enabled() || rows == 0) return;
    SERQ_CHECK(!spec.f16_scales, "{}the CUDA backend quantizes activations with float32 scales, not {}", what,
               spec.describe());
    DeviceBuffer<int> bad_row(std::span<const int>(&kNoRow, 1), stream_);
    if (spec.format == NumberFormat::mxfp4) {
      cuda::launch_fake_quant_mxfp4(x, rows, cols, std::min(spec.group_size, cols), bad_row.data(), stream_);
    } else {
      const int width = spec.group_size > 0 ? std::min(spec.group_size, cols) : cols;
      cuda::launch_fake_quant_int(x, rows, cols, width, spec.bits, spec.symmetric, bad_row.data(), stream_);
    }
    check_rows(bad_row, what);
  }

  void check_rows(const DeviceBuffer<int>& bad_row, std::string_view what) const {
    int row = kNoRow;
    bad_row.download(std::span<int>(&row, 1));
    SERQ_CHECK(row == kNoRow, "{}row {}: non-finite value in a quantization group; the input has NaN/Inf — check the "
               "weights/activations", what, row);
  }

  // x ← x · R: the factor F by cuBLAS within each block of m channels, then the Walsh–Hadamard transform.
  void rotate(DeviceBuffer<float>& x, int rows, int cols, const InputRotation& rotation) {
    const int n = rotation.hadamard_size;
    SERQ_CHECK(n >= 1 && (n & (n - 1)) == 0, "rotation {}: Hadamard size {} is not a power of two",
               rotation.description, n);
    SERQ_CHECK(cols % n == 0, "rotation {}: {} channels do not split into {} Hadamard blocks", rotation.description,
               cols, n);
    const int m = cols / n;
    if (rotation.factor.size() > 0) {
      SERQ_CHECK(rotation.factor.rows() == m && rotation.factor.cols() == m, "rotation {}: factor is {}×{}, blocks "
                 "are {} wide", rotation.description, rotation.factor.rows(), rotation.factor.cols(), m);
      const DeviceBuffer<float> factor(values(rotation.factor), stream_);
      DeviceBuffer<float> rotated(x.size(), stream_);
      const float one = 1.0f, zero = 0.0f;
      check(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, m, rows * n, m, &one, factor.data(), m, x.data(), m, &zero,
                        rotated.data(), m),
            "cublasSgemm (rotation factor)");
      x = std::move(rotated);
    }
    cuda::launch_hadamard(x.data(), rows, n, m, stream_);
  }

  // T(x) on the device: (x / s)[:, order], then the rotation; x itself where T is empty.
  DeviceBuffer<float> transform(const QuantLinear& layer, const float* x, int rows) {
    const InputTransform& t = layer.input;
    const int cols = layer.d_in();
    DeviceBuffer<float> out(static_cast<std::size_t>(rows) * cols, stream_);
    const DeviceBuffer<float> scale(values(t.scale), stream_);
    const DeviceBuffer<int> order(std::span<const int>(t.order), stream_);
    cuda::launch_scale_gather(x, t.scale.size() > 0 ? scale.data() : nullptr, t.order.empty() ? nullptr : order.data(),
                              rows, cols, out.data(), stream_);
    if (t.rotation.enabled()) rotate(out, rows, cols, t.rotation);
    return out;
  }

  // The layer's low-bit weight on the device, uploaded on first use.
  DeviceLowbit& lowbit(const QuantLinear& layer) {
    for (auto it = lowbit_.begin(); it != lowbit_.end();) it = it->second.source.expired() ? lowbit_.erase(it) : ++it;
    auto [it, fresh] = lowbit_.try_emplace(layer.int_weight.get());
    DeviceLowbit& d = it->second;
    if (fresh) {
      d.source = layer.int_weight;
      d.layout = cuda::lowbit_weight(*layer.int_weight);
      d.codes = DeviceBuffer<std::uint8_t>(std::span<const std::uint8_t>(d.layout.codes), stream_);
      d.scales = DeviceBuffer<float>(std::span<const float>(d.layout.scales), stream_);
      d.sums = DeviceBuffer<std::int32_t>(std::span<const std::int32_t>(d.layout.sums), stream_);
      d.divisors = DeviceBuffer<float>(std::span<const float>(d.layout.divisors), stream_);
      d.activation_group = DeviceBuffer<int>(std::span<const int>(d.layout.activation_group), stream_);
      d.group_columns = DeviceBuffer<int>(std::span<const int>(d.layout.group_columns), stream_);
      check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");  // the host vectors go next
      d.layout.codes = {};
      d.layout.scales = {};
      d.layout.sums = {};
      d.layout.divisors = {};
    }
    return d;
  }

  // Y = the main GEMM (low-bit on codes, or FP32 on Xq) + the correction + the bias, as QuantLinear's formula.
  void linear(const QuantLinear& layer, const float* x, int rows, Matrix& y) {
    const int d_in = layer.d_in(), d_out = layer.d_out();
    const bool codes = layer.int_weight != nullptr;
    const bool salient_in_gemm = codes && layer.int_weight->has_salient();
    const bool floats = !codes || layer.low_rank.rank() > 0 || (layer.salient.rank() > 0 && !salient_in_gemm);
    const bool transforms = !layer.input.empty() || layer.act_quant.enabled();
    const bool quantized = layer.act_quant.enabled() || layer.weight_quant.enabled();
    const std::string prefix = layer.name + ": ";

    DeviceBuffer<float> xq;  // Q_a(T(X)) in float, where the float GEMMs read it
    DeviceBuffer<std::uint8_t> act_codes;
    DeviceBuffer<float> act_scales;
    DeviceBuffer<std::int32_t> act_offsets;
    DeviceLowbit* weight = codes ? &lowbit(layer) : nullptr;
    {
      const TimedOp timed(kernels(), Op::act_quant, codes && floats ? "cuda-prepare-codes+fakequant"
                                                    : codes       ? "cuda-pack-activations"
                                                                  : "cuda-prepare-fakequant");
      if (floats && transforms) {
        xq = transform(layer, x, rows);
        fake_quant(xq.data(), rows, d_in, layer.act_quant, prefix);
      }
      if (codes) pack_activations(layer, *weight, x, rows, act_codes, act_scales, act_offsets);
    }
    const float* input = floats && transforms ? xq.data() : x;

    const std::string kernel = codes ? fmt::format("cuda-lowbit-w{}-mma", weight->layout.bits)
                                     : quantized ? "cuda-fakequant-sgemm" : "cuda-sgemm";
    const TimedOp timed(kernels(), Op::quant_linear, kernel);
    y.resize(rows, d_out);
    DeviceBuffer<float> d_y(static_cast<std::size_t>(rows) * d_out, stream_);
    const DeviceBuffer<float> bias(values(layer.bias), stream_);
    const float* bias_data = layer.bias.size() > 0 ? bias.data() : nullptr;
    if (codes) {
      const cuda::LowbitWeight& l = weight->layout;
      cuda::LowbitOperands op{.act_codes = act_codes.data(), .act_scales = act_scales.data(),
                              .act_offsets = act_offsets.data(), .weight_codes = weight->codes.data(),
                              .weight_scales = weight->scales.data(), .weight_sums = weight->sums.data(),
                              .divisors = weight->divisors.data(), .bias = bias_data, .rows = rows,
                              .rows_pad = cuda::round_up(std::max(rows, 1), cuda::kTileM), .n = d_out,
                              .n_pad = l.n_pad, .groups = l.groups, .group_pad = l.group_pad, .bits = l.bits};
      cuda::launch_lowbit_gemm(op, d_y.data(), stream_);
      check(cudaGetLastError(), "lowbit_gemm launch");
    } else {
      const Matrix& w = layer.main_weight();
      const DeviceBuffer<float> d_w(values(w), stream_);
      gemm_xwt(input, rows, d_in, d_in, d_w.data(), d_out, d_y.data(), 0.0f);
    }
    if (layer.low_rank.rank() > 0) {
      const int k = layer.low_rank.rank();
      const DeviceBuffer<float> a(values(layer.low_rank.a), stream_), b(values(layer.low_rank.b), stream_);
      DeviceBuffer<float> t(static_cast<std::size_t>(rows) * k, stream_);
      gemm_xwt(input, rows, d_in, d_in, a.data(), k, t.data(), 0.0f);
      fake_quant(t.data(), rows, k, layer.low_rank.intermediate_quant, prefix + "intermediate X·Aᵀ: ");
      gemm_xwt(t.data(), rows, k, k, b.data(), d_out, d_y.data(), 1.0f);
    }
    if (layer.salient.rank() > 0 && !salient_in_gemm) {
      const DeviceBuffer<float> r(values(layer.salient.r), stream_);
      gemm_xwt(input, rows, layer.salient.rank(), d_in, r.data(), d_out, d_y.data(), 1.0f);  // X̂[:, :r] in place
    }
    if (!codes) cuda::launch_rows_epilogue(d_y.data(), rows, d_out, nullptr, bias_data, stream_);
    download(d_y, y);
  }

  // The fused activation kernel: T(X) and the INT codes in the low-bit GEMM's layout (a rotation first, apart).
  void pack_activations(const QuantLinear& layer, const DeviceLowbit& weight, const float* x, int rows,
                        DeviceBuffer<std::uint8_t>& codes, DeviceBuffer<float>& scales,
                        DeviceBuffer<std::int32_t>& offsets) {
    const cuda::LowbitWeight& l = weight.layout;
    const QuantSpec& spec = layer.act_quant;
    const int act_width = spec.group_size > 0 ? std::min(spec.group_size, l.cols) : l.cols;
    SERQ_CHECK(spec.enabled() && spec.format == NumberFormat::integer && act_width == l.group_width,
               "{}: the low-bit GEMM reads INT activations in the weight's groups of {}, not {}", layer.name,
               l.group_width, spec.describe());
    const int rows_pad = cuda::round_up(std::max(rows, 1), cuda::kTileM);
    codes = DeviceBuffer<std::uint8_t>(static_cast<std::size_t>(rows_pad) * l.k_pad(), stream_);
    scales = DeviceBuffer<float>(static_cast<std::size_t>(rows_pad) * l.groups, stream_);
    offsets = DeviceBuffer<std::int32_t>(scales.size(), stream_);
    codes.zero();
    scales.zero();
    offsets.zero();
    DeviceBuffer<float> rotated;
    const float* input = x;
    const InputTransform& t = layer.input;
    const bool fused = !t.rotation.enabled();  // else T(X) first, apart, and the kernel reads it as it is
    const DeviceBuffer<float> scale(fused ? values(t.scale) : std::span<const float>(), stream_);
    const DeviceBuffer<int> order(fused ? std::span<const int>(t.order) : std::span<const int>(), stream_);
    if (!fused) {
      rotated = transform(layer, x, rows);
      input = rotated.data();
    }
    const cuda::ActivationPack pack{.rows = rows, .cols = l.cols, .group_width = l.group_width, .groups = l.groups,
                                    .main_groups = l.main_groups, .group_pad = l.group_pad,
                                    .bits = spec.bits, .symmetric = spec.symmetric,
                                    .activation_group = weight.activation_group.data(),
                                    .group_columns = weight.group_columns.data()};
    DeviceBuffer<int> bad_row(std::span<const int>(&kNoRow, 1), stream_);
    cuda::launch_pack_activations(input, fused && t.scale.size() > 0 ? scale.data() : nullptr,
                                  fused && !t.order.empty() ? order.data() : nullptr, pack, codes.data(),
                                  scales.data(), offsets.data(), bad_row.data(), stream_);
    check_rows(bad_row, layer.name + ": ");
  }

  static constexpr int kNoRow = INT_MAX;
  std::mutex mutex_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  std::map<const Int8Weight*, DeviceLowbit> lowbit_;
};

}  // namespace

Backend& cuda_backend() {
  static CudaBackend backend;
  return backend;
}

}  // namespace serq
