// An exclusive advisory lock (flock) on a lock file, held while the object lives: two processes that share a
// results directory never compute or write the same result at once. The lock goes with the process, so a killed
// holder never leaves a stale lock; the lock file itself stays.
#pragma once

#include <filesystem>
#include <optional>

namespace serq {

class FileLock {
 public:
  // The lock on `file` (created, with its directories, if missing) when no other process holds it, else nothing.
  // A file that cannot be created or locked is a serq::Error naming it.
  static std::optional<FileLock> try_acquire(const std::filesystem::path& file);
  // Waits for the lock, calling check_interrupt() (core/common/interrupt.h) between tries.
  static FileLock acquire(const std::filesystem::path& file);

  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&&) = delete;
  FileLock(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace serq
