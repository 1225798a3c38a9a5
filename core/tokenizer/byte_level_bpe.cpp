// Byte-level BPE: special-token matching, GPT-2's byte ↔ code point mapping, and rank-ordered pair merges.
#include "core/tokenizer/byte_level_bpe.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <unordered_set>

#include "core/common/error.h"

namespace serq {
namespace {

void append_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// The code points of a UTF-8 string; false when it is not valid UTF-8.
bool decode_utf8(std::string_view s, std::vector<char32_t>& out) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const int length = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    if (length == 0 || i + length > s.size()) return false;
    char32_t c = length == 1 ? b : b & (0x7F >> length);
    for (int k = 1; k < length; ++k) {
      const auto cont = static_cast<unsigned char>(s[i + k]);
      if ((cont & 0xC0) != 0x80) return false;
      c = (c << 6) | (cont & 0x3F);
    }
    out.push_back(c);
    i += length;
  }
  return true;
}

std::uint64_t pair_key(int left, int right) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
}

}  // namespace

const std::array<char32_t, 256>& gpt2_byte_to_code_point() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[b] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

ByteLevelBpe::ByteLevelBpe(BpeDefinition definition) : definition_(std::move(definition)) {
  const std::string& where = definition_.source;
  const auto& tokens = definition_.tokens;
  SERQ_CHECK(!tokens.empty() && tokens.size() < static_cast<std::size_t>(std::numeric_limits<int>::max()),
             "{}: the vocabulary has {} tokens", where, tokens.size());
  std::unordered_map<std::string_view, int> id_of;
  for (std::size_t i = 0; i < tokens.size(); ++i) id_of.emplace(tokens[i], static_cast<int>(i));
  const std::unordered_set<int> special(definition_.special_ids.begin(), definition_.special_ids.end());

  // Inverse of the byte table, for decoding.
  std::unordered_map<char32_t, char> byte_of;
  const auto& table = gpt2_byte_to_code_point();
  for (int b = 0; b < 256; ++b) byte_of.emplace(table[b], static_cast<char>(b));

  bytes_.resize(tokens.size());
  std::vector<char32_t> code_points;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (special.contains(static_cast<int>(i))) {
      bytes_[i] = tokens[i];
      continue;
    }
    code_points.clear();
    SERQ_CHECK(decode_utf8(tokens[i], code_points), "{}: token {} is not valid UTF-8 (a corrupted vocabulary)",
               where, i);
    for (char32_t c : code_points) {
      const auto found = byte_of.find(c);
      SERQ_CHECK(found != byte_of.end(), "{}: token {} '{}' has the code point U+{:04X}, which is not in GPT-2's byte "
                 "table; is this a byte-level BPE vocabulary?", where, i, tokens[i], static_cast<std::uint32_t>(c));
      bytes_[i] += found->second;
    }
  }
  if (definition_.ignore_merges) {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (!special.contains(static_cast<int>(i))) whole_pieces_.emplace(bytes_[i], static_cast<int>(i));
    }
  }
  for (int b = 0; b < 256; ++b) {
    std::string single;
    append_utf8(table[b], single);
    const auto found = id_of.find(single);
    byte_token_[b] = found == id_of.end() ? -1 : found->second;
  }
  for (std::size_t rank = 0; rank < definition_.merges.size(); ++rank) {
    const auto& [left, right] = definition_.merges[rank];
    const auto l = id_of.find(left), r = id_of.find(right), merged = id_of.find(left + right);
    SERQ_CHECK(l != id_of.end() && r != id_of.end() && merged != id_of.end(), "{}: merge {} '{} {}' names a token "
               "that is not in the vocabulary (vocabulary and merges do not belong together)", where, rank, left,
               right);
    merges_.try_emplace(pair_key(l->second, r->second), Merge{static_cast<int>(rank), merged->second});
  }
  for (int id : definition_.special_ids) {
    SERQ_CHECK(id >= 0 && id < vocab_size() && !tokens[id].empty(), "{}: special token id {} is not in the "
               "vocabulary", where, id);
    specials_.emplace_back(tokens[id], id);
    special_first_byte_[static_cast<unsigned char>(tokens[id][0])] = true;
  }
  std::ranges::stable_sort(specials_, [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  SERQ_CHECK(!definition_.add_bos || (definition_.bos_id >= 0 && definition_.bos_id < vocab_size()),
             "{}: BOS is to be added but its id {} is not in the vocabulary", where, definition_.bos_id);
}

void ByteLevelBpe::encode_piece(std::string_view piece, std::vector<int>& out) const {
  std::string key(piece);
  {
    std::lock_guard lock(cache_mutex_);
    if (const auto hit = cache_.find(key); hit != cache_.end()) {
      out.insert(out.end(), hit->second.begin(), hit->second.end());
      return;
    }
  }
  if (const auto whole = whole_pieces_.find(key); whole != whole_pieces_.end()) {
    out.push_back(whole->second);
    return;
  }
  std::vector<int> symbols;
  symbols.reserve(piece.size());
  for (char c : piece) {
    const int token = byte_token_[static_cast<unsigned char>(c)];
    if (token >= 0) symbols.push_back(token);  // a byte the vocabulary lacks is dropped, as HF tokenizers does
  }
  // Merge the best-ranked adjacent pair, leftmost on ties, until no pair has a merge.
  while (symbols.size() > 1) {
    int best_rank = std::numeric_limits<int>::max(), best_at = -1, best_result = -1;
    for (std::size_t i = 0; i + 1 < symbols.size(); ++i) {
      const auto found = merges_.find(pair_key(symbols[i], symbols[i + 1]));
      if (found != merges_.end() && found->second.rank < best_rank) {
        best_rank = found->second.rank;
        best_at = static_cast<int>(i);
        best_result = found->second.result;
      }
    }
    if (best_at < 0) break;
    symbols[best_at] = best_result;
    symbols.erase(symbols.begin() + best_at + 1);
  }
  out.insert(out.end(), symbols.begin(), symbols.end());
  std::lock_guard lock(cache_mutex_);
  cache_.emplace(std::move(key), std::move(symbols));
}

std::vector<int> ByteLevelBpe::encode(std::string_view text) const {
  std::vector<int> ids;
  auto encode_ordinary = [&](std::string_view segment) {
    for (std::string_view piece : definition_.pre_tokenizer.split(segment)) encode_piece(piece, ids);
  };
  std::size_t segment_start = 0;
  for (std::size_t at = 0; at < text.size(); ++at) {
    if (!special_first_byte_[static_cast<unsigned char>(text[at])]) continue;
    for (const auto& [literal, id] : specials_) {
      if (text.substr(at).starts_with(literal)) {
        encode_ordinary(text.substr(segment_start, at - segment_start));
        ids.push_back(id);
        at += literal.size() - 1;
        segment_start = at + 1;
        break;
      }
    }
  }
  encode_ordinary(text.substr(segment_start));
  return ids;
}

const std::string& ByteLevelBpe::token_bytes(int token) const {
  SERQ_CHECK(token >= 0 && token < vocab_size(), "{}: token id {} is outside the vocabulary 0..{}; the tokenizer "
             "does not match the model", definition_.source, token, vocab_size() - 1);
  return bytes_[token];
}

std::string ByteLevelBpe::decode(const std::vector<int>& tokens) const {
  std::string text;
  for (int token : tokens) text += token_bytes(token);
  return text;
}

std::string ByteLevelBpe::piece_text(int /*prev_token*/, int token, int /*bos_id*/) const {
  return token_bytes(token);
}

std::string ByteLevelBpe::describe() const {
  return fmt::format("byte-level BPE ({} tokens, {} merges, {} special, pre-tokenizer {}, {}) {}", vocab_size(),
                     definition_.merges.size(), specials_.size(), definition_.pre_tokenizer_name,
                     definition_.add_bos ? fmt::format("BOS {} added", definition_.bos_id) : "no BOS added",
                     definition_.source);
}

}  // namespace serq
