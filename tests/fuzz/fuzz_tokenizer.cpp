// The Tokenizer on arbitrary bytes: the input, cut at NUL bytes, is the filters, the split and
// texts; the first byte picks lower and oov_token. Words never hold a filter or the split, and
// every text encodes and decodes; or a weft::Error (invalid UTF-8, an empty split).
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "weft/models/text.h"
#include "weft/runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t choice = data[0];
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto parts = weft::fuzz::pieces(bytes, '\0', 8);
  const std::string filters(parts.size() > 1 ? parts[0] : weft::kDefaultFilters);
  const std::string split(parts.size() > 2 ? parts[1] : " ");
  std::vector<std::string> texts;
  for (size_t i = parts.size() > 2 ? 2 : 0; i < parts.size(); ++i) texts.emplace_back(parts[i]);
  try {
    for (const auto& text : texts) {
      for (const auto& word : weft::text_to_word_sequence(text, filters, choice & 1, split)) {
        weft::fuzz::require(!word.empty(), "no empty word");
        weft::fuzz::require(word.find(split) == std::string::npos, "no split in a word");
      }
    }
    weft::Tokenizer tokenizer;
    tokenizer.filters(filters).lower(choice & 1).split(split);
    if (choice & 2) tokenizer.oov_token("<OOV>");
    if (choice & 4) tokenizer.num_words(1 + (choice >> 4));
    tokenizer.fit_on_texts(texts);
    const auto sequences = tokenizer.texts_to_sequences(texts);
    weft::fuzz::require(sequences.size() == texts.size(), "a sequence per text");
    const auto decoded = tokenizer.sequences_to_texts(sequences);
    weft::fuzz::require(decoded.size() == texts.size(), "a text per sequence");
  } catch (const weft::Error&) {
  }
  return 0;
}
