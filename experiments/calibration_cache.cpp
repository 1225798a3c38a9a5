// The calibration cache file (layout in calibration_cache.h) and the key with the identities of its inputs.
#include "experiments/calibration_cache.h"

#include <fmt/format.h>

#include "core/common/build_info.h"
#include "core/common/error.h"
#include "core/common/hash.h"
#include "core/common/paths.h"
#include "core/data/token_stream.h"
#include "core/formats/hdf5_file.h"
#include "experiments/file_identity.h"

namespace serq {
namespace {

constexpr const char* kFormat = "serq calibration cache 1";

std::string flag(bool value) { return value ? "true" : "false"; }

}  // namespace

std::string CalibrationKey::text() const {
  std::string text;
  for (const auto& [name, value] : parts) text += name + ": " + value + "\n";
  return text;
}

CalibrationKey calibration_key(const std::filesystem::path& model, const std::filesystem::path& tokenizer,
                               const std::string& dataset, const CalibrationSettings& settings, bool hessian,
                               bool lm_head, int top_k) {
  const std::filesystem::path data_file = dataset_file(dataset, assets_root());
  try {
    CalibrationKey key{{{"model", model.string()},
             {"model_files", model_identity(model)},
             {"tokenizer", tokenizer.string()},
             {"tokenizer_file", file_identity(tokenizer)},
             {"dataset", dataset},
             {"dataset_file", data_file.string() + ": " + file_identity(data_file)},
             {"samples", std::to_string(settings.samples)},
             {"seq_len", std::to_string(settings.seq_len)},
             {"seed", std::to_string(settings.seed)},
             {"sampling", settings.sampling == CalibrationSampling::random ? "random" : "consecutive"},
             {"hessian", flag(hessian)},
             {"lm_head", flag(lm_head)},
             {"code_version", build_info().git_commit}}};
    if (top_k > 0) key.parts.emplace_back("top_k", std::to_string(top_k));
    return key;
  } catch (const std::filesystem::filesystem_error& e) {
    fail("calibration cache key: cannot read {} ({}); check that the model, tokenizer and calib.dataset files are "
         "readable", e.path1().string(), e.code().message());
  }
}

std::filesystem::path calibration_cache_file(const std::filesystem::path& dir, const CalibrationKey& key) {
  return dir / (fnv1a64_hex(key.text()) + ".h5");
}

void write_calibration_cache(const std::filesystem::path& file, const CalibrationKey& key,
                             const Calibration& calibration) {
  write_hdf5_atomically(file, [&](Hdf5Writer& writer) {
    writer.attribute("format", kFormat);
    writer.scalar("key", key.text());
    for (const auto& [name, value] : key.parts) writer.scalar("settings/" + name, value);
    writer.scalar("seconds", calibration.seconds);
    for (const auto& [layer, stats] : calibration.stats) {
      const std::string group = "layers/" + layer + "/";
      writer.matrix(group + "abs_max", Eigen::MatrixXf(stats.abs_max.transpose()));
      writer.vector(group + "mean_abs", std::vector<double>(stats.mean_abs.begin(), stats.mean_abs.end()));
      writer.scalar(group + "tokens", stats.tokens);
      if (stats.hessian.size() > 0) writer.matrix(group + "hessian", stats.hessian);
      if (stats.top_abs.size() > 0) writer.matrix(group + "top_abs", stats.top_abs);
    }
  });
}

Calibration read_calibration_cache(const std::filesystem::path& file, const CalibrationKey& key) {
  const Hdf5Reader reader(file, "not usable", "");
  if (reader.attribute("format") != kFormat) reader.fail_with(fmt::format("format is not '{}'", kFormat));
  if (reader.scalar_string("key") != key.text()) reader.fail_with("stored for another key");
  Calibration calibration;
  calibration.seconds = reader.scalar_double("seconds");
  for (const std::string& layer : reader.members("layers")) {
    const std::string group = "layers/" + layer + "/";
    ChannelStats& stats = calibration.stats[layer];
    const Eigen::MatrixXf abs_max = reader.matrix_float(group + "abs_max");
    const std::vector<double> mean_abs = reader.doubles(group + "mean_abs");
    if (abs_max.rows() != 1 || abs_max.cols() != static_cast<Eigen::Index>(mean_abs.size())) {
      reader.fail_with(fmt::format("{}: abs_max is {}×{} but mean_abs has {} channels", layer, abs_max.rows(),
                                   abs_max.cols(), mean_abs.size()));
    }
    stats.abs_max = abs_max.row(0).transpose();
    stats.mean_abs = Eigen::Map<const Eigen::VectorXd>(mean_abs.data(), static_cast<Eigen::Index>(mean_abs.size()));
    stats.tokens = reader.scalar_int(group + "tokens");
    if (reader.has(group + "hessian")) {
      stats.hessian = reader.matrix_double(group + "hessian");
      if (stats.hessian.rows() != abs_max.cols() || stats.hessian.cols() != abs_max.cols()) {
        reader.fail_with(fmt::format("{}: the Hessian is {}×{} for {} channels", layer, stats.hessian.rows(),
                                     stats.hessian.cols(), abs_max.cols()));
      }
    }
    if (reader.has(group + "top_abs")) {
      stats.top_abs = reader.matrix_float(group + "top_abs");
      if (stats.top_abs.cols() != abs_max.cols()) {
        reader.fail_with(fmt::format("{}: top_abs has {} channels, abs_max {}", layer, stats.top_abs.cols(),
                                     abs_max.cols()));
      }
    }
  }
  return calibration;
}

}  // namespace serq
