// Paired comparison of two runs; see compare.h.
#include "experiments/compare.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/common/error.h"

namespace serq {
namespace {

std::string describe(const RunRecord& run) { return fmt::format("{} ({})", run.label, run.run_id); }

// eval.<key> of the run's resolved config, as its YAML text.
std::string eval_setting(const RunRecord& run, const std::string& key) {
  try {
    const YAML::Node node = YAML::Load(run.config_yaml)["eval"][key];
    return node && node.IsScalar() ? node.Scalar() : "";
  } catch (const YAML::Exception& e) {
    fail("run {}: its stored config is not valid YAML ({}); re-run it", describe(run), e.what());
  }
}

void check_same_windows(const RunRecord& a, const RunRecord& b) {
  for (const RunRecord* run : {&a, &b}) {
    SERQ_CHECK(!run->windows.empty(), "run {}: its run.h5 has no per-window scores (/windows), which serq records "
               "since serq-compare exists; re-run it with this build", describe(*run));
  }
  for (const char* key : {"dataset", "seq_len"}) {
    SERQ_CHECK(eval_setting(a, key) == eval_setting(b, key), "the runs scored different windows: eval.{} is {} in "
               "{} but {} in {}; compare runs of one evaluation", key, eval_setting(a, key), describe(a),
               eval_setting(b, key), describe(b));
  }
  SERQ_CHECK(a.windows.size() == b.windows.size(), "the runs scored different windows: {} has {} and {} has {}; "
             "compare runs with the same eval.max_windows", describe(a), a.windows.size(), describe(b),
             b.windows.size());
  for (std::size_t w = 0; w < a.windows.size(); ++w) {
    SERQ_CHECK(a.windows[w].tokens == b.windows[w].tokens, "the runs scored different windows: window {} has {} "
               "tokens in {} but {} in {}", w, a.windows[w].tokens, describe(a), b.windows[w].tokens, describe(b));
  }
}

// Σ weight · field over the windows.
double weighted_sum(const std::vector<WindowScore>& windows, std::span<const double> weights,
                    double (*field)(const WindowScore&)) {
  double sum = 0.0;
  for (std::size_t w = 0; w < windows.size(); ++w) sum += weights[w] * field(windows[w]);
  return sum;
}

double tokens_of(const WindowScore& w) { return static_cast<double>(w.tokens); }
double nll_of(const WindowScore& w) { return w.nll_sum; }
double kld_of(const WindowScore& w) { return w.kld_sum; }

PerplexityComparison compare_perplexity(const RunRecord& a, const RunRecord& b, const CompareSettings& settings) {
  check_same_windows(a, b);
  PerplexityComparison result;
  const std::vector<double> ones(a.windows.size(), 1.0);
  const double tokens = weighted_sum(a.windows, ones, tokens_of);
  result.windows = static_cast<std::int64_t>(a.windows.size());
  result.tokens = static_cast<std::int64_t>(tokens);
  result.ppl_a = std::exp(weighted_sum(a.windows, ones, nll_of) / tokens);
  result.ppl_b = std::exp(weighted_sum(b.windows, ones, nll_of) / tokens);
  // The ratio of perplexities is exp of the difference of mean NLLs over the same tokens.
  const auto log_ratio = [&](std::span<const double> weights) {
    const double n = weighted_sum(a.windows, weights, tokens_of);
    return weighted_sum(b.windows, weights, nll_of) / n - weighted_sum(a.windows, weights, nll_of) / n;
  };
  result.ratio = std::exp(log_ratio(ones));
  const Interval log_interval =
      bootstrap_interval(a.windows.size(), log_ratio, settings.resamples, settings.seed, settings.level);
  result.ratio_interval = {std::exp(log_interval.low), std::exp(log_interval.high)};
  if (a.metrics.count("kld.mean") && b.metrics.count("kld.mean")) {
    const auto delta_kld = [&](std::span<const double> weights) {
      return (weighted_sum(b.windows, weights, kld_of) - weighted_sum(a.windows, weights, kld_of)) /
             weighted_sum(a.windows, weights, tokens_of);
    };
    result.kld_a = weighted_sum(a.windows, ones, kld_of) / tokens;
    result.kld_b = weighted_sum(b.windows, ones, kld_of) / tokens;
    result.kld_delta = delta_kld(ones);
    result.kld_delta_interval =
        bootstrap_interval(a.windows.size(), delta_kld, settings.resamples, settings.seed, settings.level);
  }
  return result;
}

// acc_norm where every item has a normalized prediction (the task has acc_norm), else acc.
bool uses_acc_norm(const std::vector<ItemScore>& items) {
  return std::all_of(items.begin(), items.end(), [](const ItemScore& item) { return item.prediction_norm >= 0; });
}

bool correct(const ItemScore& item, bool norm) { return (norm ? item.prediction_norm : item.prediction) == item.gold; }

TaskComparison compare_task(const std::string& task, const std::vector<ItemScore>& a, const std::vector<ItemScore>& b,
                            const RunRecord& run_a, const RunRecord& run_b) {
  std::map<std::int64_t, const ItemScore*> in_b;
  for (const ItemScore& item : b) in_b[item.index] = &item;
  TaskComparison result;
  result.task = task;
  result.metric = uses_acc_norm(a) && uses_acc_norm(b) ? "acc_norm" : "acc";
  const bool norm = result.metric == "acc_norm";
  std::int64_t right_a = 0, right_b = 0;
  for (const ItemScore& item : a) {
    const auto found = in_b.find(item.index);
    if (found == in_b.end()) continue;
    SERQ_CHECK(found->second->gold == item.gold, "task {}: item {} has gold {} in {} but {} in {}; the runs read "
               "different task files", task, item.index, item.gold, describe(run_a), found->second->gold,
               describe(run_b));
    const bool ok_a = correct(item, norm), ok_b = correct(*found->second, norm);
    ++result.items;
    right_a += ok_a;
    right_b += ok_b;
    result.only_a += ok_a && !ok_b;
    result.only_b += ok_b && !ok_a;
  }
  if (result.items > 0) {
    result.accuracy_a = static_cast<double>(right_a) / static_cast<double>(result.items);
    result.accuracy_b = static_cast<double>(right_b) / static_cast<double>(result.items);
  }
  result.p_value = mcnemar_exact_p(result.only_a, result.only_b);
  return result;
}

std::string signed_number(double value, int precision) { return fmt::format("{:+.{}f}", value, precision); }

}  // namespace

Comparison compare_runs(const RunRecord& a, const RunRecord& b, const CompareSettings& settings) {
  Comparison comparison;
  comparison.perplexity = compare_perplexity(a, b, settings);
  if (!comparison.perplexity.kld_delta) {
    comparison.notes.push_back("no KLD comparison: it needs eval.kld: true in both runs");
  }
  for (const auto& [task, items] : a.items) {
    const auto found = b.items.find(task);
    if (found == b.items.end()) {
      comparison.notes.push_back(fmt::format("task {}: per-item scores in A only", task));
      continue;
    }
    TaskComparison task_comparison = compare_task(task, items, found->second, a, b);
    if (task_comparison.items == 0) {
      comparison.notes.push_back(fmt::format("task {}: no item scored in both runs", task));
      continue;
    }
    comparison.tasks.push_back(std::move(task_comparison));
  }
  for (const auto& [task, items] : b.items) {
    if (!a.items.count(task)) comparison.notes.push_back(fmt::format("task {}: per-item scores in B only", task));
  }
  const bool tasks_a = a.metrics.count("zero_shot.avg") > 0, tasks_b = b.metrics.count("zero_shot.avg") > 0;
  if ((tasks_a && a.items.empty()) || (tasks_b && b.items.empty())) {
    comparison.notes.push_back("zero-shot tasks ran without per-item scores; set eval.log_items: true to compare "
                               "them item by item");
  }
  return comparison;
}

std::filesystem::path find_run_file(const std::string& name, const std::filesystem::path& results) {
  const std::filesystem::path given(name);
  if (std::filesystem::is_regular_file(given)) return given;
  if (std::filesystem::is_regular_file(given / "run.h5")) return given / "run.h5";
  SERQ_CHECK(name.size() >= 6 && name.find('/') == std::string::npos, "{}: no such run.h5 file or run directory; "
             "give a path, or a run id (at least its first 6 characters) found under --results", name);
  SERQ_CHECK(std::filesystem::is_directory(results), "{}: not a file, and the results directory {} to look for it "
             "as a run id does not exist; give the run.h5 path or --results DIR", name, results.string());
  std::vector<std::filesystem::path> matches;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(results)) {
    if (entry.is_directory() && entry.path().filename().string().rfind(name, 0) == 0 &&
        std::filesystem::is_regular_file(entry.path() / "run.h5")) {
      matches.push_back(entry.path() / "run.h5");
    }
  }
  SERQ_CHECK(!matches.empty(), "{}: no run with this id below {}; check the id (serq-run --dry-run lists them) or "
             "--results DIR", name, results.string());
  std::sort(matches.begin(), matches.end());
  SERQ_CHECK(matches.size() == 1, "{}: {} runs below {} start with this id ({}, {}, ...); give more of it", name,
             matches.size(), results.string(), matches[0].string(), matches[1].string());
  return matches.front();
}

