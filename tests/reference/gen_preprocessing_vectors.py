#!/usr/bin/python3
"""Generate reference vectors for weft's text preprocessing from the real keras_preprocessing.

Run with Debian's Python (python3-keras-preprocessing, python3-numpy):

    /usr/bin/python3 tests/reference/gen_preprocessing_vectors.py          # writes the file
    /usr/bin/python3 tests/reference/gen_preprocessing_vectors.py --check  # compares instead

Writes tests/data/preprocessing_reference.txt in the format of tests/reference_vectors.h.
Nothing is random except the numpy shuffle cases, whose seeds are fixed, so every run gives
the same bytes. Three kinds of case, told apart by the `kind` attribute:

  tokenizer  keras_preprocessing.text.Tokenizer with the case's options, fitted by one or more
             fit_on_texts calls; the resulting word_index (in dict order) and word_counts,
             texts_to_sequences of query texts, and sequences_to_texts of query sequences.
  pad        keras_preprocessing.sequence.pad_sequences on ragged input, for every padding /
             truncating combination, several maxlen values and two padding values.
  shuffle    the permutations numpy.random.RandomState(seed).shuffle gives to successive
             aranges, as keras.datasets.imdb.load_data shuffles train and then test.

Strings are stored as sattr values in double quotes; inside them the bytes below 0x20, 0x7f
and '%' are written %XX (two hex digits); other bytes, UTF-8 included, are written as is.
Lists of strings are stored as KEY0, KEY1, ... with the count in attr KEY_count.

weft lowercases as Python's str.lower does (full Unicode case mapping, through ICU); the
UNICODE corpus holds accented, Greek (final sigma), Cyrillic, German (sharp s) and Turkish
(dotted and dotless i) text where that differs from lowercasing ASCII letters only.
"""

import os
import sys

import keras_preprocessing
import numpy as np
from keras_preprocessing.sequence import pad_sequences
from keras_preprocessing.text import Tokenizer
from vector_file import CaseWriter, main

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUTPUT = os.path.join(REPO_ROOT, "tests", "data", "preprocessing_reference.txt")
DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'

CHAPTER_TEXTS = [
    "This movie is amazing and I loved every moment of it",
    "Terrible film, waste of time and money",
    "Great acting and wonderful storyline, highly recommended",
    "Boring and predictable, would not watch again",
    "The best movie I have seen this year, brilliant performances",
    "Awful movie with bad acting and poor direction",
]
CHAPTER_NEW_TEXTS = ["This is a great and amazing movie", "Bad and boring film"]

# Punctuation, mixed case, repeats, ties, tabs and newlines, whitespace the default filters
# keep (\r, \v, no-break space), apostrophes, digits, empty and punctuation-only texts, UTF-8.
CORPUS = [
    "The quick brown fox -- jumps over the lazy dog!",
    "THE DOG barked; the fox ran.",
    "Don't stop: it's   the dog's day\tand the fox's night\nend",
    "email@example.com (50% off) [sale] {now} #1 a+b=c ~tilde` ^caret_ under|pipe \\back/slash",
    "",
    "!!! ??? ...",
    "Caf\u00e9 na\u00efve \u201cquoted\u201d \u2014 dash, caf\u00e9",
    "ties tie tied: alpha beta gamma alpha beta gamma",
    "carriage\rreturn and\u00a0nbsp and\x0bvt",
    "Repeat repeat REPEAT repeat",
    "a-b a--b A_B <OOV> oov",
]
# Text where str.lower is more than A-Z -> a-z: accents, Greek (a capital sigma lowers to a final
# sigma at the end of a word), Cyrillic, German (capital sharp s; "SS" stays "ss"), Turkish
# (capital dotted I lowers to "i" + a combining dot above; ASCII "I" to "i", not dotless),
# titlecase digraphs, and letters that are already lowercase.
UNICODE_CORPUS = [
    "\u00c9COLE \u00c9t\u00e9 Caf\u00c9 NA\u00cfVE \u00c5ngstr\u00f6m \u00d1AND\u00da \u0152UVRE",
    "\u039f\u0394\u039f\u03a3 \u03a3\u03bf\u03c6\u03af\u03b1 \u03a3\u0391\u03a3 "
    "\u0391\u0398\u0397\u039d\u0391, \u03a3\u039f\u03a6\u039f\u03a3. \u03a9\u039c\u0395\u0393\u0391",
    "\u041c\u041e\u0421\u041a\u0412\u0410 \u041f\u0440\u0438\u0432\u0435\u0442 "
    "\u0401\u041b\u041a\u0410 \u0423\u041a\u0420\u0410\u0407\u041d\u0410",
    "STRASSE Stra\u00dfe GR\u00dcSSE \u1e9e \u00e4\u00f6\u00fc \u00c4\u00d6\u00dc",
    "\u0130STANBUL I\u011eDIR \u0131s\u0131k \u0130i Ii \u015e\u0130\u015e",
    "\u01c4 \u01c5 \u01c6 \u1f88 \u2126 \u212a",
]
QUERIES = CORPUS + [
    "The UNSEEN fox, and a zebra!",
    "dog dog Dog DOG",
    "<OOV> <oov> oov",
    "   ",
]
DECODE = [[1, 2, 3], [0, 4, 999, 5], [], [2, 2, 1], [6, 7, 8, 9, 10, 11, 12, 13, 14, 15]]

