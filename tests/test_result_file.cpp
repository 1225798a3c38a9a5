// Tests for run.h5 result files: exact round trip, atomic writes, clear errors, no leaked HDF5 handles.
#include <hdf5.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <limits>

#include "core/common/error.h"
#include "core/formats/hdf5_seal.h"
#include "core/formats/result_file.h"
#include "tests/assets.h"

namespace {

serq::RunRecord example_record() {
  serq::RunRecord record;
  record.experiment = "w4a4_llama";
  record.run_id = "0123456789abcdef";
  record.label = "rtn w4a4 g32";
  record.config_yaml = "experiment:\n  name: \"w4a4_llama\"\nquant:\n  method: \"rtn\"\n  note: \"ünïcode ✓\"\n";
  record.metrics = {{"ppl", 4.526123456789012}, {"tiny", 1e-300}, {"negative", -0.0}, {"huge", 1.7976931348623157e308}};
  record.counts = {{"tokens", 593920}, {"big", std::numeric_limits<std::int64_t>::max()}, {"neg", -5}};
  record.info = {{"git_commit", "abc123-dirty"}, {"bos_policy", "BOS before every story"}, {"empty", ""}};
  return record;
}

std::vector<std::filesystem::path> files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  return files;
}

// HDF5 files, groups, datasets and attributes still open anywhere in the process.
ssize_t open_hdf5_objects() { return H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL); }

}  // namespace

TEST_CASE("a run record reads back exactly as written", "[result_file]") {
  const auto dir = serq::test::scratch_dir("result_roundtrip");
  const auto file = dir / "w4a4_llama" / "0123456789abcdef" / "run.h5";  // parent directories are created
  const serq::RunRecord written = example_record();
  serq::write_run_record(file, written);
  const serq::RunRecord read = serq::read_run_record(file);
  CHECK(read.experiment == written.experiment);
  CHECK(read.run_id == written.run_id);
  CHECK(read.label == written.label);
  CHECK(read.config_yaml == written.config_yaml);
  CHECK(read.metrics == written.metrics);
  CHECK(std::signbit(read.metrics.at("negative")));
  CHECK(read.counts == written.counts);
  CHECK(read.info == written.info);
  CHECK(open_hdf5_objects() == 0);
}

TEST_CASE("per-layer diagnostics round-trip in model order", "[result_file]") {
  const auto file = serq::test::scratch_dir("result_layers") / "run.h5";
  serq::RunRecord written = example_record();
  written.layers = {{"layers.0.self_attn.q_proj", 0.01, 0.125, 18.06179973983887, 5.5, 1024},
                    {"layers.0.mlp.down_proj", 1e-9, 0.5, 6.020599913279624, 4.5, 0}};
  serq::write_run_record(file, written);
  const serq::RunRecord read = serq::read_run_record(file);
  REQUIRE(read.layers.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(read.layers[i].name == written.layers[i].name);
    CHECK(read.layers[i].weight_rel_error == written.layers[i].weight_rel_error);
    CHECK(read.layers[i].output_rel_error == written.layers[i].output_rel_error);
    CHECK(read.layers[i].output_qsnr_db == written.layers[i].output_qsnr_db);
    CHECK(read.layers[i].bits_per_weight == written.layers[i].bits_per_weight);
    CHECK(read.layers[i].extra_parameters == written.layers[i].extra_parameters);
  }
  CHECK(read.metrics == written.metrics);
  CHECK(open_hdf5_objects() == 0);
}

