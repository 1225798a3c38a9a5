// Executes one resolved config: the pipeline checkpoint → method → evaluation → RunRecord.
#include "experiments/run_one.h"


#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>

#include "core/backend/backend.h"
#include "core/backend/cpu/cpu_backend.h"
#include "core/backend/cpu/int_gemm.h"
#include "core/common/build_info.h"
#include "core/common/error.h"
#include "core/common/progress.h"
#include "core/data/calibration_sampler.h"
#include "core/data/windows.h"
#include "core/eval/perplexity.h"
#include "core/eval/zero_shot.h"
#include "core/model/fold.h"
#include "core/model/forward.h"
#include "core/model/export.h"
#include "core/model/memory.h"
#include "core/model/rounding_nudge.h"
#include "experiments/calibrate.h"
#include "experiments/calibration_cache.h"
#include "experiments/eval_metrics.h"
#include "experiments/layer_diagnostics.h"
#include "experiments/preflight.h"
#include "methods/rank_budget.h"
#include "methods/registry.h"
#include "methods/sequential.h"
#include "methods/weight_quantizer.h"

namespace serq {
namespace {

// The calibration settings of the config, checked against the model.
CalibrationSettings calibration_settings(const ResolvedConfig& config, const Model& model) {
  const CalibrationSettings settings{static_cast<int>(config.get_int("calib.samples")),
                                     static_cast<int>(config.get_int("calib.seq_len")),
                                     static_cast<std::uint64_t>(config.get_int("calib.seed")),
                                     config.get_string("calib.sampling") == "consecutive"
                                         ? CalibrationSampling::consecutive
                                         : CalibrationSampling::random,
                                     config.get_bool("calib.sequential")};
  SERQ_CHECK(settings.seq_len <= model.config.max_seq_len, "calib.seq_len: {} exceeds the model's "
             "max_position_embeddings {}; use calib.seq_len ≤ {}", settings.seq_len, model.config.max_seq_len,
             model.config.max_seq_len);
  return settings;
}

// The full-precision pass this run's method needs, computed once for equal settings (in memory for this serq-run, on
// disk across serq-runs that share a cache directory). It holds GPTQ Hessians only in one-pass calibration: the
// layer-wise pipeline observes its own.
CachedCalibration run_calibration(const ResolvedConfig& config, const Model& model, const Method& method,
                                  const QuantParams& params, const std::filesystem::path& tokenizer_file,
                                  AssetCache& assets) {
  static const Calibration none;
  const CalibrationSettings settings = calibration_settings(config, model);
  const bool hessian = full_precision_hessians(method, params, settings);
  if (!hessian && !method.needs_activation_stats()) return {none, "none", 0.0};
  const std::string& dataset = config.get_string("calib.dataset");
  const CalibrationKey key = calibration_key(config.get_string("model.path"), tokenizer_file, dataset, settings,
                                             hessian, params.quantize_lm_head, percentile_top_k(params, settings));
  return assets.calibration(key, [&] {
    const TokenStream& stream = config_dataset(assets, config, "calib.dataset", tokenizer_file, model.config.bos_id);
    return calibrate(model, method, params, stream, settings);
  });
}

// How the method is applied: in one pass, or layer by layer on `samples` (calib.sequential with GPTQ weights).
struct Protocol {
  std::vector<std::vector<int>> samples;  // empty: one pass
  std::string description;                // info.calibration_protocol

