// Calibration statistics on disk: the key that names everything they depend on, and one HDF5 file per key,
// <dir>/<fnv1a64_hex(key text)>.h5, written atomically (write_hdf5_atomically), so sweeps in separate processes
// (SLURM array tasks) calibrate once.
//
// File layout:
//   /                 attribute format = "serq calibration cache 1"
//   /key              the key text; a file whose key differs from the wanted one is not used (hash collision)
//   /settings/<part>  each part of the key as a string: model, model_files, tokenizer, tokenizer_file, dataset,
//                     dataset_file, samples, seq_len, seed, hessian, lm_head, code_version
//   /seconds          float64: how long computing the statistics took
//   /layers/<linear>/abs_max   float32 1 × d_in matrix
//                   /mean_abs  float64 (d_in)
//                   /tokens    int64
//                   /hessian   float64 d_in × d_in, only for layers that have one
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "experiments/calibrate.h"
#include "methods/method.h"

namespace serq {

// What calibration statistics depend on, as (name, value) parts in a fixed order.
struct CalibrationKey {
  std::vector<std::pair<std::string, std::string>> parts;
  std::string text() const;  // one "name: value" line per part
};

// The key of the statistics of `model` (an HF directory or a .bin) on the calibration text `dataset` (a name or a
// path, as calib.dataset) tokenized by `tokenizer`: the paths with the identity (size and modification time) of
// every file of the model directory (or the .bin), of the tokenizer and of the dataset file; the sampling
// settings; whether Hessians and lm_head inputs are collected; how many of each channel's largest |x| are kept (a
// part only when top_k > 0, so other keys read as before); and the code version (build_info().git_commit).
CalibrationKey calibration_key(const std::filesystem::path& model, const std::filesystem::path& tokenizer,
                               const std::string& dataset, const CalibrationSettings& settings, bool hessian,
                               bool lm_head, int top_k = 0);

// <dir>/<16 hex digits of FNV-1a 64 of key.text()>.h5
std::filesystem::path calibration_cache_file(const std::filesystem::path& dir, const CalibrationKey& key);

// Writes every field of `calibration` and the key to `file` atomically; throws serq::Error if it cannot.
void write_calibration_cache(const std::filesystem::path& file, const CalibrationKey& key,
                             const Calibration& calibration);

// The calibration stored in `file` for `key`. A missing, unreadable or inconsistent file, or one stored for another
// key, is a one-line serq::Error that starts with "<file>: ".
Calibration read_calibration_cache(const std::filesystem::path& file, const CalibrationKey& key);

}  // namespace serq
