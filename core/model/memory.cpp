// Model memory footprint, available RAM (/proc/meminfo, cgroup limits, SERQ_MEMORY_LIMIT_MB) and the fit check.
#include "core/model/memory.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>

#include "core/common/error.h"

namespace serq {
namespace {

constexpr const char* kLimitEnv = "SERQ_MEMORY_LIMIT_MB";

// The first whitespace-separated token of a file as a number; nullopt when absent or not a number ("max").
std::optional<std::int64_t> read_number(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string token;
  if (!(in >> token)) return std::nullopt;
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  if (ec != std::errc() || end != token.data() + token.size()) return std::nullopt;
  return value;
}

std::optional<std::int64_t> meminfo_available() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::int64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return std::nullopt;
}

// The smallest memory limit on this process's cgroup or any of its ancestors, v2 (memory.max) or v1
// (memory/memory.limit_in_bytes). Unlimited v1 cgroups report a huge number, which the min() absorbs.
std::optional<std::int64_t> cgroup_limit() {
  std::ifstream in("/proc/self/cgroup");
  std::optional<std::int64_t> limit;
  std::string line;
  while (std::getline(in, line)) {
    // "<id>:<controllers>:<path>"; v2 is "0::<path>", v1 lists "memory" among the controllers.
    const std::size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    std::filesystem::path root, file;
    if (controllers.empty()) {
      root = "/sys/fs/cgroup";
      file = "memory.max";
    } else if (("," + controllers + ",").find(",memory,") != std::string::npos) {
      root = "/sys/fs/cgroup/memory";
      file = "memory.limit_in_bytes";
    } else {
      continue;
    }
    for (std::filesystem::path group = line.substr(b + 1);; group = group.parent_path()) {
      if (const auto value = read_number(root / group.relative_path() / file)) {
        limit = std::min(limit.value_or(*value), *value);
      }
      if (!group.has_relative_path()) break;
    }
  }
  return limit;
}

// What an address-space limit (ulimit -v) leaves to this process: the limit less what is mapped already
// (VmSize in /proc/self/status). Allocations past it fail however much RAM is free.
std::optional<std::int64_t> address_space_left() {
  rlimit limit{};
  if (getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return std::nullopt;
  std::ifstream in("/proc/self/status");
  std::int64_t mapped = 0;
  for (std::string key; in >> key;) {
    if (key == "VmSize:") {
      in >> mapped;
      mapped *= 1024;
      break;
    }
  }
  return std::max<std::int64_t>(0, static_cast<std::int64_t>(limit.rlim_cur) - mapped);
}

std::optional<std::int64_t> limit_from_env() {
  const char* text = std::getenv(kLimitEnv);
  if (!text || !*text) return std::nullopt;
  std::int64_t mib = 0;
  const char* end = text + std::char_traits<char>::length(text);
  const auto [stop, ec] = std::from_chars(text, end, mib);
  SERQ_CHECK(ec == std::errc() && stop == end && mib >= 0 && mib <= std::numeric_limits<std::int64_t>::max() >> 20,
             "{}='{}' is not a whole number of MiB: unset it, or give e.g. {}=16384", kLimitEnv, text, kLimitEnv);
  return mib << 20;
}

std::string gigabytes(std::int64_t bytes) {
  const double gb = static_cast<double>(bytes) / 1e9;
  return gb >= 10 ? fmt::format("{:.1f} GB", gb) : fmt::format("{:.3g} GB", gb);
}

}  // namespace

std::int64_t model_bytes(const ModelConfig& config, int linear_bytes) {
  ModelConfig held = config;
  held.tied_embeddings = false;  // a tied head is copied into lm_head
  std::int64_t linears = config.n_layers * config.layer_linear_weights();
  if (!config.tied_embeddings) linears += std::int64_t{config.vocab_size} * config.dim;  // lm_head is stored like them
  return (held.parameter_count() - linears) * static_cast<std::int64_t>(sizeof(float)) + linears * linear_bytes;
}

std::int64_t loaded_model_bytes(const ModelConfig& config) {
  return model_bytes(config, config.checkpoint_linear_bytes == 2 ? 0 : 4);
}

std::int64_t available_memory_bytes() {
  if (const auto limit = limit_from_env()) return *limit;
  std::int64_t available = meminfo_available().value_or(std::numeric_limits<std::int64_t>::max());
  if (const auto limit = cgroup_limit()) available = std::min(available, *limit);
  if (const auto left = address_space_left()) available = std::min(available, *left);
  return available;
}

void check_fits(std::int64_t need, const std::string& what) {
  const std::int64_t available = available_memory_bytes();
  SERQ_CHECK(need <= available, "{} needs {} of RAM as float32 but {} is available{}; use a smaller model or a "
             "machine with more memory", what, gigabytes(need), gigabytes(available),
             limit_from_env() ? fmt::format(" ({} is set)", kLimitEnv) : "");
}

}  // namespace serq
