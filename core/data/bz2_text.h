// A whole bzip2-compressed file as text (libbz2), e.g. the HellaSwag validation file.
#pragma once

#include <filesystem>
#include <string>

namespace serq {

// The decompressed bytes of every bzip2 stream in the file, in order (as `bzip2 -d` writes them). A missing file, a
// file that is not bzip2, or a corrupt or truncated stream is a serq::Error naming the file and what to do.
std::string read_bz2_text(const std::filesystem::path& file);

}  // namespace serq
