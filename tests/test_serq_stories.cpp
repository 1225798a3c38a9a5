// The SERQ acceptance test: W4A4 on stories260K-hf over the full TinyStories evaluation half, calibrated once on
// tinystories-calib (128 × 512 tokens), against RTN at the same format; rank 16 is no worse than rank 8.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <iostream>

#include "core/data/windows.h"
#include "core/eval/perplexity.h"
#include "experiments/calibrate.h"
#include "methods/rtn.h"
#include "methods/serq.h"
#include "tests/model_fixtures.h"

using namespace serq;

TEST_CASE("SERQ W4A4 r=8 beats RTN on stories260K and r=16 is no worse than r=8") {
  const auto start = std::chrono::steady_clock::now();
  const Model& fp = test::stories_model("stories260K-hf");
  const auto windows = eval_windows(test::tinystories("tinystories-eval"), 512, 0);
  QuantParams params;
  params.weight = {4, true, 32};       // INT4 symmetric, groups of 32
  params.activation = {4, false, 32};  // INT4 asymmetric, per token and group of 32
  const auto ppl = [&](const Model& model) { return evaluate_perplexity(model, windows, 8).ppl; };

  Model rtn = fp;
  RoundToNearest().quantize(rtn, params, Calibration{});
  const Calibration calibration = calibrate(fp, Serq(), params, test::tinystories("tinystories-calib"), {128, 512, 0});
  const auto serq_ppl = [&](int rank) {
    Model model = fp;
    QuantParams p = params;
    p.rank = rank;
    Serq().quantize(model, p, calibration);
    return ppl(model);
  };
  const double ppl_fp = ppl(fp);
  const double ppl_rtn = ppl(rtn);
  const double ppl_r8 = serq_ppl(8);
  const double ppl_r16 = serq_ppl(16);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "stories260K W4A4 g32, " << windows.size() << " windows of 512: fp " << ppl_fp << ", rtn " << ppl_rtn
            << ", serq r=8 " << ppl_r8 << ", serq r=16 " << ppl_r16 << " (calibration " << calibration.seconds
            << " s, total " << seconds << " s)\n";
  CHECK(std::isfinite(ppl_r8));
  CHECK(ppl_r8 < ppl_rtn);
  CHECK(ppl_r16 <= ppl_r8 * 1.01);
}
