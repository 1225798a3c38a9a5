// SHA-256 (FIPS 180-4), for checking that a file is the one a manifest names (exported checkpoints). Plain code,
// tested against the standard's example vectors.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace serq {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  // The digest as 64 lowercase hex digits; the object is spent afterwards.
  std::string hex();

 private:
  void compress(const std::uint8_t* block);
  std::array<std::uint32_t, 8> state_;
  std::array<std::uint8_t, 64> buffer_{};
  std::size_t buffered_ = 0;
  std::uint64_t length_ = 0;  // bytes hashed
};

// The SHA-256 of `bytes`, or of the whole file at `path` (a serq::Error naming it when it cannot be read).
std::string sha256_hex(std::string_view bytes);
std::string sha256_of_file(const std::filesystem::path& path);

}  // namespace serq
