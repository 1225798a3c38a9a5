// JSON lines and the closing results table of serq-run.
#include "experiments/run_summary.h"

#include <fmt/format.h>

#include <algorithm>

namespace serq {
namespace {

std::string group_text(std::int64_t group) { return group == 0 ? "channel" : std::to_string(group); }

bool is_fp(const FinishedRun& run) { return run.config->get_string("quant.method") == "fp"; }

int bits(const FinishedRun& run, const char* key) {
  return is_fp(run) ? 16 : static_cast<int>(run.config->get_int(key));
}

// Same model, data and windows: the runs whose perplexities can be compared.
bool same_evaluation(const FinishedRun& a, const FinishedRun& b) {
  for (const char* key : {"model.path", "eval.dataset"}) {
    if (a.config->get_string(key) != b.config->get_string(key)) return false;
  }
  for (const char* key : {"eval.seq_len", "eval.max_windows"}) {
    if (a.config->get_int(key) != b.config->get_int(key)) return false;
  }
  return true;
}

}  // namespace

nlohmann::json run_summary_json(const FinishedRun& run) {
  const ResolvedConfig& c = *run.config;
  return {{"run_id", run.record.run_id},
          {"experiment", run.record.experiment},
          {"label", run.record.label},
          {"method", c.get_string("quant.method")},
          {"format", c.get_string("quant.format")},
          {"w_bits", bits(run, "quant.w_bits")},
          {"a_bits", bits(run, "quant.a_bits")},
          {"group_size", group_text(c.get_int("quant.group_size"))},
          {"a_group_size", group_text(c.get_int("quant.a_group_size"))},
          {"dataset", c.get_string("eval.dataset")},
          {"model", c.get_string("model.path")},
          {"ppl", run.record.metrics.at("ppl")},
          {"tokens", run.record.counts.at("tokens")},
          {"seconds", run.record.metrics.at("seconds")},
          {"bits_per_weight", run.record.metrics.at("bits_per_weight")},
          {"extra_parameters", run.record.counts.at("extra_parameters")},
          {"calibration_seconds", run.record.metrics.at("calibration_seconds")},
          {"quantize_seconds", run.record.metrics.at("quantize_seconds")},
          {"result_file", run.result_file.string()}};
}

std::string results_table(const std::vector<FinishedRun>& runs) {
  std::size_t width = 6;
  for (const FinishedRun& run : runs) width = std::max(width, run.record.label.size());
  std::string out = fmt::format("{:<{}}  {:<18} {:>10} {:>9} {:>6} {:>8} {:>8} {:>8}\n", "run", width, "dataset", "ppl",
                                "Δppl", "bpw", "calib s", "quant s", "total s");
  for (const FinishedRun& run : runs) {
    std::string delta = "";
    for (const FinishedRun& other : runs) {
      if (is_fp(other) && same_evaluation(run, other)) {
        delta = fmt::format("{:+.4f}", run.record.metrics.at("ppl") - other.record.metrics.at("ppl"));
        break;
      }
    }
    std::string dataset = run.config->get_string("eval.dataset");
    if (dataset.size() > 18) dataset = "…" + dataset.substr(dataset.size() - 17);
    const auto& m = run.record.metrics;
    out += fmt::format("{:<{}}  {:<18} {:>10.4f} {:>9} {:>6.2f} {:>8.1f} {:>8.1f} {:>8.1f}\n", run.record.label, width,
                       dataset, m.at("ppl"), delta, m.at("bits_per_weight"), m.at("calibration_seconds"),
                       m.at("quantize_seconds"), m.at("seconds"));
  }
  return out;
}

}  // namespace serq
