// RTN on the real stories260K: W8A8 stays within 2% of full precision, W4A4 is clearly worse, both finite.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/data/windows.h"
#include "core/eval/perplexity.h"
#include "methods/rtn.h"
#include "tests/model_fixtures.h"

using namespace serq;

namespace {

double rtn_ppl(int w_bits, int a_bits) {
  Model model = test::stories_model("stories260K-hf");
  QuantParams params;
  params.weight = {w_bits, true, 32};
  params.activation = {a_bits, false, 32};
  RoundToNearest().quantize(model, params, Calibration{});
  return evaluate_perplexity(model, eval_windows(test::tinystories("tinystories-eval"), 512, 0), 8).ppl;
}

}  // namespace

TEST_CASE("RTN W8A8 is within 2% of FP and W4A4 is clearly worse on stories260K") {
  const double fp = evaluate_perplexity(test::stories_model("stories260K-hf"),
                                        eval_windows(test::tinystories("tinystories-eval"), 512, 0), 8).ppl;
  const double w8a8 = rtn_ppl(8, 8);
  const double w4a4 = rtn_ppl(4, 4);
  INFO("fp " << fp << ", w8a8 " << w8a8 << ", w4a4 " << w4a4);
  CHECK(std::isfinite(w8a8));
  CHECK(std::isfinite(w4a4));
  CHECK(std::abs(w8a8 - fp) / fp < 0.02);
  CHECK(w8a8 != fp);       // activations and weights really were quantized
  CHECK(w4a4 > 1.10 * fp);  // 4 bits on a 64-wide model costs well over 10%
}

TEST_CASE("RTN reports the bits per weight of its format, the head kept in full precision") {
  Model model = test::stories_model("stories260K-hf");
  QuantParams params;
  params.weight = {4, true, 32};
  params.activation = {4, false, 32};
  const MethodReport report = RoundToNearest().quantize(model, params, Calibration{});
  // All decoder linears: 5 layers × (64·64·2 + 32·64·2 + 64·172·3) weights; lm_head excluded.
  CHECK(report.quantized_weights == 5 * (64 * 64 * 2 + 32 * 64 * 2 + 64 * 172 * 3));
  CHECK(report.bits_per_weight > 4.5);  // 4 + 16/32, plus the shorter last group of the 172-wide down_proj
  CHECK(report.bits_per_weight < 4.6);
  CHECK(model.lm_head.act_quant.bits == 16);
  CHECK(model.layers[0].q_proj.act_quant.bits == 4);
}
