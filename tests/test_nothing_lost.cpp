// A result is whole or absent: a full disk (a tmpfs of 16 KiB, or a file-size limit where no tmpfs can be mounted)
// leaves neither run.h5, a calibration cache file nor a temporary file, and ends in one line that names the file and
// the cause, with exit status 1 and no crash; an --out that cannot hold results is refused before any work; what a
// killed writer left beside a file goes when the file is written again.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "core/common/build_info.h"
#include "core/common/durable_file.h"
#include "core/common/error.h"
#include "core/common/file_lock.h"
#include "tests/assets.h"
#include "tests/support/sandbox.h"
#include "tests/support/serq_run.h"

using namespace serq;
using Catch::Matchers::Contains;

namespace {

// kSmallRun as SERQ, which calibrates first: its cache file is the first thing it writes.
std::string serq_small_run() {
  std::string yaml = test::kSmallRun;
  yaml.replace(yaml.find("method: rtn"), 11, "method: serq\n  rank: 8");
  return yaml + "calib:\n  samples: 4\n  seq_len: 128\n";
}

// The files the run left under its --out, from the listing the tmpfs wrapper wrote, or from the directory.
std::string files_left(const std::filesystem::path& out, bool tmpfs) {
  if (tmpfs) return test::read_bytes(test::tmpfs_listing(out));
  std::string files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(out)) {
    if (entry.is_regular_file()) files += entry.path().string() + "\n";
  }
  return files;
}

// Runs `yaml` with --out on a full disk; checks the one-line error naming `what` and that no .h5 file (whole,
// partial or temporary) is left.
void check_full_disk(const std::string& name, const std::string& yaml, const std::string& what, bool tmpfs) {
  const auto dir = test::scratch_dir(name);
  const auto config = test::write_config(dir, yaml);
  const auto out = dir / "out";
  const auto wrapper = tmpfs ? test::on_tmpfs(out, "size=16k") : test::with_file_size_limit(16);
  const test::CliOutput result = test::serq_run(config.string() + " --quiet --out " + out.string(), dir, "", wrapper);
  INFO("stderr: " << result.err);
  CHECK(result.status == 1);  // an error, not a crash (139) in HDF5's exit-time cleanup
  const std::string last = result.err.substr(result.err.rfind('\n', result.err.size() - 2) + 1);
  CHECK_THAT(last, Contains(what) && Contains(tmpfs ? "No space left on device" : "File too large") &&
                       Contains("nothing was put in place"));
  const std::string left = files_left(out, tmpfs);
  INFO("files left: " << left);
  CHECK(left.find(".h5") == std::string::npos);
}

}  // namespace

TEST_CASE("a full disk: run.h5 is not put in place, nothing partial stays, one line says why") {
  const bool tmpfs = test::can_mount_tmpfs();
  if (!tmpfs) WARN("no tmpfs can be mounted here; a file-size limit stands in for the full disk");
  check_full_disk("full_disk_result", test::kSmallRun, "run.h5: HDF5 could not", tmpfs);
  if (tmpfs) check_full_disk("full_disk_limit", test::kSmallRun, "run.h5: HDF5 could not", false);
}

TEST_CASE("a full disk: the calibration cache is not put in place either, and the run stops") {
  const bool tmpfs = test::can_mount_tmpfs();
  check_full_disk("full_disk_cache", serq_small_run(), "calibration-cache/", tmpfs);
}

