// Byte-level BPE definitions read from GGUF metadata and from Hugging Face tokenizer.json files.
#include "core/tokenizer/bpe_sources.h"

#include <nlohmann/json.hpp>

#include "core/common/error.h"
#include "core/common/text.h"

namespace serq {
namespace {

using nlohmann::json;

constexpr std::int64_t kControlToken = 3;      // llama.cpp's LLAMA_TOKEN_TYPE_CONTROL
constexpr std::int64_t kUserDefinedToken = 4;  // LLAMA_TOKEN_TYPE_USER_DEFINED

// "left right" → {left, right}; byte-level tokens never hold a space, so there is exactly one.
std::pair<std::string, std::string> split_merge(const std::string& merge, std::size_t rank, const std::string& where) {
  const std::size_t space = merge.find(' ');
  SERQ_CHECK(space != std::string::npos && space > 0 && space + 1 < merge.size() &&
                 merge.find(' ', space + 1) == std::string::npos,
             "{}: merge {} '{}' is not two tokens separated by one space (a corrupted tokenizer)", where, rank, merge);
  return {merge.substr(0, space), merge.substr(space + 1)};
}

const json& member(const json& object, const char* key, const std::string& where, const char* context) {
  SERQ_CHECK(object.is_object() && object.contains(key), "{}: {} has no '{}' (is this a Hugging Face tokenizer.json?)",
             where, context, key);
  return object.at(key);
}

// One step of a Hugging Face pre_tokenizer into regex steps of `pre`.
void add_pre_tokenizer_step(const json& step, PreTokenizer& pre, const std::string& where) {
  const std::string type = member(step, "type", where, "a pre_tokenizer").get<std::string>();
  if (type == "Sequence") {
    for (const json& inner : member(step, "pretokenizers", where, "the Sequence pre_tokenizer")) {
      add_pre_tokenizer_step(inner, pre, where);
    }
  } else if (type == "ByteLevel") {
    SERQ_CHECK(!step.value("add_prefix_space", false), "{}: pre_tokenizer ByteLevel with add_prefix_space true is "
               "not supported (LLaMA-3, Qwen2 and SmolLM tokenizers set it false)", where);
    if (step.value("use_regex", true)) pre.add_regex(kGpt2Pattern, where);
  } else if (type == "Digits") {
    pre.add_regex(step.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)", where);
  } else if (type == "Split") {
    const json& pattern = member(step, "pattern", where, "the Split pre_tokenizer");
    const std::string behavior = step.value("behavior", "");
    SERQ_CHECK(behavior == "Isolated" && !step.value("invert", false), "{}: pre_tokenizer Split with behavior '{}'"
               "{} is not supported; serq supports behavior Isolated", where, behavior,
               step.value("invert", false) ? " and invert true" : "");
    if (pattern.contains("Regex")) {
      pre.add_regex(pattern.at("Regex").get<std::string>(), where);
    } else {
      const std::string literal = member(pattern, "String", where, "the Split pattern").get<std::string>();
      std::string escaped = "\\Q" + replace_all(literal, "\\E", "\\E\\\\E\\Q") + "\\E";
      pre.add_regex(escaped, where);
    }
  } else {
    fail("{}: pre_tokenizer type '{}' is not supported; serq reads Sequence, Split, ByteLevel and Digits", where,
         type);
  }
}

// BOS from a TemplateProcessing post-processor whose single-sequence template starts with a special token.
void read_bos(const json& post, BpeDefinition& definition, const std::string& where) {
  if (post.is_null()) return;
  const std::string type = member(post, "type", where, "the post_processor").get<std::string>();
  if (type == "Sequence") {
    for (const json& inner : member(post, "processors", where, "the Sequence post_processor")) {
      read_bos(inner, definition, where);
    }
    return;
  }
  if (type != "TemplateProcessing") return;  // ByteLevel (offsets only) and others add no tokens
  const json& single = member(post, "single", where, "the TemplateProcessing post_processor");
  if (!single.is_array() || single.empty() || !single[0].contains("SpecialToken")) return;
  const std::string name = single[0]["SpecialToken"].value("id", "");
  const json& ids = member(member(post, "special_tokens", where, "the TemplateProcessing post_processor"),
                           name.c_str(), where, "special_tokens")["ids"];
  SERQ_CHECK(ids.is_array() && ids.size() == 1 && ids[0].is_number_integer(), "{}: the post_processor's special "
             "token '{}' must have exactly one id", where, name);
  definition.add_bos = true;
  definition.bos_id = ids[0].get<int>();
}

}  // namespace

BpeDefinition bpe_from_gguf(const GgufFile& file) {
  const std::string where = file.path().string();
  const std::string& model = file.get_string("tokenizer.ggml.model");
  SERQ_CHECK(model == "gpt2", "{}: tokenizer.ggml.model is '{}'; serq reads byte-level BPE ('gpt2') vocabularies "
             "from GGUF. For a sentencepiece model set model.tokenizer to its tokenizer.model", where, model);
  BpeDefinition definition;
  definition.source = "gguf " + where;
  definition.tokens = file.get_string_array("tokenizer.ggml.tokens");
  const std::vector<std::string>& merges = file.get_string_array("tokenizer.ggml.merges");
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    definition.merges.push_back(split_merge(merges[rank], rank, where));
  }
  if (file.has("tokenizer.ggml.token_type")) {
    const std::vector<std::int64_t>& types = file.get_int_array("tokenizer.ggml.token_type");
    SERQ_CHECK(types.size() == definition.tokens.size(), "{}: tokenizer.ggml.token_type has {} entries for {} "
               "tokens (a corrupted conversion)", where, types.size(), definition.tokens.size());
    for (std::size_t id = 0; id < types.size(); ++id) {
      if (types[id] == kControlToken || types[id] == kUserDefinedToken) {
        definition.special_ids.push_back(static_cast<int>(id));
      }
    }
  }
  definition.pre_tokenizer_name = file.has("tokenizer.ggml.pre") ? file.get_string("tokenizer.ggml.pre") : "default";
  definition.pre_tokenizer = PreTokenizer::preset(definition.pre_tokenizer_name, where + ": tokenizer.ggml.pre");
  // llama.cpp takes a piece that is a token whole for these pre-tokenizers, as LLaMA-3's tokenizer.json says.
  definition.ignore_merges = definition.pre_tokenizer_name == "llama3" || definition.pre_tokenizer_name == "llama-bpe";
  definition.add_bos = file.has("tokenizer.ggml.add_bos_token") && file.get_bool("tokenizer.ggml.add_bos_token");
  if (file.has("tokenizer.ggml.bos_token_id")) {
    definition.bos_id = static_cast<int>(file.get_int("tokenizer.ggml.bos_token_id"));
  }
  return definition;
}

