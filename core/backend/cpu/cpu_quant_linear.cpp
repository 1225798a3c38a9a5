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
bool salient_in_int_gemm(const QuantLinear& layer) { return layer.int_weight && layer.int_weight->has_salient(); }

bool needs_float_input(const QuantLinear& layer) {
  return !layer.int_weight || layer.low_rank.rank() > 0 || (layer.salient.rank() > 0 && !salient_in_int_gemm(layer));
}

// Linears that give equal prepared inputs for equal X.
bool same_preparation(const QuantLinear& a, const QuantLinear& b) {
  return a.input.same_as(b.input) && a.act_quant == b.act_quant && !a.int_weight == !b.int_weight &&
         needs_float_input(a) == needs_float_input(b);
}

// Recorded as act_quant, with the input transform: "cpu-prepare-" and what it made (codes, fakequant or both).
PreparedInput prepare(const QuantLinear& layer, const Matrix& x, KernelRecord& record) {
  const bool codes = layer.int_weight != nullptr, floats = needs_float_input(layer);
  const TimedOp timed(record, Op::act_quant,
                      codes && floats ? "cpu-prepare-codes+fakequant" : codes ? "cpu-prepare-codes"
                                                                              : "cpu-prepare-fakequant");
  PreparedInput in;
  Matrix t = x;
  try {
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
void run_gemms(const QuantLinear& layer, const Matrix& xq, const IntActivations* codes, Matrix& y, bool strict,
               KernelRecord& record) {
  const IntKernel int_kernel = codes ? int_gemm_kernel(*layer.int_weight) : IntKernel::reference;
  const bool quantized = layer.act_quant.enabled() || layer.weight_quant.enabled();
  const std::string kernel = codes ? fmt::format("cpu-int-{}", int_kernel_name(int_kernel))
                                   : quantized ? "cpu-fakequant-sgemm" : "cpu-sgemm";
  const TimedOp timed(record, Op::quant_linear, kernel);
  if (codes) {
    SERQ_CHECK(!strict || int_kernel != IntKernel::reference, "runtime.strict: {} runs on the integer kernel, but no "
               "vector kernel of this CPU fits it, so only the scalar reference would run; use runtime.kernels: float, "
               "or runtime.strict: false to accept the slow kernel", layer.name);
    int_gemm(*codes, *layer.int_weight, y, int_kernel);
  } else {
    gemm_xwt(xq, layer.main_weight(), y);
  }
  if (layer.low_rank.rank() > 0) {
    Matrix t;
    gemm_xwt(xq, layer.low_rank.a, t);
    try {
      fake_quant_rows(t, layer.low_rank.intermediate_quant);
    } catch (const Error& e) {
      fail("{}: intermediate X·Aᵀ: {}", layer.name, e.what());
    }
    gemm_xwt_add(t, layer.low_rank.b, y);
  }
  if (layer.salient.rank() > 0 && !(codes && salient_in_int_gemm(layer))) {
    gemm_xwt_add(xq, layer.salient.r, y);  // reads X̂[:, :r] in place
  }
  if (layer.bias.size() > 0) y.rowwise() += layer.bias.transpose();
}

}  // namespace

void cpu_quant_linear(std::span<const QuantLinear* const> group, const Matrix& x, std::span<Matrix* const> outputs,
                      bool strict, KernelRecord& record) {
  SERQ_CHECK(group.size() == outputs.size() && !group.empty(), "quant_linear: {} linears and {} outputs",
             group.size(), outputs.size());
  for (const QuantLinear* layer : group) {
    SERQ_CHECK(x.cols() == layer->d_in(),
               "{}: the input has {} columns but the layer takes d_in = {} (a shape bug in the caller)", layer->name,
               x.cols(), layer->d_in());
  }
  const QuantLinear& first = *group.front();
  bool shared = group.size() > 1 && transforms_input(first);
  for (const QuantLinear* layer : group) shared = shared && same_preparation(*layer, first);
  if (shared) {
    const PreparedInput in = prepare(first, x, record);
    for (std::size_t i = 0; i < group.size(); ++i) {
      run_gemms(*group[i], in.xq, group[i]->int_weight ? &in.codes : nullptr, *outputs[i], strict, record);
    }
    return;
  }
  for (std::size_t i = 0; i < group.size(); ++i) {
    const QuantLinear& layer = *group[i];
    if (!transforms_input(layer)) {
      run_gemms(layer, x, nullptr, *outputs[i], strict, record);
      continue;
    }
    const PreparedInput in = prepare(layer, x, record);
    run_gemms(layer, in.xq, layer.int_weight ? &in.codes : nullptr, *outputs[i], strict, record);
  }
}

}  // namespace serq
