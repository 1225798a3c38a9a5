// Op names, the kernel record, and the list of backends.
#include "core/backend/backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "core/common/error.h"
#include "core/linear/quant_linear.h"

namespace serq {

namespace {

constexpr std::string_view kOpNames[] = {"embedding", "rms_norm",  "rope",     "attention", "swiglu",
                                         "add",       "quant_linear", "act_quant", "hadamard", "observe",
                                         "nll",       "head_nll",  "kld",       "copy",      "kv_quant"};
static_assert(std::size(kOpNames) == kOpCount, "every op of enum Op needs its name in kOpNames, in order");

std::string bytes_text(std::int64_t bytes) {
  if (bytes < 1000) return fmt::format("{} B", bytes);
  if (bytes < 1000000) return fmt::format("{:.1f} kB", bytes / 1e3);
  if (bytes < 1000000000) return fmt::format("{:.1f} MB", bytes / 1e6);
  return fmt::format("{:.2f} GB", bytes / 1e9);
}

std::int64_t total(const std::map<std::string, std::int64_t, std::less<>>& by_what) {
  std::int64_t sum = 0;
  for (const auto& [what, bytes] : by_what) sum += bytes;
  return sum;
}

std::string describe_direction(std::string_view direction, const std::map<std::string, std::int64_t, std::less<>>& m) {
  std::string parts;
  for (const auto& [what, bytes] : m) parts += fmt::format("{}{} {}", parts.empty() ? "" : ", ", what, bytes_text(bytes));
  return fmt::format("{} {}{}", direction, bytes_text(total(m)), parts.empty() ? "" : fmt::format(" ({})", parts));
}

}  // namespace

std::string_view op_name(Op op) { return kOpNames[static_cast<std::size_t>(op)]; }

void Backend::head_nll_through_logits(const ResidentLinear& head, const Tensor& hidden, const Tensor& targets,
                                      std::vector<NllRow>& rows) {
  Buffer work(*this);
  Tensor logits = work.alloc(hidden.rows, head.layer().d_out());
  const ResidentLinear* group[] = {&head};
  Tensor* outputs[] = {&logits};
  quant_linear(group, hidden, outputs);
  nll(logits, targets, rows);
}

std::int64_t Transfers::host_to_backend_bytes() const { return total(host_to_backend); }
std::int64_t Transfers::backend_to_host_bytes() const { return total(backend_to_host); }

std::string Transfers::describe() const {
  return describe_direction("host→backend", host_to_backend) + "; " + describe_direction("backend→host", backend_to_host);
}

void KernelRecord::transferred(Direction direction, std::string_view what, std::size_t bytes) {
  const std::lock_guard lock(mutex_);
  auto& by_what = direction == Direction::host_to_backend ? transfers_.host_to_backend : transfers_.backend_to_host;
  auto it = by_what.find(what);
  if (it == by_what.end()) it = by_what.emplace(std::string(what), 0).first;
  it->second += static_cast<std::int64_t>(bytes);
}

Transfers KernelRecord::transfers() const {
  const std::lock_guard lock(mutex_);
  return transfers_;
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
  transfers_ = {};
}

std::size_t observed_bytes(const ChannelSums& sums) {
  return static_cast<std::size_t>(sums.abs_max.size()) * sizeof(float) +
         static_cast<std::size_t>(sums.sum_abs.size() + sums.gram.size()) * sizeof(double);
}

void check_shape(const Tensor& t, std::int64_t rows, std::int64_t cols, std::string_view what) {
  SERQ_CHECK(t.rows == rows && t.cols == cols, "{}: a tensor of {} × {} where {} × {} is needed (a shape bug in the "
             "caller)", what, t.rows, t.cols, rows, cols);
}

void Backend::set(const Tensor& t, std::span<const float> values, std::string_view what) {
  SERQ_CHECK(t.backend == this && t.type == ElementType::f32 && static_cast<std::size_t>(t.size()) == values.size(),
             "set {}: {} floats into a tensor of {} × {} (a bug in the caller)", what, values.size(), t.rows, t.cols);
  copy_to_backend(t.data, values.data(), values.size_bytes());
  counted(KernelRecord::Direction::host_to_backend, what, values.size_bytes());
}

void Backend::set(const Tensor& t, std::span<const int> values, std::string_view what) {
  SERQ_CHECK(t.backend == this && t.type == ElementType::i32 && static_cast<std::size_t>(t.size()) == values.size(),
             "set {}: {} ints into a tensor of {} × {} (a bug in the caller)", what, values.size(), t.rows, t.cols);
  copy_to_backend(t.data, values.data(), values.size_bytes());
  counted(KernelRecord::Direction::host_to_backend, what, values.size_bytes());
}

void Backend::get(const Tensor& t, std::span<float> values, std::string_view what) {
  SERQ_CHECK(t.backend == this && t.type == ElementType::f32 && static_cast<std::size_t>(t.size()) == values.size(),
             "get {}: a tensor of {} × {} into {} floats (a bug in the caller)", what, t.rows, t.cols, values.size());
  copy_to_host(values.data(), t.data, values.size_bytes());
  counted(KernelRecord::Direction::backend_to_host, what, values.size_bytes());
}

Tensor Backend::upload(const Matrix& m, Buffer& buffer, std::string_view what) {
  const Tensor t = buffer.alloc(m.rows(), m.cols());
  set(t, std::span<const float>(m.data(), static_cast<std::size_t>(m.size())), what);
  return t;
}

Matrix Backend::download(const Tensor& t, std::string_view what) {
  Matrix m(t.rows, t.cols);
  get(t, std::span<float>(m.data(), static_cast<std::size_t>(m.size())), what);
  return m;
}

Matrix run_linear(Backend& backend, const QuantLinear& layer, const Matrix& x) {
  const std::unique_ptr<ResidentLinear> resident = backend.make_resident(layer, nullptr);
  Buffer work(backend);
  Tensor y = work.alloc(x.rows(), layer.d_out());
  const ResidentLinear* group[] = {resident.get()};
  Tensor* outputs[] = {&y};
  backend.quant_linear(group, backend.upload(x, work, "linear input"), outputs);
  return backend.download(y, "linear output");
}

Tensor Backend::resident(const float* values, std::int64_t rows, std::int64_t cols, Buffer& buffer,
                         std::string_view what) {
  if (!host_memory()) {
    const Tensor t = buffer.alloc(rows, cols);
    set(t, std::span<const float>(values, static_cast<std::size_t>(rows * cols)), what);
    return t;
  }
  const Tensor t{.data = const_cast<float*>(values), .rows = rows, .cols = cols, .type = ElementType::f32, .backend = this};
  counted(KernelRecord::Direction::host_to_backend, what, t.bytes());
  return t;
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
