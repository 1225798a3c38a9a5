// FileLock over flock(2) (file_lock.h).
#include "core/common/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>
#include <utility>

#include "core/common/durable_file.h"
#include "core/common/error.h"
#include "core/common/interrupt.h"

namespace serq {

std::optional<FileLock> FileLock::try_acquire(const std::filesystem::path& file) {
  create_parent_directories(file, "choose another --out");
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  SERQ_CHECK(fd >= 0, "{}: cannot create the lock file ({})", file.string(), describe_write_error(errno));
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error == EINTR) continue;
    ::close(fd);
    if (error == EWOULDBLOCK) return std::nullopt;
    fail("{}: cannot lock the file ({}); choose an --out on a filesystem with file locks", file.string(),
         describe_write_error(error));
  }
  return FileLock(fd);
}

FileLock FileLock::acquire(const std::filesystem::path& file) {
  for (;;) {
    if (std::optional<FileLock> lock = try_acquire(file)) return std::move(*lock);
    check_interrupt();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

}  // namespace serq
