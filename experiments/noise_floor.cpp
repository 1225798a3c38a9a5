// The noise-floor plan and its summary; see noise_floor.h.
#include "experiments/noise_floor.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/common/error.h"
#include "methods/registry.h"

namespace serq {
namespace {

constexpr NoiseKind kAllKinds[] = {NoiseKind::calibration, NoiseKind::tie_order, NoiseKind::rounding,
                                   NoiseKind::scale_dtype};

// The name --noise-kinds takes.
const char* option_name(NoiseKind kind) {
  switch (kind) {
    case NoiseKind::calibration: return "calibration";
    case NoiseKind::tie_order: return "tie_order";
    case NoiseKind::rounding: return "rounding";
    case NoiseKind::scale_dtype: return "scale_dtype";
  }
  return "";
}

const char* kind_name(NoiseKind kind) {
  switch (kind) {
    case NoiseKind::calibration: return "calibration sample";
    case NoiseKind::tie_order: return "saliency tie order";
    case NoiseKind::rounding: return "rounding (1-ulp nudges)";
    case NoiseKind::scale_dtype: return "scale dtype";  // one other choice, shown as a difference
  }
  return "";
}

bool applies(NoiseKind kind, const ResolvedConfig& config) {
  const std::unique_ptr<Method> method = make_method(config.get_string("quant.method"));
  switch (kind) {
    case NoiseKind::calibration:
      return method->needs_activation_stats() || method->requires_gptq() ||
             (method->quantizes() && config.get_string("quant.weight_quantizer") == "gptq");
    case NoiseKind::tie_order: return config.applies("quant.saliency_ties");
    case NoiseKind::rounding: return true;
    case NoiseKind::scale_dtype:
      return method->quantizes() && config.get_int("quant.w_bits") < 16 && config.get_string("quant.format") == "int";
  }
  return false;
}

// The --set overrides of variant k (1 ≤ k) of `kind`.
std::vector<std::string> variant_sets(NoiseKind kind, int k, const ResolvedConfig& first) {
  switch (kind) {
    case NoiseKind::calibration: return {fmt::format("calib.seed={}", first.get_int("calib.seed") + k)};
    case NoiseKind::tie_order: return {"quant.saliency_ties=seeded", fmt::format("quant.seed={}", k)};
    case NoiseKind::rounding: return {fmt::format("eval.rounding_seed={}", k)};
    case NoiseKind::scale_dtype:
      return {fmt::format("quant.scale_dtype={}", first.get_string("quant.scale_dtype") == "half" ? "float" : "half")};
  }
  return {};
}

// Every configuration agrees on `key` (a --set changes all of them alike).
void check_same(const ExperimentPlan& plan, const std::string& key, bool is_int) {
  for (const ResolvedConfig& config : plan.runs) {
    const bool same = is_int ? config.get_int(key) == plan.runs.front().get_int(key)
                             : config.get_string(key) == plan.runs.front().get_string(key);
    SERQ_CHECK(same, "{}: --noise-floor varies {} from one value for every configuration; do not sweep it",
               plan.config_path.string(), key);
  }
}

struct Summary {
  double mean = 0, sd = 0, min = 0, max = 0;
};

Summary summarize(const std::vector<double>& values) {
  Summary s;
  const double n = static_cast<double>(values.size());
  for (const double v : values) s.mean += v / n;
  for (const double v : values) s.sd += (v - s.mean) * (v - s.mean);
  s.sd = values.size() > 1 ? std::sqrt(s.sd / (n - 1)) : 0.0;
  s.min = *std::min_element(values.begin(), values.end());
  s.max = *std::max_element(values.begin(), values.end());
  return s;
}

}  // namespace

std::vector<NoiseKind> parse_noise_kinds(const std::string& text) {
  std::vector<NoiseKind> kinds;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    const std::string name = text.substr(start, comma - start);
    const auto found = std::find_if(std::begin(kAllKinds), std::end(kAllKinds),
                                    [&](NoiseKind kind) { return name == option_name(kind); });
    SERQ_CHECK(found != std::end(kAllKinds), "--noise-kinds {}: unknown kind '{}'; use a comma list of calibration, "
               "tie_order, rounding, scale_dtype", text, name);
    SERQ_CHECK(std::find(kinds.begin(), kinds.end(), *found) == kinds.end(), "--noise-kinds {}: '{}' is named twice; "
               "name each kind once", text, name);
    kinds.push_back(*found);
    start = comma + 1;
  }
  return kinds;
}

