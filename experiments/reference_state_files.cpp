// The KLD reference's hidden states in files (layout in reference_state_files.h).
#include "experiments/reference_state_files.h"

#include <fmt/format.h>

#include <cstdio>

#include "core/backend/cpu/cpu_isa.h"
#include "core/common/build_info.h"
#include "core/common/error.h"
#include "core/common/hash.h"
#include "core/formats/hdf5_file.h"
#include "experiments/file_identity.h"

namespace serq {
namespace {

constexpr const char* kFormat = "serq kld reference states 1";

std::vector<std::int64_t> widened(std::span<const int> tokens) { return {tokens.begin(), tokens.end()}; }

}  // namespace

std::string reference_state_key(const std::filesystem::path& model, const Backend& backend) {
  const BuildInfo build = build_info();
  try {
    return fmt::format("model: {}\nmodel_files: {}\nbackend: {}\ncpu_isa: {}\nblas: {}\nblas_threads: {}\n"
                       "code_version: {}\n",
                       model.string(), model_identity(model), backend.name(), avx512_allowed() ? "avx512" : "avx2",
                       build.blas, build.blas_threads, build.git_commit);
  } catch (const std::filesystem::filesystem_error& e) {
    fail("KLD reference cache key: cannot read {} ({}); check that the model files are readable", e.path1().string(),
         e.code().message());
  }
}

ReferenceStateFiles::ReferenceStateFiles(std::filesystem::path dir, std::string key)
    : dir_(std::move(dir)), key_(std::move(key)) {}

std::filesystem::path ReferenceStateFiles::file(std::span<const int> tokens, int batch, int seq) const {
  std::uint64_t hash = fnv1a64(key_);
  hash = fnv1a64(fmt::format("\n{} {}\n", batch, seq), hash);
  hash = fnv1a64({reinterpret_cast<const char*>(tokens.data()), tokens.size_bytes()}, hash);
  return dir_ / fmt::format("{:016x}.h5", hash);
}

std::optional<Matrix> ReferenceStateFiles::load(std::span<const int> tokens, int batch, int seq) {
  const std::filesystem::path path = file(tokens, batch, seq);
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return std::nullopt;
  try {
    const Hdf5Reader reader(path, "not usable", "");
    if (reader.attribute("format") != kFormat) reader.fail_with(fmt::format("format is not '{}'", kFormat));
    if (reader.scalar_string("key") != key_) reader.fail_with("stored for another key");
    if (reader.scalar_int("batch") != batch || reader.scalar_int("seq") != seq ||
        reader.ints("tokens") != widened(tokens)) {
      reader.fail_with("stored for other tokens");
    }
    const Eigen::MatrixXf hidden = reader.matrix_float("hidden");
    if (hidden.rows() != static_cast<Eigen::Index>(tokens.size())) {
      reader.fail_with(fmt::format("{} rows of states for {} tokens", hidden.rows(), tokens.size()));
    }
    return Matrix(hidden);
  } catch (const Error& e) {
    std::fprintf(stderr, "serq-run: KLD reference cache %s; recomputing\n", e.what());
    return std::nullopt;
  }
}

void ReferenceStateFiles::save(std::span<const int> tokens, int batch, int seq, const Matrix& hidden) {
  if (!writable_) return;
  try {
    write_hdf5_atomically(file(tokens, batch, seq), [&](Hdf5Writer& writer) {
      writer.attribute("format", kFormat);
      writer.scalar("key", key_);
      writer.scalar("batch", std::int64_t{batch});
      writer.scalar("seq", std::int64_t{seq});
      writer.vector("tokens", widened(tokens));
      writer.matrix("hidden", Eigen::MatrixXf(hidden));
    });
  } catch (const Error& e) {
    writable_ = false;
    std::fprintf(stderr, "serq-run: KLD reference cache %s; evaluating on without it\n", e.what());
  }
}

}  // namespace serq
