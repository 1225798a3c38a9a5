// Test helpers: paths to the shared assets (SERQ_ASSETS, default ../shared beside the checkout), scratch
// directories and whole-file reads/writes.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

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

// The whole file as bytes ("" if it cannot be read), and the reverse.
inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace serq::test
