// The one list of run-config keys: dotted path, type, default, one-line doc and validation.
// A new key is a new row in config_schema() (core/config/config_schema.cpp); loading, --set, sweeps, the resolved YAML,
// run ids and `serq-run --help` all follow the table.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace serq {

// A typed scalar config value. Integer keys with named values (`channel`) store the number the name stands for.
using ConfigValue = std::variant<std::string, std::int64_t, double, bool>;

enum class ValueType { string, integer, floating, boolean, choice };

// Where a key's value comes from when the config does not set it.
enum class DefaultKind {
  value,        // KeySpec::default_value
  required,     // none: the config (or --set) must give it
  same_as_key,  // the final value of KeySpec::default_key, an earlier row of the same type
  config_stem,  // the config file's name without its extension
};

// Where a choice key's allowed values come from: its own row, or the method registry (passed in by the caller).
enum class ChoiceSource { listed, methods };

// What a string must be once ${VAR} expansion is done.
enum class StringCheck {
  none,
  name,           // letters, digits, '.', '_', '-' (it names a results directory)
  existing_path,  // a file or directory that exists
  task_list,      // "all", or a comma list of zero-shot task names (core/data/tasks.h); empty = none
  overrides,      // per-layer rules (core/config/layer_overrides.h) as their canonical flow text; empty = none
};

struct KeySpec {
  std::string path;  // dotted, e.g. "quant.w_bits"; the part before the last dot is its section
  ValueType type;
  std::string doc;  // one line, shown by --help
  DefaultKind default_kind = DefaultKind::value;
  ConfigValue default_value{};
  std::string default_key{};
  // integer and floating: the accepted range, plus single integers accepted outside it (16 = not quantized)
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::int64_t> also_allowed{};
  std::vector<std::pair<std::string, std::int64_t>> named{};  // integer: words standing for a number
  std::vector<std::string> choices{};                         // choice with ChoiceSource::listed
  ChoiceSource choice_source = ChoiceSource::listed;
  bool expand_env = false;  // string: ${VAR} is expanded with serq::expand_env
  StringCheck check = StringCheck::none;
  bool sweepable = true;
  // A method parameter is read only by the methods that list it (Method::parameters()): it is left out of the
  // resolved config of other methods' runs, and setting it where no run's method reads it is an error.
  bool method_parameter = false;

  // Converts one YAML value to this key's type and checks it against the row. Errors are one line starting with
  // `where` (the config file, "--set", ...), then the key, the bad value and what to write instead.
  ConfigValue parse(const YAML::Node& node, std::string_view where, const std::vector<std::string>& method_names) const;
  // The part of validation that depends on the machine: ${VAR} expansion and the StringCheck, on the final value.
  ConfigValue finalize(const ConfigValue& value, std::string_view where) const;
  // The value as one canonical YAML scalar: strings double-quoted, named integers by name.
  std::string to_yaml(const ConfigValue& value) const;
  // What may be written, e.g. "an integer 2..8 or 16", "one of: fp, rtn" (the methods list may be empty).
  std::string allowed(const std::vector<std::string>& method_names) const;
};

// Every key, grouped by section, in the order of the resolved YAML.
const std::vector<KeySpec>& config_schema();

// The row of `path` in config_schema(), if it is a key.
std::optional<std::size_t> config_key_index(std::string_view path);

// Whether `path` is a section (a strict prefix of some key at a dot), e.g. "quant".
bool is_config_section(std::string_view path);

// The keys directly under `section` ("method, w_bits, ..."), or the sections when `section` is empty.
std::string config_section_keys(std::string_view section);

// "did you mean 'quant.w_bits'? (keys under quant: method, w_bits, ...)" for a path that is not a key.
std::string unknown_key_hint(std::string_view path);

// `text` as one YAML double-quoted scalar: '"' and '\\' escaped, control characters as \xNN.
std::string yaml_double_quoted(const std::string& text);

// One line per key (path, type, default, doc, allowed values), for serq-run --help.
std::string describe_config_keys();

}  // namespace serq
