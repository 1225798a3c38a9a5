// The CUDA backend: every op of core/backend/backend.h on an NVIDIA GPU, on tensors in device memory. cuBLAS (FP32,
// no TF32) runs the float GEMMs of the linears and of attention; the kernels of cuda_kernels.h run the rest, and
// linears on integer codes (runtime.kernels: int) run the low-bit GEMM on INT8 tensor cores (lowbit_gemm.cu).
//
// Memory is the backend's: buffers and resident linears live on the device, and host data crosses only through
// set/get (counted) and the per-row results of nll, kld and observe. A linear's resident copy (CudaLinear) holds its
// float weights, correction, bias, transform and low-bit layout on the device, uploaded once. The stream and cuBLAS
// handle are made once, on first use; scratch inside an op comes from the stream-ordered allocator's pool. Ops are
// serialized on one stream.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <climits>
#include <memory>
#include <mutex>

#include "core/backend/backend.h"
#include "core/backend/cpu/cpu_quant_linear.h"
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

// A linear's copy on the device, made once (CudaBackend::make_resident).
struct CudaLinear final : ResidentLinear {
  using ResidentLinear::ResidentLinear;
  DeviceBuffer<float> weight;         // the main weight's floats, where the float GEMM reads them
  const float* main = nullptr;        // weight.data(), or a shared tensor's (a tied lm_head reads the embedding)
  DeviceBuffer<float> a, b, r;        // the correction path (R only where it is not inside the low-bit GEMM)
  DeviceBuffer<float> bias, scale, factor;
  DeviceBuffer<int> order;
  bool lowbit = false;
  bool salient_in_gemm = false;       // R rides in the low-bit GEMM as extra K
  cuda::LowbitWeight layout;          // metadata (its host vectors are released once uploaded)
  DeviceBuffer<std::uint8_t> codes;
  DeviceBuffer<float> scales, divisors;
  DeviceBuffer<std::int32_t> sums;
  DeviceBuffer<int> activation_group, group_columns;
  std::size_t bytes = 0;
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

  bool host_memory() const override { return false; }

  std::int64_t memory_available() const override {
    std::size_t free = 0, total = 0;
    check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
    return static_cast<std::int64_t>(free);
  }

  void* allocate(std::size_t bytes) override {
    const Session s = session();
    void* data = nullptr;
    check(cudaMalloc(&data, bytes), "cudaMalloc");
    return data;
  }

  // Called from destructors, so it reports nothing: a failure here (a context already torn down at exit) leaves
  // nothing to recover.
  void deallocate(void* data) override {
    const std::lock_guard lock(mutex_);
    if (stream_) cudaStreamSynchronize(stream_);  // no op may still read it
    cudaFree(data);
  }

  std::unique_ptr<ResidentLinear> make_resident(const QuantLinear& layer, const Tensor* shared_weight) override {
    const Session s = session();
    auto d = std::make_unique<CudaLinear>(layer);
    const std::unique_ptr<const Int8Weight> int8 = int8_weight(layer);
    d->lowbit = int8 != nullptr;
    d->salient_in_gemm = d->lowbit && int8->has_salient();
    if (d->lowbit) {
      d->layout = cuda::lowbit_weight(*int8);
      d->codes = upload(std::span<const std::uint8_t>(d->layout.codes), d->bytes);
      d->scales = upload(std::span<const float>(d->layout.scales), d->bytes);
      d->sums = upload(std::span<const std::int32_t>(d->layout.sums), d->bytes);
      d->divisors = upload(std::span<const float>(d->layout.divisors), d->bytes);
      d->activation_group = upload(std::span<const int>(d->layout.activation_group), d->bytes);
      d->group_columns = upload(std::span<const int>(d->layout.group_columns), d->bytes);
    } else if (shared_weight) {
      check_shape(*shared_weight, layer.d_out(), layer.d_in(), layer.name + " shared weight");
      d->main = shared_weight->f32();
    } else {
      d->weight = upload(values(layer.main_weight()), d->bytes);
      d->main = d->weight.data();
    }
    d->a = upload(values(layer.low_rank.a), d->bytes);
    d->b = upload(values(layer.low_rank.b), d->bytes);
    if (!d->salient_in_gemm) d->r = upload(values(layer.salient.r), d->bytes);
    d->bias = upload(values(layer.bias), d->bytes);
    d->scale = upload(values(layer.input.scale), d->bytes);
    d->factor = upload(values(layer.input.rotation.factor), d->bytes);
    d->order = upload(std::span<const int>(layer.input.order), d->bytes);
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");  // the host vectors go next
    d->layout.codes = {};
    d->layout.scales = {};
    d->layout.sums = {};
    d->layout.divisors = {};
    counted(KernelRecord::Direction::host_to_backend, "weights", d->bytes);
    return d;
  }

