// Decompression of whole .bz2 files with libbz2's stdio interface (BZ2_bzReadOpen / BZ2_bzRead).
#include "core/data/bz2_text.h"

#include <bzlib.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "core/common/error.h"

namespace serq {
namespace {

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

[[noreturn]] void fail_stream(const std::filesystem::path& file, int status, bool first_stream) {
  switch (status) {
    case BZ_DATA_ERROR_MAGIC:
      if (!first_stream) fail("{}: bytes that are not bzip2 follow the bzip2 data; copy the file again", file.string());
      fail(
          "{}: not a bzip2 file (no 'BZh' header); give the .bz2 file as distributed, not a renamed or "
          "recompressed one",
          file.string());
    case BZ_UNEXPECTED_EOF:
      fail("{}: the bzip2 data ends before its end-of-stream marker (a truncated file); copy the file again",
           file.string());
    case BZ_DATA_ERROR:
      fail("{}: the bzip2 data is corrupt (a block checksum failed); copy the file again", file.string());
    case BZ_IO_ERROR:
      fail("{}: reading the file failed; check that it is readable", file.string());
    case BZ_MEM_ERROR:
      fail("{}: out of memory while decompressing", file.string());
    default:
      fail("{}: libbz2 error {} while decompressing; copy the file again", file.string(), status);
  }
}

}  // namespace

std::string read_bz2_text(const std::filesystem::path& file) {
  std::error_code error;
  const auto size = std::filesystem::file_size(file, error);
  SERQ_CHECK(!error, "{}: cannot read the file ({}); check that it exists and is readable", file.string(),
             error.message());
  SERQ_CHECK(size > 0, "{}: the file is empty; copy the .bz2 file again", file.string());
  const std::unique_ptr<std::FILE, FileCloser> handle(std::fopen(file.c_str(), "rb"));
  SERQ_CHECK(handle, "{}: cannot open the file; check that it is readable", file.string());

  std::string text;
  std::vector<char> chunk(1 << 16);
  // Each bzip2 stream ends with its own marker; the bytes read past it (BZ2_bzReadGetUnused) start the next stream.
  std::vector<char> unused;
  bool first_stream = true;
  for (;;) {
    int status = BZ_OK;
    BZFILE* stream = BZ2_bzReadOpen(&status, handle.get(), 0, 0, unused.data(), static_cast<int>(unused.size()));
    if (status != BZ_OK) fail_stream(file, status, first_stream);
    while (status == BZ_OK) {
      const int n = BZ2_bzRead(&status, stream, chunk.data(), static_cast<int>(chunk.size()));
      if (status == BZ_OK || status == BZ_STREAM_END) text.append(chunk.data(), static_cast<std::size_t>(n));
    }
    if (status != BZ_STREAM_END) {
      int ignored = BZ_OK;
      BZ2_bzReadClose(&ignored, stream);
      fail_stream(file, status, first_stream);
    }
    void* rest = nullptr;
    int rest_size = 0;
    BZ2_bzReadGetUnused(&status, stream, &rest, &rest_size);
    unused.assign(static_cast<char*>(rest), static_cast<char*>(rest) + rest_size);
    BZ2_bzReadClose(&status, stream);
    first_stream = false;
    if (unused.empty() && std::feof(handle.get())) return text;
    if (unused.empty()) {
      const int next = std::fgetc(handle.get());
      if (next == EOF) return text;
      unused.push_back(static_cast<char>(next));
    }
  }
}

}  // namespace serq
