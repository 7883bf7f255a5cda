"""Formats tools/bench.sh's figures as one table: reads "SOURCE FIGURE UNIT VALUE" lines (sources:
compiled and eager from bench/weft_steps, libtorch and python from PyTorch's two sides; a figure
given in several rounds counts as the median of its rounds), adds the figures benchmarks.md
derives from them, and prints one line per figure with weft's speed-up over the faster PyTorch
side, measured in this run."""
import statistics
import sys

SOURCES = ["compiled", "eager", "libtorch", "python"]
# benchmarks.md: W5's GEMM work per training step, 3 * 2 * B * T * 4H * (I + H).
W5_GFLOP = 3 * 2 * 64 * 100 * 4 * 512 * (512 + 512) / 1e9
TARGETS = {
    "W1-train": ">= 10x", "W1i-predict": ">= 4x",
    "W1-peak-memory": "lower than torch", "W2-SimpleRNN-train": ">= 4x",
    "W2-LSTM-train": ">= 3x", "W2-GRU-train": ">= 3x",
    "W3-train": ">= 8x (eager >= 1x)", "W4-stream-step": "<= 1.5 us",
    "W4f16-stream-step": "(W4 opt-in)", "W4bf16-stream-step": "(W4 opt-in)",
    "W4-predict_on_batch": "(W4 unbound)",
    "W5-GFLOP/s": ">= 260 GFLOP/s", "W5-backward/forward": "<= 2.0",
    "compile-W1-T100": "<= 1 s", "compile-W1-T400": "<= 1 s",
    "compile-W1-T400/T100": "<= 1.2", "Dense1-call": "<= 1000 us",
}

rounds = {}  # figure -> (unit, {source: [value of each round]}), in the order first seen
for line in sys.stdin:
    source, figure, unit, value = line.split()
    rounds.setdefault(figure, (unit, {}))[1].setdefault(source, []).append(float(value))
# figure -> (unit, {source: the median of its rounds})
figures = {figure: (unit, {source: statistics.median(values) for source, values in sides.items()})
           for figure, (unit, sides) in rounds.items()}


def derive(figure, unit, after, compute):
    """Adds `figure` after the figure `after`, for every source that has what `compute` reads
    (it raises KeyError when a source lacks one)."""
    values = {}
    for source in SOURCES:
        try:
            values[source] = compute(lambda name: figures[name][1][source])
        except KeyError:
            pass
    if values:
        rows = list(figures.items())
        at = [name for name, _ in rows].index(after) + 1
        figures.clear()
        figures.update(rows[:at] + [(figure, (unit, values))] + rows[at:])


derive("W5-GFLOP/s", "GFLOP/s", "W5-predict", lambda get: W5_GFLOP / (get("W5-train") / 1e3))
# The backward pass and the Adam update, over the forward pass (predict on the same batch).
derive("W5-backward/forward", "x", "W5-GFLOP/s",
       lambda get: (get("W5-train") - get("W5-predict")) / get("W5-predict"))
derive("compile-W1-T400/T100", "x", "compile-W1-T400",
       lambda get: get("compile-W1-T400") / get("compile-W1-T100"))


def speed_up(unit, weft, torch):
    """How many times better weft does than PyTorch's better side: faster, or more GFLOP/s."""
    if weft is None or not torch or unit == "x" or unit == "s":
        return ""
    if unit == "GFLOP/s":
        return f"{weft / max(torch):.2f}x"
    return f"{min(torch) / weft:.2f}x"


def cell(value):
    return "-" if value is None else f"{value:.4g}"


header = ["figure", "unit", *SOURCES, "compiled vs torch", "eager vs torch", "target"]
rows = [header]
for figure, (unit, values) in figures.items():
    torch = [values[s] for s in ("libtorch", "python") if s in values]
    rows.append([figure, unit, *(cell(values.get(s)) for s in SOURCES),
                 speed_up(unit, values.get("compiled"), torch),
                 speed_up(unit, values.get("eager"), torch), TARGETS.get(figure, "")])
widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
for row in rows:
    print("  ".join(text.ljust(width) for text, width in zip(row, widths)).rstrip())
