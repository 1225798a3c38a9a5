// serq-compare: is run B different from run A beyond the sampling of windows and items? A paired bootstrap over
// windows for the perplexity ratio and ΔKLD, and McNemar's exact test per zero-shot task.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <string>
#include <vector>

#include "core/common/error.h"
#include "experiments/compare.h"

namespace {

constexpr const char* kUsage = R"(usage: serq-compare RUN_A RUN_B [--results DIR] [--resamples N] [--seed S]
                    [--level L] [--json]

Compares run B against run A over the windows and items both scored. A run is a run.h5 file, its directory, or a
run id (or its first 6+ characters) found below --results (default: results).

  perplexity   B/A, with a percentile bootstrap interval over windows: each resample draws the windows with
               replacement, the same draw for both runs (paired), and recomputes both perplexities
  mean KLD     B - A and its interval the same way, where both runs set eval.kld: true
  tasks        per zero-shot task logged in both runs (eval.log_items: true): accuracy (acc_norm where the task has
               it) of each run, the items right under one run only, and McNemar's exact two-sided p-value

Options:
  --results DIR    where run ids are looked up (default: results)
  --resamples N    bootstrap resamples (default: 10000)
  --seed S         the bootstrap's seed (default: 0); the same seed gives the same intervals anywhere
  --level L        confidence level of the intervals, 0 < L < 1 (default: 0.95)
  --json           print one JSON object instead of the report

The runs must have scored the same windows (eval.dataset, eval.seq_len and window lengths), else the error says what
differs. Exit status: 0 on success, 1 on an error (a run not found or not comparable), 2 on bad usage.
)";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "serq-compare: %s (see serq-compare --help)\n", message.c_str());
  std::exit(2);
}

// The value after option `name`, parsed whole: a count of 0 or more for integral types, else a number.
template <class Number>
Number number_argument(int& i, int argc, char** argv, const std::string& name) {
  if (i + 1 >= argc) usage_error(name + " needs a value");
  const std::string text = argv[++i];
  char* end = nullptr;
  if constexpr (std::is_integral_v<Number>) {
    const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || text[0] == '-' || *end != '\0' ||
        value > static_cast<unsigned long long>(std::numeric_limits<Number>::max())) {
      usage_error(name + " needs a whole number of 0 or more, not '" + text + "'");
    }
    return static_cast<Number>(value);
  } else {
    const double value = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0') usage_error(name + " needs a number, not '" + text + "'");
    return static_cast<Number>(value);
  }
}

nlohmann::json interval_json(const serq::Interval& interval) { return {interval.low, interval.high}; }

nlohmann::json comparison_json(const serq::RunRecord& a, const serq::RunRecord& b, const serq::Comparison& c,
                               const serq::CompareSettings& settings) {
  const serq::PerplexityComparison& p = c.perplexity;
  nlohmann::json json = {{"a", {{"run_id", a.run_id}, {"label", a.label}}},
                         {"b", {{"run_id", b.run_id}, {"label", b.label}}},
                         {"resamples", settings.resamples},
                         {"seed", settings.seed},
                         {"level", settings.level},
                         {"windows", p.windows},
                         {"tokens", p.tokens},
                         {"ppl_a", p.ppl_a},
                         {"ppl_b", p.ppl_b},
                         {"ppl_ratio", p.ratio},
                         {"ppl_ratio_interval", interval_json(p.ratio_interval)},
                         {"notes", c.notes}};
  if (p.kld_delta) {
    json["kld_a"] = *p.kld_a;
    json["kld_b"] = *p.kld_b;
    json["kld_delta"] = *p.kld_delta;
    json["kld_delta_interval"] = interval_json(*p.kld_delta_interval);
  }
  json["tasks"] = nlohmann::json::array();
  for (const serq::TaskComparison& t : c.tasks) {
    json["tasks"].push_back({{"task", t.task}, {"metric", t.metric}, {"items", t.items},
                             {"accuracy_a", t.accuracy_a}, {"accuracy_b", t.accuracy_b}, {"only_a", t.only_a},
                             {"only_b", t.only_b}, {"mcnemar_p", t.p_value}});
  }
  return json;
}

}  // namespace

int main(int argc, char** argv) try {
  std::vector<std::string> runs;
  std::filesystem::path results = "results";
  serq::CompareSettings settings;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("%s", kUsage);
      return 0;
    } else if (arg == "--results") {
      if (i + 1 >= argc) usage_error("--results needs a value");
      results = argv[++i];
    } else if (arg == "--resamples") {
      settings.resamples = number_argument<int>(i, argc, argv, arg);
      if (settings.resamples < 1) usage_error("--resamples needs a count of 1 or more");
    } else if (arg == "--seed") {
      settings.seed = number_argument<std::uint64_t>(i, argc, argv, arg);
    } else if (arg == "--level") {
      settings.level = number_argument<double>(i, argc, argv, arg);
      if (!(settings.level > 0.0 && settings.level < 1.0)) usage_error("--level needs a number between 0 and 1");
    } else if (arg == "--json") {
      json = true;
    } else if (!arg.empty() && arg[0] == '-') {
      usage_error("unknown option " + arg);
    } else {
      runs.push_back(arg);
    }
  }
  if (runs.size() != 2) usage_error("give two runs, A and B");
  const serq::RunRecord a = serq::read_run_record(serq::find_run_file(runs[0], results));
  const serq::RunRecord b = serq::read_run_record(serq::find_run_file(runs[1], results));
  const serq::Comparison comparison = serq::compare_runs(a, b, settings);
  if (json) {
    std::printf("%s\n", comparison_json(a, b, comparison, settings).dump().c_str());
  } else {
    std::printf("%s", serq::format_comparison(a, b, comparison, settings).c_str());
  }
  return 0;
} catch (const serq::Error& e) {
  std::fprintf(stderr, "serq-compare: error: %s\n", e.what());
  return 1;
}
