// One run of an experiment: load, quantize with the configured method, evaluate, and describe the result.
#pragma once

#include <string>
#include <vector>

#include "core/formats/result_file.h"
#include "core/config/run_config.h"
#include "core/quant/kv_quant.h"
#include "experiments/asset_cache.h"
#include "methods/method.h"

namespace serq {

// What the config asks of the method (bit-widths, formats, weight quantizer, method parameters), checked.
QuantParams quant_params(const ResolvedConfig& config, const Method& method);

// The KV cache of the run (quant.kv_*): kv_rotate auto turns the rotation on for quarot when the cache is quantized.
// Checked against heads of head_dim channels (validate in core/quant/kv_quant.h); `source` names the model.
KvCacheSettings kv_cache_settings(const ResolvedConfig& config, int head_dim, const std::string& source);

// The zero-shot tasks of the config's eval.tasks (with eval.bad_lines and eval.task_limit), read through the cache.
// serq-run calls it for every run before the first starts, so a missing or malformed task file fails fast.
std::vector<const Task*> load_tasks(const ResolvedConfig& config, AssetCache& assets);

// Runs the resolved config and returns its record (metrics, counts, provenance). Throws serq::Error on bad input.
// With `export_dir`, the quantized model (after folding) is also written there (core/model/export.h) before it is
// evaluated. A model.path that is a serq export is evaluated as it is: quant.method must be fp, and its folds are
// not done again.
RunRecord execute_run(const ResolvedConfig& config, const std::string& experiment, AssetCache& assets,
                      const std::filesystem::path& export_dir = {});

// The checks a serq export as model.path needs (quant.method fp, no eval.kld), one serq::Error line each.
void check_export_run(const ResolvedConfig& config);

}  // namespace serq
