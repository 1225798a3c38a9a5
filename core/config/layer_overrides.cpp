// quant.overrides: parsing, the canonical text, and matching against a model's layer names (see layer_overrides.h).
#include "core/config/layer_overrides.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "core/common/error.h"
#include "core/common/text.h"
#include "core/config/config_schema.h"

namespace serq {
namespace {

// A rule key and the global key whose type and range it takes ("" for match and skip).
struct RuleKey {
  std::string name, global;
};
const std::vector<RuleKey>& rule_keys() {
  static const std::vector<RuleKey> keys = {
      {"match", ""},
      {"skip", ""},
      {"w_bits", "quant.w_bits"},
      {"a_bits", "quant.a_bits"},
      {"group_size", "quant.group_size"},
      {"a_group_size", "quant.a_group_size"},
      {"format", "quant.format"},
      {"rank", "quant.rank"},
      {"weight_quantizer", "quant.weight_quantizer"},
  };
  return keys;
}

const KeySpec& global_key(const std::string& path) { return config_schema()[*config_key_index(path)]; }

std::regex compile(const std::string& match, const std::string& where) {
  SERQ_CHECK(!match.empty(), "{}: match is empty; give a regex searched in layer names, e.g. 'mlp\\.down_proj'", where);
  try {
    return std::regex(match, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    fail("{}: match '{}' is not a valid regex ({}); escape dots and brackets, e.g. 'layers\\.11\\.mlp'", where, match,
         e.what());
  }
}

// One rule map → its canonical "{key: value, ...}" text, every value checked.
std::string canonical_rule(const YAML::Node& rule, const std::string& where) {
  SERQ_CHECK(rule.IsMap(), "{}: expected a map such as {{match: 'mlp\\.down_proj', w_bits: 8}}", where);
  std::vector<std::string> parts(rule_keys().size());
  for (const auto& item : rule) {
    const std::string key = item.first.IsScalar() ? item.first.Scalar() : std::string("?");
    const auto found = std::find_if(rule_keys().begin(), rule_keys().end(),
                                    [&](const RuleKey& k) { return k.name == key; });
    SERQ_CHECK(found != rule_keys().end(), "{}: '{}' is not a key an override can set; use {}", where, key,
               fmt::join(override_keys(), ", "));
    const auto index = static_cast<std::size_t>(found - rule_keys().begin());
    SERQ_CHECK(parts[index].empty(), "{}: {} is given twice; keep one", where, key);
    if (key == "match") {
      SERQ_CHECK(item.second.IsScalar(), "{}: match: expected a regex string", where);
      compile(item.second.Scalar(), where);
      parts[index] = "match: " + yaml_double_quoted(item.second.Scalar());
    } else if (key == "skip") {
      SERQ_CHECK(item.second.IsScalar() && (item.second.Scalar() == "true" || item.second.Scalar() == "false"),
                 "{}: skip: expected true or false", where);
      parts[index] = "skip: " + item.second.Scalar();
    } else {
      const KeySpec& spec = global_key(found->global);
      parts[index] = key + ": " + spec.to_yaml(spec.parse(item.second, where, {}));
    }
  }
  SERQ_CHECK(!parts[0].empty(), "{}: no match; give a regex searched in layer names, e.g. match: 'mlp\\.down_proj'",
             where);
  const bool skip = parts[1] == "skip: true";
  const auto settings = std::count_if(parts.begin() + 2, parts.end(), [](const std::string& p) { return !p.empty(); });
  SERQ_CHECK(!skip || settings == 0, "{}: skip: true keeps the layer in full precision, so its other settings "
             "would be ignored; remove them, or skip", where);
  SERQ_CHECK(skip || settings > 0, "{}: sets nothing; add skip: true or one of {}", where,
             fmt::join(std::vector<std::string>(override_keys().begin() + 2, override_keys().end()), ", "));
  if (parts[1] == "skip: false") parts[1].clear();
  std::erase_if(parts, [](const std::string& p) { return p.empty(); });
  return fmt::format("{{{}}}", fmt::join(parts, ", "));
}

}  // namespace

const std::vector<std::string>& override_keys() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const RuleKey& key : rule_keys()) out.push_back(key.name);
    return out;
  }();
  return names;
}