TEST_CASE("per-window sums and per-item scores round-trip, choices kept with their items", "[result_file]") {
  const auto file = serq::test::scratch_dir("result_items") / "run.h5";
  serq::RunRecord written = example_record();
  written.windows = {{2047, 6123.5, 1001.25}, {2047, 5999.0, 987.5}, {1000, 3000.125, 0.0}};
  written.items["piqa"] = {{0, 1, 1, 0, {-12.5, -11.25}, {5, 4}, {20, 17}},
                           {7, 0, 1, 1, {-3.0, -2.5}, {2, 2}, {8, 9}}};
  written.items["hellaswag"] = {{3, 2, 2, 3, {-1, -2, -3, -4}, {1, 2, 3, 4}, {5, 6, 7, 8}}};
  written.items["lambada_openai"] = {{0, 0, -1, -1, {-7.5}, {3}, {10}}};
  serq::write_run_record(file, written);
  const serq::RunRecord read = serq::read_run_record(file);
  REQUIRE(read.windows.size() == 3);
  for (std::size_t w = 0; w < 3; ++w) {
    CHECK(read.windows[w].tokens == written.windows[w].tokens);
    CHECK(read.windows[w].nll_sum == written.windows[w].nll_sum);
    CHECK(read.windows[w].kld_sum == written.windows[w].kld_sum);
  }
  REQUIRE(read.items.size() == 3);
  for (const auto& [task, items] : written.items) {
    REQUIRE(read.items.at(task).size() == items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
      const serq::ItemScore& a = items[i];
      const serq::ItemScore& b = read.items.at(task)[i];
      CHECK(b.index == a.index);
      CHECK(b.gold == a.gold);
      CHECK(b.prediction == a.prediction);
      CHECK(b.prediction_norm == a.prediction_norm);
      CHECK(b.loglik == a.loglik);
      CHECK(b.tokens == a.tokens);
      CHECK(b.characters == a.characters);
    }
  }
  CHECK(open_hdf5_objects() == 0);
}

TEST_CASE("a truncated result file is a clear error", "[result_file]") {
  const auto dir = serq::test::scratch_dir("result_truncated");
  const auto file = dir / "run.h5";
  serq::write_run_record(file, example_record());
  std::filesystem::resize_file(file, std::filesystem::file_size(file) / 2);
  CHECK_THROWS_WITH(serq::read_run_record(file), Catch::StartsWith(file.string() + ": not a serq run record ("));
  CHECK(open_hdf5_objects() == 0);
}

TEST_CASE("a record with no metrics, counts or info round-trips", "[result_file]") {
  const auto file = serq::test::scratch_dir("result_empty") / "run.h5";
  serq::RunRecord written;
  written.run_id = "x";
  serq::write_run_record(file, written);
  const serq::RunRecord read = serq::read_run_record(file);
  CHECK(read.run_id == "x");
  CHECK(read.experiment.empty());
  CHECK(read.metrics.empty());
  CHECK(read.counts.empty());
  CHECK(read.info.empty());
}

TEST_CASE("the write is atomic: no temporary file is left and the final file is complete", "[result_file]") {
  const auto dir = serq::test::scratch_dir("result_atomic");
  const auto file = dir / "run.h5";
  serq::RunRecord first = example_record();
  serq::write_run_record(file, first);
  serq::RunRecord second = example_record();
  second.metrics["ppl"] = 5.0;
  serq::write_run_record(file, second);  // replaces the earlier record
  CHECK(files_in(dir) == std::vector<std::filesystem::path>{file});
  CHECK(serq::read_run_record(file).metrics.at("ppl") == 5.0);
}

TEST_CASE("a failed write leaves neither the result nor a temporary file", "[result_file]") {
  const auto dir = serq::test::scratch_dir("result_failed_write");
  const auto file = dir / "run.h5";
  std::filesystem::create_directories(file / "occupied");  // a non-empty directory where the file should go
  CHECK_THROWS_WITH(serq::write_run_record(file, example_record()),
                    Catch::StartsWith(file.string() + ": cannot move the finished file into place"));
  CHECK(files_in(dir).empty());
  CHECK(open_hdf5_objects() == 0);

  serq::RunRecord bad_name = example_record();
  bad_name.metrics["ppl/wikitext2"] = 1.0;
  const auto other = dir / "other.h5";
  CHECK_THROWS_WITH(serq::write_run_record(other, bad_name),
                    other.string() +
                        ": metric name 'ppl/wikitext2' cannot name an HDF5 entry; use a non-empty name "
                        "without '/'");
  CHECK_FALSE(std::filesystem::exists(other));
}

