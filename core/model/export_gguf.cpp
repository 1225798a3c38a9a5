// Writing a quantized model's weight-only part as GGUF; see export_gguf.h.
#include "core/model/export_gguf.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "core/common/error.h"
#include "core/common/half.h"
#include "core/formats/gguf_writer.h"
#include "core/model/architecture.h"

namespace serq {
namespace {

constexpr int kBlock = 32;

std::optional<GgmlType> block_type(const PackedWeight& w) {
  const QuantSpec& s = w.spec();
  if (w.storage() != PackedWeight::Storage::int_codes || s.group_size != kBlock || !s.f16_scales ||
      w.cols() % kBlock != 0 || w.row_divisor().size() > 0) {
    return std::nullopt;
  }
  if (s.bits == 4) return s.symmetric ? GgmlType::Q4_0 : GgmlType::Q4_1;
  if (s.bits == 8 && s.symmetric) return GgmlType::Q8_0;
  return std::nullopt;
}

// The main weight's ggml type, or why it has none.
std::optional<std::string> layer_obstacle(const QuantLinear& layer) {
  if (!layer.input.empty()) {
    return fmt::format("{} keeps an input transform at run time (a permutation, scale or rotation that folding could "
                       "not absorb), which GGUF cannot hold", layer.name);
  }
  if (layer.salient.rank() > 0 || layer.low_rank.rank() > 0) {
    return fmt::format("{} has a correction path (R or low-rank factors), which GGUF cannot hold", layer.name);
  }
  const PackedWeight& w = layer.packed;
  if (w.empty() || w.storage() != PackedWeight::Storage::int_codes) return std::nullopt;  // F32 then
  if (!block_type(w)) {
    return fmt::format("{} is {}{}; GGUF holds INT4 (sym or asym) and INT8 sym in groups of 32 with half scales and "
                       "no folded row divisor", layer.name, w.spec().describe(),
                       w.row_divisor().size() > 0 ? " with a folded row divisor" : "");
  }
  if (*block_type(w) == GgmlType::Q4_1) {
    const PackedWeight::SignedCodes codes = w.signed_codes();
    for (int r = 0; r < w.rows(); ++r) {
      for (int g = 0; g < codes.groups; ++g) {
        const float scale = codes.scales[static_cast<std::size_t>(r) * codes.groups + g];
        const float minimum = -static_cast<float>(w.zero_point(r, g)) * scale;
        if (round_to_f16(minimum) != minimum) {
          return fmt::format("{} row {} block {}: its minimum −zero·scale = {} is not an IEEE half, so Q4_1 cannot "
                             "hold it exactly", layer.name, r, g, minimum);
        }
      }
    }
  }
  return std::nullopt;
}

std::vector<std::byte> floats(const Matrix& m) {
  const auto bytes = std::as_bytes(std::span<const float>(m.data(), static_cast<std::size_t>(m.size())));
  return {bytes.begin(), bytes.end()};
}
std::vector<std::byte> floats(const Vector& v) {
  const auto bytes = std::as_bytes(std::span<const float>(v.data(), static_cast<std::size_t>(v.size())));
  return {bytes.begin(), bytes.end()};
}

// The ggml blocks of an INT weight, row by row: Q4_0 {d, qs[16]}, Q4_1 {d, m, qs[16]}, Q8_0 {d, qs[32]}, where a
// 4-bit block keeps value j in the low nibble of qs[j] and value j + 16 in its high nibble.
std::vector<std::byte> blocks(const PackedWeight& w, GgmlType type) {
  const PackedWeight::SignedCodes codes = w.signed_codes();  // code − zero, and the scales (halves here)
  std::vector<std::byte> out;
  auto put16 = [&](std::uint16_t value) {
    out.push_back(static_cast<std::byte>(value & 0xff));
    out.push_back(static_cast<std::byte>(value >> 8));
  };
  for (int r = 0; r < w.rows(); ++r) {
    const std::int8_t* row = codes.values.data() + static_cast<std::size_t>(r) * w.cols();
    for (int g = 0; g < codes.groups; ++g) {
      const float scale = codes.scales[static_cast<std::size_t>(r) * codes.groups + g];
      put16(f32_to_f16(scale));
      // Q4_0 stores code − zero + 8; Q4_1 the code itself, with its minimum −zero·scale; Q8_0 code − zero.
      const int zero = type == GgmlType::Q4_1 ? w.zero_point(r, g) : 8;
      if (type == GgmlType::Q4_1) put16(f32_to_f16(-static_cast<float>(zero) * scale));
      const std::int8_t* block = row + g * kBlock;
      if (type == GgmlType::Q8_0) {
        for (int j = 0; j < kBlock; ++j) out.push_back(static_cast<std::byte>(block[j]));
        continue;
      }
      for (int j = 0; j < kBlock / 2; ++j) {
        const auto low = static_cast<unsigned>(block[j] + zero), high = static_cast<unsigned>(block[j + kBlock / 2] + zero);
        out.push_back(static_cast<std::byte>(low | (high << 4)));
      }
    }
  }
  return out;
}

// New row i = old row order[i]: Hugging Face's rotate-half q/k rows into llama.cpp's interleaved pairs.
std::vector<int> interleave_rows(int heads, int head_dim) {
  std::vector<int> order;
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < head_dim / 2; ++i) {
      order.push_back(h * head_dim + i);
      order.push_back(h * head_dim + i + head_dim / 2);
    }
  }
  return order;
}

