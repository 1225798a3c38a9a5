// The seal of serq's HDF5 files: their first 512 bytes (an HDF5 user block, which HDF5 and h5py skip) hold a short
// text with the length and FNV-1a 64 checksum of the rest, written once the file is closed. A file cut short, or
// changed after serq wrote it, is refused before the HDF5 library reads a byte of it: libhdf5 1.10 can hang or crash
// on damaged files. The text reads, padded with NULs:
//   serq-hdf5-seal 1
//   bytes <decimal count of the bytes after the seal>
//   fnv1a64 <16 hex digits>
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>

namespace serq {

constexpr std::size_t kHdf5SealBytes = 512;  // the user block HDF5 leaves for it (a power of two ≥ 512)

// Writes the seal into the user block of `file`, a closed HDF5 file created with it; a failure is a serq::Error.
void seal_hdf5_file(const std::filesystem::path& file);

struct SealProblem {
  std::string text;       // e.g. "its checksum does not match the seal: the file changed after serq wrote it"
  bool unsealed = false;  // an HDF5 file with no seal at all (another program's, or an older serq's)
};

// Why `file` is not a whole sealed file, or nothing when it is.
std::optional<SealProblem> hdf5_seal_problem(const std::filesystem::path& file);

}  // namespace serq
