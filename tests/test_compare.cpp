// Paired comparisons of two runs: McNemar's exact test and the paired bootstrap against values worked by hand,
// compare_runs on synthetic pairs with known differences and on mismatched runs, and serq-compare on real runs.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <cmath>

#include "core/common/error.h"
#include "core/eval/paired_stats.h"
#include "experiments/compare.h"
#include "tests/support/serq_run.h"

using namespace serq;

namespace {

// A run over windows of 100 tokens with the given NLL sums (KLD sums a tenth of them).
RunRecord run_with_windows(const std::string& id, const std::vector<double>& nll_sums) {
  RunRecord run;
  run.run_id = id;
  run.label = "run " + id;
  run.config_yaml = "eval:\n  dataset: \"wikitext2\"\n  seq_len: 101\n";
  for (const double nll : nll_sums) run.windows.push_back({100, nll, nll / 10});
  run.metrics["kld.mean"] = 0.0;  // present: the run measured KLD
  return run;
}

// A multiple-choice task of `items` two-choice items, gold 0; items listed in `wrong` predict 1.
std::vector<ItemScore> task_items(int items, const std::vector<int>& wrong) {
  std::vector<ItemScore> scores;
  for (int i = 0; i < items; ++i) {
    const bool miss = std::find(wrong.begin(), wrong.end(), i) != wrong.end();
    scores.push_back({i, 0, miss ? 1 : 0, miss ? 1 : 0, {-1.0, miss ? -0.5 : -2.0}, {1, 1}, {3, 3}});
  }
  return scores;
}

// P(X ≤ k) for X ~ Binomial(n, 1/2), from the binomial coefficients built row by row (Pascal's rule, exact in
// double for n ≤ 50).
double binomial_tail(int n, int k) {
  std::vector<double> row = {1.0};
  for (int m = 1; m <= n; ++m) {
    std::vector<double> next(static_cast<std::size_t>(m) + 1, 1.0);
    for (int j = 1; j < m; ++j) next[j] = row[j - 1] + row[j];
    row = next;
  }
  double tail = 0.0;
  for (int j = 0; j <= k; ++j) tail += row[j];
  return tail / std::pow(2.0, n);
}

}  // namespace

TEST_CASE("McNemar's exact p-value is twice the binomial tail, capped at 1") {
  CHECK(mcnemar_exact_p(0, 0) == 1.0);
  CHECK(mcnemar_exact_p(3, 1) == Approx(0.625).epsilon(1e-12));  // 2 · (1 + 4) / 16
  CHECK(mcnemar_exact_p(5, 0) == Approx(0.0625).epsilon(1e-12));  // 2 / 32
  CHECK(mcnemar_exact_p(0, 5) == Approx(0.0625).epsilon(1e-12));
  CHECK(mcnemar_exact_p(7, 7) == 1.0);
  CHECK(mcnemar_exact_p(30, 10) == Approx(2 * binomial_tail(40, 10)).epsilon(1e-10));  // 0.00222...
  CHECK(mcnemar_exact_p(2000, 1900) > 0.05);  // large counts stay finite
  CHECK(mcnemar_exact_p(2000, 1700) < 1e-3);
  CHECK_THROWS_AS(mcnemar_exact_p(-1, 2), Error);
}

TEST_CASE("the paired bootstrap's interval spans the resampled statistic, the same for the same seed") {
  // Two units: a resample is both copies of unit 0 (p = 1/4), one of each (1/2) or both of unit 1 (1/4), so the
  // 2.5% and 97.5% quantiles of the weighted mean are unit 0's and unit 1's values.
  const std::vector<double> values = {0.1, 0.3};
  const auto mean = [&](std::span<const double> w) { return (w[0] * values[0] + w[1] * values[1]) / (w[0] + w[1]); };
  const Interval two = bootstrap_interval(2, mean, 10000, 0, 0.95);
  CHECK(two.low == 0.1);
  CHECK(two.high == 0.3);
  // One unit: every resample is that unit.
  const Interval one = bootstrap_interval(1, [](std::span<const double> w) { return w[0]; }, 100, 3, 0.95);
  CHECK(one.low == 1.0);
  CHECK(one.high == 1.0);
  // Many units: the interval of a mean is about ±1.96 standard errors, and repeats exactly for one seed.
  std::vector<double> many;
  for (int i = 0; i < 400; ++i) many.push_back(i % 2 == 0 ? 1.0 : 0.0);  // mean 0.5, stderr 0.025
  const auto mean_many = [&](std::span<const double> w) {
    double sum = 0.0, count = 0.0;
    for (std::size_t i = 0; i < many.size(); ++i) {
      sum += w[i] * many[i];
      count += w[i];
    }
    return sum / count;
  };
  const Interval a = bootstrap_interval(many.size(), mean_many, 4000, 7, 0.95);
  const Interval b = bootstrap_interval(many.size(), mean_many, 4000, 7, 0.95);
  const Interval c = bootstrap_interval(many.size(), mean_many, 4000, 8, 0.95);
  CHECK(a.low == b.low);
  CHECK(a.high == b.high);
  CHECK((a.low != c.low || a.high != c.high));
  CHECK(a.low == Approx(0.5 - 1.96 * 0.025).margin(0.006));
  CHECK(a.high == Approx(0.5 + 1.96 * 0.025).margin(0.006));
  CHECK_THROWS_AS(bootstrap_interval(0, mean, 10, 0, 0.95), Error);
  CHECK_THROWS_AS(bootstrap_interval(2, mean, 10, 0, 1.0), Error);
}

