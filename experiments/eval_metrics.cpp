// Evaluation results written into a RunRecord under the names experiments/eval_metrics.h lists.
#include "experiments/eval_metrics.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <utility>

namespace serq {

void record_kld(const KldResult& kld, RunRecord& record) {
  static constexpr std::pair<const char*, double KldResult::*> kFields[] = {
      {"mean", &KldResult::mean},           {"mean_stderr", &KldResult::mean_stderr},
      {"median", &KldResult::median},       {"p99", &KldResult::p99},
      {"max", &KldResult::max},             {"top1_agreement", &KldResult::top1_agreement},
      {"dp_mean", &KldResult::dp_mean},     {"dp_p01", &KldResult::dp_p01},
      {"dp_p05", &KldResult::dp_p05},       {"dp_median", &KldResult::dp_median},
      {"dp_p95", &KldResult::dp_p95},       {"dp_p99", &KldResult::dp_p99},
      {"reference_ppl", &KldResult::reference_ppl}};
  for (const auto& [name, field] : kFields) record.metrics[std::string("kld.") + name] = kld.*field;
  record.counts["kld.positions"] = kld.positions;
}

void record_tasks(const std::vector<TaskResult>& tasks, RunRecord& record) {
  if (tasks.empty()) return;
  std::vector<std::string> names;
  double seconds = 0.0;
  for (const TaskResult& task : tasks) {
    auto& m = record.metrics;
    m[task.name + ".acc"] = task.acc;
    m[task.name + ".acc_stderr"] = task.acc_stderr;
    if (task.acc_norm) {
      m[task.name + ".acc_norm"] = *task.acc_norm;
      m[task.name + ".acc_norm_stderr"] = *task.acc_norm_stderr;
    }
    if (task.ppl) {
      m[task.name + ".ppl"] = *task.ppl;
      m[task.name + ".ppl_stderr"] = *task.ppl_stderr;
    }
    record.counts[task.name + ".items"] = task.items;
    record.counts[task.name + ".requests"] = task.requests;
    record.counts[task.name + ".truncated"] = task.truncated;
    names.push_back(task.name);
    seconds += task.seconds;
  }
  record.metrics["zero_shot.avg"] = zero_shot_average(tasks);
  record.metrics["zero_shot.seconds"] = seconds;
  record.info["zero_shot.tasks"] = fmt::format("{}", fmt::join(names, ","));
}

}  // namespace serq
