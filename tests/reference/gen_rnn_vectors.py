#!/usr/bin/python3
"""Generate reference vectors for weft's recurrent layers from PyTorch.

Run from anywhere with Debian's Python (the one that has PyTorch 1.13):

    /usr/bin/python3 tests/reference/gen_rnn_vectors.py            # writes tests/data/rnn_reference.txt
    /usr/bin/python3 tests/reference/gen_rnn_vectors.py --check    # regenerates in memory, compares

Every case holds weights in Keras layout (weft's layout), an input `x`, the layer output `y`,
the final states, a random array `w_out` of y's shape, and the gradients of the scalar
loss L = sum(y * w_out) with respect to x, the weights (Keras layout again) and, where the
case has them, the initial states. The gradient of array NAME is stored as grad_NAME.

How the numbers are made, and why they can be trusted:
  * Everything is float64 on the CPU, one thread, from one seeded torch.Generator, so the
    output is the same bytes on every run (on the same machine and torch build).
  * Where PyTorch has the layer (nn.RNN(tanh), nn.LSTM, nn.GRU = Keras GRU reset_after=True,
    nn.LSTM(bidirectional=True)), `y`, the states and the gradients come from the PyTorch
    module after converting the Keras weights to PyTorch's layout; the gradients are
    converted back to Keras layout.
  * Independently, the Keras cell maths of docs keras-semantics.md is written out with plain
    tensor ops in a step loop (`keras_rnn` below), in Keras layout, with Keras's masking
    and go_backwards rules. For every case that PyTorch can run, forward values, states and
    all gradients of the manual loop are asserted to match the module to 1e-12 (relative
    to the array's magnitude), so a conversion mistake in either direction fails the run.
  * Cases PyTorch cannot run (GRU reset_after=False; masking) come from the manual loop.
    The reset_after=False GRU shares every line with the validated reset_after=True GRU
    except where the reset gate is applied. Masked LSTM outputs are cross-checked against
    PyTorch run on each row's unpadded part.
  * torch.autograd.gradcheck (finite differences) is run on the manual loop for every cell
    kind, with and without a mask, as a further check of the gradients.
"""

import argparse
import io
import os
import platform
import sys

import torch

SEED = 20240611
BATCH = 3
TIMESTEPS = 5
INPUT_DIM = 4
DTYPE = torch.float64
TOL = 1e-12

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUTPUT = os.path.join(REPO_ROOT, "tests", "data", "rnn_reference.txt")


# ----------------------------------------------------------------------------------------
# Keras maths, written out by hand (Keras layout: x_t row vector times kernel (in, k*u)).
# ----------------------------------------------------------------------------------------

