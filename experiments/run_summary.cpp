// JSON lines and the closing results table of serq-run.
#include "experiments/run_summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/common/text.h"

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

// Whether the run took its calibration statistics from an earlier computation (memory or the disk cache).
bool calibration_reused(const FinishedRun& run) {
  const auto source = run.record.info.find("calibration_source");
  return source != run.record.info.end() && (source->second == "memory" || source->second.starts_with("disk:"));
}

// The layer with the lowest output QSNR (NaN layers left out); nullptr when there is none.
const LayerDiagnostics* worst_layer(const RunRecord& record) {
  const LayerDiagnostics* worst = nullptr;
  for (const LayerDiagnostics& layer : record.layers) {
    if (!std::isnan(layer.output_qsnr_db) && (!worst || layer.output_qsnr_db < worst->output_qsnr_db)) worst = &layer;
  }
  return worst;
}

// A metric as table text, or "" for a run that does not have it.
std::string metric_text(const FinishedRun& run, const std::string& name, const char* format) {
  const auto value = run.record.metrics.find(name);
  return value == run.record.metrics.end() ? "" : fmt::format(fmt::runtime(format), value->second);
}

bool any_has(const std::vector<FinishedRun>& runs, const std::string& metric) {
  return std::any_of(runs.begin(), runs.end(), [&](const FinishedRun& run) { return run.record.metrics.contains(metric); });
}

}  // namespace

nlohmann::json run_summary_json(const FinishedRun& run) {
  const ResolvedConfig& c = *run.config;
  nlohmann::json json = {{"run_id", run.record.run_id},
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
                         {"calibration_load_seconds", run.record.metrics.at("calibration_load_seconds")},
                         {"calibration_source", run.record.info.at("calibration_source")},
                         {"quantize_seconds", run.record.metrics.at("quantize_seconds")},
                         {"backend", run.record.info.at("backend")},
                         {"kernels", run.record.info.at("kernels")},
                         {"result_file", run.result_file.string()}};
  const auto& counts = run.record.counts;
  for (const char* name : {"host_to_backend_bytes", "backend_to_host_bytes"}) {  // absent from older result files
    if (const auto bytes = counts.find(name); bytes != counts.end()) json[name] = bytes->second;
  }
  const auto& metrics = run.record.metrics;
  if (const auto eval = metrics.find("eval_seconds"); eval != metrics.end()) json["eval_seconds"] = eval->second;
  if (metrics.contains("kld.mean")) {
    for (const char* name : {"mean", "median", "p99", "max", "top1_agreement", "dp_mean"}) {
      json["kld"][name] = metrics.at(std::string("kld.") + name);
    }
  }
  if (const auto tasks = run.record.info.find("zero_shot.tasks"); tasks != run.record.info.end()) {
    for (const std::string_view task_name : split(tasks->second, ",")) {
      const std::string task(task_name);
      for (const char* name : {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "ppl", "ppl_stderr"}) {
        if (const auto value = metrics.find(task + "." + name); value != metrics.end()) {
          json["tasks"][task][name] = value->second;
        }
      }
    }
    json["zero_shot_avg"] = metrics.at("zero_shot.avg");
  }
  if (const LayerDiagnostics* worst = worst_layer(run.record)) {
    json["worst_layer"] = worst->name;
    json["worst_layer_qsnr_db"] = worst->output_qsnr_db;
  }
  return json;
}

std::string results_table(const std::vector<FinishedRun>& runs) {
  std::size_t width = 6;
  for (const FinishedRun& run : runs) width = std::max(width, run.record.label.size());
  const bool kld = any_has(runs, "kld.mean"), zero_shot = any_has(runs, "zero_shot.avg");
  std::string out = fmt::format("{:<{}}  {:<18} {:>10} {:>9}", "run", width, "dataset", "ppl", "Δppl");
  if (kld) out += fmt::format(" {:>8} {:>6}", "KLD", "top-1");
  if (zero_shot) out += fmt::format(" {:>7}", "0-shot");
  out += fmt::format(" {:>6} {:>8} {:>8} {:>8}\n", "bpw", "calib s", "quant s", "total s");
  bool any_reused = false;
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
    const bool reused = calibration_reused(run);
    any_reused = any_reused || reused;
    out += fmt::format("{:<{}}  {:<18} {:>10.4f} {:>9}", run.record.label, width, dataset, m.at("ppl"), delta);
    if (kld) out += fmt::format(" {:>8} {:>6}", metric_text(run, "kld.mean", "{:.4f}"),
                                metric_text(run, "kld.top1_agreement", "{:.3f}"));
    if (zero_shot) out += fmt::format(" {:>7}", metric_text(run, "zero_shot.avg", "{:.4f}"));
    out += fmt::format(" {:>6.2f} {:>8} {:>8.1f} {:>8.1f}\n", m.at("bits_per_weight"),
                       fmt::format("{:.1f}{}", m.at("calibration_seconds"), reused ? "*" : " "),
                       m.at("quantize_seconds"), m.at("seconds"));
  }
  if (any_reused) out += "* calibration reused from the cache (memory or disk); calib s is its one-time cost\n";
  return out;
}

}  // namespace serq
