// File identities for cache keys (see file_identity.h).
#include "experiments/file_identity.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace serq {

std::string file_identity(const std::filesystem::path& file) {
  namespace fs = std::filesystem;
  const auto modified = std::chrono::file_clock::to_sys(fs::last_write_time(file));
  return fmt::format("{} {} B @ {}", file.filename().string(), fs::file_size(file),
                     std::chrono::duration_cast<std::chrono::nanoseconds>(modified.time_since_epoch()).count());
}

std::string model_identity(const std::filesystem::path& model) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(model)) return file_identity(model);
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(model)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> identities;
  for (const fs::path& file : files) identities.push_back(file_identity(file));
  return fmt::format("{}", fmt::join(identities, "; "));
}

}  // namespace serq
