// One run of an experiment: load, quantize with the configured method, evaluate, and describe the result.
#pragma once

#include "core/io/result_file.h"
#include "core/io/run_config.h"
#include "experiments/asset_cache.h"

namespace serq {

// Runs the resolved config and returns its record (metrics, counts, provenance). Throws serq::Error on bad input.
RunRecord execute_run(const ResolvedConfig& config, const std::string& experiment, AssetCache& assets);

}  // namespace serq
