// Op names, the kernel record, and the list of backends.
#include "core/backend/backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "core/common/error.h"

namespace serq {

std::string_view op_name(Op op) {
  static constexpr std::array<std::string_view, kOpCount> names = {
      "embedding", "rms_norm", "rope", "attention", "swiglu", "add", "quant_linear", "act_quant", "hadamard",
      "observe", "nll", "kld"};
  return names[static_cast<std::size_t>(op)];
}

void KernelRecord::add(Op op, std::string_view kernel, double seconds) {
  const std::lock_guard lock(mutex_);
  auto& entries = entries_[static_cast<std::size_t>(op)];
  auto it = entries.find(kernel);
  if (it == entries.end()) it = entries.emplace(std::string(kernel), Entry{}).first;
  ++it->second.calls;
  it->second.seconds += seconds;
}

std::string KernelRecord::describe() const {
  const std::lock_guard lock(mutex_);
  std::string text;
  for (int op = 0; op < kOpCount; ++op) {
    const auto& entries = entries_[static_cast<std::size_t>(op)];
    if (entries.empty()) continue;
    text += fmt::format("{}{}:", text.empty() ? "" : "; ", op_name(static_cast<Op>(op)));
    const char* separator = " ";
    for (const auto& [kernel, entry] : entries) {
      text += fmt::format("{}{} ({})", separator, kernel, entry.calls);
      separator = ", ";
    }
  }
  return text;
}

std::string KernelRecord::profile() const {
  const std::lock_guard lock(mutex_);
  struct Line {
    std::string_view op, kernel;
    Entry entry;
  };
  std::vector<Line> lines;
  double total = 0.0;
  for (int op = 0; op < kOpCount; ++op) {
    for (const auto& [kernel, entry] : entries_[static_cast<std::size_t>(op)]) {
      lines.push_back({op_name(static_cast<Op>(op)), kernel, entry});
      total += entry.seconds;
    }
  }
  std::sort(lines.begin(), lines.end(), [](const Line& a, const Line& b) { return a.entry.seconds > b.entry.seconds; });
  std::string text;
  for (const Line& line : lines) {
    text += fmt::format("{:<13} {:<26} {:>8} calls {:>9.3f} s {:>6.1f}%\n", line.op, line.kernel, line.entry.calls,
                        line.entry.seconds, total > 0 ? 100.0 * line.entry.seconds / total : 0.0);
  }
  return text;
}

void KernelRecord::clear() {
  const std::lock_guard lock(mutex_);
  for (auto& entries : entries_) entries.clear();
}

std::span<Backend* const> backends() {
#ifdef SERQ_HAVE_CUDA
  static Backend* const list[] = {&reference_backend(), &cpu_backend(), &cuda_backend()};
#else
  static Backend* const list[] = {&reference_backend(), &cpu_backend()};
#endif
  return list;
}

namespace {

// The backend named `name`, or null for one this build lacks (cuda without nvcc); an unknown name is an error.
Backend* listed_backend(std::string_view name, std::string_view what) {
  std::string names;
  for (Backend* backend : backends()) {
    if (backend->name() == name) return backend;
    names += fmt::format("{}{}", names.empty() ? "" : ", ", backend->name());
  }
  SERQ_CHECK(name == "cuda", "{}: unknown backend '{}'; use one of {}", what, name, names);
  return nullptr;
}

std::string why_unavailable(const Backend* backend) {
  return backend ? backend->unavailable()
                 : "this build has no CUDA backend (nvcc was not found when it was configured; install the CUDA "
                   "toolkit and rebuild)";
}

}  // namespace

Backend& find_backend(std::string_view name, std::string_view what) {
  Backend* backend = listed_backend(name, what);
  const std::string why = why_unavailable(backend);
  SERQ_CHECK(why.empty(), "{}: backend {} cannot run here: {}", what, name, why);
  return *backend;
}

ResolvedBackend resolve_backend(std::string_view name, bool strict, std::string_view what) {
  Backend* backend = listed_backend(name, what);
  const std::string why = why_unavailable(backend);
  if (why.empty()) return {backend, {}};
  SERQ_CHECK(!strict, "{}: backend {} cannot run here: {}; use runtime.device: cpu, or runtime.strict: false to fall "
             "back to the cpu backend", what, name, why);
  return {&cpu_backend(), fmt::format("{} cannot run here ({}); ran on cpu", name, why)};
}

}  // namespace serq
