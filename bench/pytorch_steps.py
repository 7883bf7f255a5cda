"""PyTorch's side of bench/weft_steps.cpp: the same workloads, shapes and batches, forward +
backward + Adam step (Keras semantics: dropout active, one LSTM bias folded into the other).
Prints "FIGURE UNIT VALUE" per figure. Run by tools/bench.sh with Debian's python3-torch."""
import resource
import statistics
import time

import torch
from torch import nn

torch.set_num_threads(2)
torch.manual_seed(1)


class Last(nn.Module):
    """Keeps the last step of a recurrent layer's output sequence (return_sequences=False)."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0][:, -1, :]


class Seq(nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0]


def median_seconds(call, repeats, calls=1):
    """Median seconds per call over `repeats` timings of `calls` calls, after one untimed call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def report(figure, unit, value):
    print(f"{figure} {unit} {value:.6g}", flush=True)


def time_workload(figure, model, x, y, loss_fn, repeats, predict_figure=None):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    model.train()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x).squeeze(-1), y)
        loss.backward()
        opt.step()

    report(figure, "ms", 1e3 * median_seconds(step, repeats))
    if predict_figure:
        model.eval()
        with torch.no_grad():
            report(predict_figure, "ms", 1e3 * median_seconds(lambda: model(x), repeats))


def time_calls(figure, call):
    """Microseconds per call of a single-sample forward (a streaming step), without gradients."""
    with torch.no_grad():
        report(figure, "us", 1e6 * median_seconds(call, 9, 1000))


w1 = nn.Sequential(
    nn.Embedding(10000, 64), Seq(nn.LSTM(64, 64, batch_first=True, bidirectional=True)),
    nn.Dropout(0.3), Last(nn.LSTM(128, 32, batch_first=True)), nn.Dropout(0.3),
    nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1), nn.Sigmoid())
time_workload("W1-train", w1, torch.randint(0, 10000, (64, 200)),
              torch.randint(0, 2, (64,)).float(), nn.BCELoss(), 11, "W1i-predict")
# The process's peak resident memory once W1 has trained and predicted (Linux counts KiB).
report("W1-peak-memory", "MiB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

for figure, rnn in [("W2-SimpleRNN-train", nn.RNN(32, 64, batch_first=True)),
                    ("W2-LSTM-train", nn.LSTM(32, 64, batch_first=True)),
                    ("W2-GRU-train", nn.GRU(32, 64, batch_first=True))]:
    model = nn.Sequential(nn.Embedding(5000, 32), Last(rnn), nn.Linear(64, 1), nn.Sigmoid())
    time_workload(figure, model, torch.randint(0, 5000, (128, 100)),
                  torch.randint(0, 2, (128,)).float(), nn.BCELoss(), 9)

w3 = nn.Sequential(
    Seq(nn.LSTM(1, 64, batch_first=True)), nn.Dropout(0.2), Last(nn.LSTM(64, 32, batch_first=True)),
    nn.Dropout(0.2), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 1))
time_workload("W3-train", w3, torch.randn(32, 30, 1), torch.randn(32), nn.MSELoss(), 21)

w5 = nn.Sequential(Last(nn.LSTM(512, 512, batch_first=True)), nn.Linear(512, 1))
time_workload("W5-train", w5, torch.randn(64, 100, 512), torch.randn(64), nn.MSELoss(), 5,
              "W5-predict")

# Stateful streaming: each call's final states are the next call's initial states.
w4 = nn.LSTM(32, 128, batch_first=True)
w4_input, w4_state = torch.randn(1, 1, 32), None


def w4_step():
    global w4_state
    _, w4_state = w4(w4_input, w4_state)


time_calls("W4-stream-step", w4_step)
# The same LSTM with float16 weights, PyTorch's dynamic quantization (weft: quantize("float16")).
w4 = torch.ao.quantization.quantize_dynamic(w4, {nn.LSTM}, dtype=torch.float16)
w4_state = None
time_calls("W4f16-stream-step", w4_step)
dense1, dense1_input = nn.Linear(1, 1), torch.randn(1, 1)
time_calls("Dense1-call", lambda: dense1(dense1_input))
