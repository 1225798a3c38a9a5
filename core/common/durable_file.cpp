// Whole-or-absent files (durable_file.h) over POSIX calls whose every status is checked.
#include "core/common/durable_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/common/build_info.h"
#include "core/common/error.h"

namespace serq {
namespace {

constexpr const char* kNotWritten = "nothing was put in place: free space, or write elsewhere";

// Flushes an open file or directory to the disk; returns errno, or 0.
int sync_path(const std::filesystem::path& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return errno;
  const int synced = ::fsync(fd) == 0 || errno == EINVAL ? 0 : errno;  // EINVAL: a filesystem without fsync
  return ::close(fd) == 0 ? synced : (synced ? synced : errno);
}

// Writes all of `bytes` to `fd`; returns errno, or 0.
int write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t written = ::write(fd, bytes.data(), bytes.size());
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) return errno;
    if (written == 0) return EIO;
    bytes.remove_prefix(static_cast<std::size_t>(written));
  }
  return 0;
}

}  // namespace

std::string describe_write_error(int error_number) {
  const std::string text = std::strerror(error_number);
  switch (error_number) {
    case ENOSPC:
    case EDQUOT:
      return text + ": the disk is full";
    case EFBIG:
      return text + ": the file size limit (ulimit -f) is reached";
    default:
      return text;
  }
}

std::filesystem::path temporary_beside(const std::filesystem::path& file) {
  std::filesystem::path temporary = file;
  temporary += fmt::format(".tmp-{}-{}", host_name(), ::getpid());
  return temporary;
}

bool is_temporary_of(const std::string& name, const std::string& file_name) {
  return name.rfind(file_name + ".tmp-", 0) == 0;
}

void remove_dead_temporaries(const std::filesystem::path& file) {
  const std::string prefix = file.filename().string() + ".tmp-" + host_name() + "-";
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(file.parent_path(), error)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string pid = name.substr(prefix.size());
    if (pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (::kill(static_cast<pid_t>(std::stol(pid)), 0) != 0 && errno == ESRCH) {
      std::error_code ignored;
      std::filesystem::remove(entry.path(), ignored);
    }
  }
}

void create_parent_directories(const std::filesystem::path& file, std::string_view fix) {
  if (!file.has_parent_path()) return;
  std::error_code error;
  std::filesystem::create_directories(file.parent_path(), error);
  SERQ_CHECK(!error, "{}: cannot create the directory {} ({}); {}", file.string(), file.parent_path().string(),
             describe_write_error(error.value()), fix);
}

void commit_temporary(const std::filesystem::path& temporary, const std::filesystem::path& file) {
  std::error_code ignored;
  if (const int error = sync_path(temporary, O_RDONLY)) {
    std::filesystem::remove(temporary, ignored);
    fail("{}: the result could not be flushed to the disk ({}); {}", file.string(), describe_write_error(error),
         kNotWritten);
  }
  if (::rename(temporary.c_str(), file.c_str()) != 0) {
    const int error = errno;
    std::filesystem::remove(temporary, ignored);
    fail("{}: cannot move the finished file into place ({}); remove what is there or choose another directory",
         file.string(), describe_write_error(error));
  }
  const std::filesystem::path dir = file.has_parent_path() ? file.parent_path() : ".";
  if (const int error = sync_path(dir, O_RDONLY | O_DIRECTORY)) {
    fail("{}: the directory entry could not be flushed to the disk ({})", file.string(), describe_write_error(error));
  }
}

void commit_temporary_directory(const std::filesystem::path& temporary, const std::filesystem::path& dir) {
  std::error_code ignored;
  int error = sync_path(temporary, O_RDONLY | O_DIRECTORY);
  if (!error && ::rename(temporary.c_str(), dir.c_str()) != 0) error = errno;
  if (error) {
    std::filesystem::remove_all(temporary, ignored);
    fail("{}: cannot move the finished directory into place ({}); remove what is there or choose another directory",
         dir.string(), describe_write_error(error));
  }
  const std::filesystem::path parent = dir.has_parent_path() ? dir.parent_path() : ".";
  if (const int failed = sync_path(parent, O_RDONLY | O_DIRECTORY)) {
    fail("{}: the directory entry could not be flushed to the disk ({})", dir.string(), describe_write_error(failed));
  }
}

void write_file_atomically(const std::filesystem::path& file, std::string_view bytes) {
  create_parent_directories(file, "choose another directory");
  remove_dead_temporaries(file);
  const std::filesystem::path temporary = temporary_beside(file);
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("{}: cannot create the file ({})", file.string(), describe_write_error(errno));
  int error = write_all(fd, bytes);
  if (::close(fd) != 0 && !error) error = errno;
  if (error) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    fail("{}: the file could not be written ({}); {}", file.string(), describe_write_error(error), kNotWritten);
  }
  commit_temporary(temporary, file);
}

void probe_writable_directory(const std::filesystem::path& dir, std::string_view key, std::string_view fix) {
  SERQ_CHECK(!dir.empty(), "{} is empty; {}", key, fix);
  std::error_code error;
  SERQ_CHECK(!std::filesystem::exists(dir, error) || std::filesystem::is_directory(dir, error),
             "{} {}: is a file, not a directory; {}", key, dir.string(), fix);
  std::filesystem::create_directories(dir, error);
  SERQ_CHECK(!error, "{} {}: cannot create the directory ({}); {}", key, dir.string(),
             describe_write_error(error.value()), fix);
  const std::filesystem::path probe = temporary_beside(dir / ".serq-write-probe");
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  SERQ_CHECK(fd >= 0, "{} {}: cannot create a file there ({}); {}", key, dir.string(), describe_write_error(errno),
             fix);
  int failed = write_all(fd, "serq");
  if (!failed && ::fsync(fd) != 0 && errno != EINVAL) failed = errno;
  if (::close(fd) != 0 && !failed) failed = errno;
  std::filesystem::remove(probe, error);
  SERQ_CHECK(!failed, "{} {}: cannot write a file there ({}); {}", key, dir.string(), describe_write_error(failed),
             fix);
}

}  // namespace serq
