// Loading experiment configs: YAML → dotted keys → --set overrides → sweep expansion → resolved, validated runs.
#include "core/config/run_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <cassert>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "core/common/error.h"
#include "core/common/hash.h"
#include "core/config/layer_overrides.h"

namespace serq {

ResolvedConfig::ResolvedConfig(std::vector<ConfigValue> values, std::vector<bool> applies)
    : values_(std::move(values)), applies_(std::move(applies)) {
  assert(values_.size() == config_schema().size() && applies_.size() == values_.size());
}

bool ResolvedConfig::applies(std::string_view key) const {
  const auto index = config_key_index(key);
  SERQ_CHECK(index, "run config has no key '{}' (a caller bug: the keys are listed in core/config/config_schema.cpp)", key);
  return applies_[*index];
}

template <class T>
const T& ResolvedConfig::get(std::string_view key, const char* type_name) const {
  const auto index = config_key_index(key);
  const T* value = index ? std::get_if<T>(&values_[*index]) : nullptr;
  SERQ_CHECK(value, "run config has no {} key '{}' (a caller bug: the keys are listed in core/config/config_schema.cpp)",
             type_name, key);
  return *value;
}

std::int64_t ResolvedConfig::get_int(std::string_view key) const { return get<std::int64_t>(key, "integer"); }
double ResolvedConfig::get_float(std::string_view key) const { return get<double>(key, "floating-point"); }
bool ResolvedConfig::get_bool(std::string_view key) const { return get<bool>(key, "bool"); }
const std::string& ResolvedConfig::get_string(std::string_view key) const { return get<std::string>(key, "string"); }

std::string ResolvedConfig::to_yaml() const {
  std::string out;
  std::vector<std::string> open;  // the maps enclosing the previous key
  const auto& schema = config_schema();
  for (std::size_t i = 0; i < schema.size(); ++i) {
    if (!applies_[i]) continue;
    std::vector<std::string> parts;
    for (std::size_t start = 0;;) {
      const std::size_t dot = schema[i].path.find('.', start);
      parts.push_back(schema[i].path.substr(start, dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    const std::string leaf = parts.back();
    parts.pop_back();
    std::size_t common = 0;
    while (common < open.size() && common < parts.size() && open[common] == parts[common]) ++common;
    for (std::size_t depth = common; depth < parts.size(); ++depth) {
      out += fmt::format("{:{}}{}:\n", "", 2 * depth, parts[depth]);
    }
    out += fmt::format("{:{}}{}: {}\n", "", 2 * parts.size(), leaf, schema[i].to_yaml(values_[i]));
    open = std::move(parts);
  }
  return out;
}

std::string ResolvedConfig::run_id(std::string_view code_version) const {
  return fnv1a64_hex(to_yaml() + "code_version: " + std::string(code_version));
}

namespace {

// The KV cache's part of a label: " kv4", " kv4g32-sym clip0.95", " kvrot", or nothing for the default.
std::string kv_label(const ResolvedConfig& config) {
  std::string label;
  if (const std::int64_t bits = config.get_int("quant.kv_bits"); bits < 16) {
    label += fmt::format(" kv{}", bits);
    if (const std::int64_t group = config.get_int("quant.kv_group_size"); group > 0) label += fmt::format("g{}", group);
    if (config.get_bool("quant.kv_sym")) label += "-sym";
    if (config.get_float("quant.kv_clip") != 1.0) label += fmt::format(" clip{}", config.get_float("quant.kv_clip"));
  }
  const std::string& rotate = config.get_string("quant.kv_rotate");
  if (rotate == "true") label += " kvrot";
  if (rotate == "false" && config.get_string("quant.method") == "quarot" && config.get_int("quant.kv_bits") < 16)
    label += " no-kvrot";
  return label;
}

}  // namespace

std::string ResolvedConfig::label() const {
  const std::int64_t rounding_seed = get_int("eval.rounding_seed");
  const std::string nudge = rounding_seed == 0 ? "" : fmt::format(" ulp-seed{}", rounding_seed);
  if (get_string("quant.method") == "fp") return "fp" + nudge + kv_label(*this);  // FP ignores the bit-width keys
  const std::int64_t w_bits = get_int("quant.w_bits"), a_bits = get_int("quant.a_bits");
  const std::int64_t group = get_int("quant.group_size"), a_group = get_int("quant.a_group_size");
  auto group_text = [](std::int64_t size) { return size == 0 ? std::string("ch") : std::to_string(size); };
  std::string label = get_string("quant.method");
  if (get_string("quant.format") != "int") label += " " + get_string("quant.format");
  label += fmt::format(" w{}a{}", w_bits, a_bits);
  if (w_bits < 16) label += " g" + group_text(group);
  if (a_bits < 16 && (w_bits == 16 || a_group != group)) label += " ag" + group_text(a_group);
  if (applies("quant.rank")) {
    const std::string& allocation = get_string("quant.rank_allocation");
    if (allocation == "uniform") {
      label += fmt::format(" r{}", get_int("quant.rank"));
    } else if (get_float("quant.rank_budget") > 0.0) {
      label += fmt::format(" {} +{}bpw", allocation, get_float("quant.rank_budget"));
    } else {
      label += fmt::format(" {} as r{}", allocation, get_int("quant.rank"));
    }
  }
  if (applies("quant.alpha")) label += fmt::format(" α{}", get_float("quant.alpha"));
  if (applies("quant.factor_bits") && get_int("quant.factor_bits") != 8)
    label += fmt::format(" f{}", get_int("quant.factor_bits"));
  if (applies("quant.residual_order") && get_string("quant.residual_order") != "code") label += " paper-order";
  if (applies("quant.saliency") && get_string("quant.saliency") != "abs_max") label += " " + get_string("quant.saliency");
  if (applies("quant.saliency_ties") && get_string("quant.saliency_ties") == "last") label += " ties-last";
  if (applies("quant.saliency_ties") && get_string("quant.saliency_ties") == "seeded")
    label += fmt::format(" ties-seed{}", get_int("quant.seed"));
  if (applies("quant.flatten_percentile") && get_float("quant.flatten_percentile") != 100.0)
    label += fmt::format(" p{}", get_float("quant.flatten_percentile"));
  if (applies("quant.flatten_alpha") && get_float("quant.flatten_alpha") != 1.0)
    label += fmt::format(" fα{}", get_float("quant.flatten_alpha"));
  if (get_string("quant.weight_quantizer") != "rtn") label += " " + get_string("quant.weight_quantizer");
  if (get_string("quant.scale_dtype") != "half") label += " f32-scales";
  const bool gptq = get_string("quant.weight_quantizer") == "gptq" || get_string("quant.method") == "gptq";
  if (gptq && !get_bool("calib.sequential")) label += " one-pass";  // GPTQ's Hessians from the full-precision pass
  if (const auto rules = parse_overrides(get_string("quant.overrides")).size(); rules > 0)
    label += fmt::format(" +{} override{}", rules, rules == 1 ? "" : "s");
  if (const std::int64_t seed = get_int("calib.seed"); seed != 0) label += fmt::format(" calib-seed{}", seed);
  return label + nudge + kv_label(*this);
}

namespace {

// A value for one key and where it came from (the config file, "--set", ...), for error messages.
struct Setting {
  ConfigValue value;
  std::string origin;
};
using Settings = std::vector<std::optional<Setting>>;  // one per config_schema() row

// One dimension of the sweep. Each point assigns a value to every key of the axis; runs take the Cartesian
// product over axes. A plain `sweep:` entry is an axis of one key.
struct SweepAxis {
  std::vector<std::size_t> keys;
  std::vector<std::vector<ConfigValue>> points;
  std::string origin;
};

std::string node_kind(const YAML::Node& node) {
  if (node.IsMap()) return "map";
  if (node.IsSequence()) return "list";
  return node.IsNull() ? "nothing" : "a single value";
}

using Entries = std::vector<std::pair<std::size_t, YAML::Node>>;  // (schema row, value) in document order

void flatten(const YAML::Node& map, const std::string& prefix, const std::string& where, Entries& out);

// One `name: value` of a map under `prefix`, added to `out` when it is a key, walked into when it is a section.
void flatten_item(const YAML::Node& name, const YAML::Node& value, const std::string& prefix, const std::string& where,
                  Entries& out) {
  SERQ_CHECK(name.IsScalar(), "{}: a key{} is a {}; keys are plain names", where,
             prefix.empty() ? "" : " under " + prefix, node_kind(name));
  const std::string path = prefix.empty() ? name.Scalar() : prefix + "." + name.Scalar();
  if (const auto index = config_key_index(path)) {
    const bool repeated = std::any_of(out.begin(), out.end(), [&](const auto& seen) { return seen.first == *index; });
    SERQ_CHECK(!repeated, "{}: {} is set twice; keep one", where, path);
    out.emplace_back(*index, value);
  } else if (is_config_section(path)) {
    SERQ_CHECK(value.IsMap() || value.IsNull(), "{}: {}: expected a map of keys ({}), got {}", where, path,
               config_section_keys(path), node_kind(value));
    flatten(value, path, where, out);
  } else {
    fail("{}: unknown key '{}'; {}", where, path, unknown_key_hint(path));
  }
}

// Nested maps → schema rows; dotted names (`quant.w_bits: 4`) work at any level too.
void flatten(const YAML::Node& map, const std::string& prefix, const std::string& where, Entries& out) {
  for (const auto& item : map) flatten_item(item.first, item.second, prefix, where, out);
}

// Counts a YAML text's documents through the parser's events. yaml-cpp 0.7's LoadAll never returns on a stray flow
// token at the top level (a lone ","): its parser hands out empty documents without end. So documents are counted
// here, stopping at the second, and the one document is loaded with Load.
class DocumentCounter final : public YAML::EventHandler {
 public:
  int documents = 0;
  void OnDocumentStart(const YAML::Mark&) override { ++documents; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// The config file's one YAML document (null when the file is empty).
YAML::Node load_yaml_document(const std::filesystem::path& path) {
  SERQ_CHECK(std::filesystem::is_regular_file(path), "{}: config file not found (check the path)", path.string());
  std::ifstream file(path, std::ios::binary);
  SERQ_CHECK(file, "{}: cannot read the file (check its permissions)", path.string());
  const std::string text{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    DocumentCounter counter;
    while (counter.documents < 2 && parser.HandleNextDocument(counter)) {
    }
    SERQ_CHECK(counter.documents <= 1, "{}: holds more than one YAML document (a '---' line, or a stray ',' or ']' at "
               "the top level); put one experiment per file", path.string());
    return YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    if (e.mark.is_null()) fail("{}: YAML syntax error: {}", path.string(), e.msg);
    fail("{}:{}:{}: YAML syntax error: {}", path.string(), e.mark.line + 1, e.mark.column + 1, e.msg);
  }
}

// The values of one swept key: a non-empty list, each value parsed and validated as the key's type.
std::vector<ConfigValue> sweep_values(std::size_t index, const YAML::Node& values, const std::string& where,
                                      const std::vector<std::string>& method_names) {
  const KeySpec& key = config_schema()[index];
  SERQ_CHECK(key.sweepable, "{}: {} cannot be swept (one value per config); set it outside sweep:", where, key.path);
  SERQ_CHECK(values.IsSequence(), "{}: {}: expected a list of values, got {}; write {}: [a, b]", where, key.path,
             node_kind(values), key.path);
  SERQ_CHECK(values.size() > 0, "{}: {}: the list is empty; give at least one value", where, key.path);
  std::vector<ConfigValue> parsed;
  for (const auto& value : values) parsed.push_back(key.parse(value, where, method_names));
  return parsed;
}

// One `zip:` group: keys whose lists have one length and vary together (point i takes the i-th value of each).
SweepAxis parse_zip_group(const YAML::Node& group, const std::string& where,
                          const std::vector<std::string>& method_names) {
  SERQ_CHECK(group.IsMap() && group.size() >= 1, "{}: expected a map of key: [values] whose lists vary together, "
             "got {}; e.g. zip: {{quant.w_bits: [4, 8], quant.a_bits: [4, 8]}}", where, node_kind(group));
  Entries entries;
  flatten(group, "", where, entries);
  SweepAxis axis{{}, {}, where};
  std::string first_key;
  for (const auto& [index, values] : entries) {
    const std::vector<ConfigValue> parsed = sweep_values(index, values, where, method_names);
    const std::string& key = config_schema()[index].path;
    if (axis.keys.empty()) {
      axis.points.resize(parsed.size());
      first_key = key;
    }
    SERQ_CHECK(parsed.size() == axis.points.size(), "{}: {} has {} values but {} has {}; lists zipped together need "
               "one length", where, key, parsed.size(), first_key, axis.points.size());
    axis.keys.push_back(index);
    for (std::size_t i = 0; i < parsed.size(); ++i) axis.points[i].push_back(parsed[i]);
  }
  return axis;
}

// `sweep:` — key: [values] entries (an axis each) and an optional `zip:` of one group or a list of groups.
std::vector<SweepAxis> parse_sweep(const YAML::Node& sweep, const std::string& file,
                                   const std::vector<std::string>& method_names) {
  const std::string where = file + ": sweep";
  SERQ_CHECK(sweep.IsMap(), "{}: expected a map of key: [values], got {}; e.g. sweep: {{quant.w_bits: [4, 8]}}", where,
             node_kind(sweep));
  Entries entries;
  std::vector<SweepAxis> axes;  // in document order: the first is outermost
  for (const auto& item : sweep) {
    if (!(item.first.IsScalar() && item.first.Scalar() == "zip")) {
      const std::size_t before = entries.size();
      flatten_item(item.first, item.second, "", where, entries);
      for (std::size_t e = before; e < entries.size(); ++e) {
        const auto& [index, values] = entries[e];
        axes.push_back(SweepAxis{{index}, {}, where});
        for (ConfigValue& value : sweep_values(index, values, where, method_names)) {
          axes.back().points.push_back({std::move(value)});
        }
      }
      continue;
    }
    const std::string zip_where = where + ": zip";
    SERQ_CHECK(item.second.IsMap() || item.second.IsSequence(), "{}: expected a map of key: [values], or a list of "
               "such maps, got {}", zip_where, node_kind(item.second));
    if (item.second.IsMap()) {
      axes.push_back(parse_zip_group(item.second, zip_where, method_names));
    } else {
      for (const auto& group : item.second) axes.push_back(parse_zip_group(group, zip_where, method_names));
    }
  }
  // A key may vary along one axis only.
  std::set<std::size_t> swept;
  for (const SweepAxis& axis : axes) {
    for (std::size_t index : axis.keys) {
      SERQ_CHECK(swept.insert(index).second, "{}: {} is swept twice (in zip: and outside it, or in two zip groups); "
                 "keep one", where, config_schema()[index].path);
    }
  }
  return axes;
}

// "KEY=VALUE" → the key's row and its parsed value; a set key is taken out of the sweep axis that varies it.
void apply_override(const std::string& text, const std::vector<std::string>& method_names, Settings& settings,
                    std::vector<SweepAxis>& axes) {
  const std::size_t eq = text.find('=');
  SERQ_CHECK(eq != std::string::npos && eq > 0, "--set '{}': expected KEY=VALUE, e.g. --set quant.w_bits=8", text);
  const std::string path = text.substr(0, eq);
  const auto index = config_key_index(path);
  if (!index) fail("--set: unknown key '{}'; {}", path, unknown_key_hint(path));
  YAML::Node node;
  try {
    node = YAML::Load(text.substr(eq + 1));
  } catch (const YAML::ParserException& e) {
    fail("--set {}: the value is not valid YAML ({}); quote it, e.g. {}='...'", path, e.msg, path);
  }
  settings[*index] = Setting{config_schema()[*index].parse(node, "--set", method_names), "--set"};
  for (SweepAxis& axis : axes) {  // the key stops varying; the rest of its zip group still does
    const auto found = std::find(axis.keys.begin(), axis.keys.end(), *index);
    if (found == axis.keys.end()) continue;
    const auto column = found - axis.keys.begin();
    axis.keys.erase(found);
    for (auto& point : axis.points) point.erase(point.begin() + column);
  }
  std::erase_if(axes, [](const SweepAxis& axis) { return axis.keys.empty(); });
}

// Whether each schema row belongs to a run of `method`: every key but other methods' parameters.
std::vector<bool> rows_applying(const std::string& method, const MethodCatalog& methods) {
  const auto& schema = config_schema();
  const auto found = methods.parameters.find(method);
  std::vector<bool> applies(schema.size(), true);
  for (std::size_t i = 0; i < schema.size(); ++i) {
    if (!schema[i].method_parameter) continue;
    applies[i] = found != methods.parameters.end() &&
                 std::find(found->second.begin(), found->second.end(), schema[i].path) != found->second.end();
  }
  return applies;
}

// The methods that read `key`, for messages: "lorc, lqer, l2qer, serq".
std::string methods_reading(const std::string& key, const MethodCatalog& methods) {
  std::vector<std::string> readers;
  for (const auto& name : methods.names) {
    const auto found = methods.parameters.find(name);
    if (found != methods.parameters.end() &&
        std::find(found->second.begin(), found->second.end(), key) != found->second.end())
      readers.push_back(name);
  }
  return readers.empty() ? std::string("no method") : fmt::format("{}", fmt::join(readers, ", "));
}

ResolvedConfig resolve(const Settings& settings, const std::filesystem::path& config_path,
                       const MethodCatalog& methods) {
  const auto& schema = config_schema();
  const std::string file = config_path.string();
  std::vector<ConfigValue> values;
  values.reserve(schema.size());
  for (std::size_t i = 0; i < schema.size(); ++i) {
    const KeySpec& key = schema[i];
    if (settings[i]) {
      values.push_back(key.finalize(settings[i]->value, settings[i]->origin));
      continue;
    }
    switch (key.default_kind) {
      case DefaultKind::value:
        values.push_back(key.finalize(key.default_value, file));
        break;
      case DefaultKind::required:
        fail("{}: {} is required ({}); set it in the config or pass --set {}=...", file, key.path, key.doc, key.path);
      case DefaultKind::same_as_key: {
        const auto source = config_key_index(key.default_key);
        assert(source && *source < i);
        values.push_back(values[*source]);
        break;
      }
      case DefaultKind::config_stem:
        values.push_back(key.finalize(config_path.stem().string(), file));
        break;
    }
  }
  const auto method = config_key_index("quant.method");
  assert(method);
  std::vector<bool> applies = rows_applying(std::get<std::string>(values[*method]), methods);
  return ResolvedConfig(std::move(values), std::move(applies));
}

}  // namespace

ExperimentPlan load_experiment(const std::filesystem::path& config_path, const std::vector<std::string>& set_overrides,
                               const MethodCatalog& methods) {
  const std::vector<std::string>& method_names = methods.names;
  const std::string file = config_path.string();
  const YAML::Node root = load_yaml_document(config_path);
  SERQ_CHECK(root.IsMap() || root.IsNull(), "{}: expected a map of sections ({}, sweep) at the top level, got {}", file,
             config_section_keys(""), node_kind(root));

  Entries entries;
  std::vector<SweepAxis> axes;
  bool has_sweep = false;
  for (const auto& item : root) {
    if (item.first.IsScalar() && item.first.Scalar() == "sweep") {
      SERQ_CHECK(!has_sweep, "{}: sweep: appears twice; merge the two", file);
      has_sweep = true;
      axes = parse_sweep(item.second, file, method_names);
    } else {
      flatten_item(item.first, item.second, "", file, entries);
    }
  }

  Settings base(config_schema().size());
  for (const auto& [index, node] : entries)
    base[index] = Setting{config_schema()[index].parse(node, file, method_names), file};
  for (const std::string& text : set_overrides) apply_override(text, method_names, base, axes);

  // Method parameters the user set, with where, to check that some run reads each one.
  std::map<std::size_t, std::string> set_parameters;
  for (std::size_t i = 0; i < base.size(); ++i) {
    if (base[i] && config_schema()[i].method_parameter) set_parameters.emplace(i, base[i]->origin);
  }
  for (const SweepAxis& axis : axes) {
    for (const std::size_t key : axis.keys) {
      if (config_schema()[key].method_parameter) set_parameters.emplace(key, axis.origin);
    }
  }
  std::set<std::size_t> parameters_read;

  ExperimentPlan plan{{}, config_path, {}};
  std::map<std::string, std::size_t> run_of_yaml;
  std::set<std::string> full_yaml_seen;  // every key, read or not: the same twice is a repeated sweep value
  std::vector<std::size_t> point(axes.size(), 0);  // an odometer over the axes, the last one turning fastest
  for (bool done = false; !done;) {
    Settings settings = base;
    for (std::size_t a = 0; a < axes.size(); ++a) {
      for (std::size_t k = 0; k < axes[a].keys.size(); ++k) {
        settings[axes[a].keys[k]] = Setting{axes[a].points[point[a]][k], axes[a].origin};
      }
    }
    ResolvedConfig run = resolve(settings, config_path, methods);
    std::string full_yaml;
    for (std::size_t i = 0; i < settings.size(); ++i) {
      if (settings[i]) full_yaml += fmt::format("{}={}\n", i, config_schema()[i].to_yaml(settings[i]->value));
      if (config_schema()[i].method_parameter && run.applies(config_schema()[i].path)) parameters_read.insert(i);
    }
    const auto [seen, inserted] = run_of_yaml.emplace(run.to_yaml(), plan.runs.size());
    SERQ_CHECK(inserted || !full_yaml_seen.contains(full_yaml), "{}: sweep: runs {} and {} resolve to the same config "
               "({}); remove the repeated value", file, seen->second + 1, plan.runs.size() + 1, run.label());
    full_yaml_seen.insert(full_yaml);
    // Points that differ only in a parameter their method does not read (rtn across a serq.rank sweep) are one run.
    if (inserted) plan.runs.push_back(std::move(run));

    done = true;
    for (std::size_t a = axes.size(); a-- > 0;) {
      if (++point[a] < axes[a].points.size()) {
        done = false;
        break;
      }
      point[a] = 0;
    }
  }
  for (const auto& [key, origin] : set_parameters) {
    const std::string& path = config_schema()[key].path;
    SERQ_CHECK(parameters_read.contains(key), "{}: {}: no method of this experiment has this parameter; it belongs to "
               "{}; remove it or run one of those methods", origin, path, methods_reading(path, methods));
  }
  plan.experiment = plan.runs.front().get_string("experiment.name");
  return plan;
}

}  // namespace serq
