// serq-run --noise-floor N: each configuration repeated under perturbations that are not the method, so a table can
// say which differences stand above the noise. Of each kind, N runs (the configuration itself and N − 1 seeded
// variants) where the kind applies to the run's method:
//   calibration  calib.seed + 1 .. N − 1: another calibration sample (methods that calibrate)
//   tie order    quant.saliency_ties: seeded, quant.seed 1 .. N − 1: another order among equal saliency scores (serq)
//   rounding     eval.rounding_seed 1 .. N − 1: the same quantized model with its RMSNorm weights nudged by one ulp,
//                a float-rounding-sized change of the arithmetic (core/model/rounding_nudge.h)
// and the other weight-scale storage (quant.scale_dtype), one run, for INT weights: a construction choice, reported
// as its difference. --noise-kinds keeps some kinds only, so that each can be run (and reported) on its own.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/config/run_config.h"
#include "core/formats/result_file.h"

namespace serq {

enum class NoiseKind { calibration, tie_order, rounding, scale_dtype };

struct NoisePlan {
  ExperimentPlan plan;  // every distinct run: the configurations first, then their variants kind by kind
  struct Member {
    std::size_t configuration;  // index of the configuration (plan.runs[configuration]) it perturbs
    NoiseKind kind;
    std::size_t run;            // index into plan.runs
  };
  std::vector<Member> members;  // per configuration and applicable kind: the configuration itself, then its variants
  std::size_t configurations = 0;  // plan.runs[0 .. configurations) are the config's own runs
  int runs_per_kind = 0;
};

// "calibration,tie_order,rounding,scale_dtype" (any of them, comma-separated) → the kinds; an unknown or repeated
// name is a serq::Error naming the valid ones.
std::vector<NoiseKind> parse_noise_kinds(const std::string& text);

// The experiment of `config_path` with `set_overrides` (as load_experiment), expanded with `runs_per_kind` ≥ 2 runs
// of each applicable kind: of every kind when `only` is empty, else of the kinds in `only`, each of which must apply
// to some configuration. A key the perturbations vary that the config already sets away from its default
// (quant.saliency_ties, eval.rounding_seed), or calib.seed varying among the configurations, is a serq::Error.
NoisePlan noise_floor_plan(const std::filesystem::path& config_path, const std::vector<std::string>& set_overrides,
                           const MethodCatalog& methods, int runs_per_kind, const std::vector<NoiseKind>& only = {});

// Per configuration and kind: the runs found in `records` (by run id), the mean, sample SD, min, max and range of
// perplexity (and of mean KLD where the runs measured it); for the scale dtype, both values and their difference.
std::string noise_floor_table(const NoisePlan& noise, const std::map<std::string, const RunRecord*>& records,
                              const std::string& code_version);

}  // namespace serq
