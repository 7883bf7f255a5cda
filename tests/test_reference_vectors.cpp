// The reference-vector reader, and the contents of tests/data/rnn_reference.txt (made by
// tests/reference/gen_rnn_vectors.py from PyTorch): every case has the arrays it should, with
// the shapes its attributes imply, and the layout is what the file says (SimpleRNN and LSTM
// are recomputed here from the stored Keras-layout weights).
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "reference_vectors.h"

namespace {

using weft::reference::find_case;
using weft::reference::load_reference_vectors;
using weft::reference::parse_reference_vectors;
using weft::reference::ReferenceArray;
using weft::reference::ReferenceCase;

const std::string kRnnFile = std::string(WEFT_TEST_DATA_DIR) + "/rnn_reference.txt";

const std::vector<ReferenceCase>& rnn_cases() {
  static const std::vector<ReferenceCase> cases = load_reference_vectors(kRnnFile);
  return cases;
}

std::vector<ReferenceCase> parse(const std::string& text) {
  std::istringstream in(text);
  return parse_reference_vectors(in, "snippet.txt");
}

// Parsing `text` throws std::runtime_error whose message starts with "snippet.txt:LINE:".
void expect_parse_error(const std::string& text, int line, const std::string& fragment) {
  try {
    parse(text);
    ADD_FAILURE() << "no error for:\n" << text;
  } catch (const std::runtime_error& e) {
    std::string message = e.what();
    std::string prefix = "snippet.txt:" + std::to_string(line) + ":";
    EXPECT_EQ(message.rfind(prefix, 0), 0u) << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
  }
}

TEST(ReferenceVectorReader, ParsesTheFormat) {
  auto cases = parse(
      "# header comment\n"
      "\n"
      "case first\n"
      "  # a comment\n"
      "  sattr source torch.nn.LSTM with (h0, c0)\n"
      "  attr units 3\n"
      "  attr scale -2.5e-3\n"
      "  tensor m 2 3\n"
      "    1 2 3\n"
      "    4 +5 -6e+00\n"
      "  tensor flat 4\n"
      "    0.5 0.25\n"
      "    # comments may sit between value lines\n"
      "    0.125 -0\n"
      "  tensor scalar\n"
      "    7\n"
      "  tensor empty 0 3\n"
      "end\n"
      "case second\n"
      "end\n");
  ASSERT_EQ(cases.size(), 2u);
  const ReferenceCase& c = cases[0];
  EXPECT_EQ(c.name, "first");
  EXPECT_EQ(c.location, "snippet.txt:3");
  EXPECT_EQ(c.string_attr("source"), "torch.nn.LSTM with (h0, c0)");
  EXPECT_EQ(c.int_attr("units"), 3);
  EXPECT_DOUBLE_EQ(c.attr("scale"), -2.5e-3);
  EXPECT_FALSE(c.flag("missing"));
  ASSERT_EQ(c.comments.size(), 2u);
  EXPECT_EQ(c.comments[0], "a comment");
  const ReferenceArray& m = c.array("m");
  EXPECT_EQ(m.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(m.values, (std::vector<double>{1, 2, 3, 4, 5, -6}));
  EXPECT_EQ(m.at({1, 2}), -6.0);
  EXPECT_THROW(m.at({2, 0}), std::runtime_error);
  EXPECT_EQ(c.array("flat").values, (std::vector<double>{0.5, 0.25, 0.125, 0.0}));
  EXPECT_TRUE(std::signbit(c.array("flat").values[3]));
  EXPECT_EQ(c.array("scalar").rank(), 0);
  EXPECT_EQ(c.array("scalar").values, (std::vector<double>{7}));
  EXPECT_EQ(c.array("empty").size(), 0);
  EXPECT_THROW(c.array("nope"), std::runtime_error);
  EXPECT_THROW(c.attr("nope"), std::runtime_error);
  EXPECT_TRUE(cases[1].arrays.empty());
  EXPECT_EQ(find_case(cases, "second").name, "second");
  EXPECT_THROW(find_case(cases, "third"), std::runtime_error);
}

TEST(ReferenceVectorReader, ReportsMalformedInputWithFileAndLine) {
  expect_parse_error("case a\n  tensor t 2\n    1\nend\n", 4, "not a number");
  expect_parse_error("case a\n  tensor t 2\n    1\n", 3, "ends inside tensor 't'");
  expect_parse_error("case a\n  tensor t 2\n    1 2 3\nend\n", 3, "more than its 2 values");
  expect_parse_error("case a\n  tensor t 2\n    1 x\nend\n", 3, "'x' is not a number");
  expect_parse_error("case a\n  tensor t 2 -1\nend\n", 2, "bad dimension");
  expect_parse_error("case a\n  tensor t 2 b\nend\n", 2, "bad dimension");
  expect_parse_error("case a\n  tensor t 1\n 1\n  tensor t 1\n 2\nend\n", 4, "duplicate tensor");
  expect_parse_error("case a\n  attr k 1\n  attr k 2\nend\n", 3, "duplicate attr");
  expect_parse_error("case a\n  attr k one\nend\n", 2, "needs one number");
  expect_parse_error("case a\n  frob 1\nend\n", 2, "unknown keyword 'frob'");
  expect_parse_error("tensor t 1\n1\n", 1, "outside a case");
  expect_parse_error("case a\nend\ncase a\nend\n", 3, "duplicate case 'a'");
  expect_parse_error("case a\ncase b\nend\n", 2, "missing 'end'");
  expect_parse_error("case a\n  attr k 1\n", 2, "ends inside case 'a'");
  expect_parse_error("case a\nend extra\n", 2, "alone");
}

TEST(ReferenceVectorReader, MissingFileThrows) {
  EXPECT_THROW(load_reference_vectors(std::string(WEFT_TEST_DATA_DIR) + "/no_such_file.txt"),
               std::runtime_error);
}

TEST(RnnReferenceVectors, HasEveryCase) {
  std::set<std::string> names;
  for (const ReferenceCase& c : rnn_cases()) names.insert(c.name);
  const std::set<std::string> expected = {"simple_rnn_last",
                                          "simple_rnn_seq",
                                          "lstm_last",
                                          "lstm_seq",
                                          "gru_last",
                                          "gru_seq",
                                          "gru_reset_before_last",
                                          "gru_reset_before_seq",
                                          "lstm_go_backwards_last",
                                          "lstm_go_backwards_seq",
                                          "lstm_initial_state_last",
                                          "lstm_initial_state_seq",
                                          "lstm_mask_post_last",
                                          "lstm_mask_post_seq",
                                          "lstm_mask_pre_seq",
                                          "bidirectional_lstm_concat_last",
                                          "bidirectional_lstm_concat_seq",
                                          "bidirectional_lstm_sum_last",
                                          "bidirectional_lstm_sum_seq",
                                          "bidirectional_lstm_mul_last",
                                          "bidirectional_lstm_mul_seq",
                                          "bidirectional_lstm_ave_last",
                                          "bidirectional_lstm_ave_seq"};
  EXPECT_EQ(names, expected);
  EXPECT_EQ(rnn_cases().size(), expected.size());
}

using Shape = std::vector<int64_t>;

// Adds the weights of one recurrent layer (and their gradients) to `want`.
void want_weights(std::map<std::string, Shape>& want, const std::string& prefix,
                  const std::string& layer, bool reset_after, int64_t in, int64_t u) {
  int64_t k = layer == "lstm" ? 4 : layer == "gru" ? 3 : 1;
  Shape bias = layer == "gru" && reset_after ? Shape{2, k * u} : Shape{k * u};
  for (const auto& [name, shape] : std::map<std::string, Shape>{
           {"kernel", {in, k * u}}, {"recurrent_kernel", {u, k * u}}, {"bias", bias}}) {
    want[prefix + name] = shape;
    want["grad_" + prefix + name] = shape;
  }
}

TEST(RnnReferenceVectors, EveryCaseHasItsArrays) {
  for (const ReferenceCase& c : rnn_cases()) {
    SCOPED_TRACE(c.location + " case " + c.name);
    const std::string& layer = c.string_attr("layer");
    EXPECT_FALSE(c.string_attr("source").empty());
    const int64_t batch = c.int_attr("batch"), steps = c.int_attr("timesteps");
    const int64_t in = c.int_attr("input_dim"), units = c.int_attr("units");
    const bool seq = c.flag("return_sequences");
    const Shape state{batch, units}, y_shape = seq ? Shape{batch, steps, units} : state;

    std::map<std::string, Shape> want = {{"x", {batch, steps, in}},
                                         {"grad_x", {batch, steps, in}},
                                         {"y", y_shape},
                                         {"w_out", y_shape}};
    if (layer == "bidirectional") {
      ASSERT_EQ(c.string_attr("inner_layer"), "lstm");
      const int64_t inner = c.int_attr("inner_units");
      const std::string& merge = c.string_attr("merge_mode");
      EXPECT_TRUE(merge == "concat" || merge == "sum" || merge == "mul" || merge == "ave");
      EXPECT_EQ(units, merge == "concat" ? 2 * inner : inner);
      for (const std::string copy : {"forward_", "backward_"}) {
        want_weights(want, copy, "lstm", false, in, inner);
        want[copy + "h"] = {batch, inner};
        want[copy + "c"] = {batch, inner};
      }
    } else {
      ASSERT_TRUE(layer == "simple_rnn" || layer == "lstm" || layer == "gru") << layer;
      if (layer == "gru") {
        ASSERT_TRUE(c.has_attr("reset_after"));
      }
      want_weights(want, "", layer, c.flag("reset_after"), in, units);
      want["h"] = state;
      if (layer == "lstm") want["c"] = state;
    }
    if (c.flag("initial_state")) {
      for (const std::string name : {"h0", "c0", "grad_h0", "grad_c0"}) want[name] = state;
    }
    if (c.flag("masked")) want["mask"] = {batch, steps};

    for (const auto& [name, shape] : want) {
      ASSERT_TRUE(c.has(name)) << "missing array " << name;
      EXPECT_EQ(c.array(name).shape, shape) << name;
    }
    for (const auto& [name, array] : c.arrays) {
      EXPECT_TRUE(want.count(name)) << "unexpected array " << name;
      for (double v : array.values) ASSERT_TRUE(std::isfinite(v)) << name;
    }
    if (c.flag("masked")) {
      for (double v : c.array("mask").values) EXPECT_TRUE(v == 0.0 || v == 1.0);
    }
  }
}

// (batch, n) = (batch, k) rows times (k, n) matrix, plus bias.
std::vector<double> affine(const std::vector<double>& rows, int64_t k, const ReferenceArray& w,
                           std::vector<double> acc) {
  const int64_t n = w.shape[1];
  const int64_t batch = static_cast<int64_t>(rows.size()) / k;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (int64_t i = 0; i < k; ++i) s += rows[b * k + i] * w.values[i * n + j];
      acc[b * n + j] += s;
    }
  }
  return acc;
}

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// Recomputes SimpleRNN / LSTM from the stored Keras-layout weights: checks the file's layout
// (row-major, kernel (in, k*u), LSTM blocks i, f, c, o) as the reader sees it.
void check_forward(const ReferenceCase& c) {
  SCOPED_TRACE(c.name);
  const bool lstm = c.string_attr("layer") == "lstm";
  const int64_t batch = c.int_attr("batch"), steps = c.int_attr("timesteps");
  const int64_t in = c.int_attr("input_dim"), u = c.int_attr("units"), k = lstm ? 4 : 1;
  const ReferenceArray &x = c.array("x"), &kernel = c.array("kernel"),
                       &rk = c.array("recurrent_kernel"), &bias = c.array("bias"),
                       &y = c.array("y");
  std::vector<double> h(batch * u, 0.0), cell(batch * u, 0.0), last;
  for (int64_t t = 0; t < steps; ++t) {
    std::vector<double> x_t(batch * in), z(batch * k * u);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t i = 0; i < in; ++i) x_t[b * in + i] = x.at({b, t, i});
      for (int64_t j = 0; j < k * u; ++j) z[b * k * u + j] = bias.values[j];
    }
    z = affine(h, u, rk, affine(x_t, in, kernel, z));
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t j = 0; j < u; ++j) {
        const double* zb = &z[b * k * u];
        double& hj = h[b * u + j];
        if (!lstm) {
          hj = std::tanh(zb[j]);
        } else {
          double& cj = cell[b * u + j];
          cj = sigmoid(zb[u + j]) * cj + sigmoid(zb[j]) * std::tanh(zb[2 * u + j]);
          hj = sigmoid(zb[3 * u + j]) * std::tanh(cj);
        }
        if (y.rank() == 3) {
          EXPECT_NEAR(y.at({b, t, j}), hj, 1e-12);
        }
      }
    }
  }
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < u; ++j) {
      EXPECT_NEAR(c.array("h").at({b, j}), h[b * u + j], 1e-12);
      if (y.rank() == 2) {
        EXPECT_NEAR(y.at({b, j}), h[b * u + j], 1e-12);
      }
      if (lstm) {
        EXPECT_NEAR(c.array("c").at({b, j}), cell[b * u + j], 1e-12);
      }
    }
  }
}

TEST(RnnReferenceVectors, SimpleRnnAndLstmLayoutAsDocumented) {
  for (const char* name : {"simple_rnn_last", "simple_rnn_seq", "lstm_last", "lstm_seq"}) {
    check_forward(find_case(rnn_cases(), name));
  }
}

}  // namespace
