// The KLD reference's final hidden states on disk (a HiddenStateStore, core/eval/kld_reference.h), so that the
// full-precision decoder runs once per evaluation window across serq-run processes (SLURM array tasks, resumed or
// sharded sweeps), not once per process. One HDF5 file per batch, <dir>/<fnv1a64_hex(key, batch, seq, tokens)>.h5,
// written atomically (write_hdf5_atomically):
//   /                 attribute format = "serq kld reference states 1"
//   /key              the key text (reference_state_key); a file whose key differs is not used
//   /batch, /seq      int64: the batch's shape
//   /tokens           int64 (batch · seq): its token ids; a file whose tokens differ is not used
//   /hidden           float32 (batch · seq) × hidden: the states, exactly as computed
// States are float32 rows of the model's hidden size: 4.5 MiB a window of 2048 at SmolLM2's 576, 32 MiB at 4096.
#pragma once

#include <filesystem>
#include <string>

#include "core/backend/backend.h"
#include "core/eval/kld_reference.h"

namespace serq {

// What the states depend on, one "name: value" line each: the model's path and file identities, the backend and the
// CPU kernels' ISA, OpenBLAS's core and threads, and the code version (build_info().git_commit). Equal keys give
// equal states bit for bit.
std::string reference_state_key(const std::filesystem::path& model, const Backend& backend);

class ReferenceStateFiles : public HiddenStateStore {
 public:
  ReferenceStateFiles(std::filesystem::path dir, std::string key);

  // A file that cannot be used (damaged, or stored for another key or other tokens) is reported on stderr in one
  // line and computed again (then replaced).
  std::optional<Matrix> load(std::span<const int> tokens, int batch, int seq) override;
  // A file that cannot be written (a full disk) is reported on stderr in one line, and nothing more is written by
  // this store: the evaluation goes on, since its results do not depend on the store.
  void save(std::span<const int> tokens, int batch, int seq, const Matrix& hidden) override;

  std::filesystem::path file(std::span<const int> tokens, int batch, int seq) const;
  const std::string& key() const { return key_; }

 private:
  std::filesystem::path dir_;
  std::string key_;
  bool writable_ = true;
};

}  // namespace serq
