// Writing and reading run.h5 result files through core/formats/hdf5_file.h.
#include "core/formats/result_file.h"

#include <algorithm>

#include "core/common/error.h"
#include "core/formats/hdf5_file.h"

namespace serq {
namespace {

bool is_link_name(const std::string& name) {
  return !name.empty() && name != "." && name.find('/') == std::string::npos;
}

template <class Value>
void check_names(const std::filesystem::path& file, const char* group, const std::map<std::string, Value>& entries) {
  for (const auto& [name, value] : entries) {
    SERQ_CHECK(is_link_name(name), "{}: {} name '{}' cannot name an HDF5 entry; use a non-empty name without '/'",
               file.string(), group, name);
  }
}

}  // namespace

void write_layer_diagnostics(Hdf5Writer& writer, const std::string& group,
                             const std::vector<LayerDiagnostics>& layers) {
  std::vector<std::string> names;
  std::vector<double> weight_error, output_error, qsnr, bits;
  std::vector<std::int64_t> extra;
  for (const LayerDiagnostics& layer : layers) {
    names.push_back(layer.name);
    weight_error.push_back(layer.weight_rel_error);
    output_error.push_back(layer.output_rel_error);
    qsnr.push_back(layer.output_qsnr_db);
    bits.push_back(layer.bits_per_weight);
    extra.push_back(layer.extra_parameters);
  }
  writer.vector(group + "/name", names);
  writer.vector(group + "/weight_rel_error", weight_error);
  writer.vector(group + "/output_rel_error", output_error);
  writer.vector(group + "/output_qsnr_db", qsnr);
  writer.vector(group + "/bits_per_weight", bits);
  writer.vector(group + "/extra_parameters", extra);
}

void write_window_scores(Hdf5Writer& writer, const std::string& group, const std::vector<WindowScore>& windows) {
  std::vector<std::int64_t> tokens;
  std::vector<double> nll, kld;
  for (const WindowScore& w : windows) {
    tokens.push_back(w.tokens);
    nll.push_back(w.nll_sum);
    kld.push_back(w.kld_sum);
  }
  writer.vector(group + "/tokens", tokens);
  writer.vector(group + "/nll_sum", nll);
  writer.vector(group + "/kld_sum", kld);
}

void write_item_scores(Hdf5Writer& writer, const std::string& group,
                       const std::map<std::string, std::vector<ItemScore>>& items) {
  for (const auto& [task, scores] : items) {
    std::vector<std::int64_t> index, gold, prediction, prediction_norm, choices, tokens, characters;
    std::vector<double> loglik;
    for (const ItemScore& item : scores) {
      index.push_back(item.index);
      gold.push_back(item.gold);
      prediction.push_back(item.prediction);
      prediction_norm.push_back(item.prediction_norm);
      choices.push_back(static_cast<std::int64_t>(item.loglik.size()));
      loglik.insert(loglik.end(), item.loglik.begin(), item.loglik.end());
      tokens.insert(tokens.end(), item.tokens.begin(), item.tokens.end());
      characters.insert(characters.end(), item.characters.begin(), item.characters.end());
    }
    const std::string prefix = group + "/" + task + "/";
    writer.vector(prefix + "index", index);
    writer.vector(prefix + "gold", gold);
    writer.vector(prefix + "prediction", prediction);
    writer.vector(prefix + "prediction_norm", prediction_norm);
    writer.vector(prefix + "choices", choices);
    writer.vector(prefix + "loglik", loglik);
    writer.vector(prefix + "tokens", tokens);
    writer.vector(prefix + "characters", characters);
  }
}

namespace {

std::vector<WindowScore> read_windows(const Hdf5Reader& reader) {
  const std::vector<std::int64_t> tokens = reader.ints("windows/tokens");
  const std::vector<double> nll = reader.doubles("windows/nll_sum");
  const std::vector<double> kld = reader.doubles("windows/kld_sum");
  if (nll.size() != tokens.size() || kld.size() != tokens.size()) {
    reader.fail_with("the datasets of group 'windows' differ in length");
  }
  std::vector<WindowScore> windows(tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i) windows[i] = {tokens[i], nll[i], kld[i]};
  return windows;
}

std::map<std::string, std::vector<ItemScore>> read_items(const Hdf5Reader& reader) {
  std::map<std::string, std::vector<ItemScore>> items;
  for (const std::string& task : reader.members("items")) {
    const std::string prefix = "items/" + task + "/";
    const std::vector<std::int64_t> index = reader.ints(prefix + "index");
    const std::vector<std::int64_t> gold = reader.ints(prefix + "gold");
    const std::vector<std::int64_t> prediction = reader.ints(prefix + "prediction");
    const std::vector<std::int64_t> prediction_norm = reader.ints(prefix + "prediction_norm");
    const std::vector<std::int64_t> choices = reader.ints(prefix + "choices");
    const std::vector<double> loglik = reader.doubles(prefix + "loglik");
    const std::vector<std::int64_t> tokens = reader.ints(prefix + "tokens");
    const std::vector<std::int64_t> characters = reader.ints(prefix + "characters");
    const std::size_t n = index.size();
    if (gold.size() != n || prediction.size() != n || prediction_norm.size() != n || choices.size() != n) {
      reader.fail_with("the per-item datasets of '" + prefix + "' differ in length");
    }
    std::vector<ItemScore>& scores = items[task];
    std::size_t first = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const auto count = static_cast<std::size_t>(std::max<std::int64_t>(choices[i], 0));
      if (first + count > loglik.size() || loglik.size() != tokens.size() || loglik.size() != characters.size()) {
        reader.fail_with("the per-choice datasets of '" + prefix + "' do not match its choice counts");
      }
      const auto from = static_cast<std::ptrdiff_t>(first), to = static_cast<std::ptrdiff_t>(first + count);
      scores.push_back({index[i], gold[i], prediction[i], prediction_norm[i],
                        {loglik.begin() + from, loglik.begin() + to},
                        {tokens.begin() + from, tokens.begin() + to},
                        {characters.begin() + from, characters.begin() + to}});
      first += count;
    }
    if (first != loglik.size()) reader.fail_with("the per-choice datasets of '" + prefix + "' have extra entries");
  }
  return items;
}

std::vector<LayerDiagnostics> read_layers(const Hdf5Reader& reader) {
  const std::vector<std::string> names = reader.strings("layers/name");
  const std::vector<double> weight_error = reader.doubles("layers/weight_rel_error");
  const std::vector<double> output_error = reader.doubles("layers/output_rel_error");
  const std::vector<double> qsnr = reader.doubles("layers/output_qsnr_db");
  const std::vector<double> bits = reader.doubles("layers/bits_per_weight");
  const std::vector<std::int64_t> extra = reader.ints("layers/extra_parameters");
  const std::size_t n = names.size();
  if (weight_error.size() != n || output_error.size() != n || qsnr.size() != n || bits.size() != n ||
      extra.size() != n) {
    reader.fail_with("the datasets of group 'layers' differ in length");
  }
  std::vector<LayerDiagnostics> layers(n);
  for (std::size_t i = 0; i < n; ++i) {
    layers[i] = {names[i], weight_error[i], output_error[i], qsnr[i], bits[i], extra[i]};
  }
  return layers;
}

void write_plan(Hdf5Writer& writer, const std::vector<LayerPlan>& plan) {
  std::vector<std::string> names, weights, activations, quantizers;
  std::vector<std::int64_t> rules, ranks;
  for (const LayerPlan& layer : plan) {
    names.push_back(layer.name);
    weights.push_back(layer.weight);
    activations.push_back(layer.activation);
    quantizers.push_back(layer.weight_quantizer);
    rules.push_back(layer.rule);
    ranks.push_back(layer.rank);
  }
  writer.vector("plan/name", names);
  writer.vector("plan/weight", weights);
  writer.vector("plan/activation", activations);
  writer.vector("plan/weight_quantizer", quantizers);
  writer.vector("plan/rule", rules);
  writer.vector("plan/rank", ranks);
}

std::vector<LayerPlan> read_plan(const Hdf5Reader& reader) {
  const std::vector<std::string> names = reader.strings("plan/name");
  const std::vector<std::string> weights = reader.strings("plan/weight");
  const std::vector<std::string> activations = reader.strings("plan/activation");
  const std::vector<std::string> quantizers = reader.strings("plan/weight_quantizer");
  const std::vector<std::int64_t> rules = reader.ints("plan/rule");
  const std::vector<std::int64_t> ranks = reader.ints("plan/rank");
  const std::size_t n = names.size();
  if (weights.size() != n || activations.size() != n || quantizers.size() != n || rules.size() != n ||
      ranks.size() != n) {
    reader.fail_with("the datasets of group 'plan' differ in length");
  }
  std::vector<LayerPlan> plan(n);
  for (std::size_t i = 0; i < n; ++i) {
    plan[i] = {names[i], weights[i], activations[i], quantizers[i], rules[i], ranks[i]};
  }
  return plan;
}

}  // namespace

