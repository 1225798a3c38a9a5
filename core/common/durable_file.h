// Files that are whole or absent: a result is written under a temporary name beside its place, flushed to the disk
// (fsync) and only then renamed into place, and the directory entry is synced too. Each failure is one serq::Error
// line naming the file and the cause (disk full, permission denied, ...); the temporary file is removed.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace serq {

// "<file>.tmp-<host>-<pid>": array tasks on different nodes of a shared filesystem can have the same pid.
std::filesystem::path temporary_beside(const std::filesystem::path& file);

// Whether `name` is one of temporary_beside()'s names for `file_name` (what a killed writer leaves behind).
bool is_temporary_of(const std::string& name, const std::string& file_name);

// Removes the temporaries of `file` that a writer on this host left when it died (killed while writing a shared
// cache file, say): its pid no longer runs. Another host's temporaries, and a live writer's, stay. The atomic writers
// call it before writing, so a file that is written again takes its dead writers' leftovers with it.
void remove_dead_temporaries(const std::filesystem::path& file);

// Creates `file`'s parent directories; an error names `file` and, as the fix, `fix` (e.g. "choose another --out").
void create_parent_directories(const std::filesystem::path& file, std::string_view fix);

// Flushes `temporary` to the disk, renames it to `file` and syncs the directory. On any failure `temporary` is
// removed and a serq::Error names `file` and the cause.
void commit_temporary(const std::filesystem::path& temporary, const std::filesystem::path& file);

// The same for a directory whose files are written and synced already: `temporary` is synced, renamed to `dir` (which
// must not exist) and the parent synced; on a failure `temporary` is removed with its files.
void commit_temporary_directory(const std::filesystem::path& temporary, const std::filesystem::path& dir);

// Writes `bytes` to `file` whole or not at all (temporary file, every write checked, commit_temporary).
void write_file_atomically(const std::filesystem::path& file, std::string_view bytes);

// Checks before any work that files can be created in `dir` (created if missing): a file is made, written, synced and
// removed there. A failure is a serq::Error "<key> <dir>: <cause>; <fix>".
void probe_writable_directory(const std::filesystem::path& dir, std::string_view key, std::string_view fix);

// The cause of a failed file operation in words, e.g. "No space left on device: the disk is full" (the fix is the
// caller's to say).
std::string describe_write_error(int error_number);

}  // namespace serq
