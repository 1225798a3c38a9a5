// Writing and reading run.h5 result files with the HDF5 C API; every identifier is owned by a Handle.
#include "core/io/result_file.h"

#include <hdf5.h>
#include <unistd.h>

#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "core/common/error.h"

namespace serq {
namespace {

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

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// Our errors are one line each; HDF5's own error-stack dump to stderr would bury them.
void silence_hdf5_errors() { H5Eset_auto(H5E_DEFAULT, nullptr, nullptr); }

Handle string_type() {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  return type;
}

bool is_link_name(const std::string& name) {
  return !name.empty() && name != "." && name.find('/') == std::string::npos;
}

// --- writing ---

class Writer {
 public:
  explicit Writer(std::string file) : file_(std::move(file)) {}

  Handle checked(hid_t id, herr_t (*close)(hid_t), std::string_view what) const {
    SERQ_CHECK(id >= 0, "{}: HDF5 could not create {} (is the disk full or the directory read-only?)", file_, what);
    return Handle(id, close);
  }
  void check(herr_t status, std::string_view what) const {
    SERQ_CHECK(status >= 0, "{}: HDF5 could not write {} (is the disk full?)", file_, what);
  }

  void string_attribute(hid_t object, const char* name, const std::string& value) const {
    const Handle type = string_type();
    const Handle space = checked(H5Screate(H5S_SCALAR), H5Sclose, "a dataspace");
    const Handle attribute = checked(H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                                     H5Aclose, fmt::format("attribute '{}'", name));
    const char* data = value.c_str();
    check(H5Awrite(attribute.get(), type.get(), &data), fmt::format("attribute '{}'", name));
  }