  MethodReport apply(const Method& method, Model& model, const QuantParams& params,
                     const Calibration& calibration) const {
    return samples.empty() ? method.quantize(model, params, calibration)
                           : quantize_sequential(model, method, params, calibration, samples);
  }
};

// The protocol of this run, its calibration samples drawn and its memory checked before any work.
Protocol calibration_protocol(const ResolvedConfig& config, const Model& model, const Method& method,
                              const QuantParams& params, const std::filesystem::path& tokenizer_file,
                              AssetCache& assets) {
  const CalibrationSettings settings = calibration_settings(config, model);
  if (!uses_gptq(method, params) || !settings.sequential) {
    return {{}, uses_gptq(method, params)
                    ? "one-pass: GPTQ Hessians and activation statistics from the full-precision model "
                      "(calib.sequential: false)"
                    : "one-pass: activation statistics (if any) from the full-precision model; no Hessians"};
  }
  const ModelConfig& c = model.config;
  check_fits(sequential_calibration_bytes(c, settings.samples, settings.seq_len),
             fmt::format("layer-wise calibration: the hidden states of {} samples of {} tokens and one layer's "
                         "Hessians (calib.sequential; set it to false for one-pass calibration)",
                         settings.samples, settings.seq_len));
  const TokenStream& stream = config_dataset(assets, config, "calib.dataset", tokenizer_file, c.bos_id);
  return {sample_calibration(stream, settings.samples, settings.seq_len, settings.sampling, settings.seed),
          "sequential: layer i's GPTQ Hessians observed on the outputs of layers 0..i-1 already quantized, "
          "activation quantization off; activation statistics from the full-precision model"};
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct QuantizedModel {
  MethodReport report;
  std::vector<LayerDiagnostics> layers;  // empty without diagnostics
  double diagnostics_seconds = 0.0;
  std::string diagnostics;  // what was measured, or why nothing was (info.layer_diagnostics)
};

// Quantizes `model` with the method. With diagnostics (eval.layer_error_samples > 0 and something quantized), the
// reference is built first from the full-precision weights, and every quantized layer is measured before folding
// (layer_diagnostics.h) on eval.layer_error_samples windows of calib.seq_len tokens from calib.dataset, drawn as the
// calibration draws them. When the reference copy does not fit in memory the diagnostics are skipped, with a note.
QuantizedModel quantize_model(const ResolvedConfig& config, Model& model, const Method& method,
                              const QuantParams& params, const Calibration& calibration, const Protocol& protocol,
                              const std::filesystem::path& tokenizer_file, AssetCache& assets) {
  const int samples = static_cast<int>(config.get_int("eval.layer_error_samples"));
  if (samples == 0) return {protocol.apply(method, model, params, calibration), {}, 0.0, "off"};
  if (!method.quantizes() || (!params.weight.enabled() && !params.activation.enabled())) {
    return {protocol.apply(method, model, params, calibration), {}, 0.0, "none: nothing quantized"};
  }
  const std::int64_t need = loaded_model_bytes(model.config), available = available_memory_bytes();
  if (need > available) {
    const std::string why = fmt::format("skipped: a reference copy of the model needs {:.1f} GiB, {:.1f} GiB is "
                                        "available", static_cast<double>(need) / (1 << 30),
                                        static_cast<double>(available) / (1 << 30));
    std::fprintf(stderr, "serq-run: per-layer diagnostics %s (set eval.layer_error_samples=0 to silence this)\n",
                 why.c_str());
    return {protocol.apply(method, model, params, calibration), {}, 0.0, why};
  }
  auto start = std::chrono::steady_clock::now();
  const Model reference = reference_model(model, method, params, calibration);
  QuantizedModel quantized;
  quantized.diagnostics_seconds = seconds_since(start);
  quantized.report = protocol.apply(method, model, params, calibration);
  if (params.progress) params.progress->finish();  // the diagnostics below report their own progress

  start = std::chrono::steady_clock::now();
  const CalibrationSettings settings = calibration_settings(config, model);
  const std::string& dataset = config.get_string("calib.dataset");
  const TokenStream& stream = config_dataset(assets, config, "calib.dataset", tokenizer_file, model.config.bos_id);
  const auto windows =
      sample_calibration(stream, samples, settings.seq_len, settings.sampling, settings.seed);
  std::vector<std::string> names;
  for (const QuantLinear* layer : layers_to_quantize(model, params)) names.push_back(layer->name);
  quantized.layers = layer_diagnostics(reference, model, names, windows);
  quantized.diagnostics_seconds += seconds_since(start);
  quantized.diagnostics = fmt::format("{} window{} of {} tokens from {} (calib.seed {})", samples,
                                      samples == 1 ? "" : "s", settings.seq_len, dataset, settings.seed);
  return quantized;
}

// Evaluation reads the stored weights (packed codes, or 16-bit checkpoint values), dequantizing each layer per call
// into a per-thread workspace, when their floats would take more than a quarter of the memory available (the KLD
// reference's budget); otherwise it holds the floats, dequantized once, since per-call dequantization costs every
// short zero-shot forward the whole model (65 ms on SmolLM2). The values are the same either way. Returns which.
std::string hold_weights_for_evaluation(Model& model) {
  std::int64_t float_bytes = 0;
  for (const QuantLinear* layer : model.linears()) {
    if (layer->packed.empty()) continue;
    float_bytes += static_cast<std::int64_t>(layer->d_out()) * layer->d_in() * static_cast<std::int64_t>(sizeof(float));
  }
  if (float_bytes == 0) return "float32";
  if (float_bytes <= available_memory_bytes() / 4) {
    for (QuantLinear* layer : model.linears()) layer->restore_weight();
    return "float32 (dequantized once from the stored form)";
  }
  for (QuantLinear* layer : model.linears()) layer->release_weight();
  return "stored form (dequantized per layer as it runs)";
}

// runtime.kernels: with `int`, every linear the integer kernel applies to runs on it.
void choose_kernels(const std::string& choice, Model& model) {
  if (choice != "int") return;
  for (QuantLinear* layer : model.linears()) {
    if (layer->int_kernel_applies()) layer->use_int_kernel();
  }
}

// The linears an export quantized: the decoder's, and the head where its weight is quantized.
std::vector<QuantLinear*> exported_layers(Model& model) {
  std::vector<QuantLinear*> layers = model.linears();
  if (!model.lm_head.weight_quant.enabled()) layers.pop_back();
  return layers;
}

// One line per linear layer that a method transformed: "layers.0.mlp.down_proj: <what>".
std::string layer_transforms(const Model& model) {
  std::string text;
  for (const QuantLinear* layer : model.linears()) {
    if (!layer->transform.empty()) text += layer->name + ": " + layer->transform + "\n";
  }
  return text;
}

// Where the KLD reference's hidden states came from, counted since it was made.
struct ReferenceCounts {
  std::int64_t computed = 0, stored = 0, reused = 0;
};
ReferenceCounts reference_counts(const KldReference* reference) {
  if (!reference) return {};
  return {reference->computed_batches(), reference->stored_batches(), reference->reused_batches()};
}

// The full-precision model that eval.kld compares against (eval.kld_reference, else the model itself), or nullptr
// when eval.kld is off.
KldReference* kld_reference(const ResolvedConfig& config, const std::filesystem::path& model_path,
                            const Model& model, AssetCache& assets) {
  if (!config.get_bool("eval.kld")) return nullptr;
  const std::string& configured = config.get_string("eval.kld_reference");
  KldReference* reference =
      assets.kld_reference(configured.empty() ? model_path : std::filesystem::path(configured), *model.backend);
  SERQ_CHECK(reference, "eval.kld: the full-precision model has to stay in memory beside the quantized one "
             "({:.1f} GiB each, {:.1f} GiB available); set eval.kld: false, or run where more memory is free",
             static_cast<double>(loaded_model_bytes(model.config)) / (1 << 30),
             static_cast<double>(available_memory_bytes()) / (1 << 30));
  return reference;
}

// Each task on the (quantized) model; its items' source and skipped lines go into `info`.
std::vector<TaskResult> evaluate_tasks(const ResolvedConfig& config, const std::vector<const Task*>& tasks,
                                       const ResidentModel& model, const Tokenizer& tokenizer,
                                       std::map<std::string, std::string>& info) {
  const std::string& task_bos = config.get_string("eval.task_bos");
  const ZeroShotSettings settings{static_cast<int>(config.get_int("eval.batch_size")),
                                  task_bos == "always" || (task_bos == "tokenizer" && tokenizer.adds_bos())};
  std::vector<TaskResult> results;
  for (const Task* task : tasks) {
    info[task->name + ".source"] = task->source;
    if (task->skipped_lines > 0) info[task->name + ".skipped_lines"] = std::to_string(task->skipped_lines);
    results.push_back(evaluate_task(model, tokenizer, *task, settings));
  }
  if (!results.empty()) {
    info["zero_shot.bos_policy"] = fmt::format("{} (eval.task_bos: {})", settings.bos
                                                   ? "BOS before every request"
                                                   : "no BOS (an empty context gets BOS, as lm-eval's prefix token)",
                                               task_bos);
  }
  return results;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

}  // namespace

namespace {

// Each quant.overrides rule's settings as the global ones would be checked: formats in range, and the integer
// kernel's one group for weights and activations.
void check_rules(const ResolvedConfig& config, const QuantParams& params) {
  for (std::size_t i = 0; i < params.overrides.size(); ++i) {
    const LayerOverride& rule = params.overrides[i];
    if (rule.skip) continue;
    const QuantParams p = params.with_rule(rule);
    const std::string where = fmt::format("quant.overrides: rule {} (match '{}')", i + 1, rule.match);
    validate(p.weight, where);
    validate(p.activation, where);
    SERQ_CHECK(config.get_string("runtime.kernels") != "int" || !p.weight.enabled() || !p.activation.enabled() ||
                   p.weight.group_size == p.activation.group_size,
               "{}: runtime.kernels: int runs weights and activations in the same groups, not {} with {}; give the "
               "rule one group_size", where, p.weight.describe(), p.activation.describe());
  }
}

// The per-layer plan as the quantized model holds it: each linear's formats and rank, and the rule that set them.
std::vector<LayerPlan> layer_plan(const Model& model, const QuantParams& params, bool quantizes) {
  std::vector<LayerPlan> plan;
  for (const QuantLinear* layer : model.linears()) {
    const bool quantized = quantizes && (layer->name != "lm_head" || params.quantize_lm_head);
    const auto rule = quantized ? matching_override(params.overrides, layer->name) : std::nullopt;
    const bool weight = quantized && layer->weight_quant.enabled();
    const bool gptq = weight && params.for_layer(layer->name).weight_quantizer == WeightQuantizerKind::gptq;
    plan.push_back({layer->name, layer->weight_quant.describe(), layer->act_quant.describe(),
                    weight ? (gptq ? "gptq" : "rtn") : "none", rule ? static_cast<std::int64_t>(*rule) : -1,
                    std::max(layer->salient.rank(), layer->low_rank.rank())});
  }
  return plan;
}

// quant.rank_allocation: each layer's rank within the budget, into params.layer_ranks; nothing for uniform.
std::optional<RankChoice> choose_ranks(const ResolvedConfig& config, const Model& model, const Method& method,
                                       QuantParams& params, const Calibration& calibration) {
  if (!config.applies("quant.rank_allocation")) return std::nullopt;
  const std::string& allocation = config.get_string("quant.rank_allocation");
  if (allocation == "uniform" || !method.quantizes()) return std::nullopt;
  const auto start = std::chrono::steady_clock::now();
  const std::vector<RankCurve> curves = rank_curves(model, method, params, calibration);
  const std::int64_t budget =
      rank_budget_bits(curves, model, config.get_float("quant.rank_budget"), static_cast<int>(params.rank));
  RankChoice choice =
      allocate_ranks(curves, budget, allocation == "dp" ? RankAllocation::dp : RankAllocation::greedy);
  params.layer_ranks = choice.ranks;
  std::fprintf(stderr, "serq-run: quant.rank_allocation %s: %lld of %lld budget bits over %zu layers, %.1f s\n",
               allocation.c_str(), static_cast<long long>(choice.spent_bits), static_cast<long long>(budget),
               curves.size(), seconds_since(start));
  return choice;
}

}  // namespace

QuantParams quant_params(const ResolvedConfig& config, const Method& method) {
  QuantParams params;
  const NumberFormat format =
      config.get_string("quant.format") == "mxfp4" ? NumberFormat::mxfp4 : NumberFormat::integer;
  params.weight.bits = static_cast<int>(config.get_int("quant.w_bits"));
  params.weight.symmetric = config.get_bool("quant.w_sym");
  params.weight.group_size = static_cast<int>(config.get_int("quant.group_size"));
  params.weight.format = format;
  params.activation.bits = static_cast<int>(config.get_int("quant.a_bits"));
  params.activation.symmetric = config.get_bool("quant.a_sym");
  params.activation.group_size = static_cast<int>(config.get_int("quant.a_group_size"));
  params.activation.format = format;
  if (method.quantizes()) {
    validate(params.weight, "quant.w_bits/quant.group_size");
    validate(params.activation, "quant.a_bits/quant.a_group_size");
    const bool int_kernels = config.get_string("runtime.kernels") == "int";
    SERQ_CHECK(!int_kernels || config.get_string("runtime.device") != "reference", "runtime.kernels: int is a "
               "kernel of the cpu and cuda backends, not of runtime.device reference; use runtime.device: cpu, or "
               "runtime.kernels: float");
    const bool scalar_only = int_gemm_kernel() == IntKernel::reference;
    SERQ_CHECK(!int_kernels || !config.get_bool("runtime.strict") || !scalar_only,
               "runtime.strict: this CPU has neither AVX-512 VNNI nor AVX2, so runtime.kernels: int would run the "
               "integer GEMM's scalar reference; use runtime.kernels: float, or runtime.strict: false to accept it");
    SERQ_CHECK(!int_kernels ||
                   (format == NumberFormat::integer && params.weight.enabled() && params.activation.enabled() &&
                    params.weight.group_size == params.activation.group_size),
               "runtime.kernels: int runs INT weights with INT activations in the same groups, not weights {} with "
               "activations {}; use runtime.kernels: float, or INT bits with quant.a_group_size = quant.group_size",
               params.weight.describe(), params.activation.describe());
  }
  params.overrides = parse_overrides(config.get_string("quant.overrides"));
  params.quantize_lm_head = config.get_bool("quant.quantize_lm_head");
  params.weight_quantizer = method.requires_gptq() || config.get_string("quant.weight_quantizer") == "gptq"
                                ? WeightQuantizerKind::gptq
                                : WeightQuantizerKind::rtn;
  params.gptq.damp = config.get_float("gptq.damp");
  params.gptq.block_size = static_cast<int>(config.get_int("gptq.block_size"));
  params.gptq.act_order = config.get_bool("gptq.act_order");
  params.rank = static_cast<int>(config.get_int("quant.rank"));
  params.alpha = config.get_float("quant.alpha");
  params.factor_bits = static_cast<int>(config.get_int("quant.factor_bits"));
  params.requant_intermediate = config.get_bool("quant.requant_intermediate");
  params.paper_residual_order = config.get_string("quant.residual_order") == "paper";
  const std::string& saliency = config.get_string("quant.saliency");
  params.saliency = saliency == "mean_abs"     ? SaliencyOrder::mean_abs
                    : saliency == "act_weight" ? SaliencyOrder::act_weight
                                               : SaliencyOrder::abs_max;
  const std::string& ties = config.get_string("quant.saliency_ties");
  params.saliency_ties = ties == "last" ? SaliencyTies::last : ties == "seeded" ? SaliencyTies::seeded : SaliencyTies::first;
  params.half_scales = config.get_string("quant.scale_dtype") == "half";
  params.flatten_alpha = config.get_float("quant.flatten_alpha");
  params.flatten_percentile = config.get_float("quant.flatten_percentile");
  params.seed = static_cast<std::uint64_t>(config.get_int("quant.seed"));
  params.svd = parse_svd_algorithm(config.get_string("quant.svd"));
  if (method.quantizes()) check_rules(config, params);
  return params;
}

KvCacheSettings kv_cache_settings(const ResolvedConfig& config, int head_dim, const std::string& source) {
  KvCacheSettings kv;
  kv.quant.bits = static_cast<int>(config.get_int("quant.kv_bits"));
  kv.quant.group_size = static_cast<int>(config.get_int("quant.kv_group_size"));
  kv.quant.symmetric = config.get_bool("quant.kv_sym");
  kv.quant.clip = static_cast<float>(config.get_float("quant.kv_clip"));
  const std::string& rotate = config.get_string("quant.kv_rotate");
  kv.rotate = rotate == "true" || (rotate == "auto" && kv.quant.enabled() && config.get_string("quant.method") == "quarot");
  validate(kv, head_dim, source);
  return kv;
}

std::vector<const Task*> load_tasks(const ResolvedConfig& config, AssetCache& assets) {
  const BadLinePolicy policy =
      config.get_string("eval.bad_lines") == "skip" ? BadLinePolicy::skip : BadLinePolicy::error;
  std::vector<const Task*> tasks;
  for (const std::string& name : parse_task_list(config.get_string("eval.tasks"))) {
    tasks.push_back(&assets.task(name, policy, static_cast<int>(config.get_int("eval.task_limit"))));
  }
  return tasks;
}

void check_export_run(const ResolvedConfig& config) {
  const std::string& path = config.get_string("model.path");
  if (!is_serq_export(path)) return;
  SERQ_CHECK(config.get_string("quant.method") == "fp", "model.path: {} is a serq export, already quantized ({}); "
             "set quant.method: fp to evaluate it as it is", path, export_label(path));
  SERQ_CHECK(!config.get_bool("eval.kld") || !config.get_string("eval.kld_reference").empty(), "eval.kld: model.path "
             "{} is a serq export, which does not hold the full-precision model KL divergence compares against; set "
             "eval.kld_reference to the checkpoint it was made from, or eval.kld: false", path);
}

RunRecord execute_run(const ResolvedConfig& config, const std::string& experiment, AssetCache& assets,
                      const std::filesystem::path& export_dir) {
  const auto start = std::chrono::steady_clock::now();
  check_export_run(config);
  if (const int threads = threads_to_use(config); threads > 0) set_cpu_threads(threads);  // capped at the cores

  const std::filesystem::path model_path = config.get_string("model.path");
  const std::string method_name = config.get_string("quant.method");
  const std::unique_ptr<Method> method = make_method(method_name);
  QuantParams params = quant_params(config, *method);
  params.release_floats = true;  // one layer's floats at a time; evaluation restores them where they fit

  double load_seconds = 0.0;
  Model model = assets.fresh_model(model_path, &load_seconds);
  const ResolvedBackend device =
      resolve_backend(config.get_string("runtime.device"), config.get_bool("runtime.strict"), "runtime.device");
  if (!device.fallback.empty()) std::fprintf(stderr, "serq-run: runtime.device: %s\n", device.fallback.c_str());
  model.backend = device.backend;
  model.backend->strict = config.get_bool("runtime.strict");
  const int seq_len = static_cast<int>(config.get_int("eval.seq_len"));
  const int batch = static_cast<int>(config.get_int("eval.batch_size"));
  SERQ_CHECK(seq_len <= model.config.max_seq_len, "eval.seq_len: {} exceeds the model's max_position_embeddings {}; "
             "use eval.seq_len ≤ {}", seq_len, model.config.max_seq_len, model.config.max_seq_len);
  check_fits(forward_workspace_bytes(model.config, batch, seq_len),
             fmt::format("evaluating {} windows of {} tokens at once (eval.batch_size)", batch, seq_len));

  const std::filesystem::path tokenizer_file = resolve_tokenizer(model_path, config.get_string("model.tokenizer"));
  const std::string dataset_name = config.get_string("eval.dataset");
  const TokenStream& stream = config_dataset(assets, config, "eval.dataset", tokenizer_file, model.config.bos_id);
  const auto windows = eval_windows(stream, seq_len, static_cast<int>(config.get_int("eval.max_windows")));
  const std::vector<const Task*> tasks = load_tasks(config, assets);
  KldReference* kld_against = kld_reference(config, model_path, model, assets);  // before any work, so it fails fast

  const Protocol protocol = calibration_protocol(config, model, *method, params, tokenizer_file, assets);
  const CachedCalibration cached = run_calibration(config, model, *method, params, tokenizer_file, assets);
  const Calibration& calibration = cached.calibration;
  const std::optional<RankChoice> ranks = choose_ranks(config, model, *method, params, calibration);
  std::optional<Progress> progress;  // GPTQ on a 7B model takes minutes
  if (method->quantizes()) {
    progress.emplace("quantize " + config.label(), static_cast<std::int64_t>(layers_to_quantize(model, params).size()),
                     "layers");
    params.progress = &*progress;
  }
  const QuantizedModel quantized =
      quantize_model(config, model, *method, params, calibration, protocol, tokenizer_file, assets);
  if (progress) progress->finish();
  params.progress = nullptr;
  const bool reloaded = is_serq_export(model_path);
  MethodReport report = quantized.report;
  if (reloaded) {  // what the export's run counted (folding adds row divisors that it does not count)
    report = summarize(exported_layers(model), start);
    report.bits_per_weight = export_bits_per_weight(model_path);
  }
  const std::vector<LayerPlan> plan = layer_plan(model, params, method->quantizes());
  model.kv_cache = kv_cache_settings(config, model.config.head_dim(), model_path.string());
  const std::vector<std::string> folds =
      reloaded ? std::vector<std::string>{"none here: the export was folded before it was written"}
               : fold_input_transforms(model);
  std::optional<ExportSummary> exported;
  if (!export_dir.empty()) {
    const BuildInfo build = build_info();
    exported = export_model(model, {config.run_id(build.git_commit), config.label(), build.git_commit,
                                    config.to_yaml(), tokenizer_file},
                            report.bits_per_weight, export_dir);
  }
  const auto rounding_seed = static_cast<std::uint64_t>(config.get_int("eval.rounding_seed"));
  if (rounding_seed != 0) nudge_norms_by_one_ulp(model, rounding_seed);
  const std::string weights_held = hold_weights_for_evaluation(model);
  choose_kernels(config.get_string("runtime.kernels"), model);
  model.backend->kernels().clear();  // from here on, what the evaluation ran and moved
  const ResidentModel resident(model, *model.backend);  // the weights cross once
  const ReferenceCounts before = reference_counts(kld_against);
  const PerplexityResult ppl =
      evaluate_perplexity(resident, windows, batch, fmt::format("eval {}", config.label()), kld_against);
  const ReferenceCounts after = reference_counts(kld_against);
  std::map<std::string, std::string> task_info;
  const std::vector<TaskResult> task_results =
      evaluate_tasks(config, tasks, resident, assets.tokenizer(tokenizer_file), task_info);
  const Transfers transfers = model.backend->kernels().transfers();

  const BuildInfo build = build_info();
  RunRecord record;
  record.experiment = experiment;
  record.run_id = config.run_id(build.git_commit);
  record.label = reloaded ? fmt::format("{} (reloaded)", export_label(model_path)) : config.label();
  record.config_yaml = config.to_yaml();
  record.metrics = {{"ppl", ppl.ppl},
                    {"mean_nll", ppl.mean_nll},
                    {"bits_per_weight", report.bits_per_weight},
                    {"load_seconds", load_seconds},
                    {"calibration_seconds", calibration.seconds},
                    {"calibration_load_seconds", cached.load_seconds},
                    {"quantize_seconds", report.quantize_seconds},
                    {"layer_diagnostics_seconds", quantized.diagnostics_seconds},
                    {"eval_seconds", ppl.seconds}};
  record.layers = quantized.layers;
  record.plan = plan;
  record.windows = ppl.window_scores;
  if (config.get_bool("eval.log_items")) {
    for (const TaskResult& task : task_results) record.items[task.name] = task.item_scores;
  }
  record.counts = {{"tokens", ppl.scored_tokens},
                   {"windows", ppl.windows},
                   {"stream_tokens", static_cast<std::int64_t>(stream.tokens.size())},
                   {"eval_invalid_utf8_bytes", stream.invalid_utf8_bytes},
                   {"quantized_weights", report.quantized_weights},
                   {"extra_parameters", report.extra_parameters},
                   {"parameters", model.config.parameter_count()},
                   {"host_to_backend_bytes", transfers.host_to_backend_bytes()},
                   {"backend_to_host_bytes", transfers.backend_to_host_bytes()}};
  if (ranks) {
    record.counts["rank_budget_bits"] = ranks->budget_bits;
    record.counts["rank_spent_bits"] = ranks->spent_bits;
    record.metrics["rank_allocation_error"] = ranks->error;
  }
  const bool fp = method_name == "fp";
  record.info = {{"method", method_name},
                 {"weight_format", fp ? "fp" : params.weight.describe()},
                 {"weight_quantizer", fp ? "none" : params.weight_quantizer == WeightQuantizerKind::gptq ? "gptq" : "rtn"},
                 {"activation_format", fp ? "fp" : params.activation.describe()},
                 {"kv_cache", model.kv_cache.describe(model.config.head_dim())},
                 {"dataset", dataset_name},
                 {"calibration_source", cached.source},
                 {"calibration_protocol", protocol.description},
                 {"layer_diagnostics", quantized.diagnostics},
                 {"weights_in_evaluation", weights_held},
                 {"bos_policy", stream.bos_policy},
                 {"window_convention", stream.partial_window == PartialWindow::drop
                                           ? "full windows only (GPTQ: numel // seq_len)"
                                           : "a short last window is scored too"},
                 {"model_source", model.source},
                 {"layer_transforms", layer_transforms(model)},
                 {"folds", fmt::format("{}", fmt::join(folds, "\n"))},
                 {"rounding_nudge", rounding_seed == 0 ? "none"
                                                       : fmt::format("every RMSNorm weight moved by one ulp, up or "
                                                                     "down by seed {} (eval.rounding_seed)",
                                                                     rounding_seed)},
                 {"tokenizer", assets.tokenizer(tokenizer_file).describe()},
                 {"backend", device.fallback.empty() ? std::string(model.backend->name())
                                                     : fmt::format("{} (fallback: {})", model.backend->name(),
                                                                   device.fallback)},
                 {"kernels", model.backend->kernels().describe()},
                 {"transfers", transfers.describe()},
                 {"residency", resident.streamed() ? "streamed: one decoder layer on the backend at a time"
                                                   : "the whole model on the backend"},
                 {"git_commit", build.git_commit},
                 {"compiler", build.compiler},
                 {"build_type", build.build_type},
                 {"blas", build.blas},
                 {"blas_threads", std::to_string(build.blas_threads)},
                 {"summation_order", fmt::format("serq's own kernels (integer GEMM, attention, lm_head with the NLL, "
                                                 "quantizers, KLD) sum in an order independent of the thread count; "
                                                 "float GEMMs are OpenBLAS's ({}, {} threads), whose order follows "
                                                 "its core and may follow its thread count",
                                                 build.blas, build.blas_threads)},
                 {"host", build.host},
                 {"finished_at", utc_now()}};
  if (ppl.kld) {
    record_kld(*ppl.kld, record);
    record.info["kld_reference_states"] =
        fmt::format("batches: {} computed, {} read from the reference cache, {} kept in memory from an earlier run",
                    after.computed - before.computed, after.stored - before.stored, after.reused - before.reused);
  }
  if (ranks) {
    record.info["rank_allocation"] = fmt::format(
        "{} within {} extra bits ({} spent): each layer's rank on a grid of 8 minimizing the sum of the layers' "
        "activation-weighted relative weight errors ||(W - W_hat(r)) diag(mean|x|)||^2 / ||W diag(mean|x|)||^2 with "
        "RTN main weights (methods/rank_budget.h); ranks in /plan",
        config.get_string("quant.rank_allocation"), ranks->budget_bits, ranks->spent_bits);
  }
  record_tasks(task_results, record);
  record.info.insert(task_info.begin(), task_info.end());
  if (exported) {
    record.info["export"] = export_dir.string();
    record.info["export_gguf"] = exported->gguf;
    record.counts["export_model_bytes"] = exported->model_bytes;
    record.metrics["export_file_bits_per_weight"] = exported->file_bits_per_weight;
  }
  record.metrics["seconds"] = seconds_since(start);
  return record;
}

}  // namespace serq