  void embedding(const Tensor& table, const Tensor& tokens, Tensor& out) override {
    check_shape(out, tokens.rows, table.cols, "embedding");
    const Session s = session();
    const TimedOp timed = ran(Op::embedding, "cuda");
    cuda::launch_embedding(table.f32(), tokens.i32(), static_cast<int>(tokens.rows), static_cast<int>(table.cols),
                           out.f32(), stream_);
  }

  void rms_norm(const Tensor& x, const Tensor& gamma, float eps, Tensor& out) override {
    check_shape(out, x.rows, x.cols, "rms_norm");
    check_shape(gamma, 1, x.cols, "rms_norm γ");
    const Session s = session();
    const TimedOp timed = ran(Op::rms_norm, "cuda");
    cuda::launch_rms_norm(x.f32(), gamma.f32(), eps, static_cast<int>(x.rows), static_cast<int>(x.cols), out.f32(),
                          stream_);
  }

  void rope(Tensor& x, const RopeShape& shape) override {
    check_shape(x, static_cast<std::int64_t>(shape.batch) * shape.seq,
                static_cast<std::int64_t>(shape.n_heads) * shape.head_dim, "rope");
    check_shape(shape.frequencies, 1, shape.head_dim / 2, "rope frequencies");
    const Session s = session();
    const TimedOp timed = ran(Op::rope, "cuda");
    cuda::launch_rope(x.f32(), shape.frequencies.f32(), shape.batch * shape.seq, shape.seq, shape.pos0, shape.n_heads,
                      shape.head_dim, shape.interleaved, stream_);
  }