PAD_INPUT = [[1, 2, 3], [4, 5, 6, 7, 8], [9, 10], [], [11], [12, 13, 14, 15, 16, 17, 18]]


def encode(text):
    out = bytearray(b'"')
    for byte in text.encode("utf-8"):
        if byte < 0x20 or byte in (0x25, 0x7F):
            out += b"%%%02X" % byte
        else:
            out.append(byte)
    return bytes(out + b'"').decode("utf-8")


class Writer(CaseWriter):
    def attr(self, key, value):
        self.line(f"  attr {key} {int(value)}")

    def sattr(self, key, text):
        self.line(f"  sattr {key} {encode(text)}")

    def strings(self, key, texts):
        self.attr(f"{key}_count", len(texts))
        for i, text in enumerate(texts):
            self.sattr(f"{key}{i}", text)

    def tensor(self, name, values, shape=None):
        values = [int(v) for v in values]
        shape = [len(values)] if shape is None else shape
        self.line(f"  tensor {name} {' '.join(str(d) for d in shape)}")
        for start in range(0, len(values), 16):
            self.line("    " + " ".join(str(v) for v in values[start:start + 16]))


def tokenizer_case(w, name, fits, queries=QUERIES, decode=DECODE, **options):
    tok = Tokenizer(**options)
    w.case(name, "tokenizer")
    if options.get("num_words") is not None:
        w.attr("num_words", options["num_words"])
    if options.get("oov_token") is not None:
        w.sattr("oov_token", options["oov_token"])
    w.attr("lower", options.get("lower", True))
    w.sattr("filters", options.get("filters", DEFAULT_FILTERS))
    w.sattr("split", options.get("split", " "))
    w.attr("fit_count", len(fits))
    for i, texts in enumerate(fits):
        w.strings(f"fit{i}_text", texts)
        tok.fit_on_texts(texts)
    w.strings("word_index_word", list(tok.word_index.keys()))
    w.tensor("word_index", list(tok.word_index.values()))
    w.strings("word_counts_word", list(tok.word_counts.keys()))
    w.tensor("word_counts", list(tok.word_counts.values()))
    w.attr("document_count", tok.document_count)
    w.strings("query", queries)
    for i, seq in enumerate(tok.texts_to_sequences(queries)):
        assert None not in seq
        w.tensor(f"query{i}_sequence", seq)
    w.attr("decode_count", len(decode))
    for i, (seq, text) in enumerate(zip(decode, tok.sequences_to_texts(decode))):
        w.tensor(f"decode{i}_sequence", seq)
        w.sattr(f"decode{i}_text", text)
    w.end()


