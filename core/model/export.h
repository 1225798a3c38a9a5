// Quantized checkpoints out and back in: a model as serq holds it after quantizing and folding, written to a
// directory and read back to the same forward pass, bit for bit.
//
//   DIR/serq_manifest.json  format, version; the SHA-256 and size of every file; the run that made the model (run id,
//                           label, git commit, resolved config); the model's hyper-parameters; per linear layer its
//                           formats, input transform, corrections and which tensors hold them; bits per weight
//   DIR/model.safetensors   the tensors: per linear "<name>.weight.*" (INT/MXFP4 codes as U8, scales as F16 or F32,
//                           zero points, exponents and row divisors; or the values of an unquantized weight), the
//                           input scale and permutation ("<name>.input_scale", "<name>.input_order" as I32), the
//                           rotation factor, A and B or R (packed as the weight), the bias; "embed", "final_norm",
//                           "layers.<i>.attn_norm", "layers.<i>.ffn_norm"
//   DIR/model.gguf          where the format can hold it, the weight-only part for llama.cpp (core/model/export_gguf.h)
//   DIR/tokenizer.*         the tokenizer: its file copied (tokenizer.model, tokenizer.json), or, for a GGUF checkpoint,
//                           a GGUF file holding only its tokenizer.* metadata
//
// The directory is built under a temporary name beside DIR and renamed into place, so DIR is whole or absent.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "core/model/model.h"

namespace serq {

inline constexpr const char* kExportManifest = "serq_manifest.json";

// Who made the exported model, for its manifest; `tokenizer` is the file the run tokenized with.
struct ExportProvenance {
  std::string run_id, label, git_commit, config_yaml;
  std::filesystem::path tokenizer;
};

struct ExportSummary {
  std::int64_t model_bytes = 0;  // model.safetensors
  std::int64_t total_bytes = 0;  // every file of the directory
  double bits_per_weight = 0;    // of the quantized linears, as the run counts it
  double file_bits_per_weight = 0;  // model.safetensors' bits over the decoder's linear weights
  std::string gguf;  // "model.gguf (weight-only: ...)" or why none was written
};

// Writes `model` (after quantization and folding) to `dir`, which must not exist (a serq::Error otherwise, before
// anything is written). `bits_per_weight` is the run's figure, recorded beside the file's own.
ExportSummary export_model(const Model& model, const ExportProvenance& provenance, double bits_per_weight,
                           const std::filesystem::path& dir);

// Whether `path` is a directory holding a serq export (its manifest).
bool is_serq_export(const std::filesystem::path& path);

// The exported model: every file checked against the manifest's SHA-256 first, then every tensor against the
// manifest's shapes and formats; a truncated, tampered or inconsistent export is a serq::Error of one line naming
// the file (and tensor) at fault.
Model load_export(const std::filesystem::path& dir);

// The checks load_export does before it reads a tensor: the manifest, and every file against its size and SHA-256
// (preflight runs them before any work).
void check_export(const std::filesystem::path& dir);

// The hyper-parameters alone, from the manifest (for memory estimates); the tokenizer file of the export; and the
// label of the run that made it.
ModelConfig read_export_config(const std::filesystem::path& dir);
std::filesystem::path export_tokenizer(const std::filesystem::path& dir);
std::string export_label(const std::filesystem::path& dir);
double export_bits_per_weight(const std::filesystem::path& dir);  // the run's figure, before folding

}  // namespace serq
