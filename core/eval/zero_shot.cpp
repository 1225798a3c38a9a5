// Zero-shot task evaluation: items → loglikelihood requests → per-item 0/1 scores → lm-eval's metrics.
#include "core/eval/zero_shot.h"

#include <chrono>
#include <cmath>
#include <numeric>

#include "core/common/error.h"
#include "core/common/progress.h"
#include "core/eval/loglikelihood.h"

namespace serq {
namespace {

double mean(std::span<const double> values) {
  return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

// Characters (Unicode code points) of UTF-8 text: Python's len(str), which lm-eval's acc_norm divides by.
std::size_t characters(const std::string& utf8) {
  std::size_t n = 0;
  for (const char c : utf8) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;  // not a continuation byte
  return n;
}

// The first index of the highest score (numpy argmax).
std::size_t first_argmax(const std::vector<double>& scores) {
  std::size_t best = 0;
  for (std::size_t j = 1; j < scores.size(); ++j) {
    if (scores[j] > scores[best]) best = j;
  }
  return best;
}

void check_item(const Task& task, std::size_t index) {
  const TaskItem& item = task.items[index];
  const int n = static_cast<int>(item.choices.size());
  if (task.kind == TaskKind::last_word) {
    SERQ_CHECK(n == 1, "task {}: item {} has {} choices; a last-word task has exactly one", task.name, index, n);
  }
  SERQ_CHECK(item.gold >= 0 && item.gold < n, "task {}: item {} has gold {} but {} choices; gold must be in 0..{}",
             task.name, index, item.gold, n, n - 1);
  if (task.kind == TaskKind::multiple_choice && task.has_acc_norm) {
    for (int j = 0; j < n; ++j) {
      SERQ_CHECK(!item.choices[j].text.empty(), "task {}: item {} choice {} has an empty text; acc_norm divides by "
                 "its length in characters, so every choice needs its text", task.name, index, j);
    }
  }
}

}  // namespace

double mean_stderr(std::span<const double> values) {
  const std::size_t n = values.size();
  if (n < 2) return 0.0;
  const double mu = mean(values);
  double squares = 0.0;
  for (double v : values) squares += (v - mu) * (v - mu);
  return std::sqrt(squares / static_cast<double>(n - 1)) / std::sqrt(static_cast<double>(n));
}

TaskResult evaluate_task(const ResidentModel& resident, const Tokenizer& tokenizer, const Task& task,
                         const ZeroShotSettings& settings) {
  const Model& model = resident.model();
  const auto start = std::chrono::steady_clock::now();
  SERQ_CHECK(!task.items.empty(), "task {}: no items were loaded from {}; check the task's files", task.name,
             task.source);
  const int max_length = model.config.max_seq_len;
  std::vector<TokenizedRequest> requests;
  for (std::size_t i = 0; i < task.items.size(); ++i) {
    check_item(task, i);
    const auto& choices = task.items[i].choices;
    for (std::size_t j = 0; j < choices.size(); ++j) {
      try {
        requests.push_back(tokenize_request(tokenizer, choices[j].context, choices[j].continuation, settings.bos,
                                            model.config.bos_id));
      } catch (const Error& e) {
        fail("task {}: item {} choice {}: {}", task.name, i, j, e.what());
      }
    }
  }

  Progress progress("task " + task.name, static_cast<std::int64_t>(requests.size()), "req");
  const std::vector<Loglikelihood> scores =
      score_requests(resident, requests, settings.batch_size, max_length, &progress, settings.share_contexts);
  progress.finish();

  TaskResult result;
  result.name = task.name;
  result.items = static_cast<std::int64_t>(task.items.size());
  result.requests = static_cast<std::int64_t>(requests.size());
  for (const Loglikelihood& s : scores) result.truncated += s.truncated ? 1 : 0;

  std::vector<double> correct, correct_norm, item_logprob;
  std::size_t next = 0;  // the first request of the current item
  for (std::size_t i = 0; i < task.items.size(); ++i) {
    const TaskItem& item = task.items[i];
    ItemScore score;
    score.index = static_cast<std::int64_t>(i);
    score.gold = item.gold;
    std::vector<double> normalized;
    for (const TaskChoice& choice : item.choices) {
      score.loglik.push_back(scores[next].logprob);
      score.tokens.push_back(static_cast<std::int64_t>(requests[next].continuation.size()));
      score.characters.push_back(static_cast<std::int64_t>(characters(choice.text)));
      if (task.has_acc_norm) normalized.push_back(scores[next].logprob / static_cast<double>(score.characters.back()));
      ++next;
    }
    if (task.kind == TaskKind::last_word) {
      score.prediction = scores[next - 1].greedy ? 0 : -1;
      item_logprob.push_back(score.loglik[0]);
    } else {
      score.prediction = static_cast<std::int64_t>(first_argmax(score.loglik));
      if (task.has_acc_norm) {
        score.prediction_norm = static_cast<std::int64_t>(first_argmax(normalized));
        correct_norm.push_back(score.prediction_norm == score.gold ? 1.0 : 0.0);
      }
    }
    correct.push_back(score.prediction == score.gold ? 1.0 : 0.0);
    result.item_scores.push_back(std::move(score));
  }

  result.acc = mean(correct);
  result.acc_stderr = mean_stderr(correct);
  if (!correct_norm.empty()) {
    result.acc_norm = mean(correct_norm);
    result.acc_norm_stderr = mean_stderr(correct_norm);
  }
  if (task.kind == TaskKind::last_word) {
    result.ppl = std::exp(-mean(item_logprob));
    result.ppl_stderr = *result.ppl * mean_stderr(item_logprob);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

double zero_shot_average(const std::vector<TaskResult>& results) {
  SERQ_CHECK(!results.empty(), "zero-shot average: no task results to average; list tasks under eval.tasks");
  double sum = 0.0;
  for (const TaskResult& r : results) sum += r.headline();
  return sum / static_cast<double>(results.size());
}

TaskResult evaluate_task(const Model& model, const Tokenizer& tokenizer, const Task& task,
                         const ZeroShotSettings& settings) {
  const ResidentModel resident(model, *model.backend);
  return evaluate_task(resident, tokenizer, task, settings);
}

}  // namespace serq
