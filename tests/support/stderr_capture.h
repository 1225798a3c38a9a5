// What a piece of code writes to stderr, for tests of one-line warnings: file descriptor 2 goes to a file while it
// runs and is restored even if it throws.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "tests/assets.h"

namespace serq::test {

// What f writes to stderr while it runs, captured in `file`.
template <class F>
std::string stderr_of(const std::filesystem::path& file, F&& f) {
  struct Redirect {
    int saved = dup(2);
    explicit Redirect(const std::filesystem::path& file) {
      std::fflush(stderr);
      const int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 2);
      close(fd);
    }
    ~Redirect() {
      std::fflush(stderr);
      dup2(saved, 2);
      close(saved);
    }
  };
  {
    const Redirect redirect(file);
    f();
  }
  return read_bytes(file);
}

}  // namespace serq::test
