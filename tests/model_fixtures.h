// Test fixtures: the stories260K checkpoints and TinyStories streams, loaded once per test executable.
#pragma once

#include <map>
#include <string>

#include "core/data/token_stream.h"
#include "core/model/loader.h"
#include "core/tokenizer/tokenizer.h"
#include "methods/rtn.h"
#include "tests/assets.h"

namespace serq::test {

inline const Model& stories_model(const std::string& form) {  // "stories260K/stories260K.bin", "stories260K-hf", ...
  static std::map<std::string, Model> models;
  auto it = models.find(form);
  if (it == models.end()) it = models.emplace(form, load_model(asset("models/" + form))).first;
  return it->second;
}

inline const Tokenizer& stories_tokenizer() {
  static const Tokenizer tokenizer = Tokenizer::load(asset("models/stories260K/tok512.model"));
  return tokenizer;
}

inline const TokenStream& tinystories(const std::string& name) {  // "tinystories-eval" or "tinystories-calib"
  static std::map<std::string, TokenStream> streams;
  auto it = streams.find(name);
  if (it == streams.end()) it = streams.emplace(name, load_dataset(name, stories_tokenizer(), 1, assets_root())).first;
  return it->second;
}

// stories260K (Hugging Face form) by RTN: INT weights symmetric, activations asymmetric, both in groups of 32.
inline Model stories_rtn(int bits) {
  Model model = stories_model("stories260K-hf");
  QuantParams params;
  params.weight = {bits, true, 32};
  params.activation = {bits, false, 32};
  RoundToNearest().quantize(model, params, Calibration{});
  return model;
}

}  // namespace serq::test
