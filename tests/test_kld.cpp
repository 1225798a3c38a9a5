// KL divergence against full precision: the statistics on hand-made logits against a direct formula, zero for a
// model against itself, and growing from RTN W8A8 to W4A4 on the real stories260K.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/data/windows.h"
#include "core/eval/kld.h"
#include "core/eval/perplexity.h"
#include "tests/model_fixtures.h"
#include "tests/support/backend_calls.h"

using namespace serq;

namespace {

// softmax of a row, computed directly: exp(x_v) / Σ exp(x_u) (the logits here are small, so no max shift).
std::vector<double> softmax(const Matrix& logits, Eigen::Index row) {
  std::vector<double> p;
  double sum = 0.0;
  for (Eigen::Index v = 0; v < logits.cols(); ++v) sum += std::exp(static_cast<double>(logits(row, v)));
  for (Eigen::Index v = 0; v < logits.cols(); ++v) p.push_back(std::exp(static_cast<double>(logits(row, v))) / sum);
  return p;
}

PerplexityResult rtn_against_fp(int bits) {
  const Model& fp = test::stories_model("stories260K-hf");
  const Model model = test::stories_rtn(bits);
  KldReference reference(fp, 0);
  return evaluate_perplexity(model, eval_windows(test::tinystories("tinystories-eval"), 512, 16), 8, "rtn",
                             &reference);
}

}  // namespace

TEST_CASE("quantile interpolates linearly between order statistics as numpy does") {
  const std::vector<double> sorted = {1, 2, 3, 4};
  CHECK(quantile(sorted, 0.0) == 1.0);
  CHECK(quantile(sorted, 0.5) == Approx(2.5));
  CHECK(quantile(sorted, 0.99) == Approx(3.97));
  CHECK(quantile(sorted, 1.0) == 4.0);
  CHECK(quantile({7.0}, 0.3) == 7.0);
}

TEST_CASE("KL divergence, top-1 agreement and delta p match a direct computation on hand-made logits") {
  Matrix reference(5, 4), logits(5, 4);
  reference << 1, 2, 3, 4,  0, 0, 0, 0,  2, -1, 0.5, 0,  -3, 1, 1.5, 0,  0.1, 0.2, 0.3, 0.4;
  logits << 1, 2, 3, 4,  1, 0, 0, 0,  -1, 2, 0.5, 0,  -3, 1.4, 1, 0,   0.4, 0.3, 0.2, 0.1;
  const std::vector<int> targets = {3, 0, 1, 2, 0};
  Backend& cpu = cpu_backend();
  KldAccumulator accumulator(cpu);
  const std::span<const int> first = std::span<const int>(targets).first(2), last = std::span<const int>(targets).last(3);
  Buffer work(cpu);
  const auto add = [&](const Matrix& p, const Matrix& q, std::span<const int> t) {
    return accumulator.add(cpu.upload(p, work, "test"), cpu.upload(q, work, "test"), test::ids(work, t));
  };
  const KldAccumulator::Sums top = add(reference.topRows(2), logits.topRows(2), first);
  const KldAccumulator::Sums bottom = add(reference.bottomRows(3), logits.bottomRows(3), last);
  const double nll = top.nll + bottom.nll;
  // The evaluated model's NLL comes with the KL statistics, bit for bit what the nll op computes.
  CHECK(nll == test::nll_sum(cpu, logits.topRows(2), first) + test::nll_sum(cpu, logits.bottomRows(3), last));
  const KldResult result = accumulator.result();

  std::vector<double> kld, delta_p;
  double reference_nll = 0.0;
  int agree = 0;
  for (Eigen::Index r = 0; r < 5; ++r) {
    const std::vector<double> p = softmax(reference, r), q = softmax(logits, r);
    double k = 0.0;
    for (std::size_t v = 0; v < p.size(); ++v) k += p[v] * std::log(p[v] / q[v]);
    kld.push_back(k);
    const auto t = static_cast<std::size_t>(targets[static_cast<std::size_t>(r)]);
    delta_p.push_back(q[t] - p[t]);
    reference_nll -= std::log(p[t]);
    agree += std::max_element(p.begin(), p.end()) - p.begin() == std::max_element(q.begin(), q.end()) - q.begin();
  }
  CHECK(kld[0] == Approx(0.0).margin(1e-12));  // row 0: the same logits
  CHECK(agree == 2);  // rows 0 and 1 (a tie of four goes to the first token in both); rows 2-4 differ
  CHECK(result.positions == 5);
  double mean = 0.0;
  for (double k : kld) mean += k / 5;
  CHECK(result.mean == Approx(mean).epsilon(1e-9));
  CHECK(top.kld == Approx(kld[0] + kld[1]).margin(1e-12));  // each chunk's KL sum, for per-window records
  CHECK(bottom.kld == Approx(kld[2] + kld[3] + kld[4]).epsilon(1e-9));
  std::vector<double> sorted = kld;
  std::sort(sorted.begin(), sorted.end());
  CHECK(result.median == Approx(sorted[2]).epsilon(1e-9));
  CHECK(result.max == Approx(sorted[4]).epsilon(1e-9));
  CHECK(result.p99 == Approx(sorted[3] + 0.96 * (sorted[4] - sorted[3])).epsilon(1e-9));
  CHECK(result.top1_agreement == Approx(agree / 5.0));
  double dp_mean = 0.0;
  for (double d : delta_p) dp_mean += d / 5;
  CHECK(result.dp_mean == Approx(dp_mean).epsilon(1e-9));
  std::sort(delta_p.begin(), delta_p.end());
  CHECK(result.dp_median == Approx(delta_p[2]).epsilon(1e-9));
  CHECK(result.dp_p01 == Approx(delta_p[0] + 0.04 * (delta_p[1] - delta_p[0])).epsilon(1e-9));
  CHECK(result.reference_ppl == Approx(std::exp(reference_nll / 5)).epsilon(1e-9));
}