std::string format_comparison(const RunRecord& a, const RunRecord& b, const Comparison& comparison,
                              const CompareSettings& settings) {
  const PerplexityComparison& p = comparison.perplexity;
  const int percent = static_cast<int>(std::lround(settings.level * 100));
  std::string text = fmt::format("A: {}\nB: {}\n", describe(a), describe(b));
  text += fmt::format("{} windows, {} scored tokens; {}% intervals: percentile bootstrap over windows, {} paired "
                      "resamples, seed {}\n\n", p.windows, p.tokens, percent, settings.resamples, settings.seed);
  text += fmt::format("perplexity  A {:.4f}  B {:.4f}  B/A {:.4f}  [{:.4f}, {:.4f}]{}\n", p.ppl_a, p.ppl_b, p.ratio,
                      p.ratio_interval.low, p.ratio_interval.high,
                      p.ratio_interval.low > 1.0 || p.ratio_interval.high < 1.0
                          ? "  (excludes 1)" : "  (includes 1: not separated by these windows)");
  if (p.kld_delta) {
    text += fmt::format("mean KLD    A {:.4f}  B {:.4f}  B-A {}  [{}, {}]{}\n", *p.kld_a, *p.kld_b,
                        signed_number(*p.kld_delta, 4), signed_number(p.kld_delta_interval->low, 4),
                        signed_number(p.kld_delta_interval->high, 4),
                        p.kld_delta_interval->low > 0.0 || p.kld_delta_interval->high < 0.0 ? "  (excludes 0)"
                                                                                            : "  (includes 0)");
  }
  if (!comparison.tasks.empty()) {
    text += fmt::format("\n{:<16} {:<8} {:>6} {:>7} {:>7} {:>8} {:>7} {:>7} {:>10}\n", "task", "metric", "items", "A",
                        "B", "B-A", "only A", "only B", "McNemar p");
    for (const TaskComparison& t : comparison.tasks) {
      text += fmt::format("{:<16} {:<8} {:>6} {:>7.4f} {:>7.4f} {:>8} {:>7} {:>7} {:>10.4g}\n", t.task, t.metric,
                          t.items, t.accuracy_a, t.accuracy_b, signed_number(t.accuracy_b - t.accuracy_a, 4), t.only_a,
                          t.only_b, t.p_value);
    }
  }
  for (const std::string& note : comparison.notes) text += "note: " + note + "\n";
  return text;
}

}  // namespace serq
