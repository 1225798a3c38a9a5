// Shard specs from the command line and from SLURM array variables; see shard.h.
#include "experiments/shard.h"

#include <fmt/format.h>

#include <charconv>
#include <cstdlib>

#include "core/common/error.h"

namespace serq {
namespace {

std::optional<long> parse_integer(const std::string& text) {
  long value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

}  // namespace

std::string Shard::describe() const { return fmt::format("shard {}/{}", index, count); }

Shard parse_shard(const std::string& text) {
  const std::size_t slash = text.find('/');
  const auto index = slash == std::string::npos ? std::nullopt : parse_integer(text.substr(0, slash));
  const auto count = slash == std::string::npos ? std::nullopt : parse_integer(text.substr(slash + 1));
  SERQ_CHECK(index && count, "--shard {}: expected I/N with integers, e.g. --shard 0/4 (shard 0 of 4)", text);
  SERQ_CHECK(*count >= 1, "--shard {}: N = {} shards; use N ≥ 1", text, *count);
  SERQ_CHECK(*index >= 0 && *index < *count, "--shard {}: shard {} is out of range; use 0..{} (I/N with 0 ≤ I < N)",
             text, *index, *count - 1);
  return {static_cast<int>(*index), static_cast<int>(*count)};
}

std::optional<Shard> shard_from_slurm_environment() {
  const char* id = std::getenv("SLURM_ARRAY_TASK_ID");
  const char* count = std::getenv("SLURM_ARRAY_TASK_COUNT");
  if (!id || !count) return std::nullopt;
  const char* min = std::getenv("SLURM_ARRAY_TASK_MIN");
  const auto task = parse_integer(id), tasks = parse_integer(count), first = parse_integer(min ? min : "0");
  SERQ_CHECK(task && tasks && first, "SLURM_ARRAY_TASK_ID={}, SLURM_ARRAY_TASK_COUNT={}, SLURM_ARRAY_TASK_MIN={}: not "
             "integers; submit with sbatch --array=0-(N-1), or pass --shard I/N", id, count, min ? min : "");
  const long index = *task - *first;
  SERQ_CHECK(*tasks >= 1 && index >= 0 && index < *tasks, "SLURM array task {} (min {}) is outside the {} tasks of the "
             "array; submit with a contiguous --array=0-(N-1), or pass --shard I/N", *task, *first, *tasks);
  return Shard{static_cast<int>(index), static_cast<int>(*tasks)};
}

}  // namespace serq
