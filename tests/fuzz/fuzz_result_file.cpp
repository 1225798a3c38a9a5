// run.h5 reading as serq-merge and --resume do it: the record (core/formats/result_file.h), a merged table over the
// directory that holds it, and the search for results of other commits; and the calibration cache's reader.
// Seeds: run.h5 and calibration-cache files written by serq-run on stories260K.
#include "core/common/error.h"
#include "core/formats/result_file.h"
#include "experiments/calibration_cache.h"
#include "experiments/merge.h"
#include "experiments/resume.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::filesystem::path file = serq::fuzz::input_file(data, size, "results/fuzz/0123456789abcdef/run.h5");
  try {
    serq::read_run_record(file);
  } catch (const serq::Error&) {
  }
  try {
    serq::merge_results({serq::fuzz::scratch() / "results"});
  } catch (const serq::Error&) {
  }
  serq::results_of_other_commits(serq::fuzz::scratch() / "results" / "fuzz", "fuzz");
  try {
    serq::read_calibration_cache(file, serq::CalibrationKey{});
  } catch (const serq::Error&) {
  }
  return 0;
}
