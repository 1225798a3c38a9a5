// Reading serq exports back to the model they were written from; see export.h.
#include "core/model/export.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>

#include "core/common/error.h"
#include "core/formats/safetensors.h"
#include "core/model/export_manifest.h"

namespace serq {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

class TensorSource {
 public:
  explicit TensorSource(const fs::path& file) : file_(SafetensorsFile::open(file)) {}

  Matrix matrix(const std::string& name, std::int64_t rows, std::int64_t cols) const {
    check_shape(name, {rows, cols});
    Matrix m(rows, cols);
    file_.read_f32(name, {m.data(), static_cast<std::size_t>(m.size())});
    return m;
  }
  Vector vector(const std::string& name, std::int64_t n) const {
    check_shape(name, {n});
    Vector v(n);
    file_.read_f32(name, {v.data(), static_cast<std::size_t>(v.size())});
    return v;
  }
  template <class T>
  std::vector<T> raw(const std::string& name, DType dtype) const {
    const std::span<const std::byte> bytes = file_.bytes(name, dtype);
    std::vector<T> values(bytes.size() / sizeof(T));
    std::memcpy(values.data(), bytes.data(), values.size() * sizeof(T));
    return values;
  }
  bool has(const std::string& name) const { return file_.find(name) != nullptr; }

  PackedWeight weight(const std::string& prefix, const json& d, Matrix* floats_out) const {
    const std::string storage = string_of(d, "storage");
    const int rows = int_of(d, "rows"), cols = int_of(d, "cols");
    if (storage == "float") {
      *floats_out = matrix(prefix + ".values", rows, cols);
      return {};
    }
    PackedWeight::StoredParts parts;
    if (storage == "f32") {
      parts.f32 = matrix(prefix + ".values", rows, cols);
      return PackedWeight::from_stored(PackedWeight::Storage::f32, {}, rows, cols, std::move(parts));
    }
    if (storage == "bf16" || storage == "f16") {
      parts.sixteen = raw<std::uint16_t>(prefix + ".values", storage == "bf16" ? DType::BF16 : DType::F16);
      return PackedWeight::from_stored(storage == "bf16" ? PackedWeight::Storage::bf16 : PackedWeight::Storage::f16,
                                       {}, rows, cols, std::move(parts));
    }
    SERQ_CHECK(storage == "int" || storage == "mxfp4", "storage '{}' is not one serq writes", storage);
    const QuantSpec spec = spec_from(object_of(d, "spec"));
    parts.codes = raw<std::uint8_t>(prefix + ".codes", DType::U8);
    if (has(prefix + ".zeros")) parts.zeros = raw<std::uint8_t>(prefix + ".zeros", DType::U8);
    if (has(prefix + ".exponents")) parts.exponents = raw<std::uint8_t>(prefix + ".exponents", DType::U8);
    if (storage == "int" && spec.f16_scales) parts.half_scales = raw<std::uint16_t>(prefix + ".scales", DType::F16);
    if (storage == "int" && !spec.f16_scales) parts.float_scales = raw<float>(prefix + ".scales", DType::F32);
    if (bool_of(d, "divisor")) parts.divisor = vector(prefix + ".divisor", rows);
    try {
      return PackedWeight::from_stored(storage == "mxfp4" ? PackedWeight::Storage::mxfp4
                                                          : PackedWeight::Storage::int_codes,
                                       spec, rows, cols, std::move(parts));
    } catch (const Error& e) {
      fail("{}: {}", prefix, e.what());
    }
  }