  void scalar_dataset(hid_t parent, const std::string& name, hid_t file_type, hid_t memory_type,
                      const void* data) const {
    const Handle space = checked(H5Screate(H5S_SCALAR), H5Sclose, "a dataspace");
    const Handle dataset =
        checked(H5Dcreate2(parent, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                H5Dclose, fmt::format("dataset '{}'", name));
    check(H5Dwrite(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), fmt::format("dataset '{}'", name));
  }

  void string_dataset(hid_t parent, const std::string& name, const std::string& value) const {
    const Handle type = string_type();
    const char* data = value.c_str();
    scalar_dataset(parent, name, type.get(), type.get(), &data);
  }

  Handle group(hid_t file, const char* name) const {
    return checked(H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                   fmt::format("group '{}'", name));
  }

 private:
  std::string file_;
};

template <class Value>
void check_names(const std::filesystem::path& file, const char* group, const std::map<std::string, Value>& entries) {
  for (const auto& [name, value] : entries) {
    SERQ_CHECK(is_link_name(name), "{}: {} name '{}' cannot name an HDF5 entry; use a non-empty name without '/'",
               file.string(), group, name);
  }
}

void write_hdf5(const std::filesystem::path& path, const RunRecord& record) {
  const Writer writer(path.string());
  const Handle file =
      writer.checked(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose, "the file");
  writer.string_attribute(file.get(), "experiment", record.experiment);
  writer.string_attribute(file.get(), "run_id", record.run_id);
  writer.string_attribute(file.get(), "label", record.label);
  writer.string_dataset(file.get(), "config", record.config_yaml);
  {
    const Handle metrics = writer.group(file.get(), "metrics");
    for (const auto& [name, value] : record.metrics) {
      writer.scalar_dataset(metrics.get(), name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
    }
  }
  {
    const Handle counts = writer.group(file.get(), "counts");
    for (const auto& [name, value] : record.counts) {
      writer.scalar_dataset(counts.get(), name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
    }
  }
  const Handle info = writer.group(file.get(), "info");
  for (const auto& [name, value] : record.info) writer.string_dataset(info.get(), name, value);
}

// --- reading ---

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void not_a_record(std::string_view problem) const {
    fail("{}: not a serq run record ({}); was it written by serq-run? re-run to recreate it", file_, problem);
  }

  // The root attribute `name` as a string.
  std::string string_attribute(hid_t file, const char* name) const {
    if (H5Aexists(file, name) <= 0) not_a_record(fmt::format("no attribute '{}'", name));
    const Handle attribute(H5Aopen(file, name, H5P_DEFAULT), H5Aclose);
    const Handle type(H5Aget_type(attribute.get()), H5Tclose);
    const Handle space(H5Aget_space(attribute.get()), H5Sclose);
    expect_scalar(type, space, H5T_STRING, fmt::format("attribute '{}'", name));
    const Handle memory_type = string_type();
    char* data = nullptr;
    if (H5Aread(attribute.get(), memory_type.get(), &data) < 0) {
      not_a_record(fmt::format("attribute '{}' is unreadable", name));
    }
    return take_string(data);
  }

  // The scalar dataset at `path` (from the file root), of HDF5 class `expected`, read as `memory_type` into `buffer`.
  void scalar_dataset(hid_t file, const std::string& path, H5T_class_t expected, hid_t memory_type,
                      void* buffer) const {
    const Handle dataset(H5Dopen2(file, path.c_str(), H5P_DEFAULT), H5Dclose);
    if (!dataset.valid()) not_a_record(fmt::format("no dataset '{}'", path));
    const Handle type(H5Dget_type(dataset.get()), H5Tclose);
    const Handle space(H5Dget_space(dataset.get()), H5Sclose);
    expect_scalar(type, space, expected, fmt::format("dataset '{}'", path));
    if (H5Dread(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer) < 0) {
      not_a_record(fmt::format("dataset '{}' is unreadable", path));
    }
  }

  std::string string_dataset(hid_t file, const std::string& path) const {
    const Handle memory_type = string_type();
    char* data = nullptr;
    scalar_dataset(file, path, H5T_STRING, memory_type.get(), &data);
    return take_string(data);
  }

  // Names of the entries of group `name`, in name order.
  std::vector<std::string> entry_names(hid_t file, const char* name) const {
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0) not_a_record(fmt::format("no group '{}'", name));
    const Handle group(H5Gopen2(file, name, H5P_DEFAULT), H5Gclose);
    if (!group.valid()) not_a_record(fmt::format("'{}' is not a group", name));
    std::vector<std::string> names;
    auto collect = [](hid_t, const char* entry, const H5L_info_t*, void* out) -> herr_t {
      static_cast<std::vector<std::string>*>(out)->push_back(entry);
      return 0;
    };
    if (H5Literate(group.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect, &names) < 0) {
      not_a_record(fmt::format("group '{}' is unreadable", name));
    }
    return names;
  }

 private:
  void expect_scalar(const Handle& type, const Handle& space, H5T_class_t expected, const std::string& what) const {
    const bool scalar = space.valid() && H5Sget_simple_extent_type(space.get()) == H5S_SCALAR;
    const bool typed = type.valid() && H5Tget_class(type.get()) == expected &&
                       (expected != H5T_STRING || H5Tis_variable_str(type.get()) > 0);
    if (!scalar || !typed) not_a_record(fmt::format("{} is not a single {}", what, class_name(expected)));
  }

  static const char* class_name(H5T_class_t type) {
    switch (type) {
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

  // Copies a string HDF5 allocated for a variable-length read, and frees it.
  static std::string take_string(char* data) {
    std::string text = data ? data : "";
    H5free_memory(data);
    return text;
  }

  std::string file_;
};

}  // namespace

void write_run_record(const std::filesystem::path& file, const RunRecord& record) {
  silence_hdf5_errors();
  check_names(file, "metric", record.metrics);
  check_names(file, "count", record.counts);
  check_names(file, "info", record.info);
  std::error_code error;
  if (file.has_parent_path()) {
    std::filesystem::create_directories(file.parent_path(), error);
    SERQ_CHECK(!error, "{}: cannot create the directory {} ({}); choose another --out", file.string(),
               file.parent_path().string(), error.message());
  }
  std::filesystem::path temporary = file;
  temporary += ".tmp-" + std::to_string(::getpid());
  try {
    write_hdf5(temporary, record);
    std::filesystem::rename(temporary, file, error);
    SERQ_CHECK(!error,
               "{}: cannot move the finished result into place ({}); remove what is there or choose another "
               "--out",
               file.string(), error.message());
  } catch (...) {
    std::filesystem::remove(temporary, error);
    throw;
  }
}

RunRecord read_run_record(const std::filesystem::path& file) {
  silence_hdf5_errors();
  SERQ_CHECK(std::filesystem::is_regular_file(file), "{}: result file not found (check the path)", file.string());
  const Reader reader(file.string());
  if (H5Fis_hdf5(file.c_str()) <= 0) reader.not_a_record("not an HDF5 file");
  const Handle h5(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!h5.valid()) reader.not_a_record("HDF5 cannot open it");

  RunRecord record;
  record.experiment = reader.string_attribute(h5.get(), "experiment");
  record.run_id = reader.string_attribute(h5.get(), "run_id");
  record.label = reader.string_attribute(h5.get(), "label");
  record.config_yaml = reader.string_dataset(h5.get(), "config");
  for (const std::string& name : reader.entry_names(h5.get(), "metrics")) {
    reader.scalar_dataset(h5.get(), "metrics/" + name, H5T_FLOAT, H5T_NATIVE_DOUBLE, &record.metrics[name]);
  }
  for (const std::string& name : reader.entry_names(h5.get(), "counts")) {
    reader.scalar_dataset(h5.get(), "counts/" + name, H5T_INTEGER, H5T_NATIVE_INT64, &record.counts[name]);
  }
  for (const std::string& name : reader.entry_names(h5.get(), "info")) {
    record.info[name] = reader.string_dataset(h5.get(), "info/" + name);
  }
  return record;
}

}  // namespace serq
