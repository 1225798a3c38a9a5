// What serq reads out of run.h5 files once their seal holds (fuzz_result_file covers the bytes before it): records
// with arbitrary names, texts, numbers and per-layer arrays (the config text included, which serq-merge parses as
// YAML) written by write_run_record, then read back, merged with serq-merge's logic into CSV and HDF5 tables, and
// searched by --resume for other commits. Seeds: run.h5 files written by serq-run (read here as arbitrary bytes).
#include <fuzzer/FuzzedDataProvider.h>

#include "core/common/error.h"
#include "core/formats/result_file.h"
#include "experiments/merge.h"
#include "experiments/resume.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

serq::RunRecord fuzzed_record(FuzzedDataProvider& in) {
  serq::RunRecord record;
  record.experiment = in.ConsumeRandomLengthString(16);
  record.run_id = in.ConsumeRandomLengthString(24);
  record.label = in.ConsumeRandomLengthString(24);
  record.config_yaml = in.ConsumeRandomLengthString(512);
  for (int i = in.ConsumeIntegralInRange(0, 4); i > 0; --i) {
    record.metrics[in.ConsumeRandomLengthString(12)] = in.ConsumeFloatingPoint<double>();
  }
  for (int i = in.ConsumeIntegralInRange(0, 3); i > 0; --i) {
    record.counts[in.ConsumeRandomLengthString(12)] = in.ConsumeIntegral<std::int64_t>();
  }
  for (int i = in.ConsumeIntegralInRange(0, 4); i > 0; --i) {
    record.info[in.ConsumeBool() ? "git_commit" : in.ConsumeRandomLengthString(12)] = in.ConsumeRandomLengthString(40);
  }
  for (int i = in.ConsumeIntegralInRange(0, 3); i > 0; --i) {
    record.layers.push_back({in.ConsumeRandomLengthString(20), in.ConsumeFloatingPoint<double>(),
                             in.ConsumeFloatingPoint<double>(), in.ConsumeFloatingPoint<double>(),
                             in.ConsumeFloatingPoint<double>(), in.ConsumeIntegral<std::int64_t>()});
  }
  return record;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const std::filesystem::path root = serq::fuzz::scratch() / "records";
  std::filesystem::remove_all(root);
  for (const char* run : {"a", "b"}) {
    try {
      serq::write_run_record(root / "experiment" / run / "run.h5", fuzzed_record(in));
    } catch (const serq::Error&) {
    }
  }
  try {
    serq::read_run_record(root / "experiment" / "a" / "run.h5");
  } catch (const serq::Error&) {
  }
  try {
    const serq::MergedTable table = serq::merge_results({root});
    serq::write_merged_csv(serq::fuzz::scratch() / "merged.csv", table);
    serq::write_merged_hdf5(serq::fuzz::scratch() / "merged.h5", table);
  } catch (const serq::Error&) {
  }
  serq::results_of_other_commits(root / "experiment", "fuzz");
  return 0;
}