 private:
  void check_shape(const std::string& name, const std::vector<std::int64_t>& shape) const {
    const TensorInfo* info = file_.find(name);
    SERQ_CHECK(info, "no tensor '{}'", name);
    SERQ_CHECK(info->shape == shape, "tensor '{}' has shape [{}], expected [{}]", name, fmt::join(info->shape, ", "),
               fmt::join(shape, ", "));
  }
  SafetensorsFile file_;
};

void read_linear(const TensorSource& source, const json& j, QuantLinear& layer) {
  SERQ_CHECK(string_of(j, "name") == layer.name, "the linears are out of order: '{}' where '{}' belongs",
             string_of(j, "name"), layer.name);
  const int d_out = static_cast<int>(layer.weight.rows()), d_in = static_cast<int>(layer.weight.cols());
  layer.weight.resize(0, 0);
  layer.transform = string_of(j, "transform");
  layer.weight_quant = spec_from(object_of(j, "weight_quant"));
  layer.act_quant = spec_from(object_of(j, "act_quant"));
  layer.packed = source.weight(layer.name + ".weight", j.at("weight"), &layer.weight);
  SERQ_CHECK(layer.d_out() == d_out && layer.d_in() == d_in, "{}: its weight is {} × {}, the model's shape is {} × {}",
             layer.name, layer.d_out(), layer.d_in(), d_out, d_in);
  const json& input = object_of(j, "input");
  if (bool_of(input, "scale")) layer.input.scale = source.vector(layer.name + ".input_scale", d_in);
  if (bool_of(input, "order")) {
    layer.input.order = source.raw<int>(layer.name + ".input_order", DType::I32);
    std::vector<bool> seen(static_cast<std::size_t>(d_in), false);
    for (const int c : layer.input.order) {
      SERQ_CHECK(c >= 0 && c < d_in && !seen[static_cast<std::size_t>(c)], "{}: its input order is not a permutation "
                 "of 0..{}", layer.name, d_in - 1);
      seen[static_cast<std::size_t>(c)] = true;
    }
    SERQ_CHECK(static_cast<int>(layer.input.order.size()) == d_in, "{}: its input order has {} entries, not {}",
               layer.name, layer.input.order.size(), d_in);
  }
  if (const json& rotation = input.at("rotation"); !rotation.is_null()) {
    layer.input.rotation.hadamard_size = int_of(rotation, "hadamard_size");
    layer.input.rotation.description = string_of(rotation, "description");
    const int n = layer.input.rotation.hadamard_size;
    SERQ_CHECK(n >= 1 && (n & (n - 1)) == 0 && d_in % n == 0, "{}: a Hadamard size of {} does not fit d_in {}",
               layer.name, n, d_in);
    if (bool_of(rotation, "factor")) {
      layer.input.rotation.factor = source.matrix(layer.name + ".rotation_factor", d_in / n, d_in / n);
    }
  }
  if (const json& c = j.at("low_rank"); !c.is_null()) {
    LowRankCorrection& low = layer.low_rank;
    low.factor_quant = spec_from(object_of(c, "factor_quant"));
    low.intermediate_quant =
        spec_from(object_of(c, "intermediate_quant"));
    low.packed_a = source.weight(layer.name + ".lowrank_a", c.at("a"), &low.a);
    low.packed_b = source.weight(layer.name + ".lowrank_b", c.at("b"), &low.b);
    if (!low.packed_a.empty()) low.a = low.packed_a.dequantize();
    if (!low.packed_b.empty()) low.b = low.packed_b.dequantize();
    SERQ_CHECK(low.a.cols() == d_in && low.b.rows() == d_out && low.a.rows() == low.b.cols(), "{}: its factors are "
               "{} × {} and {} × {} for a {} × {} layer", layer.name, low.a.rows(), low.a.cols(), low.b.rows(),
               low.b.cols(), d_out, d_in);
  }
  if (const json& c = j.at("salient"); !c.is_null()) {
    layer.salient.quant = spec_from(object_of(c, "quant"));
    layer.salient.packed = source.weight(layer.name + ".salient_r", c.at("r"), &layer.salient.r);
    if (!layer.salient.packed.empty()) layer.salient.r = layer.salient.packed.dequantize();
    SERQ_CHECK(layer.salient.r.rows() == d_out && layer.salient.r.cols() <= d_in, "{}: R is {} × {} for a {} × {} "
               "layer", layer.name, layer.salient.r.rows(), layer.salient.r.cols(), d_out, d_in);
  }
  if (bool_of(j, "bias")) layer.bias = source.vector(layer.name + ".bias", d_out);
}

}  // namespace

void check_export(const fs::path& dir) { check_files(dir, read_manifest(dir)); }

bool is_serq_export(const fs::path& path) {
  std::error_code error;
  return fs::is_directory(path, error) && fs::is_regular_file(path / kExportManifest, error);
}

Model load_export(const fs::path& dir) {
  const json manifest = read_manifest(dir);
  const fs::path manifest_file = dir / kExportManifest;
  check_files(dir, manifest);
  try {
    const ModelConfig config = config_from(object_of(manifest, "model"));
    Model model = make_empty_model(config, true);
    const TensorSource source(dir / kExportWeights);
    model.embed = source.matrix("embed", config.vocab_size, config.dim);
    model.final_norm = source.vector("final_norm", config.dim);
    for (std::size_t i = 0; i < model.layers.size(); ++i) {
      model.layers[i].attn_norm = source.vector(fmt::format("layers.{}.attn_norm", i), config.dim);
      model.layers[i].ffn_norm = source.vector(fmt::format("layers.{}.ffn_norm", i), config.dim);
    }
    const json& linears = list_of(manifest, "linears");
    const bool head_is_embed = bool_of(manifest, "lm_head_is_embed");
    std::vector<QuantLinear*> layers = model.linears();
    if (head_is_embed) layers.pop_back();
    SERQ_CHECK(linears.size() == layers.size(), "{} linears listed, the model has {}", linears.size(), layers.size());
    for (std::size_t i = 0; i < layers.size(); ++i) read_linear(source, linears[i], *layers[i]);
    if (head_is_embed) model.lm_head.weight = model.embed;
    const json& provenance = manifest.at("provenance");
    model.source = fmt::format("serq-export {} (run {}, {})", dir.string(), string_of(provenance, "run_id"),
                               string_of(provenance, "label"));
    return model;
  } catch (const Error& e) {
    fail("{}: {}; export the model again", manifest_file.string(), e.what());
  } catch (const json::exception& e) {
    fail("{}: {}; export the model again", manifest_file.string(), e.what());
  }
}

ModelConfig read_export_config(const fs::path& dir) {
  const json manifest = read_manifest(dir);
  try {
    return config_from(object_of(manifest, "model"));
  } catch (const Error& e) {
    fail("{}: {}; export the model again", (dir / kExportManifest).string(), e.what());
  }
}

fs::path export_tokenizer(const fs::path& dir) {
  const json manifest = read_manifest(dir);
  try {
    const std::string name = string_of(manifest, "tokenizer");
    SERQ_CHECK(name.find('/') == std::string::npos, "'tokenizer' names a path, not a file of the export");
    return dir / name;
  } catch (const Error& e) {
    fail("{}: {}; export the model again", (dir / kExportManifest).string(), e.what());
  }
}

std::string export_label(const fs::path& dir) {
  const json manifest = read_manifest(dir);
  try {
    return string_of(manifest.at("provenance"), "label");
  } catch (const std::exception& e) {
    fail("{}: {}; export the model again", (dir / kExportManifest).string(), e.what());
  }
}

double export_bits_per_weight(const fs::path& dir) {
  const json manifest = read_manifest(dir);
  try {
    return number_of(manifest.at("storage"), "bits_per_weight");
  } catch (const std::exception& e) {
    fail("{}: {}; export the model again", (dir / kExportManifest).string(), e.what());
  }
}

}  // namespace serq
