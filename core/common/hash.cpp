// 64-bit FNV-1a: a tiny, fully specified hash, so ids stay the same across compilers and standard libraries.
#include "core/common/hash.h"

#include <fmt/format.h>

namespace serq {

std::uint64_t fnv1a64(std::string_view data, std::uint64_t hash) {
  for (const char c : data) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

std::string fnv1a64_hex(std::string_view data) { return fmt::format("{:016x}", fnv1a64(data)); }

}  // namespace serq
