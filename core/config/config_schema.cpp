// The config key table and the per-key parsing, validation and YAML formatting it drives.
#include "core/config/config_schema.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>

#include "core/common/error.h"
#include "core/common/paths.h"
#include "core/common/text.h"
#include "core/config/layer_overrides.h"
#include "core/data/tasks.h"

namespace serq {
namespace {

using Int = std::int64_t;
// Seeds are 64-bit: the largest a config may give (a double, as KeySpec::max is).
constexpr double kLargestSeed = 9.2e18;

std::vector<KeySpec> make_schema() {
  const std::vector<std::pair<std::string, Int>> channel = {{"channel", 0}};
  return {
      {.path = "experiment.name",
       .type = ValueType::string,
       .doc = "experiment name; results go to <out>/<name>/<run_id>/",
       .default_kind = DefaultKind::config_stem,
       .check = StringCheck::name,
       .sweepable = false},

      {.path = "model.path",
       .type = ValueType::string,
       .doc = "Hugging Face model directory, GGUF file or llama2.c .bin checkpoint; ${VAR} is expanded",
       .default_kind = DefaultKind::required,
       .expand_env = true,
       .check = StringCheck::existing_path},
      {.path = "model.tokenizer",
       .type = ValueType::string,
       .doc = "sentencepiece .model, tokenizer.json or .gguf file; \"\" = the GGUF itself, or tokenizer.model "
              "(else tokenizer.json) in the model directory, or the one .model beside a .bin; ${VAR} is expanded",
       .default_value = std::string{},
       .expand_env = true},

      {.path = "quant.method",
       .type = ValueType::choice,
       .doc = "quantization method",
       .default_kind = DefaultKind::required,
       .choice_source = ChoiceSource::methods},
      {.path = "quant.w_bits",
       .type = ValueType::integer,
       .doc = "weight bits; 16 = weights not quantized",
       .default_value = Int{4},
       .min = 2,
       .max = 8,
       .also_allowed = {16}},
      {.path = "quant.a_bits",
       .type = ValueType::integer,
       .doc = "activation bits; 16 = activations not quantized",
       .default_value = Int{16},
       .min = 2,
       .max = 8,
       .also_allowed = {16}},
      {.path = "quant.group_size",
       .type = ValueType::integer,
       .doc = "weight quantization group (input channels); channel = one group per output row",
       .default_value = Int{0},
       .min = 1,
       .named = channel},
      {.path = "quant.a_group_size",
       .type = ValueType::integer,
       .doc = "activation quantization group (channels); channel = one group per token",
       .default_kind = DefaultKind::same_as_key,
       .default_key = "quant.group_size",
       .min = 1,
       .named = channel},
      {.path = "quant.w_sym",
       .type = ValueType::boolean,
       .doc = "symmetric weight quantization",
       .default_value = true},
      {.path = "quant.a_sym",
       .type = ValueType::boolean,
       .doc = "symmetric activation quantization",
       .default_value = false},
      {.path = "quant.quantize_lm_head",
       .type = ValueType::boolean,
       .doc = "quantize lm_head too (PTQ papers keep it in full precision)",
       .default_value = false},
      {.path = "quant.format",
       .type = ValueType::choice,
       .doc = "number format of weights, activations and corrections: int, or mxfp4 (E2M1, one E8M0 scale per "
              "group_size block; 4 bits)",
       .default_value = std::string{"int"},
       .choices = {"int", "mxfp4"}},
      {.path = "quant.scale_dtype",
       .type = ValueType::choice,
       .doc = "INT weight scales (main weights, R, low-rank factors) as stored: half = IEEE half (GGUF, GPTQ and "
              "Marlin store them so; 16 bits a group), float = float32 (the official SERQ and QuaRot code; 32 bits)",
       .default_value = std::string{"half"},
       .choices = {"half", "float"}},
      {.path = "quant.weight_quantizer",
       .type = ValueType::choice,
       .doc = "how main weights are rounded: rtn, or gptq (Hessian-aware, uses calibration)",
       .default_value = std::string{"rtn"},
       .choices = {"rtn", "gptq"}},
      {.path = "quant.kv_bits",
       .type = ValueType::integer,
       .doc = "KV-cache bits: keys (after RoPE) and values are quantized as they are written, and attention reads "
              "them dequantized, in evaluation and zero-shot scoring; 16 = not quantized",
       .default_value = Int{16},
       .min = 2,
       .max = 8,
       .also_allowed = {16}},
      {.path = "quant.kv_group_size",
       .type = ValueType::integer,
       .doc = "KV-cache quantization group (channels, dividing head_dim); head = one group per head",
       .default_value = Int{0},
       .min = 1,
       .named = {{"head", 0}}},
      {.path = "quant.kv_sym",
       .type = ValueType::boolean,
       .doc = "symmetric KV-cache quantization (default asymmetric, as QuaRot and KIVI)",
       .default_value = false},
      {.path = "quant.kv_clip",
       .type = ValueType::floating,
       .doc = "KV-cache clip ratio: each group's range is scaled by it and values beyond saturate (QuaRot uses 0.95)",
       .default_value = 1.0,
       .min = 0.05,
       .max = 1.0},
      {.path = "quant.kv_rotate",
       .type = ValueType::choice,
       .doc = "online Hadamard (head_dim) on queries and keys after RoPE, so q·kᵀ is unchanged and the keys' outliers "
              "spread before quantization; auto = on for quarot when quant.kv_bits < 16 (as its paper), else off",
       .default_value = std::string{"auto"},
       .choices = {"auto", "true", "false"}},
      {.path = "quant.overrides",
       .type = ValueType::string,
       .doc = "per-layer rules, first match wins: a list of {match: REGEX searched in layer names such as "
              "layers.11.mlp.down_proj, then skip: true (full precision) or any of w_bits, a_bits, group_size, "
              "a_group_size, format, rank, weight_quantizer}; a regex matching no layer is an error",
       .default_value = std::string{},
       .check = StringCheck::overrides,
       .sweepable = false},
      {.path = "quant.rank",
       .type = ValueType::integer,
       .doc = "serq: salient channels r with a correction (0..d_in); lorc/lqer/l2qer: rank of the error factors",
       .default_value = Int{128},
       .min = 0,
       .method_parameter = true},
      {.path = "quant.rank_allocation",
       .type = ValueType::choice,
       .doc = "serq/lorc/lqer/l2qer: uniform = quant.rank on every layer; greedy or dp = each layer's rank on a grid "
              "of 8 (up to max(4·quant.rank, 64)) minimizing Σ of the layers' activation-weighted relative weight "
              "errors within quant.rank_budget (greedy on the marginal gain, dp exact); ranks go into run.h5 /plan",
       .default_value = std::string{"uniform"},
       .choices = {"uniform", "greedy", "dp"},
       .method_parameter = true},
      {.path = "quant.rank_budget",
       .type = ValueType::floating,
       .doc = "serq/lorc/lqer/l2qer with rank_allocation greedy or dp: extra bits per weight (codes and scales of R "
              "or the factors) over the quantized linears; 0 = what uniform quant.rank costs (an equal-bits comparison)",
       .default_value = 0.0,
       .min = 0.0,
       .method_parameter = true},
      {.path = "quant.alpha",
       .type = ValueType::floating,
       .doc = "smoothquant: migration strength α in s_j = max|X_j|^α / max|W_j|^(1−α)",
       .default_value = 0.5,
       .min = 0.0,
       .max = 1.0,
       .method_parameter = true},
      {.path = "quant.factor_bits",
       .type = ValueType::integer,
       .doc = "lqer/l2qer: bits of the factors A and B and of the re-quantized intermediate; 16 = full precision",
       .default_value = Int{8},
       .min = 2,
       .max = 8,
       .also_allowed = {16},
       .method_parameter = true},
      {.path = "quant.requant_intermediate",
       .type = ValueType::boolean,
       .doc = "lqer/l2qer: re-quantize the intermediate Q(X)·Aᵀ per token before B",
       .default_value = true,
       .method_parameter = true},
      {.path = "quant.residual_order",
       .type = ValueType::choice,
       .doc = "serq: code = R = Q(W̃[:, :r]) and its error into the main weight (official code); paper = main = "
              "Q(W̃), R = Q(its error)",
       .default_value = std::string{"code"},
       .choices = {"code", "paper"},
       .method_parameter = true},
      {.path = "quant.saliency",
       .type = ValueType::choice,
       .doc = "serq: which input channels are salient (get R): abs_max = max |x_j| over calibration tokens (the paper), "
              "mean_abs = mean |x_j|, act_weight = mean |x_j| · max over the group's layers of ‖W[:, j]‖₂",
       .default_value = std::string{"abs_max"},
       .choices = {"abs_max", "mean_abs", "act_weight"},
       .method_parameter = true},
      {.path = "quant.saliency_ties",
       .type = ValueType::choice,
       .doc = "serq: the order of channels with equal saliency scores (exact ties are common where grouped-query "
              "attention repeats values): first = lower channel index first (a stable sort), last = higher first, "
              "seeded = a random order from quant.seed (as an unstable sort, e.g. torch.argsort, leaves it)",
       .default_value = std::string{"first"},
       .choices = {"first", "last", "seeded"},
       .method_parameter = true},
      {.path = "quant.flatten_percentile",
       .type = ValueType::floating,
       .doc = "serq: max|x_j| in the flattening scale as this percentile of |x_j| over calibration tokens (nearest "
              "rank), so one token cannot set it; 100 = the abs-max (the paper)",
       .default_value = 100.0,
       .min = 90.0,
       .max = 100.0,
       .method_parameter = true},
      {.path = "quant.flatten_alpha",
       .type = ValueType::floating,
       .doc = "serq: flattening scale s_j = max|x_j|^α / max|W_j|^(1−α) (SmoothQuant's form); 1 = max|x_j| (the paper)",
       .default_value = 1.0,
       .min = 0.0,
       .max = 1.0,
       .method_parameter = true},
      {.path = "quant.svd",
       .type = ValueType::choice,
       .doc = "lorc/lqer/l2qer: truncated SVD of the weight error; randomized (Halko et al.: 16 oversamples, 4 power "
              "iterations) or exact (full BDCSVD, minutes per 7B layer)",
       .default_value = std::string{"randomized"},
       .choices = {"randomized", "exact"},
       .method_parameter = true},
      {.path = "quant.seed",
       .type = ValueType::integer,
       .doc = "quarot: seed of the random Hadamard signs and orthogonal factors; lorc/lqer/l2qer: seed of the "
              "randomized SVD's sketch; serq: seed of the tie order with quant.saliency_ties: seeded",
       .default_value = Int{0},
       .min = 0,
       .max = kLargestSeed,
       .method_parameter = true},

      {.path = "gptq.damp",
       .type = ValueType::floating,
       .doc = "GPTQ dampening: damp · mean(diag H) is added to the Hessian's diagonal",
       .default_value = 0.01,
       .min = 0.0},
      {.path = "gptq.block_size",
       .type = ValueType::integer,
       .doc = "GPTQ columns per lazy-update block",
       .default_value = Int{128},
       .min = 1},
      {.path = "gptq.act_order",
       .type = ValueType::boolean,
       .doc = "GPTQ quantizes columns by decreasing Hessian diagonal (groups keep their channels)",
       .default_value = false},

      {.path = "calib.dataset",
       .type = ValueType::string,
       .doc = "calibration text, as eval.dataset; used only by methods that need statistics (and GPTQ)",
       .default_value = std::string{"tinystories-calib"},
       .expand_env = true},
      {.path = "calib.samples",
       .type = ValueType::integer,
       .doc = "calibration sequences, drawn at seeded random offsets",
       .default_value = Int{128},
       .min = 1},
      {.path = "calib.seq_len",
       .type = ValueType::integer,
       .doc = "tokens per calibration sequence",
       .default_value = Int{512},
       .min = 2},
      {.path = "calib.seed",
       .type = ValueType::integer,
       .doc = "seed of the calibration offsets",
       .default_value = Int{0},
       .min = 0,
       .max = kLargestSeed},
      {.path = "calib.sequential",
       .type = ValueType::boolean,
       .doc = "GPTQ weights: calibrate layer by layer, layer i's Hessians on the outputs of layers 0..i-1 already "
              "quantized with activation quantization off (GPTQ, QuaRot and SERQ code); false: every Hessian from one "
              "full-precision pass. Activation statistics always come from the full-precision pass",
       .default_value = true},
      {.path = "calib.sampling",
       .type = ValueType::choice,
       .doc = "random: GPTQ-style seeded offsets; consecutive: the first calib.samples windows of the text",
       .default_value = std::string{"random"},
       .choices = {"random", "consecutive"}},

      {.path = "eval.dataset",
       .type = ValueType::string,
       .doc = "tinystories-eval, tinystories-calib, wikitext2 and ptb (GPTQ protocol: rows joined, full windows "
              "only), wikitext2-valid (wiki.valid.tokens), wikitext2-train (wiki.train.tokens, which the user "
              "supplies), or a text file path; BOS as the tokenizer says; ${VAR} is expanded",
       .default_value = std::string{"tinystories-eval"},
       .expand_env = true},
      {.path = "eval.seq_len",
       .type = ValueType::integer,
       .doc = "tokens per perplexity window",
       .default_value = Int{512},
       .min = 2},
      {.path = "eval.max_windows",
       .type = ValueType::integer,
       .doc = "windows to score; 0 = all",
       .default_value = Int{0},
       .min = 0},
      {.path = "eval.batch_size",
       .type = ValueType::integer,
       .doc = "windows evaluated at once",
       .default_value = Int{8},
       .min = 1},
      {.path = "eval.layer_error_samples",
       .type = ValueType::integer,
       .doc = "calibration windows (calib.seq_len tokens) for per-layer errors in run.h5 /layers; 0 = off",
       .default_value = Int{4},
       .min = 0},
      {.path = "eval.kld",
       .type = ValueType::boolean,
       .doc = "also compare each scored position with the full-precision model (KL divergence, top-1 agreement, "
              "delta p); runs the FP model beside the quantized one",
       .default_value = false},
      {.path = "eval.kld_reference",
       .type = ValueType::string,
       .doc = "the full-precision checkpoint eval.kld compares against; \"\" = model.path itself (a serq export "
              "needs the checkpoint it was made from); ${VAR} is expanded",
       .default_value = std::string{},
       .expand_env = true},
      {.path = "eval.rounding_seed",
       .type = ValueType::integer,
       .doc = "0 = off; N: move every RMSNorm weight by one ulp up or down (a coin per element from seed N) after "
              "quantization, a float-rounding-sized change that leaves the quantized model as it is, to measure "
              "evaluation noise (serq-run --noise-floor)",
       .default_value = Int{0},
       .min = 0,
       .max = kLargestSeed},
      {.path = "eval.log_items",
       .type = ValueType::boolean,
       .doc = "keep every zero-shot item's scores in run.h5 /items (each choice's log-likelihood and length, the "
              "prediction, the gold answer), as lm-eval's --log_samples, for serq-compare's per-task tests",
       .default_value = false},
      {.path = "eval.tasks",
       .type = ValueType::string,
       .doc = "zero-shot tasks (lm-eval semantics): 'all', or a list (YAML or comma-separated) of piqa, arc_easy, "
              "arc_challenge, hellaswag, winogrande, boolq, openbookqa, copa, lambada_openai; empty = none",
       .default_value = std::string{},
       .check = StringCheck::task_list},
      {.path = "eval.task_limit",
       .type = ValueType::integer,
       .doc = "items per zero-shot task (the first ones, as lm-eval --limit); 0 = all",
       .default_value = Int{0},
       .min = 0},
      {.path = "eval.task_bos",
       .type = ValueType::choice,
       .doc = "BOS before every zero-shot request: tokenizer (where the tokenizer adds BOS: sentencepiece LLaMA "
              "yes, SmolLM2 no), always, never",
       .default_value = std::string{"tokenizer"},
       .choices = {"tokenizer", "always", "never"}},
      {.path = "eval.bad_lines",
       .type = ValueType::choice,
       .doc = "a malformed line in a task file: error (stop, naming file:line) or skip (leave it out, counted)",
       .default_value = std::string{"error"},
       .choices = {"error", "skip"}},
      {.path = "eval.invalid_utf8",
       .type = ValueType::choice,
       .doc = "bytes of eval.dataset or calib.dataset that are not UTF-8 text (or NUL): error (stop before any run, "
              "naming file:line:column) or replace (read each bad sequence as U+FFFD; the count goes into run.h5)",
       .default_value = std::string{"error"},
       .choices = {"error", "replace"}},

      {.path = "runtime.device",
       .type = ValueType::choice,
       .doc = "the backend that runs every op (core/backend/backend.h): cpu (OpenBLAS, Eigen, integer kernels), "
              "cuda (an NVIDIA GPU; a build with nvcc), or reference (plain loops in double: slow, for checking a "
              "result)",
       .default_value = std::string{"cpu"},
       .choices = {"cpu", "cuda", "reference"}},
      {.path = "runtime.strict",
       .type = ValueType::boolean,
       .doc = "true: fail before any run where runtime.device cannot run here (cuda without a GPU) or a slower "
              "kernel would stand in (the integer GEMM's scalar reference on a CPU without AVX2 or AVX-512 VNNI); "
              "false: fall back to the cpu backend or the slower kernel, and the result file records it",
       .default_value = true},
      {.path = "runtime.kernels",
       .type = ValueType::choice,
       .doc = "float: every linear is a float32 GEMM on fake-quantized values; int: INT weights with INT activations "
              "in the same groups run the integer kernel (core/backend/cpu/int_gemm.h), the rest float",
       .default_value = std::string{"float"},
       .choices = {"float", "int"}},
      {.path = "runtime.threads",
       .type = ValueType::integer,
       .doc = "BLAS threads; 0 = all cores",
       .default_value = Int{0},
       .min = 0},
  };
}

std::string_view section_of(std::string_view path) {
  const auto dot = path.rfind('.');
  return dot == std::string_view::npos ? std::string_view{} : path.substr(0, dot);
}

// A value from a config, shown in a one-line message: quoted, newlines escaped, long text cut.
std::string shown(std::string_view text) {
  std::string out;
  for (const char c : text.substr(0, 60)) out += c == '\n' ? std::string("\\n") : std::string(1, c);
  if (text.size() > 60) out += "…";
  return "'" + out + "'";
}

std::string number_text(double x) { return fmt::format("{}", x); }


bool is_valid_name(const std::string& text) {
  if (text.empty() || text.front() == '.') return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

template <class T>
std::optional<T> parse_number(const std::string& text) {
  T value{};
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

// A scalar converted to a key's type, or (value empty) why it does not fit.
struct Parsed {
  std::optional<ConfigValue> value;
  std::string problem;
};

Parsed parse_scalar(const KeySpec& key, const std::string& text, bool quoted,
                    const std::vector<std::string>& method_names) {
  switch (key.type) {
    case ValueType::string:
      return {text, {}};
    case ValueType::choice: {
      const bool methods = key.choice_source == ChoiceSource::methods;
      const auto& names = methods ? method_names : key.choices;
      if (std::find(names.begin(), names.end(), text) != names.end()) return {text, {}};
      return {{}, fmt::format("{} is not {}", shown(text), methods ? "a known method" : "allowed")};
    }
    case ValueType::boolean:
      if (!quoted && (text == "true" || text == "True" || text == "TRUE")) return {true, {}};
      if (!quoted && (text == "false" || text == "False" || text == "FALSE")) return {false, {}};
      return {{}, fmt::format("{} is not true or false", shown(text))};
    case ValueType::integer: {
      for (const auto& [name, number] : key.named) {
        if (text == name) return {number, {}};
      }
      const auto number = quoted ? std::nullopt : parse_number<Int>(text);
      if (!number) return {{}, fmt::format("{} is not an integer", shown(text))};
      const auto& extra = key.also_allowed;
      if (std::find(extra.begin(), extra.end(), *number) != extra.end()) return {*number, {}};
      const auto x = static_cast<double>(*number);
      if (x < key.min) return {{}, fmt::format("{} is below {}", *number, number_text(key.min))};
      // An integer key without a stated maximum becomes an int where it is used.
      const double max = std::isfinite(key.max) ? key.max : std::numeric_limits<int>::max();
      if (x > max) return {{}, fmt::format("{} is above {}", *number, number_text(max))};
      return {*number, {}};
    }
    case ValueType::floating: {
      const auto number = quoted ? std::nullopt : parse_number<double>(text);
      if (!number || !std::isfinite(*number)) return {{}, fmt::format("{} is not a finite number", shown(text))};
      if (*number < key.min) return {{}, fmt::format("{} is below {}", number_text(*number), number_text(key.min))};
      if (*number > key.max) return {{}, fmt::format("{} is above {}", number_text(*number), number_text(key.max))};
      return {*number, {}};
    }
  }
  return {{}, "has a type the schema does not handle"};
}

}  // namespace

ConfigValue KeySpec::parse(const YAML::Node& node, std::string_view where,
                           const std::vector<std::string>& method_names) const {
  std::string problem;
  if (check == StringCheck::overrides) return canonical_overrides(node, where);
  if (node.IsNull() && check == StringCheck::task_list) {
    return std::string{};  // `tasks:` or --set eval.tasks= : no tasks
  } else if (node.IsNull()) {
    problem = "no value given";
  } else if (check == StringCheck::task_list && node.IsSequence()) {
    // A YAML list of task names is the same as their comma list.
    std::vector<std::string> names;
    for (const YAML::Node& item : node) {
      if (!item.IsScalar()) fail("{}: {}: a list item is not a task name; use {}", where, path, allowed({}));
      names.push_back(item.Scalar());
    }
    return fmt::format("{}", fmt::join(names, ","));
  } else if (!node.IsScalar()) {
    problem = fmt::format("expected a single value, got a {}", node.IsMap() ? "map" : "list");
  } else {
    // A quoted scalar (tag "!") is a string, never a number or a bool.
    Parsed parsed = parse_scalar(*this, node.Scalar(), node.Tag() == "!", method_names);
    if (parsed.value) return *std::move(parsed.value);
    problem = parsed.problem;
  }
  fail("{}: {}: {}; use {}", where, path, problem, allowed(method_names));
}

ConfigValue KeySpec::finalize(const ConfigValue& value, std::string_view where) const {
  const auto* text = std::get_if<std::string>(&value);
  if (!text) return value;
  std::string result = *text;
  if (expand_env) {
    try {
      result = serq::expand_env(*text);
    } catch (const Error& e) {
      fail("{}: {}: {}", where, path, e.what());
    }
  }
  switch (check) {
    case StringCheck::none:
      break;
    case StringCheck::name:
      SERQ_CHECK(is_valid_name(result), "{}: {}: {} cannot name a results directory; use {}", where, path,
                 shown(result), allowed({}));
      break;
    case StringCheck::existing_path:
      SERQ_CHECK(std::filesystem::exists(result), "{}: {}: {} does not exist (set SERQ_ASSETS or fix the path)", where,
                 path, result);
      break;
    case StringCheck::overrides:
      break;
    case StringCheck::task_list:
      try {
        parse_task_list(result);
      } catch (const Error& e) {
        fail("{}: {}", where, e.what());
      }
      break;
  }
  return result;
}

std::string yaml_double_quoted(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string KeySpec::to_yaml(const ConfigValue& value) const {
  if (const auto* text = std::get_if<std::string>(&value)) return yaml_double_quoted(*text);
  if (const auto* flag = std::get_if<bool>(&value)) return *flag ? "true" : "false";
  if (const auto* real = std::get_if<double>(&value)) return number_text(*real);
  const Int number = std::get<Int>(value);
  for (const auto& [name, named_number] : named) {
    if (number == named_number) return name;
  }
  return std::to_string(number);
}

std::string KeySpec::allowed(const std::vector<std::string>& method_names) const {
  switch (type) {
    case ValueType::string:
      if (check == StringCheck::name) return "a name of letters, digits, '.', '_' and '-'";
      if (check == StringCheck::task_list) return "'all', a list of task names, or nothing";
      if (check == StringCheck::overrides) return "a list of {match: REGEX, ...} rules, or nothing";
      return check == StringCheck::existing_path ? "an existing path" : "a string";
    case ValueType::choice:
      if (choice_source == ChoiceSource::methods && method_names.empty()) return "a method name";
      return fmt::format("one of: {}",
                         fmt::join(choice_source == ChoiceSource::methods ? method_names : choices, ", "));
    case ValueType::boolean:
      return "true or false";
    case ValueType::integer:
    case ValueType::floating: {
      std::string range = type == ValueType::integer ? "an integer" : "a number";
      if (std::isfinite(min) && std::isfinite(max)) {
        range += fmt::format(" {}..{}", number_text(min), number_text(max));
      } else if (std::isfinite(min)) {
        range += " ≥ " + number_text(min);
      } else if (std::isfinite(max)) {
        range += " ≤ " + number_text(max);
      }
      for (const Int number : also_allowed) range += fmt::format(" or {}", number);
      for (const auto& [name, number] : named) range += fmt::format(" or '{}'", name);
      return range;
    }
  }
  return "a value";
}

const std::vector<KeySpec>& config_schema() {
  static const std::vector<KeySpec> schema = make_schema();
  return schema;
}

std::optional<std::size_t> config_key_index(std::string_view path) {
  const auto& schema = config_schema();
  for (std::size_t i = 0; i < schema.size(); ++i) {
    if (schema[i].path == path) return i;
  }
  return std::nullopt;
}

bool is_config_section(std::string_view path) {
  return !path.empty() && std::any_of(config_schema().begin(), config_schema().end(), [&](const KeySpec& key) {
    return key.path.size() > path.size() && key.path.starts_with(path) && key.path[path.size()] == '.';
  });
}

std::string config_section_keys(std::string_view section) {
  const std::size_t skip = section.empty() ? 0 : section.size() + 1;
  std::vector<std::string> children;
  for (const KeySpec& key : config_schema()) {
    if (!section.empty() &&
        !(key.path.starts_with(section) && key.path.size() > skip && key.path[section.size()] == '.')) {
      continue;
    }
    const std::string child = key.path.substr(skip, key.path.find('.', skip) - skip);
    if (std::find(children.begin(), children.end(), child) == children.end()) children.push_back(child);
  }
  return fmt::format("{}", fmt::join(children, ", "));
}

std::string unknown_key_hint(std::string_view path) {
  const KeySpec* closest = nullptr;
  std::size_t best = std::string_view::npos;
  for (const KeySpec& key : config_schema()) {
    const std::size_t distance = edit_distance(path, key.path);
    if (distance < best) {
      best = distance;
      closest = &key;
    }
  }
  std::string section(section_of(path));
  while (!section.empty() && !is_config_section(section)) section = std::string(section_of(section));
  const std::string listing = section.empty() ? fmt::format("sections: {}", config_section_keys(""))
                                              : fmt::format("keys under {}: {}", section, config_section_keys(section));
  if (closest && best <= std::max<std::size_t>(3, path.size() / 3)) {
    return fmt::format("did you mean '{}'? ({})", closest->path, listing);
  }
  return fmt::format("valid {}", listing);
}

std::string describe_config_keys() {
  std::string out;
  for (const KeySpec& key : config_schema()) {
    std::string default_text;
    switch (key.default_kind) {
      case DefaultKind::value:
        default_text = key.to_yaml(key.default_value);
        break;
      case DefaultKind::required:
        default_text = "required";
        break;
      case DefaultKind::same_as_key:
        default_text = "= " + key.default_key;
        break;
      case DefaultKind::config_stem:
        default_text = "config file name";
        break;
    }
    out += fmt::format("  {:<24} {:<20} {}; {}\n", key.path, default_text, key.doc, key.allowed({}));
  }
  return out;
}

}  // namespace serq