def simple_rnn_cell(x_t, states, w):
    (h,) = states
    h = torch.tanh(x_t @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"])
    return h, [h]


def lstm_cell(x_t, states, w):
    h, c = states
    z = x_t @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"]
    z_i, z_f, z_c, z_o = torch.chunk(z, 4, dim=1)  # Keras blocks (i, f, c, o)
    i = torch.sigmoid(z_i)
    f = torch.sigmoid(z_f)
    g = torch.tanh(z_c)
    o = torch.sigmoid(z_o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    return h, [h, c]


def gru_cell(x_t, states, w, reset_after):
    (h,) = states
    kernel, rk, bias = w["kernel"], w["recurrent_kernel"], w["bias"]
    u = h.shape[1]
    if reset_after:  # bias (2, 3u): row 0 input bias, row 1 recurrent bias
        x_z, x_r, x_h = torch.chunk(x_t @ kernel + bias[0], 3, dim=1)  # Keras blocks (z, r, h)
        r_z, r_r, r_h = torch.chunk(h @ rk + bias[1], 3, dim=1)
        z = torch.sigmoid(x_z + r_z)
        r = torch.sigmoid(x_r + r_r)
        hh = torch.tanh(x_h + r * r_h)
    else:  # bias (3u); the reset gate multiplies h before the recurrent product
        x_z, x_r, x_h = torch.chunk(x_t @ kernel + bias, 3, dim=1)
        z = torch.sigmoid(x_z + h @ rk[:, :u])
        r = torch.sigmoid(x_r + h @ rk[:, u:2 * u])
        hh = torch.tanh(x_h + (r * h) @ rk[:, 2 * u:])
    h = z * h + (1 - z) * hh
    return h, [h]


def cell_for(kind):
    return {
        "simple_rnn": simple_rnn_cell,
        "lstm": lstm_cell,
        "gru": lambda x_t, s, w: gru_cell(x_t, s, w, True),
        "gru_reset_before": lambda x_t, s, w: gru_cell(x_t, s, w, False),
    }[kind]


def keras_rnn(kind, x, w, units, initial_state=None, go_backwards=False, mask=None,
              zero_output_for_mask=False):
    """Keras's backend.rnn loop. Returns (outputs (B, T, u) in processing order, states).

    go_backwards: the time axis (and the mask) is reversed and the outputs are stacked in
    processing order, not flipped back. Mask: on a masked step the states keep their previous
    values and the output is the previous step's output (zeros before the first step), or
    zeros when zero_output_for_mask. The layer's last output is outputs[:, -1].
    """
    batch, steps, _ = x.shape
    cell = cell_for(kind)
    n_states = 2 if kind == "lstm" else 1
    if initial_state is None:
        states = [torch.zeros(batch, units, dtype=DTYPE) for _ in range(n_states)]
    else:
        states = list(initial_state)
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    prev_output = torch.zeros(batch, units, dtype=DTYPE)
    outputs = []
    for t in order:
        output, new_states = cell(x[:, t, :], states, w)
        if mask is not None:
            m = mask[:, t].unsqueeze(1) != 0
            fallback = torch.zeros_like(output) if zero_output_for_mask else prev_output
            output = torch.where(m, output, fallback)
            new_states = [torch.where(m, n, s) for n, s in zip(new_states, states)]
        outputs.append(output)
        prev_output = output
        states = new_states
    return torch.stack(outputs, dim=1), states


def merge(mode, a, b):
    if mode == "concat":
        return torch.cat([a, b], dim=-1)
    if mode == "sum":
        return a + b
    if mode == "mul":
        return a * b
    if mode == "ave":
        return (a + b) / 2
    raise ValueError(mode)


def keras_bidirectional(x, wf, wb, units, merge_mode, return_sequences):
    """Keras Bidirectional(LSTM): the backward copy is the layer with go_backwards=True; with
    return_sequences its output sequence is reversed back along time before merging."""
    yf, sf = keras_rnn("lstm", x, wf, units)
    yb, sb = keras_rnn("lstm", x, wb, units, go_backwards=True)
    if return_sequences:
        y = merge(merge_mode, yf, torch.flip(yb, [1]))
    else:
        y = merge(merge_mode, yf[:, -1], yb[:, -1])
    return y, sf, sb


# ----------------------------------------------------------------------------------------
# Keras <-> PyTorch weight layouts.
# ----------------------------------------------------------------------------------------

GRU_KERAS_TO_TORCH = [1, 0, 2]  # torch block k is Keras block GRU_KERAS_TO_TORCH[k]: (r, z, n) <- (z, r, h)


def permute_blocks(a, order, nblocks):
    """Reorder equal blocks along the last axis: result block k = a's block order[k]."""
    blocks = torch.chunk(a, nblocks, dim=-1)
    return torch.cat([blocks[k] for k in order], dim=-1)


def keras_to_torch(kind, w):
    """Keras-layout weights -> dict of PyTorch parameter values (single layer, one direction)."""
    kernel, rk, bias = w["kernel"], w["recurrent_kernel"], w["bias"]
    if kind in ("simple_rnn", "lstm"):  # same block order (i, f, g, o); one bias is zero
        return {"weight_ih": kernel.t(), "weight_hh": rk.t(),
                "bias_ih": bias, "bias_hh": torch.zeros_like(bias)}
    if kind == "gru":
        p = GRU_KERAS_TO_TORCH
        return {"weight_ih": permute_blocks(kernel, p, 3).t(),
                "weight_hh": permute_blocks(rk, p, 3).t(),
                "bias_ih": permute_blocks(bias[0], p, 3),
                "bias_hh": permute_blocks(bias[1], p, 3)}
    raise ValueError(kind)


def torch_grads_to_keras(kind, g):
    """Gradients of PyTorch parameters -> gradients of the Keras-layout weights."""
    if kind in ("simple_rnn", "lstm"):
        # Keras's single bias feeds both PyTorch biases (bias_hh is held at zero), so its
        # gradient is either one; they must agree.
        check_close("bias_ih.grad vs bias_hh.grad", g["bias_ih"], g["bias_hh"])
        return {"kernel": g["weight_ih"].t(), "recurrent_kernel": g["weight_hh"].t(),
                "bias": g["bias_ih"]}
    if kind == "gru":
        p = GRU_KERAS_TO_TORCH  # swapping blocks 0 and 1 is its own inverse
        return {"kernel": permute_blocks(g["weight_ih"].t(), p, 3),
                "recurrent_kernel": permute_blocks(g["weight_hh"].t(), p, 3),
                "bias": torch.stack([permute_blocks(g["bias_ih"], p, 3),
                                     permute_blocks(g["bias_hh"], p, 3)])}
    raise ValueError(kind)


def torch_module(kind, units, bidirectional=False):
    if kind == "simple_rnn":
        m = torch.nn.RNN(INPUT_DIM, units, nonlinearity="tanh", batch_first=True)
    elif kind == "lstm":
        m = torch.nn.LSTM(INPUT_DIM, units, batch_first=True, bidirectional=bidirectional)
    elif kind == "gru":
        m = torch.nn.GRU(INPUT_DIM, units, batch_first=True)
    else:
        raise ValueError(kind)
    return m.to(DTYPE)


PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def load_module(m, kind, w, suffix=""):
    with torch.no_grad():
        for name, value in keras_to_torch(kind, w).items():
            getattr(m, f"{name}_l0{suffix}").copy_(value)


def module_grads(m, kind, suffix=""):
    return torch_grads_to_keras(
        kind, {name: getattr(m, f"{name}_l0{suffix}").grad for name in PARAM_NAMES})


# ----------------------------------------------------------------------------------------
# Checks.
# ----------------------------------------------------------------------------------------

def check_close(what, a, b, tol=TOL):
    a = a.detach()
    b = b.detach()
    if a.shape != b.shape:
        raise AssertionError(f"{what}: shapes {tuple(a.shape)} vs {tuple(b.shape)}")
    scale = max(1.0, float(b.abs().max())) if b.numel() else 1.0
    err = float((a - b).abs().max()) if a.numel() else 0.0
    if not err <= tol * scale:
        raise AssertionError(f"{what}: max abs difference {err:.3g} > {tol:g} * {scale:.3g}")


def check_grads(case, manual, reference):
    for name in reference:
        check_close(f"{case}: grad_{name} manual vs torch", manual[name], reference[name])


# ----------------------------------------------------------------------------------------
# Random data.
# ----------------------------------------------------------------------------------------

class Rng:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def normal(self, *shape):
        return torch.randn(*shape, generator=self.g, dtype=DTYPE)

    def uniform(self, *shape, low=-0.5, high=0.5):
        return low + (high - low) * torch.rand(*shape, generator=self.g, dtype=DTYPE)


def random_weights(rng, kind, units):
    k = {"simple_rnn": 1, "lstm": 4, "gru": 3, "gru_reset_before": 3}[kind]
    bias_shape = (2, 3 * units) if kind == "gru" else (k * units,)
    return {"kernel": rng.uniform(INPUT_DIM, k * units),
            "recurrent_kernel": rng.uniform(units, k * units),
            "bias": rng.uniform(*bias_shape)}


def leaves(d):
    return {k: v.clone().requires_grad_(True) for k, v in d.items()}


def grads_of(loss, tensors):
    names = list(tensors)
    gs = torch.autograd.grad(loss, [tensors[n] for n in names])
    return dict(zip(names, gs))


# ----------------------------------------------------------------------------------------
# Output file.
# ----------------------------------------------------------------------------------------

class Writer:
    def __init__(self):
        self.out = io.StringIO()

    def line(self, text=""):
        self.out.write(text + "\n")

    def case(self, c):
        self.line(f"case {c['name']}")
        for comment in c["comments"]:
            for text in comment.split("\n"):
                self.line(f"  # {text}" if text else "  #")
        for key, value in c["sattrs"]:
            self.line(f"  sattr {key} {value}")
        for key, value in c["attrs"]:
            self.line(f"  attr {key} {value}")
        for name, t in c["arrays"]:
            t = t.detach().to(DTYPE).contiguous()
            if not bool(torch.isfinite(t).all()):
                raise AssertionError(f"{c['name']}: {name} has non-finite values")
            self.line(f"  tensor {name} " + " ".join(str(d) for d in t.shape))
            rows = t.reshape(-1, t.shape[-1]) if t.dim() >= 1 else t.reshape(1, 1)
            for row in rows.tolist():
                self.line("    " + " ".join(format(v, ".17g") for v in row))
        self.line("end")
        self.line()


class Case:
    def __init__(self, name, layer, units, source, return_sequences):
        self.c = {"name": name, "comments": [], "sattrs": [("layer", layer), ("source", source)],
                  "attrs": [("batch", BATCH), ("timesteps", TIMESTEPS), ("input_dim", INPUT_DIM),
                            ("units", units), ("return_sequences", int(return_sequences))],
                  "arrays": []}

    def comment(self, text):
        self.c["comments"].append(text)

    def sattr(self, key, value):
        self.c["sattrs"].append((key, value))

    def attr(self, key, value):
        self.c["attrs"].append((key, int(value)))

    def array(self, name, t):
        if any(name == n for n, _ in self.c["arrays"]):
            raise AssertionError(f"{self.c['name']}: duplicate array {name}")
        self.c["arrays"].append((name, t))

    def weights(self, w, prefix=""):
        for k in ("kernel", "recurrent_kernel", "bias"):
            self.array(prefix + k, w[k])

    def grads(self, g, prefix=""):
        for k in ("kernel", "recurrent_kernel", "bias"):
            self.array(f"grad_{prefix}{k}", g[k])


# ----------------------------------------------------------------------------------------
# Cases.
# ----------------------------------------------------------------------------------------

LAYER_UNITS = {"simple_rnn": 5, "lstm": 3, "gru": 6, "gru_reset_before": 5}
SEQ_SUFFIX = {False: "last", True: "seq"}


def plain_case(rng, kind, return_sequences):
    """simple_rnn / lstm / gru (reset_after) / gru_reset_before, zero initial state."""
    units = LAYER_UNITS[kind]
    w = random_weights(rng, kind, units)
    x = rng.normal(BATCH, TIMESTEPS, INPUT_DIM)
    y_shape = (BATCH, TIMESTEPS, units) if return_sequences else (BATCH, units)
    w_out = rng.normal(*y_shape)
    name = f"{kind}_{SEQ_SUFFIX[return_sequences]}"

    # Manual Keras maths.
    wm, xm = leaves(w), x.clone().requires_grad_(True)
    seq, states = keras_rnn(kind, xm, wm, units)
    y_manual = seq if return_sequences else seq[:, -1]
    g_manual = grads_of((y_manual * w_out).sum(), {"x": xm, **wm})

    layer = {"simple_rnn": "simple_rnn", "lstm": "lstm"}.get(kind, "gru")
    if kind == "gru_reset_before":
        source = "manual Keras maths (PyTorch has no reset_after=False GRU)"
        y, h, c, g = y_manual, states[0], None, g_manual
    else:
        m = torch_module(kind, units)
        load_module(m, kind, w)
        xt = x.clone().requires_grad_(True)
        out, hn = m(xt)
        if kind == "lstm":
            hn, cn = hn
        y = out if return_sequences else out[:, -1]
        (y * w_out).sum().backward()
        g = {"x": xt.grad, **module_grads(m, kind)}
        h, c = hn[0], (cn[0] if kind == "lstm" else None)
        check_close(f"{name}: y manual vs torch", y_manual, y)
        check_close(f"{name}: h manual vs torch", states[0], h)
        check_close(f"{name}: h_n vs last output", out[:, -1], h)
        if kind == "lstm":
            check_close(f"{name}: c manual vs torch", states[1], c)
        check_grads(name, g_manual, g)
        source = {"simple_rnn": "torch.nn.RNN(nonlinearity='tanh')", "lstm": "torch.nn.LSTM",
                  "gru": "torch.nn.GRU"}[kind]

    case = Case(name, layer, units, source, return_sequences)
    if layer == "gru":
        case.attr("reset_after", kind == "gru")
    if kind == "gru":
        case.comment("GRU reset_after=True: bias (2, 3u), row 0 input bias, row 1 recurrent bias;\n"
                     "PyTorch's nn.GRU gate blocks are (r, z, n), Keras's (z, r, h): the blocks\n"
                     "were permuted going in and the gradients permuted back.")
    if kind == "gru_reset_before":
        case.comment("GRU reset_after=False (bias (3u)): PyTorch has no such module, so these\n"
                     "values and gradients come from the manual Keras step loop in the generator\n"
                     "(torch autograd through plain tensor ops). That loop shares all its code with\n"
                     "the reset_after=True GRU, which matches torch.nn.GRU to 1e-12, except the\n"
                     "placement of the reset gate: hh = tanh(x.W_h + b_h + (r*h).U_h).")
    case.weights(w)
    case.array("x", x)
    case.array("y", y)
    case.array("h", h)
    if c is not None:
        case.array("c", c)
    case.array("w_out", w_out)
    case.array("grad_x", g["x"])
    case.grads(g)
    return case


def lstm_go_backwards_case(rng, return_sequences):
    kind, units = "lstm", 4
    w = random_weights(rng, kind, units)
    x = rng.normal(BATCH, TIMESTEPS, INPUT_DIM)
    w_out = rng.normal(*((BATCH, TIMESTEPS, units) if return_sequences else (BATCH, units)))
    name = f"lstm_go_backwards_{SEQ_SUFFIX[return_sequences]}"

    wm, xm = leaves(w), x.clone().requires_grad_(True)
    seq, states = keras_rnn(kind, xm, wm, units, go_backwards=True)
    y_manual = seq if return_sequences else seq[:, -1]
    g_manual = grads_of((y_manual * w_out).sum(), {"x": xm, **wm})

    # PyTorch: run the forward module on the time-reversed input; its outputs are then in
    # processing order, which is exactly what Keras returns for go_backwards.
    m = torch_module(kind, units)
    load_module(m, kind, w)
    xt = x.clone().requires_grad_(True)
    out, (hn, cn) = m(torch.flip(xt, [1]))
    y = out if return_sequences else out[:, -1]
    (y * w_out).sum().backward()
    g = {"x": xt.grad, **module_grads(m, kind)}
    check_close(f"{name}: y", y_manual, y)
    check_close(f"{name}: h", states[0], hn[0])
    check_close(f"{name}: c", states[1], cn[0])
    check_grads(name, g_manual, g)

    case = Case(name, "lstm", units, "torch.nn.LSTM on x reversed along time", return_sequences)
    case.attr("go_backwards", 1)
    case.comment(
        "go_backwards=True: the layer reads x[:, T-1], x[:, T-2], ..., x[:, 0]. Keras's\n"
        "backend.rnn reverses the inputs (and mask) along time and stacks the outputs in\n"
        "processing order; RNN.call returns them as they are, so with return_sequences\n"
        "y[:, t] is the output after reading x[:, T-1-t] (the sequence is NOT flipped back;\n"
        "only Bidirectional flips its backward copy back). Without return_sequences y is the\n"
        "state after reading x[:, 0]. (Keras docs: 'If True, process the input sequence\n"
        "backwards and return the reversed sequence'.)")
    case.weights(w)
    case.array("x", x)
    case.array("y", y)
    case.array("h", hn[0])
    case.array("c", cn[0])
    case.array("w_out", w_out)
    case.array("grad_x", g["x"])
    case.grads(g)
    return case


def lstm_initial_state_case(rng, return_sequences):
    kind, units = "lstm", 3
    w = random_weights(rng, kind, units)
    x = rng.normal(BATCH, TIMESTEPS, INPUT_DIM)
    h0 = rng.uniform(BATCH, units, low=-1.0, high=1.0)
    c0 = rng.uniform(BATCH, units, low=-1.0, high=1.0)
    w_out = rng.normal(*((BATCH, TIMESTEPS, units) if return_sequences else (BATCH, units)))
    name = f"lstm_initial_state_{SEQ_SUFFIX[return_sequences]}"

    wm, xm = leaves(w), x.clone().requires_grad_(True)
    h0m, c0m = h0.clone().requires_grad_(True), c0.clone().requires_grad_(True)
    seq, states = keras_rnn(kind, xm, wm, units, initial_state=[h0m, c0m])
    y_manual = seq if return_sequences else seq[:, -1]
    g_manual = grads_of((y_manual * w_out).sum(), {"x": xm, "h0": h0m, "c0": c0m, **wm})

    m = torch_module(kind, units)
    load_module(m, kind, w)
    xt = x.clone().requires_grad_(True)
    h0t, c0t = h0.clone().requires_grad_(True), c0.clone().requires_grad_(True)
    out, (hn, cn) = m(xt, (h0t.unsqueeze(0), c0t.unsqueeze(0)))
    y = out if return_sequences else out[:, -1]
    (y * w_out).sum().backward()
    g = {"x": xt.grad, "h0": h0t.grad, "c0": c0t.grad, **module_grads(m, kind)}
    check_close(f"{name}: y", y_manual, y)
    check_close(f"{name}: h", states[0], hn[0])
    check_close(f"{name}: c", states[1], cn[0])
    check_grads(name, g_manual, g)

    case = Case(name, "lstm", units, "torch.nn.LSTM with (h0, c0)", return_sequences)
    case.attr("initial_state", 1)
    case.comment("Initial state given: layer(x, initial_state=[h0, c0]) in Keras.")
    case.weights(w)
    case.array("x", x)
    case.array("h0", h0)
    case.array("c0", c0)
    case.array("y", y)
    case.array("h", hn[0])
    case.array("c", cn[0])
    case.array("w_out", w_out)
    case.array("grad_x", g["x"])
    case.array("grad_h0", g["h0"])
    case.array("grad_c0", g["c0"])
    case.grads(g)
    return case


def lstm_mask_case(rng, padding, return_sequences):
    kind, units = "lstm", 3
    w = random_weights(rng, kind, units)
    x = rng.normal(BATCH, TIMESTEPS, INPUT_DIM)
    lengths = [TIMESTEPS, 3, 1]
    mask = torch.zeros(BATCH, TIMESTEPS, dtype=DTYPE)
    for b, n in enumerate(lengths):
        if padding == "post":
            mask[b, :n] = 1
        else:
            mask[b, TIMESTEPS - n:] = 1
    w_out = rng.normal(*((BATCH, TIMESTEPS, units) if return_sequences else (BATCH, units)))
    name = f"lstm_mask_{padding}_{SEQ_SUFFIX[return_sequences]}"

    wm, xm = leaves(w), x.clone().requires_grad_(True)
    seq, (h, c) = keras_rnn(kind, xm, wm, units, mask=mask)
    y = seq if return_sequences else seq[:, -1]
    g = grads_of((y * w_out).sum(), {"x": xm, **wm})

    # Cross-check against PyTorch run on each row's unmasked part alone.
    m = torch_module(kind, units)
    load_module(m, kind, w)
    with torch.no_grad():
        for b, n in enumerate(lengths):
            first = 0 if padding == "post" else TIMESTEPS - n
            out, (hn, cn) = m(x[b:b + 1, first:first + n])
            check_close(f"{name}: row {b} h vs unpadded torch", h[b], hn[0, 0])
            check_close(f"{name}: row {b} c vs unpadded torch", c[b], cn[0, 0])
            check_close(f"{name}: row {b} last output", seq[b, -1], hn[0, 0])
            check_close(f"{name}: row {b} valid outputs", seq[b, first:first + n], out[0])
            for t in range(TIMESTEPS):
                if mask[b, t] == 0:
                    # masked step: previous output, zeros before the first valid step
                    expect = seq[b, t - 1] if t > 0 else torch.zeros(units, dtype=DTYPE)
                    check_close(f"{name}: row {b} masked step {t}", seq[b, t], expect)
            # the loss cannot depend on masked inputs
            for t in range(TIMESTEPS):
                if mask[b, t] == 0 and float(g["x"][b, t].abs().max()) != 0.0:
                    raise AssertionError(f"{name}: gradient flows into masked x[{b}, {t}]")

    case = Case(name, "lstm", units, "manual Keras maths (PyTorch has no masks)", return_sequences)
    case.attr("masked", 1)
    case.sattr("padding", padding)
    case.comment(
        f"mask (batch, T): 1 = real step, 0 = padding ('{padding}' padding, row lengths {lengths}).\n"
        "Keras semantics (tf.keras backend.rnn, the masked while_loop _step): on a masked step\n"
        "the states keep their previous values, and the output is the previous step's output\n"
        "(a zero tensor before the first step) because LSTM/RNN default to\n"
        "zero_output_for_mask=False; y without return_sequences is the last output.\n"
        "Computed by the manual step loop (PyTorch has no masks). Cross-checked: each row's\n"
        "final h and c, and its outputs at real steps, equal torch.nn.LSTM run on that row's\n"
        "unpadded steps alone. NB: Bidirectional forces zero_output_for_mask=True when it\n"
        "returns sequences, and the cuDNN path also gives zeros at padded steps.")
    case.weights(w)
    case.array("x", x)
    case.array("mask", mask)
    case.array("y", y)
    case.array("h", h)
    case.array("c", c)
    case.array("w_out", w_out)
    case.array("grad_x", g["x"])
    case.grads(g)
    return case


def bidirectional_case(rng, merge_mode, return_sequences):
    units = 3
    wf = random_weights(rng, "lstm", units)
    wb = random_weights(rng, "lstm", units)
    x = rng.normal(BATCH, TIMESTEPS, INPUT_DIM)
    out_units = 2 * units if merge_mode == "concat" else units
    w_out = rng.normal(*((BATCH, TIMESTEPS, out_units) if return_sequences else (BATCH, out_units)))
    name = f"bidirectional_lstm_{merge_mode}_{SEQ_SUFFIX[return_sequences]}"

    wfm, wbm, xm = leaves(wf), leaves(wb), x.clone().requires_grad_(True)
    y_manual, sf, sb = keras_bidirectional(xm, wfm, wbm, units, merge_mode, return_sequences)
    g_manual = grads_of((y_manual * w_out).sum(),
                        {"x": xm, **{"forward_" + k: v for k, v in wfm.items()},
                         **{"backward_" + k: v for k, v in wbm.items()}})

    # PyTorch's bidirectional LSTM: output[:, t, u:] is the reverse direction's state after
    # reading x[:, T-1] .. x[:, t], i.e. already aligned with step t; its final state is at t=0.
    m = torch_module("lstm", units, bidirectional=True)
    load_module(m, "lstm", wf)
    load_module(m, "lstm", wb, suffix="_reverse")
    xt = x.clone().requires_grad_(True)
    out, (hn, cn) = m(xt)
    yf_seq, yb_seq = out[..., :units], out[..., units:]
    if return_sequences:
        y = merge(merge_mode, yf_seq, yb_seq)
    else:
        y = merge(merge_mode, yf_seq[:, -1], yb_seq[:, 0])
    (y * w_out).sum().backward()
    gf, gb = module_grads(m, "lstm"), module_grads(m, "lstm", "_reverse")
    g = {"x": xt.grad, **{"forward_" + k: v for k, v in gf.items()},
         **{"backward_" + k: v for k, v in gb.items()}}
    check_close(f"{name}: y", y_manual, y)
    check_close(f"{name}: forward h", sf[0], hn[0])
    check_close(f"{name}: forward c", sf[1], cn[0])
    check_close(f"{name}: backward h", sb[0], hn[1])
    check_close(f"{name}: backward c", sb[1], cn[1])
    check_close(f"{name}: torch reverse final state at t=0", yb_seq[:, 0], hn[1])
    check_grads(name, g_manual, g)

    case = Case(name, "bidirectional", out_units,
                "torch.nn.LSTM(bidirectional=True)", return_sequences)
    case.sattr("inner_layer", "lstm")
    case.sattr("merge_mode", merge_mode)
    case.attr("inner_units", units)
    case.comment(
        "Bidirectional(LSTM(units)): attr units is the merged output width (2*inner_units for\n"
        "concat). The backward copy (weights backward_*) is the LSTM with go_backwards=True;\n"
        "with return_sequences its output sequence is reversed back so step t of both copies\n"
        "lines up, then merged; without, the backward output is its final state, after reading\n"
        "x[:, T-1] .. x[:, 0]. merge: concat [fwd, bwd] on the last axis, sum, mul, ave = (f+b)/2.\n"
        "forward_h/c, backward_h/c are each copy's final states.")
    case.weights(wf, "forward_")
    case.weights(wb, "backward_")
    case.array("x", x)
    case.array("y", y)
    case.array("forward_h", hn[0])
    case.array("forward_c", cn[0])
    case.array("backward_h", hn[1])
    case.array("backward_c", cn[1])
    case.array("w_out", w_out)
    case.array("grad_x", g["x"])
    case.grads(gf, "forward_")
    case.grads(gb, "backward_")
    return case


def gradcheck_manual(rng):
    """Finite-difference check of the manual loop's autograd gradients, every cell kind."""
    x = rng.normal(2, 3, INPUT_DIM)
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]], dtype=DTYPE)
    for kind in ("simple_rnn", "lstm", "gru", "gru_reset_before"):
        w = random_weights(rng, kind, 2)
        names = list(w)
        for m in (None, mask):
            for backwards in (False, True):
                def f(xx, *ws):
                    seq, states = keras_rnn(kind, xx, dict(zip(names, ws)), 2, mask=m,
                                            go_backwards=backwards)
                    return (seq, *states)
                inputs = [x.clone().requires_grad_(True)] + [w[n].clone().requires_grad_(True)
                                                            for n in names]
                if not torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8, rtol=1e-6):
                    raise AssertionError(f"gradcheck failed for {kind}")


