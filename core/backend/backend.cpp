// Op names, the kernel record, and the list of backends.
#include "core/backend/backend.h"

#include <fmt/format.h>

#include "core/common/error.h"

namespace serq {

std::string_view op_name(Op op) {
  static constexpr std::array<std::string_view, kOpCount> names = {
      "embedding", "rms_norm", "rope", "attention", "swiglu", "add", "quant_linear", "act_quant", "hadamard",
      "observe", "nll", "kld"};
  return names[static_cast<std::size_t>(op)];
}

void KernelRecord::add(Op op, std::string_view kernel) {
  const std::lock_guard lock(mutex_);
  auto& counts = counts_[static_cast<std::size_t>(op)];
  auto it = counts.find(kernel);
  if (it == counts.end()) it = counts.emplace(std::string(kernel), 0).first;
  ++it->second;
}

std::map<std::string, std::int64_t, std::less<>> KernelRecord::of(Op op) const {
  const std::lock_guard lock(mutex_);
  return counts_[static_cast<std::size_t>(op)];
}

std::string KernelRecord::describe() const {
  const std::lock_guard lock(mutex_);
  std::string text;
  for (int op = 0; op < kOpCount; ++op) {
    const auto& counts = counts_[static_cast<std::size_t>(op)];
    if (counts.empty()) continue;
    text += fmt::format("{}{}:", text.empty() ? "" : "; ", op_name(static_cast<Op>(op)));
    const char* separator = " ";
    for (const auto& [kernel, count] : counts) {
      text += fmt::format("{}{} ({})", separator, kernel, count);
      separator = ", ";
    }
  }
  return text;
}

void KernelRecord::clear() {
  const std::lock_guard lock(mutex_);
  for (auto& counts : counts_) counts.clear();
}

std::span<Backend* const> backends() {
  static Backend* const list[] = {&reference_backend(), &cpu_backend()};
  return list;
}

Backend& find_backend(std::string_view name, std::string_view what) {
  std::string names;
  for (Backend* backend : backends()) {
    if (backend->name() == name) {
      const std::string why = backend->unavailable();
      SERQ_CHECK(why.empty(), "{}: backend {} cannot run here: {}", what, name, why);
      return *backend;
    }
    names += fmt::format("{}{}", names.empty() ? "" : ", ", backend->name());
  }
  fail("{}: unknown backend '{}'; use one of {}", what, name, names);
}

}  // namespace serq