TEST_CASE("KL divergence of the full-precision model against itself is 0 with top-1 agreement 1") {
  const Model& fp = test::stories_model("stories260K-hf");
  const Model copy = fp;
  const auto windows = eval_windows(test::tinystories("tinystories-eval"), 512, 8);
  KldReference reference(fp, 0);
  const PerplexityResult result = evaluate_perplexity(copy, windows, 8, "fp", &reference);
  REQUIRE(result.kld);
  CHECK(result.kld->positions == result.scored_tokens);
  CHECK(result.kld->mean == 0.0);
  CHECK(result.kld->max == 0.0);
  CHECK(result.kld->top1_agreement == 1.0);
  CHECK(result.kld->dp_mean == 0.0);
  CHECK(result.kld->dp_p01 == 0.0);
  CHECK(result.kld->reference_ppl == Approx(result.ppl).epsilon(1e-9));  // the same NLL, summed in another order
}

TEST_CASE("KL divergence grows from RTN W8A8 to W4A4 on stories260K and top-1 agreement falls") {
  const PerplexityResult w8a8 = rtn_against_fp(8), w4a4 = rtn_against_fp(4);
  REQUIRE(w8a8.kld);
  REQUIRE(w4a4.kld);
  INFO("W8A8 mean KLD " << w8a8.kld->mean << ", top-1 " << w8a8.kld->top1_agreement << "; W4A4 mean KLD "
                        << w4a4.kld->mean << ", top-1 " << w4a4.kld->top1_agreement);
  CHECK(w8a8.kld->mean > 0.0);
  CHECK(w4a4.kld->mean > 5 * w8a8.kld->mean);
  CHECK(w4a4.kld->median > w8a8.kld->median);
  CHECK(w4a4.kld->p99 > w8a8.kld->p99);
  CHECK(w4a4.kld->top1_agreement < w8a8.kld->top1_agreement);
  CHECK(w8a8.kld->top1_agreement > 0.95);
  CHECK(w4a4.kld->dp_mean < 0.0);  // the 4-bit model is less sure of the right token
  CHECK(w4a4.kld->reference_ppl == Approx(w8a8.kld->reference_ppl).epsilon(1e-12));
}

