// QuantLinear on the CPU: the input transform and the activation fake quantization on a copy of X (shared by the
// linears of a group that agree on them), then the GEMMs of the main weight and the correction path.
#include "core/backend/cpu/cpu_quant_linear.h"

#include <fmt/format.h>

#include "core/backend/cpu/gemm.h"
#include "core/backend/cpu/int_gemm.h"
#include "core/common/error.h"

namespace serq {
namespace {

// A layer's input after its transform and activation quantization.
struct PreparedInput {
  Matrix xq;             // Q_a(T(X)) in float, for the float GEMM and the correction paths; empty when none reads it
  IntActivations codes;  // the same as integer codes, for a layer on the integer kernel; empty otherwise
};

bool transforms_input(const QuantLinear& layer) { return !layer.input.empty() || layer.act_quant.enabled(); }

// Whether R runs inside the integer GEMM (as extra K).
bool salient_in_int_gemm(const Int8Weight* int8) { return int8 && int8->has_salient(); }

bool needs_float_input(const CpuLinear& linear) {
  const QuantLinear& layer = linear.layer();
  return !linear.int8 || layer.low_rank.rank() > 0 ||
         (layer.salient.rank() > 0 && !salient_in_int_gemm(linear.int8.get()));
}

// Linears that give equal prepared inputs for equal X.
bool same_preparation(const CpuLinear& a, const CpuLinear& b) {
  return a.layer().input.same_as(b.layer().input) && a.layer().act_quant == b.layer().act_quant &&
         !a.int8 == !b.int8 && needs_float_input(a) == needs_float_input(b);
}

// Recorded as act_quant, with the input transform: "cpu-prepare-" and what it made (codes, fakequant or both).
PreparedInput prepare(const CpuLinear& linear, ConstMatrixRef x, KernelRecord& record) {
  const QuantLinear& layer = linear.layer();
  const bool codes = linear.int8 != nullptr, floats = needs_float_input(linear);
  const TimedOp timed(record, Op::act_quant,
                      codes && floats ? "cpu-prepare-codes+fakequant" : codes ? "cpu-prepare-codes"
                                                                              : "cpu-prepare-fakequant");
  PreparedInput in;
  try {
    if (codes && !floats) {  // codes straight from X, or from T(X) a block of rows at a time, without a copy
      if (layer.input.empty()) {
        in.codes = quantize_activations(x, layer.act_quant);
      } else {
        in.codes = quantize_activations(static_cast<int>(x.rows()), static_cast<int>(x.cols()),
                                        [&](int begin, int end, Matrix& block) {
                                          layer.input.apply(x.middleRows(begin, end - begin), block);
                                        },
                                        layer.act_quant);
      }
      return in;
    }
    Matrix t = x;
    layer.input.apply(t);
    if (codes) in.codes = quantize_activations(t, layer.act_quant);
    if (floats) {
      fake_quant_rows(t, layer.act_quant);
      in.xq = std::move(t);
    }
  } catch (const Error& e) {
    fail("{}: {}", layer.name, e.what());
  }
  return in;
}

// Y = main GEMM + correction + bias, on Xq (float) or its codes, recorded under the main GEMM's kernel.
void run_gemms(const CpuLinear& linear, ConstMatrixRef xq, const IntActivations* codes, MatrixRef y, bool strict,
               KernelRecord& record) {
  const QuantLinear& layer = linear.layer();
  const IntKernel int_kernel = codes ? int_gemm_kernel(*linear.int8) : IntKernel::reference;
  const bool quantized = layer.act_quant.enabled() || layer.weight_quant.enabled();
  const std::string kernel = codes ? fmt::format("cpu-int-{}", int_kernel_name(int_kernel))
                                   : quantized ? "cpu-fakequant-sgemm" : "cpu-sgemm";
  const TimedOp timed(record, Op::quant_linear, kernel);
  if (codes) {
    SERQ_CHECK(!strict || int_kernel != IntKernel::reference, "runtime.strict: {} runs on the integer kernel, but no "
               "vector kernel of this CPU fits it, so only the scalar reference would run; use runtime.kernels: float, "
               "or runtime.strict: false to accept the slow kernel", layer.name);
    int_gemm_into(*codes, *linear.int8, y, int_kernel);
  } else {
    gemm_xwt_into(xq, layer.main_weight(), y);
  }
  if (layer.low_rank.rank() > 0) {
    Matrix t(xq.rows(), layer.low_rank.rank());
    gemm_xwt_into(xq, layer.low_rank.a, t);
    try {
      fake_quant_rows(t, layer.low_rank.intermediate_quant);
    } catch (const Error& e) {
      fail("{}: intermediate X·Aᵀ: {}", layer.name, e.what());
    }
    gemm_xwt_add(t, layer.low_rank.b, y);
  }
  if (layer.salient.rank() > 0 && !(codes && salient_in_int_gemm(linear.int8.get()))) {
    gemm_xwt_add(xq, layer.salient.r, y);  // reads X̂[:, :r] in place
  }
  if (layer.bias.size() > 0) y.rowwise() += layer.bias.transpose();
}

}  // namespace

void cpu_quant_linear(std::span<const CpuLinear* const> group, ConstMatrixRef x, std::span<MatrixRef> outputs,
                      bool strict, KernelRecord& record) {
  SERQ_CHECK(group.size() == outputs.size() && !group.empty(), "quant_linear: {} linears and {} outputs",
             group.size(), outputs.size());
  for (std::size_t i = 0; i < group.size(); ++i) {
    const QuantLinear& layer = group[i]->layer();
    SERQ_CHECK(x.cols() == layer.d_in(),
               "{}: the input has {} columns but the layer takes d_in = {} (a shape bug in the caller)", layer.name,
               x.cols(), layer.d_in());
    SERQ_CHECK(outputs[i].rows() == x.rows() && outputs[i].cols() == layer.d_out(), "{}: an output of {} × {} "
               "for {} × {} (a shape bug in the caller)", layer.name, outputs[i].rows(), outputs[i].cols(), x.rows(),
               layer.d_out());
  }
  const CpuLinear& first = *group.front();
  bool shared = group.size() > 1 && transforms_input(first.layer());
  for (const CpuLinear* linear : group) shared = shared && same_preparation(*linear, first);
  if (shared) {
    const PreparedInput in = prepare(first, x, record);
    for (std::size_t i = 0; i < group.size(); ++i) {
      run_gemms(*group[i], in.xq, group[i]->int8 ? &in.codes : nullptr, outputs[i], strict, record);
    }
    return;
  }
  for (std::size_t i = 0; i < group.size(); ++i) {
    const CpuLinear& linear = *group[i];
    if (!transforms_input(linear.layer())) {
      run_gemms(linear, x, nullptr, outputs[i], strict, record);
      continue;
    }
    const PreparedInput in = prepare(linear, x, record);
    run_gemms(linear, in.xq, linear.int8 ? &in.codes : nullptr, outputs[i], strict, record);
  }
}

std::unique_ptr<const Int8Weight> int8_weight(const QuantLinear& layer) {
  if (!layer.int_kernel) return nullptr;
  const SalientCorrection& r = layer.salient;
  const bool fused = r.rank() > 0 && !r.packed.empty() && Int8Weight::fits_salient(layer.packed, r.packed);
  return std::make_unique<const Int8Weight>(layer.packed, fused ? &r.packed : nullptr);
}

std::size_t linear_bytes(const QuantLinear& layer, const Int8Weight* int8) {
  auto floats = [](const auto& m) { return static_cast<std::size_t>(m.size()) * sizeof(float); };
  std::size_t bytes = 0;
  if (int8) {
    bytes += int8->bytes();
  } else if (layer.weight.size() > 0) {
    bytes += floats(layer.weight);
  } else {
    bytes += static_cast<std::size_t>((layer.packed.storage_bits() + 7) / 8);
  }
  bytes += floats(layer.low_rank.a) + floats(layer.low_rank.b) + floats(layer.bias) + floats(layer.input.scale) +
           floats(layer.input.rotation.factor) + layer.input.order.size() * sizeof(int);
  if (!salient_in_int_gemm(int8)) bytes += floats(layer.salient.r);
  return bytes;
}

}  // namespace serq
