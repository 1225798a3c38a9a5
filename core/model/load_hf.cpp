// Hugging Face LLaMA-family checkpoints: which file holds each tensor, shape checks against config.json,
// and the copy into serq::Model of the tensors core/model/architecture.h names.
#include "core/model/load_hf.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <span>

#include "core/common/error.h"
#include "core/formats/safetensors.h"
#include "core/model/memory.h"

namespace serq {
namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

// The checkpoint's safetensors files and, for each tensor name, the file that holds it.
class Checkpoint {
 public:
  explicit Checkpoint(const std::filesystem::path& dir) : dir_(dir) {
    if (std::filesystem::exists(dir / kSingleFile)) {
      const SafetensorsFile& file = open(kSingleFile);
      for (const TensorInfo& info : file.tensors()) owner_[info.name] = &file;
      listing_ = dir / kSingleFile;
    } else if (std::filesystem::exists(dir / kIndexFile)) {
      read_index(dir / kIndexFile);
      listing_ = dir / kIndexFile;
    } else {
      fail("{}: neither {} nor {} is there (serq reads safetensors checkpoints only; convert pytorch_model.bin "
           "files to safetensors first)", dir.string(), kSingleFile, kIndexFile);
    }
  }

  // The file holding tensor `name`, after checking that the tensor is there with the shape config.json implies.
  const SafetensorsFile& locate(const std::string& name, const std::vector<std::int64_t>& shape) const {
    const auto it = owner_.find(name);
    SERQ_CHECK(it != owner_.end(), "{}: tensor '{}' is missing (incomplete or non-LLaMA checkpoint? re-fetch it)",
               listing_.string(), name);
    const SafetensorsFile& file = *it->second;
    const TensorInfo* info = file.find(name);
    SERQ_CHECK(info, "{}: tensor '{}', which {} places in this file, is missing (incomplete download? re-fetch it)",
               file.path().string(), name, kIndexFile);
    SERQ_CHECK(info->shape == shape, "{}: tensor '{}' has shape [{}] but config.json implies [{}] (config.json and "
               "the weights disagree; re-fetch them together)", file.path().string(), name,
               fmt::join(info->shape, ", "), fmt::join(shape, ", "));
    return file;
  }

  // Copies tensor `name` into out after checking its shape against the one config.json implies.
  void read(const std::string& name, const std::vector<std::int64_t>& shape, std::span<float> out) {
    const SafetensorsFile& file = locate(name, shape);
    const TensorInfo* info = file.find(name);
    file.read_f32(name, out);
    dtypes_.insert(dtype_name(info->dtype));
    used_.insert(name);
  }

  // A linear's weight as stored: F16/BF16 stay 16-bit, read in place from the file mapping (widened per layer when it
  // runs); F32 is read as float.
  void read_linear(const std::string& name, const std::vector<std::int64_t>& shape, QuantLinear& layer) {
    const auto it = owner_.find(name);
    const TensorInfo* info = it == owner_.end() ? nullptr : it->second->find(name);
    if (info && info->shape == shape && (info->dtype == DType::F16 || info->dtype == DType::BF16)) {
      const int rows = static_cast<int>(shape[0]), cols = static_cast<int>(shape[1]);
      layer.packed = PackedWeight::sixteen_bit(rows, cols, it->second->map_16bit(name), info->dtype == DType::BF16,
                                               it->second->maps_in_place(name));
      dtypes_.insert(dtype_name(info->dtype));
      used_.insert(name);
      return;
    }
    layer.weight.resize(shape[0], shape[1]);
    read(name, shape, {layer.weight.data(), static_cast<std::size_t>(layer.weight.size())});  // and its errors
  }

  bool has(const std::string& name) const { return owner_.contains(name); }

  // Whether the linears are read in place from the file mapping (16-bit, aligned), judged by the first one.
  bool linears_in_place() const {
    const std::string first = kHfNames.layer_tensor(0, layer_linears().front().name, "weight");
    const auto it = owner_.find(first);
    const TensorInfo* info = it == owner_.end() ? nullptr : it->second->find(first);
    return info && (info->dtype == DType::F16 || info->dtype == DType::BF16) && it->second->maps_in_place(first);
  }

  // Marks a stored tensor as deliberately not read.
  void skip(const std::string& name) { used_.insert(name); }

  // Every tensor of the checkpoint must have been read: an unread one (a bias, an extra projection) means the
  // model is not the plain LLaMA architecture and would run wrongly.
  void check_all_used() const {
    for (const auto& [name, file] : owner_) {
      SERQ_CHECK(used_.contains(name) || name.ends_with("rotary_emb.inv_freq"),
                 "{}: tensor '{}' is not part of a LLaMA model as serq reads it (biases or another architecture?)",
                 file->path().string(), name);
    }
  }

  // e.g. "BF16", or "BF16+F32" for a checkpoint that mixes dtypes.
  std::string dtypes() const { return fmt::format("{}", fmt::join(dtypes_, "+")); }

