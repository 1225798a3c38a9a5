// Experiment configs (core/config/run_config.h): YAML parsed against the schema, the sweep expanded, each run's
// canonical YAML, id and label made. Seeds: configs/*.yaml and configs/paper/*.yaml of this repository.
#include "core/common/error.h"
#include "core/config/run_config.h"
#include "methods/registry.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::filesystem::path file = serq::fuzz::input_file(data, size, "config.yaml");
  try {
    const serq::ExperimentPlan plan = serq::load_experiment(file, {}, serq::method_catalog());
    for (const serq::ResolvedConfig& run : plan.runs) {
      run.to_yaml();
      run.run_id("fuzz");
      run.label();
    }
  } catch (const serq::Error&) {
  }
  return 0;
}
