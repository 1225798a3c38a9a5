// User-facing errors: one line that names the file or key at fault and the fix, thrown at API boundaries
// and printed by the binaries before a non-zero exit. Internal invariants use assert() instead.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace serq {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace serq

// Throws serq::Error with a formatted message when the condition does not hold.
#define SERQ_CHECK(cond, ...)            \
  do {                                   \
    if (!(cond)) ::serq::fail(__VA_ARGS__); \
  } while (0)