 private:
  const SafetensorsFile& open(const std::string& file_name) {
    auto it = files_.find(file_name);
    if (it == files_.end()) it = files_.emplace(file_name, SafetensorsFile::open(dir_ / file_name)).first;
    return it->second;
  }

  void read_index(const std::filesystem::path& index_path) {
    const std::string where = index_path.string();
    std::ifstream in(index_path);
    SERQ_CHECK(in, "{}: cannot open", where);
    const nlohmann::json index = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    SERQ_CHECK(!index.is_discarded() && index.is_object(), "{}: not a valid JSON object (re-fetch it)", where);
    const auto map = index.find("weight_map");
    SERQ_CHECK(map != index.end() && map->is_object(), "{}: no 'weight_map' object (re-fetch it)", where);
    for (const auto& [tensor, shard] : map->items()) {
      SERQ_CHECK(shard.is_string(), "{}: weight_map['{}'] is not a file name (re-fetch it)", where, tensor);
      owner_[tensor] = &open(shard.get<std::string>());
    }
  }

  std::filesystem::path dir_;
  std::filesystem::path listing_;  // the file that lists the tensors: model.safetensors or the index
  std::map<std::string, SafetensorsFile> files_;  // by file name; map nodes keep the pointers below valid
  std::map<std::string, const SafetensorsFile*> owner_;
  std::set<std::string> used_;
  std::set<std::string> dtypes_;
};

std::span<float> values(Matrix& m) { return {m.data(), static_cast<std::size_t>(m.size())}; }
std::span<float> values(Vector& v) { return {v.data(), static_cast<std::size_t>(v.size())}; }

}  // namespace

Model load_hf(const std::filesystem::path& dir) {
  const ModelConfig config = read_hf_config(dir / "config.json");
  const std::string what = "loading " + dir.string();
  check_fits(loaded_model_bytes(config), what);  // before any file is opened
  Checkpoint checkpoint(dir);
  if (config.checkpoint_linear_bytes == 2 && !checkpoint.linears_in_place()) check_fits(model_bytes(config), what);
  Model model = make_empty_model(config, false);

  const std::int64_t d = config.dim, vocab = config.vocab_size;
  checkpoint.read(kHfNames.embed, {vocab, d}, values(model.embed));
  for (int i = 0; i < config.n_layers; ++i) {
    DecoderLayer& layer = model.layers[i];
    for (const NormDesc& n : layer_norms()) {
      checkpoint.read(kHfNames.layer_tensor(i, n.hf, "weight"), {d}, values(layer.norm(n.id)));
    }
    for (const LinearDesc& l : layer_linears()) {
      QuantLinear& linear = layer.linear(l.id);
      const std::int64_t d_out = width(config, l.d_out);
      checkpoint.read_linear(kHfNames.layer_tensor(i, l.name, "weight"), {d_out, width(config, l.d_in)}, linear);
      if (config.has_bias(l.id)) {
        checkpoint.read(kHfNames.layer_tensor(i, l.name, "bias"), {d_out}, values(linear.bias));
      }
    }
  }
  checkpoint.read(kHfNames.final_norm, {d}, values(model.final_norm));

  if (config.tied_embeddings) {
    model.lm_head.weight = model.embed;
    checkpoint.skip(kHfNames.head);  // a stored copy is ignored when tied, as Hugging Face does
  } else {
    SERQ_CHECK(checkpoint.has(kHfNames.head), "{}: config.json sets tie_word_embeddings false but the checkpoint "
               "has no {} (set it true if the head is the token embedding)", dir.string(), kHfNames.head);
    checkpoint.read_linear(kHfNames.head, {vocab, d}, model.lm_head);
  }
  checkpoint.check_all_used();

  model.source = fmt::format("hf-safetensors {} {}", checkpoint.dtypes(), dir.string());
  return model;
}

void check_hf_checkpoint(const std::filesystem::path& dir) {
  const ModelConfig config = read_hf_config(dir / "config.json");
  const Checkpoint checkpoint(dir);  // every header, validated
  const std::int64_t d = config.dim, vocab = config.vocab_size;
  checkpoint.locate(kHfNames.embed, {vocab, d});
  for (int i = 0; i < config.n_layers; ++i) {
    for (const NormDesc& n : layer_norms()) checkpoint.locate(kHfNames.layer_tensor(i, n.hf, "weight"), {d});
    for (const LinearDesc& l : layer_linears()) {
      const std::int64_t d_out = width(config, l.d_out);
      checkpoint.locate(kHfNames.layer_tensor(i, l.name, "weight"), {d_out, width(config, l.d_in)});
      if (config.has_bias(l.id)) checkpoint.locate(kHfNames.layer_tensor(i, l.name, "bias"), {d_out});
    }
  }
  checkpoint.locate(kHfNames.final_norm, {d});
  if (!config.tied_embeddings) checkpoint.locate(kHfNames.head, {vocab, d});
}

}  // namespace serq
