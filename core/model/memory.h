// RAM needed to hold a model as float32, RAM available to this process, and the check loaders make before
// allocating, so a model that cannot fit is refused with a clear message instead of an out-of-memory kill.
#pragma once

#include <cstdint>
#include <string>

#include "core/model/config.h"

namespace serq {

// Bytes of the float32 weights serq holds for this config; a tied head counts twice (serq keeps a copy).
std::int64_t model_bytes(const ModelConfig& config);

// min(MemAvailable from /proc/meminfo, the cgroup v2 memory.max / v1 memory.limit_in_bytes where set).
// SERQ_MEMORY_LIMIT_MB (MiB), when set, replaces that figure.
std::int64_t available_memory_bytes();

// Throws serq::Error when `need` bytes exceed available_memory_bytes(); `what` names the action, e.g.
// "loading /models/llama-70b".
void check_fits(std::int64_t need, const std::string& what);

}  // namespace serq
