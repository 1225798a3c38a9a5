// RAM needed to hold a model as float32, RAM available to this process, and the check loaders make before
// allocating, so a model that cannot fit is refused with a clear message instead of an out-of-memory kill.
#pragma once

#include <cstdint>
#include <string>

#include "core/model/config.h"

namespace serq {

// Bytes of the weights serq holds for this config: embedding, norms and biases as float32, a tied head twice (serq
// keeps a copy), and the linear weights at `linear_bytes` each: 4 as float32, 0 when they are read in place from a
// file mapping (16-bit safetensors), whose pages count only while a layer runs.
std::int64_t model_bytes(const ModelConfig& config, int linear_bytes = 4);
// model_bytes of a model as serq loads this config's checkpoint: 16-bit linears (checkpoint_linear_bytes 2) read in
// place, anything else held as float32.
std::int64_t loaded_model_bytes(const ModelConfig& config);

// min(MemAvailable from /proc/meminfo, the cgroup v2 memory.max / v1 memory.limit_in_bytes where set, what an
// address-space limit (ulimit -v) leaves).
// SERQ_MEMORY_LIMIT_MB (MiB), when set, replaces that figure.
std::int64_t available_memory_bytes();

// Throws serq::Error when `need` bytes exceed available_memory_bytes(); `what` names the action, e.g.
// "loading /models/llama-70b".
void check_fits(std::int64_t need, const std::string& what);

}  // namespace serq
