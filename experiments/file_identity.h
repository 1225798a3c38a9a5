// The identity of input files for cache keys: name, size and modification time, so that a replaced or rewritten
// file (a new checkpoint under the same path) makes a new key.
#pragma once

#include <filesystem>
#include <string>

namespace serq {

// "<name> <bytes> B @ <ns since the Unix epoch>"; throws std::filesystem::filesystem_error if `file` is unreadable.
std::string file_identity(const std::filesystem::path& file);

// The identity of every regular file of a model directory (by name, "; "-joined), or of a single checkpoint file.
std::string model_identity(const std::filesystem::path& model);

}  // namespace serq
