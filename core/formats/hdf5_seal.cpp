// Writing and checking the seal of serq's HDF5 files (hdf5_seal.h).
#include "core/formats/hdf5_seal.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "core/common/durable_file.h"
#include "core/common/error.h"
#include "core/common/hash.h"

namespace serq {
namespace {

constexpr const char* kMagic = "serq-hdf5-seal 1\n";

struct Body {
  std::uintmax_t bytes = 0;
  std::uint64_t checksum = kFnv1a64Basis;
};

// The length and checksum of everything after the seal; nothing when the file cannot be read.
std::optional<Body> read_body(std::ifstream& in) {
  Body body;
  std::vector<char> chunk(1 << 20);
  in.seekg(static_cast<std::streamoff>(kHdf5SealBytes));
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const auto got = static_cast<std::size_t>(in.gcount());
    body.checksum = fnv1a64({chunk.data(), got}, body.checksum);
    body.bytes += got;
  }
  if (!in.eof()) return std::nullopt;
  return body;
}

std::string seal_text(const Body& body) {
  return fmt::format("{}bytes {}\nfnv1a64 {:016x}\n", kMagic, body.bytes, body.checksum);
}

}  // namespace

void seal_hdf5_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  const std::optional<Body> body = in ? read_body(in) : std::nullopt;
  SERQ_CHECK(body, "{}: cannot read the file back to seal it ({})", file.string(), describe_write_error(errno));
  std::string seal = seal_text(*body);
  seal.resize(kHdf5SealBytes, '\0');
  std::fstream out(file, std::ios::binary | std::ios::in | std::ios::out);
  out.write(seal.data(), static_cast<std::streamsize>(seal.size()));
  out.close();
  SERQ_CHECK(!out.fail(), "{}: cannot write the seal ({})", file.string(), describe_write_error(errno));
}

std::optional<SealProblem> hdf5_seal_problem(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::string seal(kHdf5SealBytes, '\0');
  in.read(seal.data(), static_cast<std::streamsize>(seal.size()));
  if (!in) return SealProblem{"it is shorter than serq's 512-byte seal"};
  if (seal.starts_with("\x89HDF\r\n\x1a\n")) {
    return SealProblem{"it has no serq seal: an HDF5 file written by another program", true};
  }
  if (!seal.starts_with(kMagic)) return SealProblem{"it does not start with serq's seal"};
  const std::optional<Body> body = read_body(in);
  if (!body) return SealProblem{"it cannot be read to the end"};
  std::string expected = seal_text(*body);
  expected.resize(kHdf5SealBytes, '\0');
  if (seal == expected) return std::nullopt;
  const std::string bytes_line = fmt::format("bytes {}\n", body->bytes);
  return SealProblem{seal.find(bytes_line) == std::string::npos
                         ? "its length differs from the one sealed: the file was cut short or appended to after serq "
                           "wrote it"
                         : "its checksum does not match the seal: the file changed after serq wrote it"};
}

}  // namespace serq
