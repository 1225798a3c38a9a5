// The names under which evaluation results go into a run's record (run.h5 /metrics, /counts, /info), so the
// result file, the --json line, the closing table and tools/serq_table.py all read the same keys:
//   kld.mean, kld.median, kld.p99, kld.max, kld.top1_agreement, kld.dp_mean, kld.dp_p01 ... kld.reference_ppl;
//   <task>.acc, <task>.acc_stderr, <task>.acc_norm(_stderr) where defined, lambada_openai.ppl(_stderr);
//   zero_shot.avg (acc_norm where defined, else acc, averaged over the tasks that ran).
#pragma once

#include <vector>

#include "core/eval/kld.h"
#include "core/eval/zero_shot.h"
#include "core/formats/result_file.h"

namespace serq {

void record_kld(const KldResult& kld, RunRecord& record);
void record_tasks(const std::vector<TaskResult>& tasks, RunRecord& record);

}  // namespace serq