  // Per sequence and head: S = Q·Kᵀ / sqrt(head_dim) by cuBLAS, the causal softmax, then O = P·V.
  void attention(const Tensor& q, const Tensor& keys, const Tensor& values_in, const AttentionShape& s,
                 Tensor& out) override {
    const int width = s.n_heads * s.head_dim, kv_width = s.n_kv_heads * s.head_dim, group = s.n_heads / s.n_kv_heads;
    check_shape(q, static_cast<std::int64_t>(s.batch) * s.seq, width, "attention q");
    check_shape(keys, static_cast<std::int64_t>(s.batch) * s.kv_rows, kv_width, "attention keys");
    check_shape(values_in, static_cast<std::int64_t>(s.batch) * s.kv_rows, kv_width, "attention values");
    check_shape(out, q.rows, width, "attention output");
    const Session session_lock = session();
    const TimedOp timed = ran(Op::attention, "cuda-cublas-softmax");
    const int visible = s.pos0 + s.seq;  // keys the last query sees
    DeviceBuffer<float> scores(static_cast<std::size_t>(s.seq) * visible, stream_);
    const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim)), one = 1.0f, zero = 0.0f;
    for (int b = 0; b < s.batch; ++b) {
      for (int head = 0; head < s.n_heads; ++head) {
        const std::size_t q_offset = static_cast<std::size_t>(b) * s.seq * width + head * s.head_dim;
        const std::size_t kv_offset = static_cast<std::size_t>(b) * s.kv_rows * kv_width + (head / group) * s.head_dim;
        check(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, visible, s.seq, s.head_dim, &scale, keys.f32() + kv_offset,
                          kv_width, q.f32() + q_offset, width, &zero, scores.data(), visible),
              "cublasSgemm (scores)");
        cuda::launch_causal_softmax(scores.data(), s.seq, visible, visible, s.pos0, stream_);
        check(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, s.head_dim, s.seq, visible, &one,
                          values_in.f32() + kv_offset, kv_width, scores.data(), visible, &zero, out.f32() + q_offset,
                          width),
              "cublasSgemm (values)");
      }
    }
  }

  void swiglu(Tensor& gate, const Tensor& up) override {
    check_shape(up, gate.rows, gate.cols, "swiglu");
    const Session s = session();
    const TimedOp timed = ran(Op::swiglu, "cuda");
    cuda::launch_swiglu(gate.f32(), up.f32(), gate.size(), stream_);
  }

  void add(Tensor& h, const Tensor& x) override {
    check_shape(x, h.rows, h.cols, "add");
    const Session s = session();
    const TimedOp timed = ran(Op::add, "cuda");
    cuda::launch_add(h.f32(), x.f32(), h.size(), stream_);
  }

  void quant_linear(std::span<const ResidentLinear* const> group, const Tensor& x,
                    std::span<Tensor* const> outputs) override {
    SERQ_CHECK(group.size() == outputs.size() && !group.empty(), "quant_linear: {} linears and {} outputs",
               group.size(), outputs.size());
    const Session s = session();
    for (std::size_t i = 0; i < group.size(); ++i) {
      const auto& layer = static_cast<const CudaLinear&>(*group[i]);
      SERQ_CHECK(x.cols == layer.layer().d_in(),
                 "{}: the input has {} columns but the layer takes d_in = {} (a shape bug in the caller)",
                 layer.layer().name, x.cols, layer.layer().d_in());
      check_shape(*outputs[i], x.rows, layer.layer().d_out(), layer.layer().name);
      linear(layer, x.f32(), static_cast<int>(x.rows), outputs[i]->f32());
    }
  }

  void act_quant(Tensor& x, const QuantSpec& spec) override {
    if (!spec.enabled()) return;
    const Session s = session();
    const TimedOp timed = ran(Op::act_quant, "cuda");
    fake_quant(x.f32(), static_cast<int>(x.rows), static_cast<int>(x.cols), spec, "act_quant: ");
  }

  void hadamard(Tensor& x, const InputRotation& rotation) override {
    const Session s = session();
    const TimedOp timed = ran(Op::hadamard, "cuda-fwht");
    std::size_t bytes = 0;
    const DeviceBuffer<float> factor = upload(values(rotation.factor), bytes);
    if (bytes > 0) counted(KernelRecord::Direction::host_to_backend, "rotation factor", bytes);
    rotate(x.f32(), static_cast<int>(x.rows), static_cast<int>(x.cols), rotation, factor.data());
  }

  void kv_quant(Tensor& x, const KvQuantSpec& spec) override {
    if (!spec.enabled() || x.rows == 0) return;
    SERQ_CHECK(spec.group_size >= 1 && x.cols % spec.group_size == 0, "kv_quant: groups of {} do not divide {} "
               "channels", spec.group_size, x.cols);
    const Session s = session();
    const TimedOp timed = ran(Op::kv_quant, "cuda");
    DeviceBuffer<int> bad_row(std::span<const int>(&kNoRow, 1), stream_);
    cuda::launch_fake_quant_int(x.f32(), static_cast<int>(x.rows), static_cast<int>(x.cols), spec.group_size,
                                spec.bits, spec.symmetric, spec.clip, bad_row.data(), stream_);
    check_rows(bad_row, "kv_quant: ");
  }

  void observe(const Tensor& x, ChannelSums& sums) override {
    const Session s = session();
    const TimedOp timed = ran(Op::observe, "cuda");
    const int rows = static_cast<int>(x.rows), cols = static_cast<int>(x.cols);
    DeviceBuffer<float> abs_max(static_cast<std::size_t>(cols), stream_);
    DeviceBuffer<double> sum_abs(static_cast<std::size_t>(cols), stream_);
    cuda::launch_column_stats(x.f32(), rows, cols, abs_max.data(), sum_abs.data(), stream_);
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
      check(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_T, cols, cols, rows, &one, x.f32(), cols, x.f32(), cols, &zero,
                        gram.data(), cols),
            "cublasSgemm (XᵀX)");
      Matrix xtx(cols, cols);
      gram.download(std::span<float>(xtx.data(), static_cast<std::size_t>(xtx.size())));
      sums.gram += xtx.cast<double>();
    }
    sums.tokens += x.rows;
    counted(KernelRecord::Direction::backend_to_host, "observer statistics", observed_bytes(sums));
  }

  void nll(const Tensor& logits, const Tensor& targets, std::vector<NllRow>& rows) override {
    check_shape(targets, logits.rows, 1, "nll targets");
    const Session s = session();
    const TimedOp timed = ran(Op::nll, "cuda");
    const int n = static_cast<int>(logits.rows);
    DeviceBuffer<double> per_row(static_cast<std::size_t>(n), stream_);
    DeviceBuffer<int> argmax(static_cast<std::size_t>(n), stream_);
    cuda::launch_nll(logits.f32(), targets.i32(), n, static_cast<int>(logits.cols), per_row.data(), argmax.data(),
                     stream_);
    const std::vector<double> nll = per_row.to_host();
    const std::vector<int> top = argmax.to_host();
    for (std::size_t i = 0; i < nll.size(); ++i) rows.push_back({nll[i], top[i]});
    counted(KernelRecord::Direction::backend_to_host, "nll rows", nll.size() * (sizeof(double) + sizeof(int)));
  }

  void head_nll(const ResidentLinear& head, const Tensor& hidden, const Tensor& targets,
                std::vector<NllRow>& rows) override {
    head_nll_through_logits(head, hidden, targets, rows);  // cuBLAS's logits, then the nll kernel
  }

  void kld(const Tensor& reference_logits, const Tensor& logits, const Tensor& targets,
           std::vector<KldRow>& rows) override {
    check_shape(reference_logits, logits.rows, logits.cols, "kld reference logits");
    check_shape(targets, logits.rows, 1, "kld targets");
    const Session s = session();
    const TimedOp timed = ran(Op::kld, "cuda");
    const int n = static_cast<int>(logits.rows);
    DeviceBuffer<double> kld(n, stream_), delta_p(n, stream_), reference_nll(n, stream_), nll(n, stream_);
    DeviceBuffer<int> top1(n, stream_);
    cuda::launch_kld(reference_logits.f32(), logits.f32(), targets.i32(), n, static_cast<int>(logits.cols),
                     {kld.data(), delta_p.data(), reference_nll.data(), nll.data(), top1.data()}, stream_);
    const auto k = kld.to_host(), d = delta_p.to_host(), r = reference_nll.to_host(), q = nll.to_host();
    const auto t = top1.to_host();
    for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
      rows.push_back({.kld = k[i], .delta_p = d[i], .reference_nll = r[i], .nll = q[i], .top1_agrees = t[i] != 0});
    }
    counted(KernelRecord::Direction::backend_to_host, "kld rows",
            static_cast<std::size_t>(n) * (4 * sizeof(double) + sizeof(int)));
  }

  void copy(const Tensor& src, Tensor& dst) override {
    check_shape(dst, src.rows, src.cols, "copy");
    SERQ_CHECK(src.type == dst.type, "copy: tensors of different element types (a bug in the caller)");
    const Session s = session();
    const TimedOp timed = ran(Op::copy, "cuda");
    check(cudaMemcpyAsync(dst.data, src.data, src.bytes(), cudaMemcpyDeviceToDevice, stream_), "cudaMemcpyAsync");
  }

 protected:
  void copy_to_backend(void* dst, const void* src, std::size_t bytes) override {
    const Session s = session();
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "set");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");  // the host values may go when set returns
  }

  void copy_to_host(void* dst, const void* src, std::size_t bytes) override {
    const Session s = session();
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "get");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }

 private:
  // Holds the backend for one op: its lock, and the stream and cuBLAS handle, made on first use.
  struct Session {
    std::unique_lock<std::recursive_mutex> lock;
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

  // Host values on the device (empty when there are none), their bytes added to `bytes`.
  template <class T>
  DeviceBuffer<T> upload(std::span<const T> host, std::size_t& bytes) {
    bytes += host.size_bytes();
    return DeviceBuffer<T>(host, stream_);
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
      cuda::launch_fake_quant_int(x, rows, cols, width, spec.bits, spec.symmetric, 1.0f, bad_row.data(), stream_);
    }
    check_rows(bad_row, what);
  }

  void check_rows(const DeviceBuffer<int>& bad_row, std::string_view what) const {
    int row = kNoRow;
    bad_row.download(std::span<int>(&row, 1));
    SERQ_CHECK(row == kNoRow, "{}row {}: non-finite value in a quantization group; the input has NaN/Inf — check the "
               "weights/activations", what, row);
  }

  // x ← x · R: the factor F (device, m × m, or null) by cuBLAS within each block of m channels, then the
  // Walsh–Hadamard transform.
  void rotate(float* x, int rows, int cols, const InputRotation& rotation, const float* factor) {
    const int n = rotation.hadamard_size;
    SERQ_CHECK(n >= 1 && (n & (n - 1)) == 0, "rotation {}: Hadamard size {} is not a power of two",
               rotation.description, n);
    SERQ_CHECK(cols % n == 0, "rotation {}: {} channels do not split into {} Hadamard blocks", rotation.description,
               cols, n);
    const int m = cols / n;
    if (rotation.factor.size() > 0) {
      SERQ_CHECK(rotation.factor.rows() == m && rotation.factor.cols() == m, "rotation {}: factor is {}×{}, blocks "
                 "are {} wide", rotation.description, rotation.factor.rows(), rotation.factor.cols(), m);
      DeviceBuffer<float> rotated(static_cast<std::size_t>(rows) * cols, stream_);
      const float one = 1.0f, zero = 0.0f;
      check(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, m, rows * n, m, &one, factor, m, x, m, &zero,
                        rotated.data(), m),
            "cublasSgemm (rotation factor)");
      check(cudaMemcpyAsync(x, rotated.data(), rotated.size() * sizeof(float), cudaMemcpyDeviceToDevice, stream_),
            "cudaMemcpyAsync");
    }
    cuda::launch_hadamard(x, rows, n, m, stream_);
  }

  // T(x) on the device: (x / s)[:, order], then the rotation.
  DeviceBuffer<float> transform(const CudaLinear& d, const float* x, int rows) {
    const InputTransform& t = d.layer().input;
    const int cols = d.layer().d_in();
    DeviceBuffer<float> out(static_cast<std::size_t>(rows) * cols, stream_);
    cuda::launch_scale_gather(x, t.scale.size() > 0 ? d.scale.data() : nullptr, t.order.empty() ? nullptr : d.order.data(),
                              rows, cols, out.data(), stream_);
    if (t.rotation.enabled()) rotate(out.data(), rows, cols, t.rotation, d.factor.data());
    return out;
  }

  // y (rows × d_out) = the main GEMM (low-bit on codes, or FP32 on Xq) + the correction + the bias, as QuantLinear's
  // formula.
  void linear(const CudaLinear& d, const float* x, int rows, float* y) {
    const QuantLinear& layer = d.layer();
    const int d_in = layer.d_in(), d_out = layer.d_out();
    const bool codes = d.lowbit;
    const bool salient_in_gemm = d.salient_in_gemm;
    const bool floats = !codes || layer.low_rank.rank() > 0 || (layer.salient.rank() > 0 && !salient_in_gemm);
    const bool transforms = !layer.input.empty() || layer.act_quant.enabled();
    const bool quantized = layer.act_quant.enabled() || layer.weight_quant.enabled();
    const std::string prefix = layer.name + ": ";

    DeviceBuffer<float> xq;  // Q_a(T(X)) in float, where the float GEMMs read it
    DeviceBuffer<std::uint8_t> act_codes;
    DeviceBuffer<float> act_scales;
    DeviceBuffer<std::int32_t> act_offsets;
    {
      const TimedOp timed(kernels(), Op::act_quant, codes && floats ? "cuda-prepare-codes+fakequant"
                                                    : codes       ? "cuda-pack-activations"
                                                                  : "cuda-prepare-fakequant");
      if (floats && transforms) {
        xq = transform(d, x, rows);
        fake_quant(xq.data(), rows, d_in, layer.act_quant, prefix);
      }
      if (codes) pack_activations(d, x, rows, act_codes, act_scales, act_offsets);
    }
    const float* input = floats && transforms ? xq.data() : x;

    const std::string kernel = codes ? fmt::format("cuda-lowbit-w{}-mma", d.layout.bits)
                                     : quantized ? "cuda-fakequant-sgemm" : "cuda-sgemm";
    const TimedOp timed(kernels(), Op::quant_linear, kernel);
    const float* bias = layer.bias.size() > 0 ? d.bias.data() : nullptr;
    if (codes) {
      const cuda::LowbitWeight& l = d.layout;
      cuda::LowbitOperands op{.act_codes = act_codes.data(), .act_scales = act_scales.data(),
                              .act_offsets = act_offsets.data(), .weight_codes = d.codes.data(),
                              .weight_scales = d.scales.data(), .weight_sums = d.sums.data(),
                              .divisors = d.divisors.data(), .bias = bias, .rows = rows,
                              .rows_pad = cuda::round_up(std::max(rows, 1), cuda::kTileM), .n = d_out,
                              .n_pad = l.n_pad, .groups = l.groups, .group_pad = l.group_pad, .bits = l.bits};
      cuda::launch_lowbit_gemm(op, y, stream_);
      check(cudaGetLastError(), "lowbit_gemm launch");
    } else {
      gemm_xwt(input, rows, d_in, d_in, d.main, d_out, y, 0.0f);
    }
    if (layer.low_rank.rank() > 0) {
      const int k = layer.low_rank.rank();
      DeviceBuffer<float> t(static_cast<std::size_t>(rows) * k, stream_);
      gemm_xwt(input, rows, d_in, d_in, d.a.data(), k, t.data(), 0.0f);
      fake_quant(t.data(), rows, k, layer.low_rank.intermediate_quant, prefix + "intermediate X·Aᵀ: ");
      gemm_xwt(t.data(), rows, k, k, d.b.data(), d_out, y, 1.0f);
    }
    if (layer.salient.rank() > 0 && !salient_in_gemm) {
      gemm_xwt(input, rows, layer.salient.rank(), d_in, d.r.data(), d_out, y, 1.0f);  // X̂[:, :r] in place
    }
    if (!codes) cuda::launch_rows_epilogue(y, rows, d_out, nullptr, bias, stream_);
  }

  // The fused activation kernel: T(X) and the INT codes in the low-bit GEMM's layout (a rotation first, apart).
  void pack_activations(const CudaLinear& d, const float* x, int rows, DeviceBuffer<std::uint8_t>& codes,
                        DeviceBuffer<float>& scales, DeviceBuffer<std::int32_t>& offsets) {
    const QuantLinear& layer = d.layer();
    const cuda::LowbitWeight& l = d.layout;
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
    if (!fused) {
      rotated = transform(d, x, rows);
      input = rotated.data();
    }
    const cuda::ActivationPack pack{.rows = rows, .cols = l.cols, .group_width = l.group_width, .groups = l.groups,
                                    .main_groups = l.main_groups, .group_pad = l.group_pad,
                                    .bits = spec.bits, .symmetric = spec.symmetric,
                                    .activation_group = d.activation_group.data(),
                                    .group_columns = d.group_columns.data()};
    DeviceBuffer<int> bad_row(std::span<const int>(&kNoRow, 1), stream_);
    cuda::launch_pack_activations(input, fused && t.scale.size() > 0 ? d.scale.data() : nullptr,
                                  fused && !t.order.empty() ? d.order.data() : nullptr, pack, codes.data(),
                                  scales.data(), offsets.data(), bad_row.data(), stream_);
    check_rows(bad_row, layer.name + ": ");
  }

  static constexpr int kNoRow = INT_MAX;
  std::recursive_mutex mutex_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
};

}  // namespace

Backend& cuda_backend() {
  static CudaBackend backend;
  return backend;
}

}  // namespace serq