TEST_CASE("the KLD reference's kept hidden states give the same statistics as recomputing them") {
  const Model& fp = test::stories_model("stories260K-hf");
  const Model model = test::stories_rtn(4);
  const auto windows = eval_windows(test::tinystories("tinystories-eval"), 512, 12);
  // A batch costs its 4 × 512 states of width 64 and its key (shape and token ids); `partly` holds two of three.
  const std::int64_t batch_bytes = 4 * 512 * 64 * sizeof(float) + 2 * sizeof(int) + 4 * 512 * sizeof(int);
  KldReference recomputing(fp, 0), keeping(fp, std::int64_t{1} << 30), partly(fp, 2 * batch_bytes + 100);
  const KldResult once = *evaluate_perplexity(model, windows, 4, "rtn", &recomputing).kld;
  CHECK(recomputing.kept_batches() == 0);
  for (int pass = 0; pass < 2; ++pass) {
    for (KldReference* reference : {&keeping, &partly}) {
      const KldResult result = *evaluate_perplexity(model, windows, 4, "rtn", reference).kld;
      CHECK(result.mean == once.mean);
      CHECK(result.p99 == once.p99);
      CHECK(result.top1_agreement == once.top1_agreement);
      CHECK(result.dp_mean == once.dp_mean);
      CHECK(result.reference_ppl == once.reference_ppl);
    }
  }
  CHECK(keeping.kept_batches() == 3);  // 12 windows in batches of 4
  CHECK(keeping.reused_batches() == 3);
  CHECK(partly.kept_batches() == 2);
  CHECK(partly.reused_batches() == 2);
}

TEST_CASE("per-window sums add up to the run's totals and do not depend on the batch a window ran in") {
  const Model& fp = test::stories_model("stories260K-hf");
  const Model model = test::stories_rtn(4);
  const auto windows = eval_windows(test::tinystories("tinystories-eval"), 512, 6);
  KldReference reference(fp, 0);
  const PerplexityResult batched = evaluate_perplexity(model, windows, 4, "rtn", &reference);
  REQUIRE(batched.window_scores.size() == windows.size());
  double nll = 0.0, kld = 0.0;
  std::int64_t tokens = 0;
  for (const WindowScore& w : batched.window_scores) {
    CHECK(w.tokens == 511);
    CHECK(w.kld_sum > 0.0);
    nll += w.nll_sum;
    kld += w.kld_sum;
    tokens += w.tokens;
  }
  CHECK(tokens == batched.scored_tokens);
  CHECK(nll / static_cast<double>(tokens) == Approx(batched.mean_nll).epsilon(1e-12));
  CHECK(kld / static_cast<double>(tokens) == Approx(batched.kld->mean).epsilon(1e-9));
  // Window 5 alone (batch of 1) against its place in the second batch of 4: the same model, the same sums.
  const PerplexityResult alone = evaluate_perplexity(model, {windows[5]}, 1, "rtn", &reference);
  CHECK(alone.window_scores.at(0).nll_sum == Approx(batched.window_scores[5].nll_sum).epsilon(1e-6));
  CHECK(alone.window_scores.at(0).kld_sum == Approx(batched.window_scores[5].kld_sum).epsilon(1e-5));
  const PerplexityResult plain = evaluate_perplexity(model, windows, 4, "rtn");  // head_nll, no logits
  for (std::size_t w = 0; w < windows.size(); ++w) {
    CHECK(plain.window_scores[w].nll_sum == Approx(batched.window_scores[w].nll_sum).epsilon(1e-6));
    CHECK(plain.window_scores[w].kld_sum == 0.0);
  }
}
