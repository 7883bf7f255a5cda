#!/usr/bin/env python3
"""Data parallelism on paper: the ring allreduce of one step's gradients, per chapter model.

Prints the markdown table of docs/performance.md's section "Data parallelism on paper":
for each model, its float32 gradient bytes per step and the time of one ring allreduce of them
(one fused buffer, as Horovod's tensor fusion sends it) at N = 8 and 64 processes on a 10 Gb/s
and a 100 Gb/s network, beside the single-process step time of the latest bench run; where
there is one, each allreduce time is followed by the share of a step left to computing.

    python3 tools/allreduce_table.py

Ring allreduce (reduce-scatter, then allgather): each process sends and receives
2 (N - 1) / N of the buffer, in 2 (N - 1) messages, so
    time = 2 (N - 1) / N * bytes / bandwidth + 2 (N - 1) * alpha.
"""

# (model, parameters, bench figure and its single-process compiled step time in ms).
# Parameters are models/chapter_models.cpp's keras_params (tests/test_chapter_models.cpp checks
# weft's counts against them), and W5's LSTM(512) on 512 features -> Dense(1):
# 4 * 512 * (512 + 512 + 1) + 513. Step times: docs/performance.md, the first run with a
# batch's halves on two threads (2026-12-06, "Halves and ranks"); None where the bench has no
# such workload.
MODELS = [
    ("text_preprocessing", 22_305, None, None),
    ("stacked_lstm", 32_465, None, None),
    ("temperature_forecast", 29_857, "W3 (B 32, T 30)", 0.771),
    ("compare_simple_rnn", 166_273, "W2 (B 128, T 100)", 2.34),
    ("compare_gru", 178_881, "W2 (B 128, T 100)", 6.97),
    ("compare_lstm", 184_897, "W2 (B 128, T 100)", 8.93),
    ("unidirectional_imdb", 673_089, None, None),
    ("bidirectional_imdb", 706_177, None, None),
    ("sentiment_imdb", 727_745, "W1 (B 64, T 200)", 28.6),
    ("W5: LSTM(512) -> Dense(1)", 2_099_713, "W5 (B 64, T 100)", 231.3),
]

# Networks: (name, bandwidth in bytes per second, per-message latency alpha in seconds).
# Line rate, no protocol overhead (real transfers are 5-10% slower); alpha is a midpoint of
# 5-25 us for TCP over 10 Gb/s Ethernet and a few us for RDMA over 100 Gb/s.
NETWORKS = [
    ("10 Gb/s TCP", 10e9 / 8, 15e-6),
    ("100 Gb/s RDMA", 100e9 / 8, 3e-6),
]
PROCESSES = [8, 64]
BYTES_PER_GRADIENT = 4  # float32


def allreduce_seconds(size_bytes, processes, bandwidth, alpha):
    steps = 2 * (processes - 1)
    return steps / processes * size_bytes / bandwidth + steps * alpha


def milliseconds(seconds):
    ms = seconds * 1e3
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


def cell(allreduce, step_ms):
    """The allreduce's time, and with a step time the share of each step spent computing
    (step / (step + allreduce): nothing overlaps the two)."""
    text = milliseconds(allreduce)
    if step_ms is None:
        return text
    return f"{text} ({step_ms / (step_ms + allreduce * 1e3):.0%})"


def main():
    columns = [f"N={n}, {name}" for name, _, _ in NETWORKS for n in PROCESSES]
    print("| model | params | gradients (MB) | " + " | ".join(columns) +
          " | 1-process step (ms) |")
    print("|---" * (4 + len(columns)) + "|")
    for model, params, figure, step_ms in MODELS:
        size = params * BYTES_PER_GRADIENT
        times = [
            cell(allreduce_seconds(size, n, bandwidth, alpha), step_ms)
            for _, bandwidth, alpha in NETWORKS
            for n in PROCESSES
        ]
        step = f"{step_ms} ({figure})" if step_ms is not None else "not benched"
        print(f"| {model} | {params:,} | {size / 1e6:.2f} | " + " | ".join(times) +
              f" | {step} |")


if __name__ == "__main__":
    main()