void write_run_record(const std::filesystem::path& file, const RunRecord& record) {
  check_names(file, "metric", record.metrics);
  check_names(file, "count", record.counts);
  check_names(file, "info", record.info);
  check_names(file, "task", record.items);
  write_hdf5_atomically(file, [&](Hdf5Writer& writer) {
    writer.attribute("experiment", record.experiment);
    writer.attribute("run_id", record.run_id);
    writer.attribute("label", record.label);
    writer.scalar("config", record.config_yaml);
    for (const auto& [name, value] : record.metrics) writer.scalar("metrics/" + name, value);
    for (const auto& [name, value] : record.counts) writer.scalar("counts/" + name, value);
    for (const auto& [name, value] : record.info) writer.scalar("info/" + name, value);
    if (!record.layers.empty()) write_layer_diagnostics(writer, "layers", record.layers);
    if (!record.plan.empty()) write_plan(writer, record.plan);
    if (!record.windows.empty()) write_window_scores(writer, "windows", record.windows);
    if (!record.items.empty()) write_item_scores(writer, "items", record.items);
  });
}

RunRecord read_run_record(const std::filesystem::path& file) {
  SERQ_CHECK(std::filesystem::is_regular_file(file), "{}: result file not found (check the path)", file.string());
  const Hdf5Reader reader(file, "not a serq run record", "; was it written by serq-run? re-run to recreate it");
  RunRecord record;
  record.experiment = reader.attribute("experiment");
  record.run_id = reader.attribute("run_id");
  record.label = reader.attribute("label");
  record.config_yaml = reader.scalar_string("config");
  auto members = [&](const char* group) {  // a record without metrics (say) has no such group
    return reader.has(group) ? reader.members(group) : std::vector<std::string>{};
  };
  for (const std::string& name : members("metrics")) record.metrics[name] = reader.scalar_double("metrics/" + name);
  for (const std::string& name : members("counts")) record.counts[name] = reader.scalar_int("counts/" + name);
  for (const std::string& name : members("info")) record.info[name] = reader.scalar_string("info/" + name);
  if (reader.has("layers")) record.layers = read_layers(reader);
  if (reader.has("plan")) record.plan = read_plan(reader);
  if (reader.has("windows")) record.windows = read_windows(reader);
  if (reader.has("items")) record.items = read_items(reader);
  return record;
}

}  // namespace serq
