// The chapter's "Common Mistakes": each mistake as weft code, the weft::Error it raises (in
// Keras's words), and the fixed version working.
//
//   build/examples/common_mistakes
#include <fmt/ranges.h>
#include <weft/models/keras_format.h>  // thousands, keras_shape
#include <weft/weft.h>

#include <functional>
#include <string>
#include <vector>

using namespace weft;

namespace {

// Runs `body`, expecting weft to refuse it; prints the message as a user would see it.
void expect_error(const std::function<void()>& body) {
  try {
    body();
    fmt::print("(no error: weft accepted this, which it should not)\n");
  } catch (const Error& e) {
    fmt::print("weft::Error: {}\n", e.what());
  }
}

// Integer sequences (batch, steps) with values in [1, vocabulary), and 0/1 labels.
Tensor random_tokens(int64_t batch, int64_t steps, int64_t vocabulary) {
  const std::vector<double> u =
      uniform({batch, steps}, 1, static_cast<double>(vocabulary), {.dtype = DType::f64})
          .to_vector<double>();
  return from_vector(std::vector<int64_t>(u.begin(), u.end()), {batch, steps});
}

Tensor random_labels(int64_t batch) {
  const std::vector<double> u = uniform({batch}, 0, 1, {.dtype = DType::f64}).to_vector<double>();
  std::vector<float> labels;
  for (double v : u) labels.push_back(v < 0.5 ? 0.0f : 1.0f);
  return from_vector(labels, {batch});
}

}  // namespace

int main() {
  manual_seed(42);
  const FitOptions quiet{.epochs = 1, .verbose = 0};

  // ---------------------------------------------------------------------------------------------
  fmt::print("=== Mistake 1: forgetting return_sequences(true) when stacking RNNs ===\n");
  const Tensor reviews = random_tokens(64, 20, 10000);
  const Tensor sentiment = random_labels(64);
  fmt::print("Sequential{{Embedding(10000, 64), LSTM(64), LSTM(32), Dense(1)}}\n");
  expect_error([&] {
    Sequential model{
        Embedding(10000, 64),
        LSTM(64),  // return_sequences(false), the default
        LSTM(32),  // Error! Expects 3D input
        Dense(1).activation("sigmoid"),
    };
    model.compile(Adam(), "binary_crossentropy", {"accuracy"});
    model.fit(reviews, sentiment, quiet);
  });
  {
    fmt::print("Fixed: LSTM(64).return_sequences(true)\n");
    Sequential model{
        Embedding(10000, 64),
        LSTM(64).return_sequences(true),  // Output: (batch, timesteps, 64)
        LSTM(32),                         // Now receives 3D input, outputs (batch, 32)
        Dense(1).activation("sigmoid"),
    };
    model.compile(Adam(), "binary_crossentropy", {"accuracy"});
    const History history = model.fit(reviews, sentiment, quiet);
    fmt::print("Works! output shape {}, loss {:.4f}\n", keras_shape(model.output_shape()),
               history["loss"].back());
  }

  // ---------------------------------------------------------------------------------------------
  fmt::print("\n=== Mistake 2: not padding sequences before training ===\n");
  const std::vector<std::vector<int64_t>> sequences = {{1, 2, 3}, {4, 5, 6, 7, 8}, {9, 10}};
  const Tensor labels = from_vector(std::vector<float>{1, 0, 1}, {3});
  fmt::print("sequences = {{{{1, 2, 3}}, {{4, 5, 6, 7, 8}}, {{9, 10}}}}\n");
  fmt::print("Packing the ragged sequences into a (3, 5) batch without padding:\n");
  expect_error([&] {
    std::vector<int64_t> values;  // 10 values: no rectangular batch holds them
    for (const auto& s : sequences) values.insert(values.end(), s.begin(), s.end());
    const Tensor X = from_vector(values, {3, 5});
    Sequential model{Embedding(11, 8), LSTM(8), Dense(1).activation("sigmoid")};
    model.compile(Adam(), "binary_crossentropy");
    model.fit(X, labels, quiet);
  });
  {
    const IntMatrix padded = pad_sequences(sequences, {.maxlen = 5, .padding = "post"});
    std::vector<std::string> rows;
    for (int64_t r = 0; r < padded.rows; ++r)
      rows.push_back(fmt::format("[{}]", fmt::join(padded.row(r), ", ")));
    fmt::print("Fixed: pad_sequences(sequences, {{.maxlen = 5, .padding = \"post\"}})\n");
    fmt::print("Result: [{}]\n", fmt::join(rows, ", "));
    Sequential model{Embedding(11, 8), LSTM(8), Dense(1).activation("sigmoid")};
    model.compile(Adam(), "binary_crossentropy");
    const History history = model.fit(to_tensor(padded), labels, quiet);
    fmt::print("Works! loss {:.4f}\n", history["loss"].back());
  }

  // ---------------------------------------------------------------------------------------------
  fmt::print("\n=== Mistake 3: not reshaping data for LSTM input ===\n");
  const Tensor X2d = uniform({100, 30}, 0, 1);  // Shape: (100, 30) -- 2D
  const Tensor y = uniform({100}, 0, 1);
  fmt::print("X shape: {}\n", shape_str(X2d.shape()));
  expect_error([&] {
    Sequential model{LSTM(64).input_shape({30, 1}), Dense(1)};
    model.compile(Adam(), "mse");
    model.fit(X2d, y, quiet);  // Error: expected 3D, got 2D
  });
  {
    const Tensor X = reshape(X2d, {100, 30, 1});  // Shape: (100, 30, 1) -- 3D
    fmt::print("Fixed: reshape(X, {{100, 30, 1}}) -> X shape: {}\n", shape_str(X.shape()));
    Sequential model{LSTM(64).input_shape({30, 1}), Dense(1)};
    model.compile(Adam(), "mse");
    const History history = model.fit(X, y, quiet);
    fmt::print("Works! loss {:.4f}\n", history["loss"].back());
  }

  // ---------------------------------------------------------------------------------------------
  fmt::print("\n=== Mistake 4: using SimpleRNN for long sequences ===\n");
  Sequential simple{
      Embedding(10000, 64).input_length(500),
      SimpleRNN(128),  // Vanilla RNN -- vanishing gradients!
      Dense(1).activation("sigmoid"),
  };
  Sequential lstm{
      Embedding(10000, 64).input_length(500),
      LSTM(128),  // LSTM handles long sequences
      Dense(1).activation("sigmoid"),
  };
  fmt::print("SimpleRNN(128) on 500-step reviews: builds fine, {} params\n",
             thousands(simple.count_params()));
  fmt::print("No error, but accuracy is poor because SimpleRNN cannot learn long-range\n");
  fmt::print("dependencies: gradients vanish after ~20 time steps.\n");
  fmt::print("Fixed: LSTM(128) instead, {} params; its gates keep gradients alive.\n",
             thousands(lstm.count_params()));
  return 0;
}
