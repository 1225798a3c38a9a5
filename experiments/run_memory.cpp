// estimate_run_memory: the peak of a run from its config (see run_memory.h).
#include "experiments/run_memory.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/model/forward.h"
#include "core/model/memory.h"
#include "experiments/run_one.h"
#include "methods/registry.h"
#include "methods/sequential.h"
#include "methods/weight_quantizer.h"

namespace serq {
namespace {

constexpr std::int64_t kFloat = 4, kDouble = 8;

// Σ d_in² over a decoder layer's linears, each with its own Hessian as one-pass calibration keeps them.
std::int64_t layer_hessian_entries(const ModelConfig& m) {
  std::int64_t entries = 0;
  for (const LinearDesc& l : layer_linears()) entries += std::int64_t{width(m, l.d_in)} * width(m, l.d_in);
  return entries;
}

}  // namespace

std::vector<MemoryItem> estimate_run_memory(const ResolvedConfig& config, const ModelConfig& model,
                                            std::int64_t available) {
  std::vector<MemoryItem> items;
  const std::int64_t stored = loaded_model_bytes(model);
  const std::unique_ptr<Method> method = make_method(config.get_string("quant.method"));
  const QuantParams params = quant_params(config, *method);
  const bool fp = !method->quantizes();
  const std::int64_t d = model.dim, layer_weights = model.layer_linear_weights();
  items.push_back({"model as stored", stored});
  if (!fp) {
    // Codes at the weight bits plus a 16-bit scale (and asymmetric b-bit zero) per group; one layer's floats while
    // it is transformed and quantized.
    const QuantSpec& w = params.weight;
    const double group = w.group_size > 0 ? w.group_size : static_cast<double>(d);
    const double bits = w.enabled() ? w.bits + (16.0 + (w.symmetric ? 0 : w.bits)) / group : 32.0;
    items.push_back({"quantized weights", static_cast<std::int64_t>(model.n_layers * layer_weights * bits / 8)});
    items.push_back({"one layer's floats", layer_weights * kFloat});
  }
  if (config.get_bool("eval.kld")) items.push_back({"FP copy for eval.kld", stored});
  if (!fp && config.get_int("eval.layer_error_samples") > 0) {
    items.push_back({"diagnostics reference (skipped if short)", model_bytes(model), true});
  }
  const int seq = static_cast<int>(config.get_int("eval.seq_len"));
  items.push_back({"forward workspace", forward_workspace_bytes(model, static_cast<int>(config.get_int(
                                                                            "eval.batch_size")), seq)});
  const bool layer_wise = uses_gptq(*method, params) && config.get_bool("calib.sequential");
  // The full-precision pass holds every sample's hidden states; the layer-wise pipeline's own are counted below, and
  // the two are never held at once.
  if (!layer_wise && (method->needs_activation_stats() || uses_gptq(*method, params))) {
    items.push_back({"calibration hidden states", config.get_int("calib.samples") * config.get_int("calib.seq_len") *
                                                      d * kFloat});
  }
  if (uses_gptq(*method, params)) {
    if (config.get_bool("calib.sequential")) {
      items.push_back({"layer-wise calibration",
                       sequential_calibration_bytes(model, static_cast<int>(config.get_int("calib.samples")),
                                                    static_cast<int>(config.get_int("calib.seq_len")))});
    } else {
      items.push_back({"one-pass Hessians", model.n_layers * layer_hessian_entries(model) * kDouble});
    }
  }
  if (config.get_bool("eval.kld")) {
    const std::int64_t windows = config.get_int("eval.max_windows");
    const std::int64_t per_window = static_cast<std::int64_t>(seq) * model.dim * kFloat;
    items.push_back({"KLD reference states", windows > 0 ? std::min(windows * per_window, available / 4)
                                                         : available / 4});
  }
  return items;
}

std::string describe_memory(const std::vector<MemoryItem>& items) {
  const auto gib = [](std::int64_t bytes) { return static_cast<double>(bytes) / (1LL << 30); };
  std::int64_t total = 0;
  std::string parts;
  for (const MemoryItem& item : items) {
    total += item.bytes;
    parts += fmt::format("{}{} {:.1f}", parts.empty() ? "" : ", ", item.what, gib(item.bytes));
  }
  return fmt::format("≈ {:.1f} GiB: {}", gib(total), parts);
}

}  // namespace serq
