// A small typed layer over the HDF5 C API for serq's files (run records, the calibration cache, merged tables):
// scalar and 1-D datasets of float64, int64 and UTF-8 strings, 2-D float32/float64 matrices, root string attributes,
// all addressed by paths such as "metrics/ppl" (missing groups are created on write). Every error is one serq::Error
// line that starts with the file name; HDF5's own error-stack dump is silenced.
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace serq {

class Hdf5Writer {
 public:
  // Creates (truncates) `file`; errors name `shown` instead where given (the result a temporary file becomes).
  explicit Hdf5Writer(const std::filesystem::path& file, const std::filesystem::path& shown = {});
  ~Hdf5Writer();
  // Flushes and closes the file, every status checked: a full disk often shows only here, when HDF5 writes what it
  // cached. Without it the destructor closes the file and ignores failures (the caller is failing already).
  void close();
  Hdf5Writer(const Hdf5Writer&) = delete;
  Hdf5Writer& operator=(const Hdf5Writer&) = delete;

  // A string attribute on the object at `object` (default: the root group; the object must exist).
  void attribute(const std::string& name, const std::string& value, const std::string& object = "/");
  void scalar(const std::string& path, double value);
  void scalar(const std::string& path, std::int64_t value);
  void scalar(const std::string& path, const std::string& value);
  void vector(const std::string& path, const std::vector<double>& values);
  void vector(const std::string& path, const std::vector<std::int64_t>& values);
  void vector(const std::string& path, const std::vector<std::string>& values);
  void matrix(const std::string& path, const Eigen::MatrixXd& values);  // stored row-major, rows × cols
  void matrix(const std::string& path, const Eigen::MatrixXf& values);

 private:
  void dataset(const std::string& path, std::int64_t type, std::int64_t memory_type, const std::vector<std::uint64_t>& dims,
               const void* data);
  std::string file_;
  std::int64_t id_;  // hid_t
};

class Hdf5Reader {
 public:
  // Opens the file read-only, after checking its seal (hdf5_seal.h): a file cut short or changed since serq wrote it
  // never reaches the HDF5 library. A problem (missing, damaged, not HDF5, a missing or mistyped entry) is a
  // serq::Error "<file>: <not_what> (<problem>)<hint>", e.g. "run.h5: not a serq run record (no dataset 'config');
  // was it ...".
  Hdf5Reader(const std::filesystem::path& file, std::string not_what, std::string hint);
  ~Hdf5Reader();
  Hdf5Reader(const Hdf5Reader&) = delete;
  Hdf5Reader& operator=(const Hdf5Reader&) = delete;

  bool has(const std::string& path) const;
  std::vector<std::string> members(const std::string& group) const;  // in name order
  std::string attribute(const std::string& name) const;
  double scalar_double(const std::string& path) const;
  std::int64_t scalar_int(const std::string& path) const;
  std::string scalar_string(const std::string& path) const;
  std::vector<double> doubles(const std::string& path) const;
  std::vector<std::int64_t> ints(const std::string& path) const;
  std::vector<std::string> strings(const std::string& path) const;
  Eigen::MatrixXd matrix_double(const std::string& path) const;
  Eigen::MatrixXf matrix_float(const std::string& path) const;

  [[noreturn]] void fail_with(const std::string& problem) const;

 private:
  // Opens `path` as a dataset of HDF5 class `type_class` and rank `rank` (0 = scalar); returns its id and sizes.
  std::int64_t open_dataset(const std::string& path, int type_class, int rank, std::vector<std::uint64_t>& dims) const;
  template <class Scalar>
  Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic> matrix(const std::string& path, std::int64_t memory_type) const;
  std::string file_, not_what_, hint_;
  std::int64_t id_;  // hid_t
};

// Writes `file` through `write` into temporary_beside(file) (core/common/durable_file.h), closes it with every status
// checked, seals it (hdf5_seal.h), flushes it to the disk and renames it into place, creating parent directories: a
// killed writer or a full disk leaves no `file` behind, a reader never sees a half-written one, and a failure removes
// the temporary file and throws one serq::Error line naming the cause. Replaces an existing file.
void write_hdf5_atomically(const std::filesystem::path& file, const std::function<void(Hdf5Writer&)>& write);

}  // namespace serq