TEST_CASE("a file that is not HDF5 is a clear error", "[result_file]") {
  const auto file = serq::test::scratch_dir("result_not_hdf5") / "run.h5";
  std::ofstream(file) << "this is not an HDF5 file\n";
  CHECK_THROWS_WITH(serq::read_run_record(file), file.string() +
                                                     ": not a serq run record (it is shorter than serq's 512-byte "
                                                     "seal); was it written by serq-run? re-run to recreate it");
  std::ofstream(file) << std::string(600, 'x');
  CHECK_THROWS_WITH(serq::read_run_record(file), Catch::Contains("(it does not start with serq's seal)"));
  const auto missing = file.parent_path() / "missing.h5";
  CHECK_THROWS_WITH(serq::read_run_record(missing), missing.string() + ": result file not found (check the path)");
}

TEST_CASE("an HDF5 file without the run-record layout is a clear error", "[result_file]") {
  const auto dir = serq::test::scratch_dir("result_wrong_layout");
  const auto file = dir / "other.h5";
  const hid_t creation = H5Pcreate(H5P_FILE_CREATE);
  H5Pset_userblock(creation, serq::kHdf5SealBytes);
  const hid_t h5 = H5Fcreate(file.c_str(), H5F_ACC_TRUNC, creation, H5P_DEFAULT);
  H5Pclose(creation);
  REQUIRE(h5 >= 0);
  H5Fclose(h5);
  serq::seal_hdf5_file(file);
  CHECK_THROWS_WITH(serq::read_run_record(file),
                    Catch::StartsWith(file.string() + ": not a serq run record (no attribute 'experiment')"));
  CHECK(open_hdf5_objects() == 0);

  // A metric stored as an integer instead of a float.
  const auto mistyped = dir / "mistyped.h5";
  serq::RunRecord record = example_record();
  serq::write_run_record(mistyped, record);
  const hid_t rw = H5Fopen(mistyped.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(rw >= 0);
  const hid_t space = H5Screate(H5S_SCALAR);
  const std::int64_t seven = 7;
  const hid_t dataset = H5Dcreate2(rw, "metrics/wrong", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(dataset >= 0);
  H5Dwrite(dataset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &seven);
  H5Dclose(dataset);
  H5Sclose(space);
  H5Fclose(rw);
  serq::seal_hdf5_file(mistyped);  // sealed again after the change, so the layout is what is wrong
  CHECK_THROWS_WITH(
      serq::read_run_record(mistyped),
      Catch::StartsWith(mistyped.string() + ": not a serq run record (dataset 'metrics/wrong' is not a single float)"));
  CHECK(open_hdf5_objects() == 0);
}

TEST_CASE("a result cut short, changed or unsealed is refused before the HDF5 library reads it", "[result_file]") {
  const auto dir = serq::test::scratch_dir("result_sealed");
  const auto file = dir / "run.h5";
  serq::write_run_record(file, example_record());
  const std::string bytes = serq::test::read_bytes(file);
  CHECK(bytes.starts_with("serq-hdf5-seal 1\nbytes " + std::to_string(bytes.size() - 512) + "\nfnv1a64 "));
  CHECK_FALSE(serq::hdf5_seal_problem(file));

  serq::test::write_bytes(file, bytes.substr(0, bytes.size() - 100));
  CHECK_THROWS_WITH(serq::read_run_record(file), Catch::Contains("the file was cut short or appended to"));
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x10;
  serq::test::write_bytes(file, flipped);
  CHECK_THROWS_WITH(serq::read_run_record(file), Catch::Contains("its checksum does not match the seal"));

  // An HDF5 file without the seal (another program's, or an older serq's) is read only on request.
  const auto plain = dir / "plain.h5";
  const hid_t h5 = H5Fcreate(plain.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(h5 >= 0);
  H5Fclose(h5);
  CHECK_THROWS_WITH(serq::read_run_record(plain), Catch::Contains("it has no serq seal") &&
                                                      Catch::Contains("SERQ_READ_UNSEALED=1"));
  setenv("SERQ_READ_UNSEALED", "1", 1);
  CHECK_THROWS_WITH(serq::read_run_record(plain), Catch::Contains("(no attribute 'experiment')"));
  unsetenv("SERQ_READ_UNSEALED");
}
