// Real write failures for the binaries under test, without hooks in the product: a tmpfs mounted for the child
// alone (user and mount namespaces, `unshare -rm`), full or read-only; where namespaces are not allowed, a file-size
// limit (ulimit -f, SIGXFSZ ignored so that write() fails with EFBIG) stands in for the full disk.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace serq::test {

// Whether this machine lets an unprivileged child mount a tmpfs in namespaces of its own.
inline bool can_mount_tmpfs() {
  static const bool can = std::system("unshare -rm sh -c 'mount -t tmpfs -o size=4k tmpfs /tmp' >/dev/null 2>&1") == 0;
  return can;
}

// A wrapper (tests/support/cli.h) that mounts a tmpfs with `options` (e.g. "size=16k", "ro") on `mount_point`
// (created) for the child alone and runs it; the mount goes with the child, so the files left on it are listed,
// one path a line, in tmpfs_listing(mount_point) first.
inline std::vector<std::string> on_tmpfs(const std::filesystem::path& mount_point, const std::string& options) {
  std::filesystem::create_directories(mount_point);
  return {"unshare", "-rm", "sh", "-c",
          "mount -t tmpfs -o " + options + " tmpfs \"$0\" || exit 99; \"$@\"; status=$?; "
          "find \"$0\" -type f > \"$0.listing\"; exit $status",
          mount_point.string()};
}

inline std::filesystem::path tmpfs_listing(const std::filesystem::path& mount_point) {
  return mount_point.string() + ".listing";
}

// A wrapper that runs the child with files limited to `kib` KiB, SIGXFSZ ignored (the ignored disposition survives
// exec), so a write past the limit fails as on a full disk.
inline std::vector<std::string> with_file_size_limit(int kib) {
  return {"bash", "-c", "trap '' XFSZ; ulimit -f " + std::to_string(kib) + " && exec \"$@\"", "bash"};
}

}  // namespace serq::test