TEST_CASE("an --out that cannot hold results is refused in one line before any work") {
  const auto dir = test::scratch_dir("unwritable_out");
  const auto config = test::write_config(dir, test::kSmallRun);
  auto refused = [&](const std::string& out_args, const std::vector<std::string>& words,
                     const std::vector<std::string>& wrapper = {}) {
    const test::CliOutput out = test::serq_run(config.string() + " " + out_args, dir, "", wrapper);
    test::check_one_line_error(out, words);
    CHECK(out.err.find("[1/1]") == std::string::npos);  // no run started
  };
  std::ofstream(dir / "a-file") << "results go elsewhere";
  refused("--out " + (dir / "a-file").string(),
          {"--out", "a-file", "is a file, not a directory", "choose another --out"});
  refused("--out=", {"--out is empty"});
  if (test::can_mount_tmpfs()) {
    refused("--out " + (dir / "read-only").string(), {"--out", "Read-only file system", "choose another --out"},
            test::on_tmpfs(dir / "read-only", "ro"));
  } else if (geteuid() != 0) {
    std::filesystem::create_directories(dir / "read-only");
    std::filesystem::permissions(dir / "read-only", std::filesystem::perms::owner_read |
                                                        std::filesystem::perms::owner_exec);
    refused("--out " + (dir / "read-only").string(), {"--out", "Permission denied", "choose another --out"});
  } else {
    WARN("running as root without namespaces: no read-only directory to try");
  }
}

TEST_CASE("files written atomically: whole or absent, the fault named in one line", "[durable_file]") {
  const auto dir = test::scratch_dir("durable_file");
  write_file_atomically(dir / "a" / "table.csv", "x,y\n1,2\n");
  CHECK(test::read_bytes(dir / "a" / "table.csv") == "x,y\n1,2\n");
  std::filesystem::create_directories(dir / "taken" / "inside");  // a directory where the file should go
  CHECK_THROWS_WITH(write_file_atomically(dir / "taken", "x"),
                    Contains((dir / "taken").string()) && Contains("cannot move the finished file into place"));
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    CHECK_FALSE(is_temporary_of(entry.path().filename().string(), "taken"));
  }
  CHECK_THROWS_WITH(probe_writable_directory(dir / "a" / "table.csv", "--out", "choose another --out"),
                    Contains("is a file, not a directory"));
  CHECK_THROWS_WITH(probe_writable_directory("", "--out", "name a directory"), Contains("--out is empty"));
  CHECK_NOTHROW(probe_writable_directory(dir / "new" / "deeper", "--out", "choose another --out"));
  CHECK(std::filesystem::is_empty(dir / "new" / "deeper"));  // the probe file is gone
  CHECK(describe_write_error(ENOSPC).find("the disk is full") != std::string::npos);
}

TEST_CASE("a writer's leftovers go when the file is written again, if the writer is dead and on this host",
          "[durable_file]") {
  const auto dir = test::scratch_dir("dead_temporaries");
  const pid_t child = fork();
  if (child == 0) _exit(0);
  REQUIRE(child > 0);
  REQUIRE(waitpid(child, nullptr, 0) == child);  // a pid that no longer runs
  const std::string host = host_name();
  const auto leftover = [&](const std::string& name) {
    write_file_atomically(dir / name, "partial");  // then moved to the temporary's name, as a killed writer leaves it
    return std::filesystem::path(dir / name);
  };
  const std::string dead = fmt::format("cache.h5.tmp-{}-{}", host, child);
  const std::string live = fmt::format("cache.h5.tmp-{}-{}", host, getppid());
  const std::string elsewhere = fmt::format("cache.h5.tmp-{}x-{}", host, child);
  const std::string other_file = fmt::format("other.h5.tmp-{}-{}", host, child);
  for (const std::string& name : {dead, live, elsewhere, other_file}) CHECK(std::filesystem::exists(leftover(name)));
  write_file_atomically(dir / "cache.h5", "whole");
  CHECK(test::read_bytes(dir / "cache.h5") == "whole");
  CHECK_FALSE(std::filesystem::exists(dir / dead));
  CHECK(std::filesystem::exists(dir / live));        // its writer may still be writing
  CHECK(std::filesystem::exists(dir / elsewhere));   // another host's pid says nothing here
  CHECK(std::filesystem::exists(dir / other_file));  // another file's
}

TEST_CASE("a lock file admits one holder at a time, and is free again when its holder goes", "[file_lock]") {
  const auto file = test::scratch_dir("file_lock") / "run" / "run.lock";
  {
    const std::optional<FileLock> first = FileLock::try_acquire(file);
    REQUIRE(first);
    CHECK_FALSE(FileLock::try_acquire(file));  // another open file description: flock says held
  }
  CHECK(FileLock::try_acquire(file));
}