def generate():
    torch.set_num_threads(1)
    torch.manual_seed(SEED)  # only the modules' own (overwritten) initialisation uses this
    rng = Rng(SEED)
    cases = []
    for kind in ("simple_rnn", "lstm", "gru", "gru_reset_before"):
        for rs in (False, True):
            cases.append(plain_case(rng, kind, rs))
    for rs in (False, True):
        cases.append(lstm_go_backwards_case(rng, rs))
    for rs in (False, True):
        cases.append(lstm_initial_state_case(rng, rs))
    cases.append(lstm_mask_case(rng, "post", False))
    cases.append(lstm_mask_case(rng, "post", True))
    cases.append(lstm_mask_case(rng, "pre", True))
    for mode in ("concat", "sum", "mul", "ave"):
        for rs in (False, True):
            cases.append(bidirectional_case(rng, mode, rs))
    gradcheck_manual(Rng(SEED + 1))

    w = Writer()
    w.line("# weft reference vectors for SimpleRNN, LSTM, GRU and Bidirectional(LSTM).")
    w.line("# Generated by: /usr/bin/python3 tests/reference/gen_rnn_vectors.py")
    w.line(f"# with torch {torch.__version__} (float64, CPU, 1 thread), seed {SEED}.")
    w.line("# Do not edit by hand; rerun the generator (it is deterministic; --check compares).")
    w.line("#")
    w.line("# Format: '#' lines are comments; blank lines are ignored. Each case is")
    w.line("#   case NAME")
    w.line("#   sattr KEY TEXT...        string attribute (rest of the line)")
    w.line("#   attr KEY NUMBER          numeric attribute")
    w.line("#   tensor NAME D0 D1 ...    followed by D0*D1*... values, row-major, %.17g,")
    w.line("#                            whitespace separated over any number of lines")
    w.line("#   end")
    w.line("# Weights are in Keras layout: kernel (in, k*u), recurrent_kernel (u, k*u), bias (k*u),")
    w.line("# GRU reset_after=True bias (2, 3u); gate blocks LSTM (i, f, c, o), GRU (z, r, h).")
    w.line("# x (batch, T, in); y (batch, u) or (batch, T, u) with return_sequences; h, c final")
    w.line("# states (batch, u). w_out has y's shape; grad_NAME = dL/dNAME for L = sum(y * w_out).")
    w.line("# Attributes: batch, timesteps, input_dim, units, return_sequences, and per case")
    w.line("# reset_after, go_backwards, initial_state, masked, inner_units; sattr layer, source,")
    w.line("# padding, merge_mode, inner_layer. See the generator's docstring for the validation.")
    w.line()
    for case in cases:
        w.case(case.c)
    return w.out.getvalue()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true",
                        help="regenerate and compare with --output instead of writing it")
    args = parser.parse_args()
    text = generate()
    if args.check:
        with open(args.output, encoding="ascii") as f:
            same = f.read() == text
        print(f"{args.output}: {'identical' if same else 'DIFFERS'}")
        return 0 if same else 1
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="ascii", newline="\n") as f:
        f.write(text)
    print(f"wrote {args.output} ({len(text)} bytes), torch {torch.__version__}, "
          f"python {platform.python_version()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
