// Run configs: a YAML experiment file plus --set overrides, expanded over its sweep into fully resolved runs,
// each with a canonical YAML text, a run id and a short label.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/config_schema.h"

namespace serq {

// The methods quant.method accepts, and the method parameters (KeySpec::method_parameter keys) each one reads.
struct MethodCatalog {
  std::vector<std::string> names;
  std::map<std::string, std::vector<std::string>> parameters;  // method name → keys, e.g. "serq" → {"quant.rank"}
};

// Every key of config_schema() with its final value: set, swept or defaulted, validated, ${VAR} expanded.
// A method parameter that the run's method does not read keeps its default and is left out of to_yaml().
class ResolvedConfig {
 public:
  // One value per config_schema() row, in schema order, each already of its key's type; `applies` (same size)
  // says whether the row belongs to this run (false only for other methods' parameters).
  ResolvedConfig(std::vector<ConfigValue> values, std::vector<bool> applies);

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
  // Short human label, e.g. "rtn w4a4 g32", "serq w4a4 g32 r16", "rtn mxfp4 w4a4 g32 gptq"; activation groups are
  // shown when they differ ("ag128"), method parameters when they apply.
  std::string label() const;
  // Whether `key` belongs to this run (every key but other methods' parameters).
  bool applies(std::string_view key) const;

 private:
  template <class T>
  const T& get(std::string_view key, const char* type_name) const;

  std::vector<ConfigValue> values_;
  std::vector<bool> applies_;
};

struct ExperimentPlan {
  std::string experiment;  // experiment.name (not sweepable: one per config)
  std::filesystem::path config_path;
  std::vector<ResolvedConfig> runs;  // the sweep's Cartesian product, first sweep key outermost; points that differ
                                     // only in parameters their method does not read are one run
};

// Reads `config_path`, applies `set_overrides` ("KEY=VALUE", VALUE a YAML scalar; later ones win; one on a swept key
// takes that key out of the sweep), and expands the optional top-level `sweep:` map of key → [values] (one axis per
// key) with an optional `zip:` group (a map of key → [values] of one length, varying together) or list of groups.
// `methods` is the method registry's catalog. A method parameter set (in the file, by --set or in the sweep) that no
// run's method reads is an error. Every problem is a serq::Error of one line naming the file (or "--set"), the key
// and the fix.
ExperimentPlan load_experiment(const std::filesystem::path& config_path, const std::vector<std::string>& set_overrides,
                               const MethodCatalog& methods);

}  // namespace serq
