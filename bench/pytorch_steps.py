"""PyTorch's side of bench/eager_steps.cpp: the same workloads, shapes and batches, forward +
backward + Adam step (Keras semantics: dropout active, one LSTM bias folded into the other).
Prints "ID median_ms" per figure. Run by tools/bench.sh with Debian's python3-torch."""
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


def median_ms(step, repeats):
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def train_step(ident, model, x, y, loss_fn, repeats):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    model.train()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x).squeeze(-1), y)
        loss.backward()
        opt.step()

    print(f"{ident} {median_ms(step, repeats):.3f}", flush=True)


w1 = nn.Sequential(
    nn.Embedding(10000, 64), Seq(nn.LSTM(64, 64, batch_first=True, bidirectional=True)),
    nn.Dropout(0.3), Last(nn.LSTM(128, 32, batch_first=True)), nn.Dropout(0.3),
    nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1), nn.Sigmoid())
x1 = torch.randint(0, 10000, (64, 200))
train_step("W1", w1, x1, torch.randint(0, 2, (64,)).float(), nn.BCELoss(), 5)
w1.eval()
with torch.no_grad():
    print(f"W1i {median_ms(lambda: w1(x1), 7):.3f}", flush=True)

for ident, rnn in [("W2-SimpleRNN", nn.RNN(32, 64, batch_first=True)),
                   ("W2-LSTM", nn.LSTM(32, 64, batch_first=True)),
                   ("W2-GRU", nn.GRU(32, 64, batch_first=True))]:
    model = nn.Sequential(nn.Embedding(5000, 32), Last(rnn), nn.Linear(64, 1), nn.Sigmoid())
    train_step(ident, model, torch.randint(0, 5000, (128, 100)),
               torch.randint(0, 2, (128,)).float(), nn.BCELoss(), 9)

w3 = nn.Sequential(
    Seq(nn.LSTM(1, 64, batch_first=True)), nn.Dropout(0.2), Last(nn.LSTM(64, 32, batch_first=True)),
    nn.Dropout(0.2), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 1))
train_step("W3", w3, torch.randn(32, 30, 1), torch.randn(32), nn.MSELoss(), 21)
