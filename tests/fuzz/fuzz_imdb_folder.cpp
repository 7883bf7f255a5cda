// load_imdb_folder on arbitrary bytes: the input, cut at NUL bytes, is up to four reviews
// (train/pos, train/neg, test/pos, test/neg); the first byte picks the options. Sequences and
// labels must match up and every code must be in range; or a weft::Error.
#include "fuzz_support.h"
#include "weft/models/datasets.h"
#include "weft/runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  const uint8_t choice = data[0];
  const auto root = weft::fuzz::scratch() / "aclImdb";
  const char* files[] = {"train/pos/0_9.txt", "train/neg/0_1.txt", "test/pos/0_8.txt",
                         "test/neg/0_2.txt"};
  const auto reviews = weft::fuzz::pieces(bytes, '\0', 4);
  for (size_t i = 0; i < 4; ++i) {
    weft::fuzz::write_file(root / files[i], i < reviews.size() ? reviews[i] : "");
  }
  weft::ImdbOptions options;
  if (choice & 1) options.num_words = 1 + (choice >> 4);
  if (choice & 2) options.maxlen = 1 + (choice >> 3);
  if (choice & 4) options.skip_top = choice >> 5;
  if (choice & 8) options.seed = std::nullopt;
  try {
    const weft::ImdbDataset dataset = weft::load_imdb_folder(root, options);
    for (const auto* split : {&dataset.train, &dataset.test}) {
      weft::fuzz::require(split->sequences.size() == split->labels.size(), "a label per review");
      for (const auto& sequence : split->sequences) {
        for (const int64_t code : sequence) {
          weft::fuzz::require(
              code >= 1 && (!options.num_words || code < *options.num_words || code <= 2),
              "codes in range");
        }
      }
    }
  } catch (const weft::Error&) {
  }
  return 0;
}
