// Hdf5Writer / Hdf5Reader over the HDF5 C API; every identifier opened here is closed by a Handle.
#include "core/formats/hdf5_file.h"

#include <fmt/format.h>
#include <hdf5.h>

#include <cerrno>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "core/common/durable_file.h"
#include "core/common/error.h"
#include "core/formats/hdf5_seal.h"

namespace serq {
namespace {

static_assert(std::is_same_v<hid_t, std::int64_t>, "hdf5_file.h stores hid_t as std::int64_t");

// One open HDF5 identifier, closed with its matching H5?close when the Handle goes away.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, -1)), close_(other.close_) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  hid_t release() { return std::exchange(id_, -1); }  // the caller closes it now

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// Before HDF5's first use: our errors are one line each (HDF5's own error-stack dump to stderr would bury them),
// and no exit-time cleanup, which after a failed close (a full disk) flushes the failed file again and crashes. Every
// file is closed by its Hdf5Writer or Hdf5Reader before then.
void prepare_hdf5() {
  static const bool prepared = [] {
    H5dont_atexit();
    return true;
  }();
  (void)prepared;
  H5Eset_auto(H5E_DEFAULT, nullptr, nullptr);
}

constexpr const char* kNotWritten = "nothing was put in place: free space, or write elsewhere";

// Why HDF5's last call failed: errno where its file driver set one (errno is cleared before each write).
std::string write_cause() {
  return errno ? describe_write_error(errno) : "is the disk full or the directory read-only?";
}

Handle string_type() {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  return type;
}

// Copies a string HDF5 allocated for a variable-length read, and frees it.
std::string take_string(char* data) {
  std::string text = data ? data : "";
  H5free_memory(data);
  return text;
}

const char* class_name(int type_class) {
  switch (type_class) {
    case H5T_STRING:
      return "variable-length string";
    case H5T_FLOAT:
      return "float";
    case H5T_INTEGER:
      return "integer";
    default:
      return "value";
  }
}

template <class Scalar>
using RowMajor = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

}  // namespace

// --- writing ---

Hdf5Writer::Hdf5Writer(const std::filesystem::path& file, const std::filesystem::path& shown)
    : file_(shown.empty() ? file.string() : shown.string()) {
  prepare_hdf5();
  const Handle creation(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  H5Pset_userblock(creation.get(), kHdf5SealBytes);  // room for the seal (hdf5_seal.h)
  errno = 0;
  id_ = H5Fcreate(file.c_str(), H5F_ACC_TRUNC, creation.get(), H5P_DEFAULT);
  SERQ_CHECK(id_ >= 0, "{}: HDF5 could not create the file ({}); {}", file_, write_cause(), kNotWritten);
}

Hdf5Writer::~Hdf5Writer() {
  if (id_ >= 0) H5Fclose(id_);  // only after a failure: close() reports its own
}

void Hdf5Writer::close() {
  errno = 0;
  const bool flushed = H5Fflush(id_, H5F_SCOPE_GLOBAL) >= 0;
  const std::string flush_cause = flushed ? "" : write_cause();
  const bool closed = H5Fclose(std::exchange(id_, -1)) >= 0;
  SERQ_CHECK(flushed && closed, "{}: HDF5 could not finish the file ({}); {}", file_,
             flushed ? write_cause() : flush_cause, kNotWritten);
}

void Hdf5Writer::attribute(const std::string& name, const std::string& value, const std::string& object) {
  const Handle type = string_type();
  const Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  const Handle attribute(
      H5Acreate_by_name(id_, object.c_str(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
      H5Aclose);
  const char* data = value.c_str();
  errno = 0;
  SERQ_CHECK(attribute.valid() && H5Awrite(attribute.get(), type.get(), &data) >= 0,
             "{}: HDF5 could not write attribute '{}' ({}); {}", file_, name, write_cause(), kNotWritten);
}

void Hdf5Writer::dataset(const std::string& path, std::int64_t type, std::int64_t memory_type,
                         const std::vector<std::uint64_t>& dims, const void* data) {
  const std::vector<hsize_t> sizes(dims.begin(), dims.end());
  const Handle space(dims.empty() ? H5Screate(H5S_SCALAR)
                                  : H5Screate_simple(static_cast<int>(sizes.size()), sizes.data(), nullptr),
                     H5Sclose);
  errno = 0;
  const Handle links(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(links.get(), 1);
  const Handle dataset(H5Dcreate2(id_, path.c_str(), type, space.get(), links.get(), H5P_DEFAULT, H5P_DEFAULT),
                       H5Dclose);
  SERQ_CHECK(dataset.valid(), "{}: HDF5 could not create dataset '{}' (a name used twice, or {})", file_, path,
             write_cause());
  const bool empty = !dims.empty() && H5Sget_simple_extent_npoints(space.get()) == 0;
  SERQ_CHECK(empty || H5Dwrite(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0,
             "{}: HDF5 could not write dataset '{}' ({}); {}", file_, path, write_cause(), kNotWritten);
}

void Hdf5Writer::scalar(const std::string& path, double value) {
  dataset(path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {}, &value);
}

void Hdf5Writer::scalar(const std::string& path, std::int64_t value) {
  dataset(path, H5T_STD_I64LE, H5T_NATIVE_INT64, {}, &value);
}

void Hdf5Writer::scalar(const std::string& path, const std::string& value) {
  const Handle type = string_type();
  const char* data = value.c_str();
  dataset(path, type.get(), type.get(), {}, &data);
}

void Hdf5Writer::vector(const std::string& path, const std::vector<double>& values) {
  dataset(path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {values.size()}, values.data());
}

void Hdf5Writer::vector(const std::string& path, const std::vector<std::int64_t>& values) {
  dataset(path, H5T_STD_I64LE, H5T_NATIVE_INT64, {values.size()}, values.data());
}

void Hdf5Writer::vector(const std::string& path, const std::vector<std::string>& values) {
  const Handle type = string_type();
  std::vector<const char*> data;
  for (const std::string& value : values) data.push_back(value.c_str());
  dataset(path, type.get(), type.get(), {values.size()}, data.data());
}

void Hdf5Writer::matrix(const std::string& path, const Eigen::MatrixXd& values) {
  const RowMajor<double> rows = values;
  dataset(path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
          {static_cast<std::uint64_t>(values.rows()), static_cast<std::uint64_t>(values.cols())}, rows.data());
}

void Hdf5Writer::matrix(const std::string& path, const Eigen::MatrixXf& values) {
  const RowMajor<float> rows = values;
  dataset(path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
          {static_cast<std::uint64_t>(values.rows()), static_cast<std::uint64_t>(values.cols())}, rows.data());
}

// --- reading ---

Hdf5Reader::Hdf5Reader(const std::filesystem::path& file, std::string not_what, std::string hint)
    : file_(file.string()), not_what_(std::move(not_what)), hint_(std::move(hint)), id_(-1) {
  prepare_hdf5();
  if (!std::filesystem::is_regular_file(file)) fail_with("the file is missing");
  if (const std::optional<SealProblem> problem = hdf5_seal_problem(file)) {
    const char* trust = std::getenv("SERQ_READ_UNSEALED");
    if (!(problem->unsealed && trust && std::string_view(trust) == "1")) {
      fail_with(problem->text + (problem->unsealed
                                     ? ", or by serq before it sealed its files (SERQ_READ_UNSEALED=1 reads those)"
                                     : ""));
    }
  }
  if (H5Fis_hdf5(file_.c_str()) <= 0) fail_with("not an HDF5 file");
  id_ = H5Fopen(file_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id_ < 0) fail_with("HDF5 cannot open it");
}

Hdf5Reader::~Hdf5Reader() {
  if (id_ >= 0) H5Fclose(id_);
}

void Hdf5Reader::fail_with(const std::string& problem) const {
  fail("{}: {} ({}){}", file_, not_what_, problem, hint_);
}

bool Hdf5Reader::has(const std::string& path) const {
  // Each prefix must exist before its child can be asked for.
  for (std::size_t slash = path.find('/'); ; slash = path.find('/', slash + 1)) {
    const std::string prefix = path.substr(0, slash);
    if (H5Lexists(id_, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) return true;
  }
}

std::vector<std::string> Hdf5Reader::members(const std::string& group_path) const {
  if (!has(group_path)) fail_with(fmt::format("no group '{}'", group_path));
  const Handle group(H5Gopen2(id_, group_path.c_str(), H5P_DEFAULT), H5Gclose);
  if (!group.valid()) fail_with(fmt::format("'{}' is not a group", group_path));
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* entry, const H5L_info_t*, void* out) -> herr_t {
    static_cast<std::vector<std::string>*>(out)->push_back(entry);
    return 0;
  };
  if (H5Literate(group.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect, &names) < 0) {
    fail_with(fmt::format("group '{}' is unreadable", group_path));
  }
  return names;
}

std::string Hdf5Reader::attribute(const std::string& name) const {
  if (H5Aexists(id_, name.c_str()) <= 0) fail_with(fmt::format("no attribute '{}'", name));
  const Handle attribute(H5Aopen(id_, name.c_str(), H5P_DEFAULT), H5Aclose);
  const Handle type(H5Aget_type(attribute.get()), H5Tclose);
  const Handle space(H5Aget_space(attribute.get()), H5Sclose);
  if (!type.valid() || !space.valid() || H5Sget_simple_extent_type(space.get()) != H5S_SCALAR ||
      H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) <= 0) {
    fail_with(fmt::format("attribute '{}' is not a single variable-length string", name));
  }
  const Handle memory_type = string_type();
  char* data = nullptr;
  if (H5Aread(attribute.get(), memory_type.get(), &data) < 0) {
    fail_with(fmt::format("attribute '{}' is unreadable", name));
  }
  return take_string(data);
}

std::int64_t Hdf5Reader::open_dataset(const std::string& path, int type_class, int rank,
                                      std::vector<std::uint64_t>& dims) const {
  if (!has(path)) fail_with(fmt::format("no dataset '{}'", path));
  Handle dataset(H5Dopen2(id_, path.c_str(), H5P_DEFAULT), H5Dclose);
  if (!dataset.valid()) fail_with(fmt::format("'{}' is not a dataset", path));
  const Handle type(H5Dget_type(dataset.get()), H5Tclose);
  const Handle space(H5Dget_space(dataset.get()), H5Sclose);
  const bool typed = type.valid() && H5Tget_class(type.get()) == type_class &&
                     (type_class != H5T_STRING || H5Tis_variable_str(type.get()) > 0);
  const int found_rank = space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
  if (!typed || found_rank != rank) {
    const char* shape = rank == 0 ? "a single" : rank == 1 ? "a 1-D array of" : "a matrix of";
    fail_with(fmt::format("dataset '{}' is not {} {}", path, shape, class_name(type_class)));
  }
  std::vector<hsize_t> sizes(static_cast<std::size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), sizes.data(), nullptr);
  dims.assign(sizes.begin(), sizes.end());
  return dataset.release();
}

namespace {

// Reads a whole dataset the caller opened (ownership passes here) into `buffer`.
bool read_all(std::int64_t dataset_id, hid_t memory_type, void* buffer) {
  const Handle dataset(dataset_id, H5Dclose);
  return H5Dread(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer) >= 0;
}

}  // namespace

double Hdf5Reader::scalar_double(const std::string& path) const {
  std::vector<std::uint64_t> dims;
  double value = 0;
  if (!read_all(open_dataset(path, H5T_FLOAT, 0, dims), H5T_NATIVE_DOUBLE, &value)) {
    fail_with(fmt::format("dataset '{}' is unreadable", path));
  }
  return value;
}

std::int64_t Hdf5Reader::scalar_int(const std::string& path) const {
  std::vector<std::uint64_t> dims;
  std::int64_t value = 0;
  if (!read_all(open_dataset(path, H5T_INTEGER, 0, dims), H5T_NATIVE_INT64, &value)) {
    fail_with(fmt::format("dataset '{}' is unreadable", path));
  }
  return value;
}

std::string Hdf5Reader::scalar_string(const std::string& path) const {
  std::vector<std::uint64_t> dims;
  const Handle memory_type = string_type();
  char* data = nullptr;
  if (!read_all(open_dataset(path, H5T_STRING, 0, dims), memory_type.get(), &data)) {
    fail_with(fmt::format("dataset '{}' is unreadable", path));
  }
  return take_string(data);
}

std::vector<double> Hdf5Reader::doubles(const std::string& path) const {
  std::vector<std::uint64_t> dims;
  const std::int64_t id = open_dataset(path, H5T_FLOAT, 1, dims);
  std::vector<double> values(dims[0]);
  if (!read_all(id, H5T_NATIVE_DOUBLE, values.data())) fail_with(fmt::format("dataset '{}' is unreadable", path));
  return values;
}

std::vector<std::int64_t> Hdf5Reader::ints(const std::string& path) const {
  std::vector<std::uint64_t> dims;
  const std::int64_t id = open_dataset(path, H5T_INTEGER, 1, dims);
  std::vector<std::int64_t> values(dims[0]);
  if (!read_all(id, H5T_NATIVE_INT64, values.data())) fail_with(fmt::format("dataset '{}' is unreadable", path));
  return values;
}

std::vector<std::string> Hdf5Reader::strings(const std::string& path) const {
  std::vector<std::uint64_t> dims;
  const std::int64_t id = open_dataset(path, H5T_STRING, 1, dims);
  const Handle memory_type = string_type();
  std::vector<char*> data(dims[0], nullptr);
  const bool ok = read_all(id, memory_type.get(), data.data());
  std::vector<std::string> values;
  for (char* text : data) values.push_back(take_string(text));
  if (!ok) fail_with(fmt::format("dataset '{}' is unreadable", path));
  return values;
}

template <class Scalar>
Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic> Hdf5Reader::matrix(const std::string& path,
                                                                        std::int64_t memory_type) const {
  std::vector<std::uint64_t> dims;
  const std::int64_t id = open_dataset(path, H5T_FLOAT, 2, dims);
  RowMajor<Scalar> values(static_cast<Eigen::Index>(dims[0]), static_cast<Eigen::Index>(dims[1]));
  if (!read_all(id, memory_type, values.data())) fail_with(fmt::format("dataset '{}' is unreadable", path));
  return values;
}

Eigen::MatrixXd Hdf5Reader::matrix_double(const std::string& path) const {
  return matrix<double>(path, H5T_NATIVE_DOUBLE);
}

Eigen::MatrixXf Hdf5Reader::matrix_float(const std::string& path) const { return matrix<float>(path, H5T_NATIVE_FLOAT); }

void write_hdf5_atomically(const std::filesystem::path& file, const std::function<void(Hdf5Writer&)>& write) {
  create_parent_directories(file, "choose another --out");
  remove_dead_temporaries(file);
  const std::filesystem::path temporary = temporary_beside(file);
  try {
    Hdf5Writer writer(temporary, file);
    write(writer);
    writer.close();
    seal_hdf5_file(temporary);
  } catch (...) {
    std::error_code error;
    std::filesystem::remove(temporary, error);
    throw;
  }
  commit_temporary(temporary, file);  // flushed to the disk, then renamed
}

}  // namespace serq
