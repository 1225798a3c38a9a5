// Rank allocation under a budget: the error curves, the greedy and the exact allocation (see rank_budget.h).
#include "methods/rank_budget.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>

#include "core/common/error.h"
#include "core/model/architecture.h"

namespace serq {
namespace {

// The calibration mean |x_j| of a layer's input in its X̂ basis: divided by the input scale and permuted as the
// layer's transform says; ones where the method calibrated nothing (lorc, lqer).
Eigen::ArrayXd input_weights(const QuantLinear& layer, const Calibration& calibration) {
  SERQ_CHECK(!layer.input.rotation.enabled(), "{}: quant.rank_allocation does not handle rotated inputs", layer.name);
  const auto found = calibration.stats.find(layer.name);
  if (found == calibration.stats.end() || found->second.mean_abs.size() == 0) {
    return Eigen::ArrayXd::Ones(layer.d_in());
  }
  const Eigen::VectorXd& mean_abs = found->second.mean_abs;
  Eigen::ArrayXd m(layer.d_in());
  for (Eigen::Index j = 0; j < m.size(); ++j) {
    const Eigen::Index source = layer.input.order.empty() ? j : layer.input.order[static_cast<std::size_t>(j)];
    const double scale = layer.input.scale.size() > 0 ? layer.input.scale[source] : 1.0;
    m[j] = mean_abs[source] / scale;
  }
  return m;
}

// Whether the allocation decides this layer's rank: neither skipped nor given a rank by a quant.overrides rule.
bool allocation_decides(const QuantParams& params, std::string_view layer) {
  const auto rule = matching_override(params.overrides, layer);
  return !(rule && (params.overrides[*rule].skip || params.overrides[*rule].rank));
}

// The top of a layer's rank grid: max(4 · rank, 64), at most what the method allows the layer, on the grid.
int grid_top(const Method& method, const QuantLinear& layer, int rank, int step) {
  const int most = std::min(method.max_rank(layer), std::max(4 * rank, 64));
  return most - most % step;
}

// One prepared layer's curve: the method quantizes a copy at each rank of the grid, with RTN main weights.
RankCurve layer_curve(const QuantLinear& prepared, const Method& method, const QuantParams& layer_params,
                      const Calibration& calibration, int step) {
  RankCurve curve;
  curve.layer = prepared.name;
  const int most = grid_top(method, prepared, layer_params.rank, step);
  const Eigen::ArrayXd m = input_weights(prepared, calibration);
  const Eigen::MatrixXd reference = prepared.weight.cast<double>() * m.matrix().asDiagonal();
  const double norm = reference.squaredNorm();
  QuantParams params = layer_params;
  params.weight_quantizer = WeightQuantizerKind::rtn;
  params.progress = nullptr;
  double bits_at_zero = 0.0;
  for (int rank = 0; rank <= most; rank += step) {
    QuantLinear copy = prepared;
    params.rank = rank;
    method.quantize_linear(copy, params, calibration);
    const Eigen::MatrixXd error = reference - copy.effective_weight().cast<double>() * m.matrix().asDiagonal();
    if (rank == 0) bits_at_zero = copy.storage_bits();
    curve.ranks.push_back(rank);
    curve.error.push_back(norm > 0.0 ? error.squaredNorm() / norm : 0.0);
    curve.cost_bits.push_back(static_cast<std::int64_t>(copy.storage_bits() - bits_at_zero));
  }
  return curve;
}

RankChoice choice_of(const std::vector<RankCurve>& curves, const std::vector<std::size_t>& index,
                     std::int64_t budget) {
  RankChoice choice;
  choice.budget_bits = budget;
  for (std::size_t l = 0; l < curves.size(); ++l) {
    choice.ranks[curves[l].layer] = curves[l].ranks[index[l]];
    choice.spent_bits += curves[l].cost_bits[index[l]];
    choice.error += curves[l].error[index[l]];
  }
  return choice;
}

// From rank 0 everywhere, the next grid step with the largest error drop per bit, while one fits.
RankChoice greedy(const std::vector<RankCurve>& curves, std::int64_t budget) {
  std::vector<std::size_t> index(curves.size(), 0);
  std::int64_t left = budget;
  for (;;) {
    std::size_t best = curves.size();
    double best_gain = -std::numeric_limits<double>::infinity();
    for (std::size_t l = 0; l < curves.size(); ++l) {
      const std::size_t i = index[l];
      if (i + 1 >= curves[l].ranks.size()) continue;
      const std::int64_t cost = curves[l].cost_bits[i + 1] - curves[l].cost_bits[i];
      if (cost > left) continue;
      const double gain =
          (curves[l].error[i] - curves[l].error[i + 1]) / static_cast<double>(std::max<std::int64_t>(cost, 1));
      if (gain > best_gain) {
        best_gain = gain;
        best = l;
      }
    }
    if (best == curves.size()) break;
    left -= curves[best].cost_bits[index[best] + 1] - curves[best].cost_bits[index[best]];
    ++index[best];
  }
  return choice_of(curves, index, budget);
}

// Multiple-choice knapsack: best[b] = the least total error of the layers so far within b units.
RankChoice exact(const std::vector<RankCurve>& curves, std::int64_t budget) {
  std::int64_t unit = 0;
  for (const RankCurve& curve : curves) {
    for (const std::int64_t cost : curve.cost_bits) unit = std::gcd(unit, cost);
  }
  unit = std::max<std::int64_t>({unit, 1, (budget + 199999) / 200000});
  const auto units = static_cast<std::size_t>(budget / unit);
  auto units_of = [&](std::int64_t cost) { return static_cast<std::size_t>((cost + unit - 1) / unit); };
  constexpr double kNone = std::numeric_limits<double>::infinity();
  std::vector<double> best(units + 1, 0.0), next(units + 1);
  std::vector<std::vector<std::uint16_t>> chosen(curves.size(), std::vector<std::uint16_t>(units + 1, 0));
  for (std::size_t l = 0; l < curves.size(); ++l) {
    std::fill(next.begin(), next.end(), kNone);
    for (std::size_t b = 0; b <= units; ++b) {
      for (std::size_t i = 0; i < curves[l].ranks.size(); ++i) {
        const std::size_t cost = units_of(curves[l].cost_bits[i]);
        if (cost > b || best[b - cost] == kNone) continue;
        const double total = best[b - cost] + curves[l].error[i];
        if (total < next[b]) {
          next[b] = total;
          chosen[l][b] = static_cast<std::uint16_t>(i);
        }
      }
    }
    best.swap(next);
  }
  // The least error; among equal errors, the most budget spent.
  std::size_t b = 0;
  for (std::size_t c = 0; c <= units; ++c) {
    if (best[c] <= best[b]) b = c;
  }
  std::vector<std::size_t> index(curves.size());
  for (std::size_t l = curves.size(); l-- > 0;) {
    index[l] = chosen[l][b];
    b -= units_of(curves[l].cost_bits[index[l]]);
  }
  return choice_of(curves, index, budget);
}

}  // namespace

double largest_rank_budget(const ModelConfig& config, const Method& method, const QuantParams& params) {
  struct Shape {
    std::string name;
    int d_out, d_in;
  };
  std::vector<Shape> layers;
  for (int i = 0; i < config.n_layers; ++i) {
    for (const LinearDesc& l : layer_linears()) {
      layers.push_back({fmt::format("layers.{}.{}", i, l.name), width(config, l.d_out), width(config, l.d_in)});
    }
  }
  if (params.quantize_lm_head) layers.push_back({"lm_head", config.vocab_size, config.dim});
  std::map<std::pair<int, int>, double> cost_of_shape;  // (d_out, d_in) → extra bits at the grid's top
  double bits = 0.0, weights = 0.0;
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  for (const Shape& layer : layers) {
    if (!allocation_decides(params, layer.name)) continue;
    weights += static_cast<double>(layer.d_out) * layer.d_in;
    auto [at, fresh] = cost_of_shape.emplace(std::pair(layer.d_out, layer.d_in), 0.0);
    if (fresh) {
      QuantLinear probe;
      probe.name = layer.name;
      probe.weight = Matrix::NullaryExpr(layer.d_out, layer.d_in, [&] { return normal(rng); });
      Calibration calibration;
      ChannelStats& stats = calibration.stats[layer.name];
      stats.abs_max = Eigen::VectorXf::Ones(layer.d_in);
      stats.mean_abs = Eigen::VectorXd::Ones(layer.d_in);
      QuantParams top = params.for_layer(layer.name);
      top.weight_quantizer = WeightQuantizerKind::rtn;
      top.progress = nullptr;
      const int most = grid_top(method, probe, top.rank, kRankStep);
      double at_rank[2] = {0.0, 0.0};
      for (const int i : {0, 1}) {
        QuantLinear copy = probe;
        top.rank = i == 0 ? 0 : most;
        method.quantize_linear(copy, top, calibration);
        at_rank[i] = copy.storage_bits();
      }
      at->second = at_rank[1] - at_rank[0];
    }
    bits += at->second;
  }
  return weights > 0.0 ? bits / weights : 0.0;
}

std::vector<RankCurve> rank_curves(const Model& model, const Method& method, const QuantParams& params,
                                   const Calibration& calibration, int step) {
  std::vector<RankCurve> curves;
  Model shell;  // one decoder layer at a time, at its index
  shell.config = model.config;
  shell.layers.resize(model.layers.size());
  for (int i = 0; i < model.config.n_layers; ++i) {
    DecoderLayer& layer = shell.layers[static_cast<std::size_t>(i)] = model.layers[static_cast<std::size_t>(i)];
    restore_layer_weights(layer);
    method.prepare_layer(shell, i, params, calibration);
    for (const QuantLinear* linear : layer.linears()) {
      if (!allocation_decides(params, linear->name)) continue;
      curves.push_back(layer_curve(*linear, method, params.for_layer(linear->name), calibration, step));
    }
    layer = DecoderLayer{};
  }
  if (params.quantize_lm_head && allocation_decides(params, model.lm_head.name)) {
    shell.lm_head = model.lm_head;
    restore_head_weight(shell);
    method.prepare_head(shell, params, calibration);
    curves.push_back(layer_curve(shell.lm_head, method, params.for_layer("lm_head"), calibration, step));
  }
  return curves;
}

RankChoice allocate_ranks(const std::vector<RankCurve>& curves, std::int64_t budget_bits, RankAllocation how) {
  SERQ_CHECK(budget_bits >= 0, "quant.rank_budget: {} bits is below zero; give extra bits per weight ≥ 0",
             budget_bits);
  std::int64_t most = 0;
  for (const RankCurve& curve : curves) most += curve.cost_bits.back();
  SERQ_CHECK(budget_bits <= most, "quant.rank_budget: {:.4g} extra bits exceed the {:.4g} that the largest ranks of "
             "the grid take on every layer; give a smaller budget", static_cast<double>(budget_bits),
             static_cast<double>(most));
  SERQ_CHECK(how != RankAllocation::uniform, "allocate_ranks: uniform is not an allocation (a caller bug)");
  return how == RankAllocation::greedy ? greedy(curves, budget_bits) : exact(curves, budget_bits);
}

std::int64_t rank_budget_bits(const std::vector<RankCurve>& curves, const Model& model, double bits_per_weight,
                              int uniform_rank) {
  if (bits_per_weight > 0.0) {
    std::int64_t weights = 0;
    for (const QuantLinear* layer : model.linears()) {
      const bool curved = std::any_of(curves.begin(), curves.end(),
                                      [&](const RankCurve& c) { return c.layer == layer->name; });
      if (curved) weights += static_cast<std::int64_t>(layer->d_out()) * layer->d_in();
    }
    return static_cast<std::int64_t>(bits_per_weight * static_cast<double>(weights));
  }
  std::int64_t bits = 0;
  for (const RankCurve& curve : curves) {
    const auto at = std::find(curve.ranks.begin(), curve.ranks.end(), std::min(uniform_rank, curve.ranks.back()));
    SERQ_CHECK(at != curve.ranks.end(), "quant.rank: {} is not on the allocation's grid (multiples of {}); use a "
               "multiple of it", uniform_rank, curve.ranks.size() > 1 ? curve.ranks[1] : 0);
    bits += curve.cost_bits[static_cast<std::size_t>(at - curve.ranks.begin())];
  }
  return bits;
}

}  // namespace serq
