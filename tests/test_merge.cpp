// Tests for merging run records: one row per run, config keys flattened, duplicates kept once, conflicting copies
// refused, a corrupted file reported and skipped, exact CSV text and HDF5 columns.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>

#include "core/common/error.h"
#include "core/formats/hdf5_file.h"
#include "experiments/merge.h"
#include "tests/assets.h"

using namespace serq;

namespace {

RunRecord record(const std::string& id, const std::string& label, double ppl, const std::string& method) {
  RunRecord r;
  r.experiment = "exp";
  r.run_id = id;
  r.label = label;
  r.config_yaml = "experiment:\n  name: \"exp\"\nquant:\n  method: \"" + method + "\"\n  w_bits: 4\n";
  r.metrics = {{"ppl", ppl}};
  r.counts = {{"tokens", 1000}};
  r.info = {{"note", "a, \"quoted\" note"}};
  return r;
}

const MergedColumn& column(const MergedTable& table, const std::string& name) {
  for (const MergedColumn& c : table.columns) {
    if (c.name == name) return c;
  }
  FAIL("no column " << name);
  throw;
}

}  // namespace

TEST_CASE("merge: one row per run, sorted, with flattened config and every metric", "[merge]") {
  const auto dir = test::scratch_dir("merge_rows");
  write_run_record(dir / "a" / "r2" / "run.h5", record("r2", "serq", 5.25, "serq"));
  RunRecord fp = record("r1", "fp", 4.5, "fp");
  fp.layers = {{"layers.0.self_attn.q_proj", 0.1, 0.2, 13.979400086720377, 5.5, 64}};
  fp.windows = {{511, 800.25, 0.0}, {511, 790.5, 0.0}};
  fp.items["piqa"] = {{0, 1, 1, 0, {-3.5, -2.25}, {4, 3}, {12, 9}}};
  write_run_record(dir / "b" / "r1" / "run.h5", fp);
  write_run_record(dir / "b" / "copy" / "run.h5", record("r2", "serq", 5.25, "serq"));  // a shard's copy
  std::ofstream(dir / "b" / "junk.txt") << "not a result";
  std::filesystem::create_directories(dir / "b" / "broken");
  std::ofstream(dir / "b" / "broken" / "run.h5") << "truncated";

  const MergedTable table = merge_results({dir / "a", dir / "b"});
  REQUIRE(table.runs.size() == 2);
  CHECK(table.runs[0].run_id == "r1");  // "fp" < "serq"
  CHECK(table.duplicates == 1);
  REQUIRE(table.skipped.size() == 1);
  CHECK(table.skipped[0] == (dir / "b" / "broken" / "run.h5").string() +
                                ": not a serq run record (it is shorter than serq's 512-byte seal); was it written "
                                "by serq-run? re-run to recreate it");
  std::vector<std::string> names;
  for (const MergedColumn& c : table.columns) names.push_back(c.name);
  CHECK(names == std::vector<std::string>{"run_id", "experiment", "label", "config.experiment.name",
                                          "config.quant.method", "config.quant.w_bits", "metric.ppl", "count.tokens",
                                          "info.note"});
  CHECK(column(table, "config.quant.method").texts == std::vector<std::string>{"fp", "serq"});
  CHECK(column(table, "metric.ppl").numbers == std::vector<double>{4.5, 5.25});

  const auto csv = dir / "merged.csv";
  write_merged_csv(csv, table);
  CHECK(test::read_bytes(csv) ==
        "run_id,experiment,label,config.experiment.name,config.quant.method,config.quant.w_bits,metric.ppl,"
        "count.tokens,info.note\n"
        "r1,exp,fp,exp,fp,4,4.5,1000,\"a, \"\"quoted\"\" note\"\n"
        "r2,exp,serq,exp,serq,4,5.25,1000,\"a, \"\"quoted\"\" note\"\n");

  const auto h5 = dir / "merged.h5";
  write_merged_hdf5(h5, table);
  const Hdf5Reader reader(h5, "not a merged table", "");
  CHECK(reader.strings("runs/run_id") == std::vector<std::string>{"r1", "r2"});
  CHECK(reader.doubles("runs/metric.ppl") == std::vector<double>{4.5, 5.25});
  CHECK(reader.strings("layers/r1/name") == std::vector<std::string>{"layers.0.self_attn.q_proj"});
  CHECK(reader.doubles("layers/r1/output_rel_error") == std::vector<double>{0.2});
  CHECK_FALSE(reader.has("layers/r2"));
  CHECK(reader.doubles("windows/r1/nll_sum") == std::vector<double>{800.25, 790.5});
  CHECK(reader.ints("windows/r1/tokens") == std::vector<std::int64_t>{511, 511});
  CHECK(reader.doubles("items/r1/piqa/loglik") == std::vector<double>{-3.5, -2.25});
  CHECK(reader.ints("items/r1/piqa/prediction_norm") == std::vector<std::int64_t>{0});
  CHECK_FALSE(reader.has("windows/r2"));
}

TEST_CASE("merge: a value one run lacks is an empty CSV cell and NaN in HDF5", "[merge]") {
  const auto dir = test::scratch_dir("merge_missing");
  RunRecord with = record("r1", "a", 4.0, "rtn");
  with.metrics["kld"] = 0.5;
  write_run_record(dir / "r1" / "run.h5", with);
  write_run_record(dir / "r2" / "run.h5", record("r2", "b", 5.0, "rtn"));
  const MergedTable table = merge_results({dir});
  const MergedColumn& kld = column(table, "metric.kld");
  CHECK(kld.present == std::vector<bool>{true, false});
  CHECK(std::isnan(kld.numbers[1]));
  write_merged_csv(dir / "m.csv", table);
  const std::string text = test::read_bytes(dir / "m.csv");
  CHECK(text.find("\nr2,exp,b,exp,rtn,4,,5,1000,") != std::string::npos);  // kld empty, then ppl
}

TEST_CASE("merge: two different records with one run id are refused, naming both files", "[merge][errors]") {
  const auto dir = test::scratch_dir("merge_conflict");
  write_run_record(dir / "x" / "run.h5", record("r1", "a", 4.0, "rtn"));
  write_run_record(dir / "y" / "run.h5", record("r1", "a", 4.1, "rtn"));
  try {
    merge_results({dir});
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) == (dir / "x" / "run.h5").string() + " and " + (dir / "y" / "run.h5").string() +
                                       ": two different results carry run id r1; keep the one you trust and move "
                                       "the other out of the results");
  }
  CHECK_THROWS_WITH(merge_results({dir / "nowhere"}),
                    (dir / "nowhere").string() + ": no such results directory (check the path)");
}
