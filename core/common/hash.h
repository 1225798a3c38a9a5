// Fixed, portable hashing for identities that must not change between builds or machines (run ids, cache keys).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace serq {

constexpr std::uint64_t kFnv1a64Basis = 0xcbf29ce484222325ULL;

// 64-bit FNV-1a over the bytes of `data` (offset basis kFnv1a64Basis, prime 0x100000001b3). Chained over pieces,
// fnv1a64(b, fnv1a64(a)) equals fnv1a64 of a followed by b.
std::uint64_t fnv1a64(std::string_view data, std::uint64_t hash = kFnv1a64Basis);

// fnv1a64(data) as 16 lowercase hex digits.
std::string fnv1a64_hex(std::string_view data);

}  // namespace serq
