// KV-cache quantization settings and the float kernel (see kv_quant.h).
#include "core/quant/kv_quant.h"

#include <fmt/format.h>

#include "core/common/error.h"
#include "core/quant/int_quant.h"
#include "core/quant/row_groups.h"

namespace serq {

std::string KvQuantSpec::describe() const {
  if (!enabled()) return "fp";
  std::string text = fmt::format("int{}-{}-{}", bits, symmetric ? "sym" : "asym",
                                 group_size > 0 ? fmt::format("g{}", group_size) : std::string("head"));
  if (clip != 1.0f) text += fmt::format("-clip{}", clip);
  return text;
}

KvQuantSpec KvCacheSettings::op_spec(int head_dim) const {
  KvQuantSpec spec = quant;
  if (spec.group_size == 0) spec.group_size = head_dim;
  return spec;
}

std::string KvCacheSettings::describe(int head_dim) const {
  std::string text = quant.enabled() ? "keys and values " + quant.describe() : std::string("fp (not quantized)");
  if (rotate) text += fmt::format(", q and k rotated (Hadamard {})", head_dim);
  return text;
}

void validate(const KvCacheSettings& settings, int head_dim, const std::string& source) {
  const KvQuantSpec& q = settings.quant;
  SERQ_CHECK((q.bits >= 2 && q.bits <= 8) || q.bits == 16, "quant.kv_bits: {} bits is out of range; use 2..8, or 16 "
             "for a full-precision cache", q.bits);
  SERQ_CHECK(q.group_size >= 0 && (q.group_size == 0 || head_dim % q.group_size == 0),
             "quant.kv_group_size: {} does not divide head_dim = {} of {}; use 'head' or a divisor of {}",
             q.group_size, head_dim, source, head_dim);
  SERQ_CHECK(q.clip > 0.0f && q.clip <= 1.0f, "quant.kv_clip: {} is outside (0, 1]; use a ratio such as 0.95, or 1",
             q.clip);
  SERQ_CHECK(!settings.rotate || (head_dim > 0 && (head_dim & (head_dim - 1)) == 0),
             "quant.kv_rotate: head_dim = {} of {} is not a power of two, which the online Hadamard needs; use "
             "quant.kv_rotate: false", head_dim, source);
}

void fake_quant_kv_rows(Matrix& x, const KvQuantSpec& spec) {
  if (!spec.enabled()) return;
  SERQ_CHECK(spec.group_size >= 1 && x.cols() % spec.group_size == 0, "kv_quant: groups of {} do not divide a row "
             "of {} channels (a caller bug: KvCacheSettings::op_spec resolves the group)", spec.group_size, x.cols());
  for_each_row_group(x, spec.group_size, [&](float* values, int n) {
    fake_quant_group(values, values, n, spec.bits, spec.symmetric, false, spec.clip);
  });
}

}  // namespace serq