def tokenizer_cases(w):
    tokenizer_case(w, "tokenizer_chapter", [CHAPTER_TEXTS],
                   queries=CHAPTER_TEXTS + CHAPTER_NEW_TEXTS, num_words=1000, oov_token="<OOV>")
    tokenizer_case(w, "tokenizer_defaults", [CORPUS])
    tokenizer_case(w, "tokenizer_num_words_5", [CORPUS], num_words=5)
    tokenizer_case(w, "tokenizer_num_words_5_oov", [CORPUS], num_words=5, oov_token="<OOV>")
    tokenizer_case(w, "tokenizer_num_words_1_oov", [CORPUS], num_words=1, oov_token="<OOV>")
    tokenizer_case(w, "tokenizer_num_words_2", [CORPUS], num_words=2)
    tokenizer_case(w, "tokenizer_oov_empty_string", [CORPUS], num_words=10, oov_token="")
    tokenizer_case(w, "tokenizer_no_lower", [CORPUS], lower=False, oov_token="<OOV>")
    tokenizer_case(w, "tokenizer_no_filters", [CORPUS], filters="")
    tokenizer_case(w, "tokenizer_letter_filters", [CORPUS], filters="aeiouT")
    tokenizer_case(w, "tokenizer_letter_filters_no_lower", [CORPUS], filters="aeiouT",
                   lower=False)
    tokenizer_case(w, "tokenizer_utf8_filters", [CORPUS],
                   filters=DEFAULT_FILTERS + "\u201c\u201d\u2014\u00e9\u00a0")
    tokenizer_case(w, "tokenizer_split_comma", [CORPUS], split=",")
    tokenizer_case(w, "tokenizer_split_two_chars", [CORPUS], split="--")
    tokenizer_case(w, "tokenizer_two_fits", [CORPUS[:4], CORPUS[4:]], oov_token="<OOV>")
    tokenizer_case(w, "tokenizer_oov_is_a_word", [CORPUS], oov_token="the")
    tokenizer_case(w, "tokenizer_empty_fit_oov", [[]], oov_token="<OOV>")
    tokenizer_case(w, "tokenizer_empty_fit", [[]])
    tokenizer_case(w, "tokenizer_ties", [["b a c", "c a b d", "d e", "e"]], num_words=4,
                   oov_token="<OOV>")
    tokenizer_case(w, "tokenizer_unicode", [UNICODE_CORPUS], queries=UNICODE_CORPUS,
                   oov_token="<OOV>")
    tokenizer_case(w, "tokenizer_unicode_no_lower", [UNICODE_CORPUS], queries=UNICODE_CORPUS,
                   lower=False)
    # Filters match the lowered text: a capital in the filters never matches.
    tokenizer_case(w, "tokenizer_unicode_filters", [UNICODE_CORPUS], queries=UNICODE_CORPUS,
                   filters=DEFAULT_FILTERS + "\u03c2\u00df\u0307\u00c9")


def pad_case(w, name, sequences, **options):
    out = pad_sequences(sequences, **options)
    w.case(name, "pad")
    if options.get("maxlen") is not None:
        w.attr("maxlen", options["maxlen"])
    w.sattr("padding", options.get("padding", "pre"))
    w.sattr("truncating", options.get("truncating", "pre"))
    w.attr("value", options.get("value", 0))
    w.attr("input_count", len(sequences))
    for i, seq in enumerate(sequences):
        w.tensor(f"input{i}", seq)
    w.tensor("output", out.reshape(-1).tolist(), shape=list(out.shape))
    w.end()


def pad_cases(w):
    pad_case(w, "pad_chapter_maxlen_4", [[1, 2, 3], [4, 5, 6, 7, 8], [9, 10]], maxlen=4)
    pad_case(w, "pad_chapter_maxlen_5_post", [[1, 2, 3], [4, 5, 6, 7, 8], [9, 10]], maxlen=5,
             padding="post")
    for maxlen in (None, 1, 3, 5, 10):
        for padding in ("pre", "post"):
            for truncating in ("pre", "post"):
                for value in (0, -1):
                    name = (f"pad_maxlen_{maxlen or 'none'}_{padding}_{truncating}"
                            f"_value_{value}".replace("-", "m"))
                    pad_case(w, name, PAD_INPUT, maxlen=maxlen, padding=padding,
                             truncating=truncating, value=value)
    pad_case(w, "pad_no_sequences_maxlen_3", [], maxlen=3)
    pad_case(w, "pad_all_empty", [[], []])


def shuffle_cases(w):
    # Sizes cross powers of two, where numpy's rejection mask changes.
    for seed, sizes in ((113, (12, 9)), (113, (130, 70)), (7, (5, 3))):
        rng = np.random.RandomState(seed)
        w.case(f"shuffle_seed_{seed}_{sizes[0]}_{sizes[1]}", "shuffle")
        w.attr("seed", seed)
        for i, n in enumerate(sizes):
            indices = np.arange(n)
            rng.shuffle(indices)
            w.tensor(f"permutation{i}", indices.tolist())
        w.end()


def generate():
    w = Writer()
    w.line("# weft reference vectors for Tokenizer, pad_sequences and the IMDB loader's shuffle.")
    w.line("# Generated by: /usr/bin/python3 tests/reference/gen_preprocessing_vectors.py")
    w.line(f"# with keras_preprocessing {keras_preprocessing.__version__}, "
           f"numpy {np.__version__}, Python {sys.version.split()[0]}.")
    w.line("# Do not edit by hand; rerun the generator (it is deterministic; --check compares).")
    w.line("# Format: tests/reference_vectors.h. String values are in double quotes, with bytes")
    w.line("# below 0x20, 0x7f and '%' written %XX; a list KEY is KEY_count, KEY0, KEY1, ...")
    w.line("# See the generator's docstring for what each kind of case holds.")
    tokenizer_cases(w)
    pad_cases(w)
    shuffle_cases(w)
    return w.text()


if __name__ == "__main__":
    sys.exit(main(__doc__.splitlines()[0], DEFAULT_OUTPUT, generate))
