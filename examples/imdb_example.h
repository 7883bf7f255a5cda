// The command line, data loading and pictures shared by the chapter's IMDB programs
// (sentiment_imdb, compare_rnns, bidirectional_imdb):
//
//   PROGRAM [PATH/TO/aclImdb | --spam PATH/TO/spam-assassin] [--epochs N] [--samples N]
//
// The IMDB folder is the first argument, or $WEFT_IMDB_DIR. --spam reads the SpamAssassin
// e-mails that `bash tools/fetch_data.sh` puts in data/spam-assassin instead, a stand-in corpus
// with the same task (spam = 1, like pos): message bodies only, shuffled with a fixed seed,
// 80/20 split, Keras's encoding otherwise. A bad command line, a missing folder or an
// unreadable corpus prints why on stderr and exits with status 2.
#pragma once

#include <fmt/format.h>
#include <weft/weft.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "curves.h"

namespace weft::examples {

struct ImdbArgs {
  std::string folder;              // the aclImdb folder; empty when not given
  std::string spam;                // --spam: the SpamAssassin folder; empty when not given
  std::optional<int> epochs;       // --epochs
  std::optional<int64_t> samples;  // --samples
};

[[noreturn]] inline void usage(const char* program) {
  fmt::print(stderr,
             "usage: {} [PATH/TO/aclImdb | --spam PATH/TO/spam-assassin] [--epochs N] "
             "[--samples N]\n",
             program);
  std::exit(2);
}

template <typename T>
T positive_number(const char* program, std::string_view text) {
  T value{};
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 1) usage(program);
  return value;
}

inline ImdbArgs parse_args(int argc, char** argv) {
  ImdbArgs args;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--epochs" && i + 1 < argc) {
      args.epochs = positive_number<int>(argv[0], argv[++i]);
    } else if (arg == "--samples" && i + 1 < argc) {
      args.samples = positive_number<int64_t>(argv[0], argv[++i]);
    } else if (arg == "--spam" && i + 1 < argc && args.spam.empty()) {
      args.spam = argv[++i];
    } else if (!arg.starts_with("-") && args.folder.empty()) {
      args.folder = arg;
    } else {
      usage(argv[0]);
    }
  }
  if (!args.spam.empty() && !args.folder.empty()) usage(argv[0]);
  if (args.folder.empty() && args.spam.empty()) {
    if (const char* env = std::getenv("WEFT_IMDB_DIR")) args.folder = env;
  }
  return args;
}

// Exits with status 2 and says where to get the corpus when `folder` is not an aclImdb folder.
inline void require_imdb_folder(const std::string& folder, const char* program) {
  namespace fs = std::filesystem;
  bool complete = !folder.empty();
  for (const char* sub : {"train/pos", "train/neg", "test/pos", "test/neg"})
    complete = complete && fs::is_directory(fs::path(folder) / sub);
  if (complete) return;
  if (folder.empty())
    fmt::print(stderr, "{}: no IMDB folder given.\n", program);
  else
    fmt::print(stderr, "{}: '{}' is not an aclImdb folder.\n", program, folder);
  fmt::print(stderr,
             "This program reads the raw IMDB corpus (Keras downloads imdb.npz; weft encodes the\n"
             "raw reviews the same way). Expected layout, one review per .txt file:\n"
             "  aclImdb/train/pos/*.txt  aclImdb/train/neg/*.txt\n"
             "  aclImdb/test/pos/*.txt   aclImdb/test/neg/*.txt\n"
             "Get it from https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz\n"
             "(tar xzf aclImdb_v1.tar.gz), then run\n"
             "  {0} path/to/aclImdb\n"
             "or set WEFT_IMDB_DIR=path/to/aclImdb.\n"
             "Or run it on the SpamAssassin e-mails (spam or not, instead of positive or not):\n"
             "  bash tools/fetch_data.sh\n"
             "  {0} --spam data/spam-assassin\n",
             program);
  std::exit(2);
}

// The corpus encoded as Keras's imdb.load_data(num_words=...) encodes it, cut to --samples
// training and test reviews when given.
inline ImdbDataset load_imdb(const ImdbArgs& args, const char* program, int64_t num_words) {
  if (args.spam.empty()) require_imdb_folder(args.folder, program);
  ImdbDataset data;
  try {
    data = args.spam.empty() ? load_imdb_folder(args.folder, {.num_words = num_words})
                             : load_spam_assassin(args.spam, {.num_words = num_words});
  } catch (const Error& e) {
    fmt::print(stderr, "{}: cannot read the {}: {}\n", program,
               args.spam.empty() ? "IMDB folder" : "SpamAssassin folder", e.what());
    if (!args.spam.empty()) fmt::print(stderr, "Fetch it with: bash tools/fetch_data.sh\n");
    std::exit(2);
  }
  if (args.samples) {
    for (LabeledSequences* split : {&data.train, &data.test}) {
      const auto n = static_cast<size_t>(
          std::min<int64_t>(*args.samples, static_cast<int64_t>(split->sequences.size())));
      split->sequences.resize(n);
      split->labels.resize(n);
    }
  }
  fmt::print("Corpus: {} ({} training and {} test texts; label 1 = {})\n",
             args.spam.empty() ? args.folder : args.spam, data.train.sequences.size(),
             data.test.sequences.size(), args.spam.empty() ? "positive" : "spam");
  return data;
}

// What label 1 and label 0 mean in the corpus read.
inline const char* label_name(const ImdbArgs& args, int64_t label) {
  if (args.spam.empty()) return label == 1 ? "Positive" : "Negative";
  return label == 1 ? "Spam" : "Ham";
}

}  // namespace weft::examples
