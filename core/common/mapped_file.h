// A read-only memory map of a whole file, released when the object goes: the checkpoint readers (safetensors, GGUF)
// parse their headers from it and read tensors straight out of it.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>

namespace serq {

class MappedFile {
 public:
  // Maps the file; a missing file, a directory or a failed map is a serq::Error naming the path. An empty file
  // maps to an empty span.
  static MappedFile open(const std::filesystem::path& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }

  // Hands back the resident pages that lie wholly inside [begin, begin + bytes) of a read-only file mapping
  // (madvise MADV_DONTNEED): the process's memory no longer counts them, and the next read faults them in again
  // from the page cache or the file. Only for memory inside a mapping made by open(): anonymous memory would read
  // back as zeros.
  static void release_pages(const void* begin, std::size_t bytes) noexcept;

 private:
  void unmap() noexcept;

  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace serq
