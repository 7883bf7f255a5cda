// The chapter's "Stacked LSTM with return_sequences Explained": what an LSTM returns with and
// without return_sequences, and a stack of three LSTMs.
//
//   build/examples/stacked_lstm
#include <weft/weft.h>

using namespace weft;

int main() {
  manual_seed(42);

  // Demonstrate return_sequences behavior.
  fmt::print("=== return_sequences=False (default) ===\n");
  Sequential model_single{
      LSTM(64).input_shape({10, 1}).return_sequences(false),
  };
  const Tensor X = uniform({1, 10, 1}, 0, 1);  // 1 sample, 10 timesteps, 1 feature
  const Tensor output = model_single.predict(X);
  fmt::print("Input shape: {}\n", shape_str(X.shape()));        // (1, 10, 1)
  fmt::print("Output shape: {}\n", shape_str(output.shape()));  // (1, 64): only the last state

  fmt::print("\n=== return_sequences=True ===\n");
  Sequential model_seq{
      LSTM(64).input_shape({10, 1}).return_sequences(true),
  };
  const Tensor output_seq = model_seq.predict(X);
  fmt::print("Input shape: {}\n", shape_str(X.shape()));            // (1, 10, 1)
  fmt::print("Output shape: {}\n", shape_str(output_seq.shape()));  // (1, 10, 64): every step

  fmt::print("\n=== Stacked LSTMs ===\n");
  Sequential model_stacked{
      LSTM(64).input_shape({10, 1}).return_sequences(true),  // Must be true
      LSTM(32).return_sequences(true),                       // Must be true
      LSTM(16).return_sequences(false),                      // Last can be false
      Dense(1),
  };
  model_stacked.summary();

  fmt::print("\n=== Why return_sequences matters ===\n");
  fmt::print("return_sequences=False: output is (batch, units) -- for classification\n");
  fmt::print("return_sequences=True:  output is (batch, timesteps, units) -- for stacking\n");
  fmt::print("When stacking LSTMs, all except the last MUST use return_sequences=True\n");
  fmt::print("because each LSTM layer needs input at every time step.\n");
  return 0;
}