NoisePlan noise_floor_plan(const std::filesystem::path& config_path, const std::vector<std::string>& set_overrides,
                           const MethodCatalog& methods, int runs_per_kind, const std::vector<NoiseKind>& only) {
  SERQ_CHECK(runs_per_kind >= 2, "--noise-floor {}: use 2 or more runs per kind (8 or more for a stated floor)",
             runs_per_kind);
  NoisePlan noise{load_experiment(config_path, set_overrides, methods), {}, 0, runs_per_kind};
  const std::vector<ResolvedConfig> configurations = noise.plan.runs;
  noise.configurations = configurations.size();
  check_same(noise.plan, "calib.seed", true);
  check_same(noise.plan, "quant.scale_dtype", false);
  for (const ResolvedConfig& config : configurations) {
    SERQ_CHECK(config.get_int("eval.rounding_seed") == 0, "{}: --noise-floor varies eval.rounding_seed itself; leave "
               "it at 0 in the config", config_path.string());
    SERQ_CHECK(!config.applies("quant.saliency_ties") || config.get_string("quant.saliency_ties") == "first",
               "{}: --noise-floor varies quant.saliency_ties itself; leave it at first in the config",
               config_path.string());
  }
  std::map<std::string, std::size_t> index_of;  // resolved YAML → index in plan.runs
  for (std::size_t i = 0; i < configurations.size(); ++i) index_of[configurations[i].to_yaml()] = i;
  for (const NoiseKind kind : kAllKinds) {
    const bool chosen = only.empty() || std::find(only.begin(), only.end(), kind) != only.end();
    if (!chosen) continue;
    std::vector<std::size_t> applicable;
    for (std::size_t c = 0; c < configurations.size(); ++c) {
      if (applies(kind, configurations[c])) applicable.push_back(c);
    }
    SERQ_CHECK(only.empty() || !applicable.empty(), "--noise-kinds {}: applies to no run of {} (calibration: methods "
               "that calibrate; tie_order: serq; scale_dtype: INT weights); drop it or run such a method",
               option_name(kind), config_path.string());
    if (applicable.empty()) continue;
    for (const std::size_t c : applicable) noise.members.push_back({c, kind, c});
    const int variants = kind == NoiseKind::scale_dtype ? 1 : runs_per_kind - 1;
    for (int k = 1; k <= variants; ++k) {
      std::vector<std::string> sets = set_overrides;
      for (std::string& set : variant_sets(kind, k, configurations.front())) sets.push_back(std::move(set));
      const ExperimentPlan variant = load_experiment(config_path, sets, methods);
      SERQ_CHECK(variant.runs.size() == configurations.size(), "{}: a --noise-floor variant ({}) expands to {} runs, "
                 "the config to {}; a bug in the noise-floor plan", config_path.string(), fmt::join(sets, " "),
                 variant.runs.size(), configurations.size());
      for (const std::size_t c : applicable) {
        const auto [found, added] = index_of.emplace(variant.runs[c].to_yaml(), noise.plan.runs.size());
        if (added) noise.plan.runs.push_back(variant.runs[c]);
        noise.members.push_back({c, kind, found->second});
      }
    }
  }
  return noise;
}

std::string noise_floor_table(const NoisePlan& noise, const std::map<std::string, const RunRecord*>& records,
                              const std::string& code_version) {
  std::string text = fmt::format("noise floor ({} runs per kind: the configuration and {} seeded variants; SD over "
                                 "the runs, range = (max − min) / mean)\n", noise.runs_per_kind,
                                 noise.runs_per_kind - 1);
  for (std::size_t c = 0; c < noise.configurations; ++c) {
    bool header = false;
    for (const NoiseKind kind : kAllKinds) {
      std::vector<double> ppl, kld;
      for (const NoisePlan::Member& m : noise.members) {
        if (m.configuration != c || m.kind != kind) continue;
        const auto found = records.find(noise.plan.runs[m.run].run_id(code_version));
        if (found == records.end()) continue;
        ppl.push_back(found->second->metrics.at("ppl"));
        if (const auto k = found->second->metrics.find("kld.mean"); k != found->second->metrics.end())
          kld.push_back(k->second);
      }
      if (ppl.empty()) continue;
      if (!header) {
        text += fmt::format("\n{}\n{:<26} {:>4} {:>10} {:>8} {:>21} {:>7} {:>9} {:>8}\n", noise.plan.runs[c].label(),
                            "kind", "runs", "ppl mean", "SD", "min .. max", "range", "KLD mean", "KLD SD");
        header = true;
      }
      const Summary p = summarize(ppl);
      std::string kld_text;
      if (kld.size() == ppl.size()) {
        const Summary k = summarize(kld);
        kld_text = fmt::format(" {:>9.4f} {:>8.4f}", k.mean, k.sd);
      }
      if (kind == NoiseKind::scale_dtype && ppl.size() == 2) {
        const bool half_first = noise.plan.runs[c].get_string("quant.scale_dtype") == "half";
        text += fmt::format("{:<26} {:>4} {:>10} {:>8} {:>21} {:>+6.2f}%{}\n",
                            half_first ? "scale dtype half → float" : "scale dtype float → half", 2, "", "",
                            fmt::format("{:.4f} → {:.4f}", ppl[0], ppl[1]), 100.0 * (ppl[1] - ppl[0]) / ppl[0],
                            kld_text);
        continue;
      }
      text += fmt::format("{:<26} {:>4} {:>10.4f} {:>8.4f} {:>21} {:>6.2f}%{}\n", kind_name(kind), ppl.size(), p.mean,
                          p.sd, fmt::format("{:.4f} .. {:.4f}", p.min, p.max), 100.0 * (p.max - p.min) / p.mean,
                          kld_text);
    }
  }
  return text;
}

}  // namespace serq
