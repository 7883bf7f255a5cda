// load_spam_assassin on arbitrary bytes: the input is one record file beside a valid one (so a
// corpus that parses can be split). A dataset whose sequences and labels match up, or a
// weft::Error naming the file.
#include "fuzz_support.h"
#include "weft/models/datasets.h"
#include "weft/runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto root = weft::fuzz::scratch() / "spam-assassin";
  static const bool made = [&] {
    weft::fuzz::write_file(root / "easy-ham-1" / "00001.a.json",
                           R"({"id":"00001","group":"easy-ham-1","text":"Subject: hi\n\nlunch?"})");
    return true;
  }();
  static_cast<void>(made);
  weft::fuzz::write_file(root / "spam-1" / "00001.b.json", bytes);
  try {
    const weft::ImdbDataset dataset = weft::load_spam_assassin(root, {}, 0.5);
    weft::fuzz::require(dataset.train.sequences.size() == 1 && dataset.test.sequences.size() == 1,
                        "one e-mail each side");
    weft::fuzz::require(dataset.train.labels[0] + dataset.test.labels[0] <= 1, "one spam at most");
  } catch (const weft::Error& error) {
    weft::fuzz::require(std::string_view(error.what()).find("00001.b.json") != std::string::npos,
                        "the error names the file");
  }
  return 0;
}
