// Rank allocation under a budget (quant.rank_allocation, quant.rank_budget): instead of one r for every layer (SERQ's
// salient channels, or the error factors' rank of lorc, lqer and l2qer), choose each layer's rank on a grid so that
// the extra storage adds up to the budget and the total calibration error is smallest.
//
// The error of a layer at rank r is a named proxy of its output error: the activation-weighted relative weight error
//   E(r) = ‖(W̃ − Ŵ(r))·diag(m)‖²_F / ‖W̃·diag(m)‖²_F,
// W̃ the layer's prepared float weight (flattened and permuted for SERQ), Ŵ(r) its main weight plus correction once
// quantized at rank r by the method with RTN main weights, and m the calibration mean |x_j| of its input in the same
// basis (the diagonal of the output error's weighting, as L2QER scales its SVD). The total is Σ_layers E(r_l).
// The cost of rank r is the layer's storage bits at r less those at 0 (QuantLinear::storage_bits: codes and scales).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "methods/method.h"

namespace serq {

// The rank grid's step: ranks 0, 8, 16, …
inline constexpr int kRankStep = 8;

enum class RankAllocation {
  uniform,  // quant.rank everywhere (the paper)
  greedy,   // repeatedly the step with the largest error drop per bit that still fits
  dp,       // exact: a multiple-choice knapsack over the grid by dynamic programming
};

// One layer's error and cost on the rank grid.
struct RankCurve {
  std::string layer;
  std::vector<int> ranks;               // 0, step, 2·step, …
  std::vector<double> error;            // E(r) of each rank
  std::vector<std::int64_t> cost_bits;  // extra storage bits of each rank (0 at rank 0)
};

// The grid of every layer the allocation decides (not skipped by quant.overrides, rank not set by a rule): ranks
// 0..min(limit, max(4 · quant.rank, 64)) in steps of `step`, limit = d_in for serq, min(d_in, d_out) for the
// factors. Each decoder layer is copied, widened and prepared alone, so memory holds one layer's copies.
std::vector<RankCurve> rank_curves(const Model& model, const Method& method, const QuantParams& params,
                                   const Calibration& calibration, int step = kRankStep);

struct RankChoice {
  std::map<std::string, int> ranks;  // by layer name
  std::int64_t budget_bits = 0, spent_bits = 0;
  double error = 0.0;                // Σ E(r_l) at the chosen ranks
};

// Chooses one rank per curve with Σ cost ≤ budget_bits, minimizing Σ error (greedy or dp; uniform is not an
// allocation). DP counts costs in units of their greatest common divisor (coarsened so that at most 200,000 units
// make the budget, costs rounded up).
RankChoice allocate_ranks(const std::vector<RankCurve>& curves, std::int64_t budget_bits, RankAllocation how);

// The budget in bits: quant.rank_budget extra bits per weight over the weights of the curves' layers, or, when it is
// 0, what quant.rank on every layer costs (so that an allocation compares with uniform r at equal bits).
std::int64_t rank_budget_bits(const std::vector<RankCurve>& curves, const Model& model, double bits_per_weight,
                              int uniform_rank);

// The most extra bits per weight a budget can buy: every decided layer at the top of its grid, measured on seeded
// random weights of each distinct layer shape (the cost depends on shapes and formats alone), so that serq-run can
// refuse a larger quant.rank_budget before any work.
double largest_rank_budget(const ModelConfig& config, const Method& method, const QuantParams& params);

}  // namespace serq