TEST_CASE("a run compared with itself gives a ratio of exactly 1, a zero-width interval and p = 1") {
  RunRecord run = run_with_windows("a1b2c3", {312.5, 290.0, 401.25, 333.0});
  run.items["piqa"] = task_items(20, {3, 5, 8});
  const Comparison c = compare_runs(run, run, {});
  CHECK(c.perplexity.ratio == 1.0);
  CHECK(c.perplexity.ratio_interval.low == 1.0);
  CHECK(c.perplexity.ratio_interval.high == 1.0);
  REQUIRE(c.perplexity.kld_delta);
  CHECK(*c.perplexity.kld_delta == 0.0);
  REQUIRE(c.tasks.size() == 1);
  CHECK(c.tasks[0].metric == "acc_norm");
  CHECK(c.tasks[0].items == 20);
  CHECK(c.tasks[0].accuracy_a == Approx(17.0 / 20));
  CHECK(c.tasks[0].only_a == 0);
  CHECK(c.tasks[0].only_b == 0);
  CHECK(c.tasks[0].p_value == 1.0);
}

TEST_CASE("synthetic pairs with known differences give the expected intervals and tests") {
  // B loses 0.05 nats on every token of every window: the ratio is exp(0.05) in every resample.
  const RunRecord a = run_with_windows("aaaaaa", {312.5, 290.0, 401.25, 333.0});
  const RunRecord shifted = run_with_windows("bbbbbb", {317.5, 295.0, 406.25, 338.0});
  const Comparison uniform = compare_runs(a, shifted, {});
  CHECK(uniform.perplexity.ratio == Approx(std::exp(0.05)).epsilon(1e-12));
  CHECK(uniform.perplexity.ratio_interval.low == Approx(std::exp(0.05)).epsilon(1e-12));
  CHECK(uniform.perplexity.ratio_interval.high == Approx(std::exp(0.05)).epsilon(1e-12));
  CHECK(uniform.perplexity.ppl_a == Approx(std::exp((312.5 + 290.0 + 401.25 + 333.0) / 400)).epsilon(1e-12));
  CHECK(*uniform.perplexity.kld_delta == Approx(0.005).epsilon(1e-9));  // KLD sums are a tenth of the NLL sums
  // Two windows that disagree (B worse by 0.1 nats a token on one, 0.3 on the other): the interval runs from one
  // window's ratio to the other's (see the two-unit bootstrap above); the point estimate is their mean, exp(0.2).
  const Comparison mixed = compare_runs(run_with_windows("cccccc", {200.0, 300.0}),
                                        run_with_windows("dddddd", {210.0, 330.0}), {});
  CHECK(mixed.perplexity.ratio == Approx(std::exp(0.2)).epsilon(1e-12));
  CHECK(mixed.perplexity.ratio_interval.low == Approx(std::exp(0.1)).epsilon(1e-12));
  CHECK(mixed.perplexity.ratio_interval.high == Approx(std::exp(0.3)).epsilon(1e-12));
  // Tasks: 5 items right under A only → McNemar p = 2/32; B's extra item (index 20) is not paired.
  RunRecord task_a = a, task_b = shifted;
  task_a.items["copa"] = task_items(20, {});
  task_b.items["copa"] = task_items(21, {1, 2, 3, 4, 5});
  task_a.items["piqa"] = task_items(4, {});
  for (ItemScore& item : task_a.items["copa"]) item.prediction_norm = -1;  // copa reports acc
  const Comparison tasks = compare_runs(task_a, task_b, {});
  REQUIRE(tasks.tasks.size() == 1);
  CHECK(tasks.tasks[0].metric == "acc");
  CHECK(tasks.tasks[0].items == 20);
  CHECK(tasks.tasks[0].accuracy_a == 1.0);
  CHECK(tasks.tasks[0].accuracy_b == 0.75);
  CHECK(tasks.tasks[0].only_a == 5);
  CHECK(tasks.tasks[0].only_b == 0);
  CHECK(tasks.tasks[0].p_value == Approx(0.0625).epsilon(1e-12));
  REQUIRE(tasks.notes.size() == 1);
  CHECK(tasks.notes[0] == "task piqa: per-item scores in A only");
}