BpeDefinition bpe_from_tokenizer_json(const std::filesystem::path& file) {
  const std::string where = file.string();
  json root;
  try {
    root = json::parse(read_text_file(file));
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({}); re-fetch the tokenizer", where, e.what());
  }
  try {
    const json& model = member(root, "model", where, "the file");
    const std::string type = model.value("type", "");
    SERQ_CHECK(type == "BPE", "{}: model.type is '{}'; serq reads byte-level BPE tokenizer.json files (type BPE); "
               "for a sentencepiece model use its tokenizer.model", where, type);
    SERQ_CHECK(!model.value("byte_fallback", false), "{}: model.byte_fallback is true (a sentencepiece-style BPE); "
               "use the model's tokenizer.model instead", where);
    const json normalizer = root.value("normalizer", json());
    SERQ_CHECK(normalizer.is_null(), "{}: the normalizer {} is not supported yet; serq reads tokenizers without one "
               "(LLaMA-3, SmolLM)", where, normalizer.dump());

    BpeDefinition definition;
    definition.source = "tokenizer.json " + where;
    const json& vocab = member(model, "vocab", where, "model");
    SERQ_CHECK(vocab.is_object() && !vocab.empty(), "{}: model.vocab is not an object of token → id", where);
    std::size_t size = vocab.size();
    for (const json& added : root.value("added_tokens", json::array())) size = std::max(size, added.at("id").get<std::size_t>() + 1);
    definition.tokens.resize(size);
    for (const auto& [token, id] : vocab.items()) {
      SERQ_CHECK(id.is_number_unsigned() && id.get<std::size_t>() < size, "{}: model.vocab['{}'] = {} is not an id "
                 "below {}", where, token, id.dump(), size);
      definition.tokens[id.get<std::size_t>()] = token;
    }
    for (const json& added : root.value("added_tokens", json::array())) {
      const int id = added.at("id").get<int>();
      definition.tokens[id] = added.at("content").get<std::string>();
      definition.special_ids.push_back(id);
    }
    const json& merges = member(model, "merges", where, "model");
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
      const json& merge = merges[rank];
      if (merge.is_string()) {
        definition.merges.push_back(split_merge(merge.get<std::string>(), rank, where));
      } else {
        SERQ_CHECK(merge.is_array() && merge.size() == 2, "{}: model.merges[{}] is neither \"a b\" nor [a, b]", where,
                   rank);
        definition.merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
      }
    }
    definition.ignore_merges = model.value("ignore_merges", false);
    const json pre = root.value("pre_tokenizer", json());
    if (!pre.is_null()) add_pre_tokenizer_step(pre, definition.pre_tokenizer, where);
    definition.pre_tokenizer_name = "tokenizer.json: " + definition.pre_tokenizer.describe();
    read_bos(root.value("post_processor", json()), definition, where);
    return definition;
  } catch (const json::exception& e) {
    fail("{}: unexpected structure ({}); is this a Hugging Face tokenizer.json?", where, e.what());
  }
}

}  // namespace serq
