// Test helpers: paths to the shared assets (SERQ_ASSETS, default ../shared beside the checkout).
#pragma once

#include <filesystem>

#include "core/common/paths.h"

namespace serq::test {

inline std::filesystem::path asset(const std::filesystem::path& relative) { return assets_root() / relative; }

// A fresh, empty scratch directory under the build tree for one test.
inline std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::path(SERQ_BINARY_DIR) / "test-scratch" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace serq::test