void add_weight(GgufWriter& gguf, const std::string& name, const QuantLinear& layer,
                const std::vector<int>* row_order) {
  PackedWeight packed = layer.packed;
  if (packed.empty() || packed.storage() != PackedWeight::Storage::int_codes) {
    packed = PackedWeight::full_precision(packed.empty() ? layer.weight : packed.dequantize());
  }
  if (row_order) packed.permute_rows(*row_order);
  const std::vector<std::int64_t> ne = {packed.cols(), packed.rows()};
  if (const std::optional<GgmlType> type = block_type(packed)) {
    gguf.add_tensor(name, ne, *type, blocks(packed, *type));
  } else {
    gguf.add_tensor(name, ne, GgmlType::F32, floats(packed.dequantize()));
  }
}

}  // namespace

std::optional<std::string> gguf_export_obstacle(const Model& model) {
  for (const QuantLinear* layer : const_cast<Model&>(model).linears()) {
    if (auto why = layer_obstacle(*layer)) return why;
  }
  return std::nullopt;
}

std::string gguf_export_bytes(const Model& model, const GgufFile* tokenizer_source) {
  if (const auto why = gguf_export_obstacle(model)) fail("the model cannot be written as GGUF: {}", *why);
  const ModelConfig& c = model.config;
  const FamilyDesc& family = family_desc(c.family);
  const std::string arch = family.gguf_arch ? family.gguf_arch : "llama";
  GgufWriter gguf;
  gguf.set_string("general.architecture", arch);
  gguf.set_string("general.name", "serq weight-only export");
  gguf.set_u32(arch + ".context_length", static_cast<std::uint32_t>(c.max_seq_len));
  gguf.set_u32(arch + ".embedding_length", static_cast<std::uint32_t>(c.dim));
  gguf.set_u32(arch + ".block_count", static_cast<std::uint32_t>(c.n_layers));
  gguf.set_u32(arch + ".feed_forward_length", static_cast<std::uint32_t>(c.hidden_dim));
  gguf.set_u32(arch + ".attention.head_count", static_cast<std::uint32_t>(c.n_heads));
  gguf.set_u32(arch + ".attention.head_count_kv", static_cast<std::uint32_t>(c.n_kv_heads));
  gguf.set_u32(arch + ".rope.dimension_count", static_cast<std::uint32_t>(c.head_dim()));
  gguf.set_u32(arch + ".vocab_size", static_cast<std::uint32_t>(c.vocab_size));
  gguf.set_f32(arch + ".rope.freq_base", c.rope_theta);
  gguf.set_f32(arch + ".attention.layer_norm_rms_epsilon", c.rms_norm_eps);
  if (tokenizer_source) {
    for (const auto& [key, value] : tokenizer_source->metadata()) {
      if (key.rfind("tokenizer.", 0) == 0) gguf.set(key, value);
    }
  }
  gguf.add_tensor(kGgufNames.embed, {c.dim, c.vocab_size}, GgmlType::F32, floats(model.embed));
  // llama.cpp keeps q/k rows interleaved for the families its converter permutes.
  const bool permute = family.gguf_interleaved_rope && c.rope_layout == RopeLayout::half;
  const std::vector<int> q_order = interleave_rows(c.n_heads, c.head_dim());
  const std::vector<int> k_order = interleave_rows(c.n_kv_heads, c.head_dim());
  for (int i = 0; i < c.n_layers; ++i) {
    const DecoderLayer& layer = model.layers[static_cast<std::size_t>(i)];
    for (const NormDesc& n : layer_norms()) {
      gguf.add_tensor(kGgufNames.layer_tensor(i, n.gguf, "weight"), {c.dim}, GgmlType::F32, floats(layer.norm(n.id)));
    }
    for (const LinearDesc& l : layer_linears()) {
      const QuantLinear& linear = layer.linear(l.id);
      const std::vector<int>* order = !permute ? nullptr : l.id == LinearId::q ? &q_order
                                                         : l.id == LinearId::k ? &k_order
                                                                               : nullptr;
      add_weight(gguf, kGgufNames.layer_tensor(i, l.gguf, "weight"), linear, order);
      if (linear.bias.size() > 0) {
        Vector bias = linear.bias;
        if (order) {
          for (std::size_t r = 0; r < order->size(); ++r) bias[static_cast<Eigen::Index>(r)] = linear.bias[(*order)[r]];
        }
        gguf.add_tensor(kGgufNames.layer_tensor(i, l.gguf, "bias"), {bias.size()}, GgmlType::F32, floats(bias));
      }
    }
  }
  gguf.add_tensor(kGgufNames.final_norm, {c.dim}, GgmlType::F32, floats(model.final_norm));
  const QuantLinear& head = model.lm_head;
  const bool tied = head.packed.empty() && head.weight == model.embed;
  if (!tied) add_weight(gguf, kGgufNames.head, head, nullptr);
  return gguf.bytes();
}

}  // namespace serq
