// PyTorch's C++ side of bench/weft_steps.cpp (libtorch-dev, what a C++ user would pick instead of
// weft): the workloads of bench/pytorch_steps.py, forward + backward + Adam step with Keras
// semantics (dropout active, one LSTM bias folded into the other). Prints "FIGURE UNIT VALUE" per
// figure. Built only with -DWEFT_BUILD_LIBTORCH_BENCH=ON, as tools/bench.sh does.
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace nn = torch::nn;

namespace {

using Loss = std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>;

// A recurrent layer as Keras's return_sequences makes it: every step's output, or the last one.
template <typename Rnn>
struct RecurrentImpl : nn::Module {
  RecurrentImpl(Rnn layer, bool return_sequences)
      : rnn(register_module("rnn", layer)), sequences(return_sequences) {}
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor output = std::get<0>(rnn->forward(x));
    return sequences ? output : output.select(1, -1);
  }
  Rnn rnn;
  bool sequences;
};

template <typename Rnn>
std::shared_ptr<RecurrentImpl<Rnn>> recurrent(Rnn rnn, bool return_sequences) {
  return std::make_shared<RecurrentImpl<Rnn>>(rnn, return_sequences);
}

nn::LSTM lstm(int64_t inputs, int64_t units, bool bidirectional = false) {
  return nn::LSTM(nn::LSTMOptions(inputs, units).batch_first(true).bidirectional(bidirectional));
}

// The process's peak resident memory so far (Linux counts ru_maxrss in KiB).
double peak_resident_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024;
}

void report(const std::string& figure, const char* unit, double value) {
  std::printf("%s %s %.6g\n", figure.c_str(), unit, value);
  std::fflush(stdout);
}

// Median seconds per call over `repeats` timings of `calls` calls, after one untimed call.
double median_seconds(const std::function<void()>& call, int repeats, int calls = 1) {
  call();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    for (int c = 0; c < calls; ++c) call();
    times.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / calls);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void time_workload(const std::string& figure, nn::Sequential model, const torch::Tensor& x,
                   const torch::Tensor& y, const Loss& loss, int repeats,
                   const std::string& predict_figure = {}) {
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-3).eps(1e-7));
  model->train();
  const auto step = [&] {
    optimizer.zero_grad();
    loss(model->forward(x).squeeze(-1), y).backward();
    optimizer.step();
  };
  report(figure, "ms", 1e3 * median_seconds(step, repeats));
  if (predict_figure.empty()) return;
  model->eval();
  torch::NoGradGuard no_grad;
  report(predict_figure, "ms", 1e3 * median_seconds([&] { model->forward(x); }, repeats));
}

// Microseconds per call of a single-sample forward (a streaming step), without gradients.
void time_calls(const std::string& figure, const std::function<void()>& call) {
  torch::NoGradGuard no_grad;
  report(figure, "us", 1e6 * median_seconds(call, 9, 1000));
}

Loss binary_crossentropy() {
  return [](const torch::Tensor& p, const torch::Tensor& y) {
    return torch::binary_cross_entropy(p, y);
  };
}

Loss mse() {
  return [](const torch::Tensor& p, const torch::Tensor& y) { return torch::mse_loss(p, y); };
}

torch::Tensor labels(int64_t batch) { return torch::randint(0, 2, {batch}).to(torch::kFloat); }

}  // namespace

int main() {
  torch::set_num_threads(2);
  torch::manual_seed(1);

  nn::Sequential w1(nn::Embedding(10000, 64), recurrent(lstm(64, 64, true), true), nn::Dropout(0.3),
                    recurrent(lstm(128, 32), false), nn::Dropout(0.3), nn::Linear(32, 32),
                    nn::ReLU(), nn::Linear(32, 1), nn::Sigmoid());
  time_workload("W1-train", w1, torch::randint(0, 10000, {64, 200}), labels(64),
                binary_crossentropy(), 11, "W1i-predict");
  report("W1-peak-memory", "MiB", peak_resident_mib());

  const auto w2 = [](const std::string& figure, auto rnn) {
    time_workload(figure,
                  nn::Sequential(nn::Embedding(5000, 32), recurrent(rnn, false), nn::Linear(64, 1),
                                 nn::Sigmoid()),
                  torch::randint(0, 5000, {128, 100}), labels(128), binary_crossentropy(), 9);
  };
  w2("W2-SimpleRNN-train", nn::RNN(nn::RNNOptions(32, 64).batch_first(true)));
  w2("W2-LSTM-train", lstm(32, 64));
  w2("W2-GRU-train", nn::GRU(nn::GRUOptions(32, 64).batch_first(true)));

  nn::Sequential w3(recurrent(lstm(1, 64), true), nn::Dropout(0.2), recurrent(lstm(64, 32), false),
                    nn::Dropout(0.2), nn::Linear(32, 16), nn::ReLU(), nn::Linear(16, 1));
  time_workload("W3-train", w3, torch::randn({32, 30, 1}), torch::randn({32}), mse(), 21);

  nn::Sequential w5(recurrent(lstm(512, 512), false), nn::Linear(512, 1));
  time_workload("W5-train", w5, torch::randn({64, 100, 512}), torch::randn({64}), mse(), 5,
                "W5-predict");

  // Stateful streaming: each call's final states are the next call's initial states.
  nn::LSTM w4 = lstm(32, 128);
  const torch::Tensor w4_input = torch::randn({1, 1, 32});
  torch::optional<std::tuple<torch::Tensor, torch::Tensor>> w4_state;
  time_calls("W4-stream-step", [&] { w4_state = std::get<1>(w4->forward(w4_input, w4_state)); });

  nn::Linear dense1(1, 1);
  const torch::Tensor dense1_input = torch::randn({1, 1});
  time_calls("Dense1-call", [&] { dense1->forward(dense1_input); });
}
