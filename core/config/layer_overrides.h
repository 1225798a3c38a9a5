// quant.overrides: per-layer control, as llama.cpp's --tensor-type and GPTQModel's `dynamic` rules. An ordered list
// of rules, each a regex `match` searched in a linear's name ("layers.11.mlp.down_proj", "lm_head") and the settings
// it gives that layer; the first rule that matches a layer wins, and a layer no rule matches takes the global ones.
//
//   quant:
//     overrides:
//       - {match: 'layers\.11\.mlp\.down_proj', w_bits: 8, a_bits: 8}   # the largest outlier channel
//       - {match: 'layers\.0\.', skip: true}                           # the first layer in full precision
//
// A rule may set: skip (keep the layer in full precision), w_bits, a_bits, group_size (weights and activations),
// a_group_size, format, rank and weight_quantizer, each checked as the global key of that name. The resolved list is
// kept as one canonical flow-YAML text, which is what the resolved config (and so the run id) holds.
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

namespace serq {

struct LayerOverride {
  std::string match;  // an ECMAScript regex, searched in the layer name
  std::regex pattern;
  bool skip = false;
  std::optional<int> w_bits, a_bits, group_size, a_group_size, rank;
  std::optional<std::string> format, weight_quantizer;
};

// The keys a rule may hold, in canonical order.
const std::vector<std::string>& override_keys();

// A YAML list of rules (or its flow text, as the resolved config stores it) → the canonical flow text: "" for no
// rules, else e.g. [{match: "layers\\.11\\.", w_bits: 8}]. Errors are one line starting with `where`, naming
// quant.overrides, the rule's position and the key: a rule that is not a map, a missing or bad regex, a key a rule
// cannot set (with the ones it can), a value its global key would refuse, a rule that sets nothing.
std::string canonical_overrides(const YAML::Node& node, std::string_view where);

// The rules of a canonical text (canonical_overrides' output).
std::vector<LayerOverride> parse_overrides(const std::string& canonical);

// The index of the first rule matching `layer`, if any.
std::optional<std::size_t> matching_override(const std::vector<LayerOverride>& rules, std::string_view layer);

// Refuses a rule that matches none of `layers` (the model's linear names), listing the names nearest its regex.
// `source` names the model in the message.
void check_overrides_match(const std::vector<LayerOverride>& rules, const std::vector<std::string>& layers,
                           const std::string& source);

}  // namespace serq
