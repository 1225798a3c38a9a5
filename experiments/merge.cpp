// Merging run records into one table; see merge.h.
#include "experiments/merge.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "core/common/durable_file.h"
#include "core/common/error.h"
#include "core/formats/hdf5_file.h"

namespace serq {
namespace {

// Every run.h5 below `root` (or `root` itself), in path order.
std::vector<std::filesystem::path> result_files(const std::filesystem::path& root) {
  SERQ_CHECK(std::filesystem::exists(root), "{}: no such results directory (check the path)", root.string());
  if (!std::filesystem::is_directory(root)) return {root};
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (entry.is_regular_file() && entry.path().filename() == "run.h5") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

bool same_record(const RunRecord& a, const RunRecord& b) {
  return a.experiment == b.experiment && a.label == b.label && a.config_yaml == b.config_yaml &&
         a.metrics == b.metrics && a.counts == b.counts && a.info == b.info;
}

// The resolved config YAML as dotted key → scalar text, in document order.
void flatten_config(const YAML::Node& node, const std::string& prefix,
                    std::vector<std::pair<std::string, std::string>>& out) {
  for (const auto& item : node) {
    const std::string key = prefix.empty() ? item.first.Scalar() : prefix + "." + item.first.Scalar();
    if (item.second.IsMap()) {
      flatten_config(item.second, key, out);
    } else {
      out.emplace_back(key, item.second.IsScalar() ? item.second.Scalar() : YAML::Dump(item.second));
    }
  }
}

// Adds a text or numeric column cell; columns are created in first-seen order.
class TableBuilder {
 public:
  explicit TableBuilder(std::size_t rows) : rows_(rows) {}

  void text(const std::string& name, std::size_t row, const std::string& value) {
    MergedColumn& c = column(name, false);
    c.texts[row] = value;
    c.present[row] = true;
  }
  void number(const std::string& name, std::size_t row, double value) {
    MergedColumn& c = column(name, true);
    c.numbers[row] = value;
    c.present[row] = true;
  }

  // Columns grouped by kind, each group in first-seen order.
  std::vector<MergedColumn> take() {
    std::vector<MergedColumn> ordered;
    for (const char* prefix : {"", "config.", "metric.", "count.", "info."}) {
      for (const std::string& name : order_) {
        const bool identity = name == "run_id" || name == "experiment" || name == "label";
        if (*prefix == '\0' ? identity : (!identity && name.rfind(prefix, 0) == 0)) {
          ordered.push_back(std::move(columns_.at(name)));
        }
      }
    }
    return ordered;
  }

 private:
  MergedColumn& column(const std::string& name, bool numeric) {
    auto found = columns_.find(name);
    if (found == columns_.end()) {
      MergedColumn c{name, numeric, {}, {}, std::vector<bool>(rows_, false)};
      if (numeric) {
        c.numbers.assign(rows_, std::numeric_limits<double>::quiet_NaN());
      } else {
        c.texts.assign(rows_, "");
      }
      found = columns_.emplace(name, std::move(c)).first;
      order_.push_back(name);
    }
    return found->second;
  }

  std::size_t rows_;
  std::map<std::string, MergedColumn> columns_;
  std::vector<std::string> order_;
};

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::string number_text(const MergedColumn& column, std::size_t row) {
  const double value = column.numbers[row];
  if (column.name.rfind("count.", 0) == 0 && std::abs(value) < 9.0e15) {
    return fmt::format("{}", static_cast<std::int64_t>(value));
  }
  return fmt::format("{}", value);  // shortest text that reads back to the same double
}

}  // namespace

MergedTable merge_results(const std::vector<std::filesystem::path>& roots) {
  MergedTable table;
  std::map<std::string, std::filesystem::path> file_of_run;
  for (const std::filesystem::path& root : roots) {
    for (const std::filesystem::path& file : result_files(root)) {
      RunRecord record;
      try {
        record = read_run_record(file);
      } catch (const Error& e) {
        table.skipped.push_back(e.what());
        continue;
      }
      const auto [seen, inserted] = file_of_run.emplace(record.run_id, file);
      if (!inserted) {
        const auto earlier = std::find_if(table.runs.begin(), table.runs.end(),
                                          [&](const RunRecord& r) { return r.run_id == record.run_id; });
        SERQ_CHECK(same_record(*earlier, record), "{} and {}: two different results carry run id {}; keep the one "
                   "you trust and move the other out of the results", seen->second.string(), file.string(),
                   record.run_id);
        ++table.duplicates;
        continue;
      }
      table.runs.push_back(std::move(record));
    }
  }
  std::sort(table.runs.begin(), table.runs.end(), [](const RunRecord& a, const RunRecord& b) {
    return std::tie(a.experiment, a.label, a.run_id) < std::tie(b.experiment, b.label, b.run_id);
  });

  TableBuilder builder(table.runs.size());
  for (std::size_t row = 0; row < table.runs.size(); ++row) {
    const RunRecord& run = table.runs[row];
    builder.text("run_id", row, run.run_id);
    builder.text("experiment", row, run.experiment);
    builder.text("label", row, run.label);
    std::vector<std::pair<std::string, std::string>> config;
    try {
      flatten_config(YAML::Load(run.config_yaml), "", config);
    } catch (const YAML::Exception& e) {
      fail("{}: the stored config is not valid YAML ({}); re-run it", file_of_run.at(run.run_id).string(), e.what());
    }
    for (const auto& [key, value] : config) builder.text("config." + key, row, value);
    for (const auto& [name, value] : run.metrics) builder.number("metric." + name, row, value);
    for (const auto& [name, value] : run.counts) builder.number("count." + name, row, static_cast<double>(value));
    for (const auto& [name, value] : run.info) builder.text("info." + name, row, value);
  }
  table.columns = builder.take();
  return table;
}

void write_merged_csv(const std::filesystem::path& file, const MergedTable& table) {
  std::string text;
  for (std::size_t c = 0; c < table.columns.size(); ++c) text += (c ? "," : "") + csv_field(table.columns[c].name);
  text += "\n";
  for (std::size_t row = 0; row < table.runs.size(); ++row) {
    for (std::size_t c = 0; c < table.columns.size(); ++c) {
      const MergedColumn& column = table.columns[c];
      if (c) text += ",";
      if (!column.present[row]) continue;
      text += column.numeric ? number_text(column, row) : csv_field(column.texts[row]);
    }
    text += "\n";
  }
  write_file_atomically(file, text);
}

void write_merged_hdf5(const std::filesystem::path& file, const MergedTable& table) {
  write_hdf5_atomically(file, [&](Hdf5Writer& writer) {
    std::string names;
    for (const MergedColumn& column : table.columns) {
      if (column.numeric) {
        writer.vector("runs/" + column.name, column.numbers);
      } else {
        writer.vector("runs/" + column.name, column.texts);
      }
      names += (names.empty() ? "" : "\n") + column.name;
    }
    if (!table.columns.empty()) writer.attribute("columns", names, "runs");
    for (const RunRecord& run : table.runs) {
      if (!run.layers.empty()) write_layer_diagnostics(writer, "layers/" + run.run_id, run.layers);
      if (!run.windows.empty()) write_window_scores(writer, "windows/" + run.run_id, run.windows);
      if (!run.items.empty()) write_item_scores(writer, "items/" + run.run_id, run.items);
    }
  });
}

}  // namespace serq
