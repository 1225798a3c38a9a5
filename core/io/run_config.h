// Run configs: a YAML experiment file plus --set overrides, expanded over its sweep into fully resolved runs,
// each with a canonical YAML text, a run id and a short label.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/io/config_schema.h"

namespace serq {

// Every key of config_schema() with its final value: set, swept or defaulted, validated, ${VAR} expanded.
class ResolvedConfig {
 public:
  // One value per config_schema() row, in schema order, each already of its key's type.
  explicit ResolvedConfig(std::vector<ConfigValue> values);

  // Typed getters by dotted key. Choice keys are strings; `channel` reads as 0. Asking for a key that is not in the
  // schema, or with the wrong type, is a bug in the caller and throws serq::Error.
  std::int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  const std::string& get_string(std::string_view key) const;

  // Nested YAML of every key in schema order, one canonical spelling per value: the text stored in result files
  // and hashed into the run id. Loading it as a config gives this config back.
  std::string to_yaml() const;
  // 16 hex digits: FNV-1a 64 of to_yaml() and the code version (e.g. the git commit).
  std::string run_id(std::string_view code_version) const;
  // Short human label, e.g. "rtn w4a4 g32"; activation groups are shown when they differ ("ag128").
  std::string label() const;

 private:
  template <class T>
  const T& get(std::string_view key, const char* type_name) const;

  std::vector<ConfigValue> values_;
};

struct ExperimentPlan {
  std::string experiment;  // experiment.name (not sweepable: one per config)
  std::filesystem::path config_path;
  std::vector<ResolvedConfig> runs;  // the sweep's Cartesian product, first sweep key outermost
};

// Reads `config_path`, applies `set_overrides` ("KEY=VALUE", VALUE a YAML scalar; later ones win; one on a swept key
// replaces that sweep axis), and expands the optional top-level `sweep:` map of key → [values].
// `method_names` are the values quant.method accepts (the method registry's list).
// Every problem is a serq::Error of one line naming the file (or "--set"), the key and the fix.
ExperimentPlan load_experiment(const std::filesystem::path& config_path, const std::vector<std::string>& set_overrides,
                               const std::vector<std::string>& method_names);

}  // namespace serq
