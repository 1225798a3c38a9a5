// The harnesses' contract and their one helper. serq's parsers read files, so each input is written to a file of
// this process first. A parser may refuse an input only with serq::Error (one line, the file named): any other
// exception escapes the harness and libFuzzer reports it as a crash, as it does a sanitizer finding.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace serq::fuzz {

// A directory of this process under $TMPDIR (or /tmp), made once.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    const std::filesystem::path path =
        std::filesystem::path(tmp && *tmp ? tmp : "/tmp") / ("serq-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
    return path;
  }();
  return dir;
}

// Writes the input to scratch()/name (replacing it) and returns the path.
inline std::filesystem::path input_file(const std::uint8_t* data, std::size_t size, const std::string& name) {
  const std::filesystem::path path = scratch() / name;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data),
                                                                static_cast<std::streamsize>(size));
  return path;
}

}  // namespace serq::fuzz
