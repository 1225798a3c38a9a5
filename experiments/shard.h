// Splitting a sweep across cluster jobs: shard I of N runs points I, I + N, I + 2N, ... (round robin, so shards
// get a similar mix of slow and fast points). From `--shard I/N`, or from a SLURM array task's environment.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace serq {

struct Shard {
  int index = 0;  // 0 ≤ index < count
  int count = 1;

  bool contains(std::size_t point) const { return static_cast<int>(point % static_cast<std::size_t>(count)) == index; }
  std::string describe() const;  // "shard 2/4"
};

// Parses "I/N" (0 ≤ I < N); anything else is a serq::Error naming --shard and the fix.
Shard parse_shard(const std::string& text);

// SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT, when running as an array task; a malformed
// value is a serq::Error naming the variable.
std::optional<Shard> shard_from_slurm_environment();

}  // namespace serq
