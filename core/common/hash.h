// Fixed, portable hashing for identities that must not change between builds or machines (run ids, cache keys).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace serq {

// 64-bit FNV-1a over the bytes of `data` (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
std::uint64_t fnv1a64(std::string_view data);

// fnv1a64(data) as 16 lowercase hex digits.
std::string fnv1a64_hex(std::string_view data);

}  // namespace serq