std::string canonical_overrides(const YAML::Node& node, std::string_view where) {
  const std::string prefix = fmt::format("{}: quant.overrides", where);
  if (node.IsNull()) return "";
  YAML::Node list = node;
  if (node.IsScalar()) {  // the flow text of a resolved config, or --set quant.overrides='[...]'
    if (node.Scalar().empty()) return "";
    try {
      list = YAML::Load(node.Scalar());
    } catch (const YAML::Exception& e) {
      fail("{}: not a YAML list of rules ({}); write e.g. [{{match: 'mlp\\.down_proj', w_bits: 8}}]", prefix, e.msg);
    }
  }
  SERQ_CHECK(list.IsSequence(), "{}: expected a list of rules such as [{{match: 'mlp\\.down_proj', w_bits: 8}}]",
             prefix);
  std::vector<std::string> rules;
  for (std::size_t i = 0; i < list.size(); ++i) {
    rules.push_back(canonical_rule(list[i], fmt::format("{}: rule {}", prefix, i + 1)));
  }
  return rules.empty() ? std::string() : fmt::format("[{}]", fmt::join(rules, ", "));
}

std::vector<LayerOverride> parse_overrides(const std::string& canonical) {
  std::vector<LayerOverride> rules;
  if (canonical.empty()) return rules;
  const YAML::Node list = YAML::Load(canonical);
  for (const YAML::Node& node : list) {
    LayerOverride rule;
    rule.match = node["match"].Scalar();
    rule.pattern = compile(rule.match, "quant.overrides");
    rule.skip = node["skip"] && node["skip"].Scalar() == "true";
    auto integer = [&](const char* key, const char* global, std::optional<int>& out) {
      if (node[key]) out = static_cast<int>(std::get<std::int64_t>(global_key(global).parse(node[key], "", {})));
    };
    integer("w_bits", "quant.w_bits", rule.w_bits);
    integer("a_bits", "quant.a_bits", rule.a_bits);
    integer("group_size", "quant.group_size", rule.group_size);
    integer("a_group_size", "quant.a_group_size", rule.a_group_size);
    integer("rank", "quant.rank", rule.rank);
    if (node["format"]) rule.format = node["format"].Scalar();
    if (node["weight_quantizer"]) rule.weight_quantizer = node["weight_quantizer"].Scalar();
    rules.push_back(std::move(rule));
  }
  return rules;
}

std::optional<std::size_t> matching_override(const std::vector<LayerOverride>& rules, std::string_view layer) {
  for (std::size_t i = 0; i < rules.size(); ++i) {
    if (std::regex_search(layer.begin(), layer.end(), rules[i].pattern)) return i;
  }
  return std::nullopt;
}

void check_overrides_match(const std::vector<LayerOverride>& rules, const std::vector<std::string>& layers,
                           const std::string& source) {
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const bool any = std::any_of(layers.begin(), layers.end(), [&](const std::string& name) {
      return std::regex_search(name, rules[i].pattern);
    });
    if (any) continue;
    std::string plain;  // the regex without its escapes, to rank names by
    for (const char c : rules[i].match) {
      if (c != '\\' && c != '^' && c != '$') plain += c;
    }
    // Nearest first: by the edit distance to the name's start (a regex names a prefix or a part), then to the name.
    auto distance = [&](const std::string& name) {
      return std::pair(edit_distance(plain, std::string_view(name).substr(0, plain.size())), edit_distance(plain, name));
    };
    std::vector<std::string> nearest = layers;
    std::stable_sort(nearest.begin(), nearest.end(),
                     [&](const std::string& a, const std::string& b) { return distance(a) < distance(b); });
    nearest.resize(std::min<std::size_t>(3, nearest.size()));
    fail("quant.overrides: rule {}: match '{}' matches no layer of {}; nearest names: {}", i + 1, rules[i].match,
         source, fmt::join(nearest, ", "));
  }
}

}  // namespace serq