TEST_CASE("runs over different windows, or without per-window scores, are refused naming the difference") {
  const RunRecord a = run_with_windows("aaaaaa", {312.5, 290.0});
  RunRecord fewer = run_with_windows("bbbbbb", {312.5});
  CHECK_THROWS_WITH(compare_runs(a, fewer, {}), Catch::Contains("run aaaaaa (aaaaaa) has 2") &&
                                                    Catch::Contains("eval.max_windows"));
  RunRecord other_seq = a;
  other_seq.config_yaml = "eval:\n  dataset: \"wikitext2\"\n  seq_len: 2048\n";
  CHECK_THROWS_WITH(compare_runs(a, other_seq, {}), Catch::Contains("eval.seq_len is 101"));
  RunRecord shorter = a;
  shorter.windows[1].tokens = 99;
  CHECK_THROWS_WITH(compare_runs(a, shorter, {}), Catch::Contains("window 1 has 100 tokens"));
  RunRecord old = a;
  old.windows.clear();
  CHECK_THROWS_WITH(compare_runs(a, old, {}), Catch::Contains("no per-window scores") && Catch::Contains("re-run"));
  RunRecord no_kld = a;
  no_kld.metrics.clear();
  const Comparison c = compare_runs(a, no_kld, {});
  CHECK_FALSE(c.perplexity.kld_delta);
  CHECK(c.notes.at(0).find("eval.kld") != std::string::npos);
}

TEST_CASE("serq-compare finds runs by id and compares a real run with itself: ratio 1, p = 1") {
  const auto dir = test::scratch_dir("serq_compare");
  std::string yaml = test::kSmallRun;
  yaml += "  tasks: piqa\n  task_limit: 12\n  log_items: true\n";
  const test::CliOutput run =
      test::serq_run(test::write_config(dir, yaml).string() + " --json --quiet --out " + (dir / "results").string(),
                     dir);
  INFO("serq-run stderr: " << run.err);
  REQUIRE(run.status == 0);
  const std::string id = nlohmann::json::parse(run.out.substr(0, run.out.find('\n')))["run_id"];
  const test::CliOutput out =
      test::run_binary("serq-compare", {id.substr(0, 8), id, "--results", (dir / "results").string(), "--json"}, dir);
  INFO("serq-compare stderr: " << out.err);
  REQUIRE(out.status == 0);
  const auto json = nlohmann::json::parse(out.out);
  CHECK(json["ppl_ratio"].get<double>() == 1.0);
  CHECK(json["ppl_ratio_interval"][0].get<double>() == 1.0);
  CHECK(json["ppl_ratio_interval"][1].get<double>() == 1.0);
  CHECK(json["windows"] == 4);
  REQUIRE(json["tasks"].size() == 1);
  CHECK(json["tasks"][0]["task"] == "piqa");
  CHECK(json["tasks"][0]["items"] == 12);
  CHECK(json["tasks"][0]["mcnemar_p"].get<double>() == 1.0);

  const test::CliOutput report = test::run_binary(
      "serq-compare", {(dir / "results" / "smoke" / id / "run.h5").string(), id, "--results", (dir / "results").string()},
      dir);
  CHECK(report.status == 0);
  CHECK(report.out.find("B/A 1.0000  [1.0000, 1.0000]") != std::string::npos);

  const test::CliOutput missing =
      test::run_binary("serq-compare", {"ffffffffff", id, "--results", (dir / "results").string()}, dir);
  test::check_one_line_error(missing, {"ffffffffff", "no run with this id"});
  const test::CliOutput usage = test::run_binary("serq-compare", {id}, dir);
  CHECK(usage.status == 2);
  CHECK(test::run_binary("serq-compare", {"--help"}, dir).out.find("McNemar") != std::string::npos);
}
