#!/usr/bin/python3
"""Generate reference vectors for weft's AUC, Precision and Recall metrics and its shuffle and
train_test_split helpers, from scikit-learn and from Keras's AUC formula.

Run with Debian's Python (python3-sklearn, python3-numpy):

    /usr/bin/python3 tests/reference/gen_metric_vectors.py          # writes the file
    /usr/bin/python3 tests/reference/gen_metric_vectors.py --check  # compares instead

Writes tests/data/metric_reference.txt in the format of tests/reference_vectors.h. Every input is
drawn from numpy RandomState with a fixed seed, so every run gives the same bytes. Two kinds of
case, told apart by the `kind` attribute:

  classification  labels y_true (0/1) and float32 probabilities y_pred, with
                  - sklearn_roc_auc: sklearn.metrics.roc_auc_score (the exact area; absent when
                    the labels hold one class only, where scikit-learn refuses);
                  - sklearn_precision, sklearn_recall: precision_score and recall_score of
                    y_pred > 0.5 (Keras's threshold: a prediction of exactly 0.5 is negative),
                    zero_division=0 as Keras's divide_no_nan gives;
                  - keras_auc_CURVE_METHOD for CURVE in roc, pr and METHOD in interpolation,
                    minoring, majoring: keras.metrics.AUC(num_thresholds) reimplemented below
                    from Keras 2.13's metrics_utils and AUC.result / interpolate_pr_auc (float32
                    thresholds and comparisons, float64 sums);
                  - num_thresholds and batch_size (the test feeds the metric that many at a time).
  split           sklearn.utils.shuffle(arange(n), random_state=seed) as `shuffled`, and
                  train_test_split(arange(n), test_size, random_state=seed) as `train`, `test`.

Keras's AUC is an approximation of the exact area: with 200 thresholds it differs from
scikit-learn's by about 1e-3 on these inputs; the generator prints the largest difference.
"""

import os
import sys

import numpy as np
import sklearn
from sklearn.metrics import precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.utils import shuffle
from vector_file import CaseWriter, main

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUTPUT = os.path.join(REPO_ROOT, "tests", "data", "metric_reference.txt")
EPSILON = 1e-7  # keras.backend.epsilon()


class Writer(CaseWriter):
    def attr(self, key, value):
        self.line(f"  attr {key} {float(value)!r}")

    def tensor(self, name, values):
        values = [float(v) for v in values]
        self.line(f"  tensor {name} {len(values)}")
        for start in range(0, len(values), 8):
            self.line("    " + " ".join(f"{v!r}" for v in values[start:start + 8]))


def keras_confusion(y_true, y_pred, num_thresholds):
    """tp, fp, tn, fn at Keras's AUC thresholds (metrics_utils.update_confusion_matrix_variables)."""
    inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    thresholds = np.array([0.0 - EPSILON] + inner + [1.0 + EPSILON], dtype=np.float32)
    above = y_pred.astype(np.float32)[None, :] > thresholds[:, None]
    positive = (y_true != 0)[None, :]
    tp = np.sum(above & positive, axis=1).astype(np.float64)
    fp = np.sum(above & ~positive, axis=1).astype(np.float64)
    tn = np.sum(~above & ~positive, axis=1).astype(np.float64)
    fn = np.sum(~above & positive, axis=1).astype(np.float64)
    return tp, fp, tn, fn


def divide_no_nan(a, b):
    return np.where(b == 0, 0.0, a / np.where(b == 0, 1.0, b))


def keras_auc(y_true, y_pred, num_thresholds, curve, summation_method):
    """keras.metrics.AUC.result for multi_label=False."""
    tp, fp, tn, fn = keras_confusion(y_true, y_pred, num_thresholds)
    n = num_thresholds
    if curve == "PR" and summation_method == "interpolation":  # interpolate_pr_auc
        dtp = tp[:n - 1] - tp[1:]
        p = tp + fp
        dp = p[:n - 1] - p[1:]
        prec_slope = divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - prec_slope * p[1:]
        safe_p_ratio = np.where((p[:n - 1] > 0) & (p[1:] > 0),
                                divide_no_nan(p[:n - 1], np.maximum(p[1:], 0)), 1.0)
        increment = divide_no_nan(prec_slope * (dtp + intercept * np.log(safe_p_ratio)),
                                  np.maximum(tp[1:] + fn[1:], 0))
        return float(np.sum(increment))
    recall = divide_no_nan(tp, tp + fn)
    if curve == "ROC":
        x, y = divide_no_nan(fp, fp + tn), recall
    else:
        x, y = recall, divide_no_nan(tp, tp + fp)
    if summation_method == "interpolation":
        heights = (y[:n - 1] + y[1:]) / 2.0
    elif summation_method == "minoring":
        heights = np.minimum(y[:n - 1], y[1:])
    else:
        heights = np.maximum(y[:n - 1], y[1:])
    return float(np.sum((x[:n - 1] - x[1:]) * heights))


def classification_case(w, name, y_true, y_pred, num_thresholds=200, batch_size=32):
    y_pred = y_pred.astype(np.float32)
    w.case(name, "classification")
    w.attr("num_thresholds", num_thresholds)
    w.attr("batch_size", batch_size)
    w.tensor("y_true", y_true)
    w.tensor("y_pred", y_pred)
    difference = 0.0
    if len(set(y_true.tolist())) == 2:
        exact = roc_auc_score(y_true, y_pred)
        w.attr("sklearn_roc_auc", exact)
        difference = abs(exact - keras_auc(y_true, y_pred, num_thresholds, "ROC", "interpolation"))
    predicted = (y_pred > np.float32(0.5)).astype(int)
    w.attr("sklearn_precision", precision_score(y_true, predicted, zero_division=0))
    w.attr("sklearn_recall", recall_score(y_true, predicted, zero_division=0))
    for curve in ("ROC", "PR"):
        for method in ("interpolation", "minoring", "majoring"):
            w.attr(f"keras_auc_{curve.lower()}_{method}",
                   keras_auc(y_true, y_pred, num_thresholds, curve, method))
    w.end()
    return difference


def classification_cases(w):
    rng = np.random.RandomState(19)
    differences = []
    # A useful classifier: scores drawn around the label.
    y = rng.randint(0, 2, size=300)
    scores = 1 / (1 + np.exp(-(2.0 * (2 * y - 1) + rng.normal(0, 1.5, size=300))))
    differences.append(classification_case(w, "informative", y, scores))
    # A weak one, with few thresholds: the approximation is coarser.
    y = rng.randint(0, 2, size=150)
    scores = np.clip(0.5 + 0.1 * (2 * y - 1) + rng.normal(0, 0.25, size=150), 0, 1)
    differences.append(classification_case(w, "weak_few_thresholds", y, scores,
                                           num_thresholds=20, batch_size=7))
    # Ties and values on the grid: every score a multiple of 0.1, 0.5 and the ends included.
    y = rng.randint(0, 2, size=60)
    scores = np.round(np.clip(0.5 + 0.3 * (2 * y - 1) + rng.normal(0, 0.3, size=60), 0, 1), 1)
    differences.append(classification_case(w, "ties_on_a_grid", y, scores, batch_size=60))
    # Imbalanced: 10% positives.
    y = (rng.uniform(size=200) < 0.1).astype(int)
    scores = rng.beta(2 + 3 * y, 5 - 3 * y)
    differences.append(classification_case(w, "imbalanced", y, scores, batch_size=16))
    # One class only: scikit-learn has no ROC AUC; Keras's formula gives 0.
    y = np.zeros(20, dtype=int)
    classification_case(w, "negatives_only", y, rng.uniform(size=20), batch_size=5)
    return max(differences)


def split_cases(w):
    for n, test_size, seed in ((10, 0.25, 42), (7, 0.3, 0), (100, 0.2, 113), (5, 0.5, 2**32 - 1)):
        indices = np.arange(n)
        train, test = train_test_split(indices, test_size=test_size, random_state=seed)
        w.case(f"split_{n}_{seed}", "split")
        w.attr("n", n)
        w.attr("test_size", test_size)
        w.attr("seed", seed)
        w.tensor("shuffled", shuffle(indices, random_state=seed))
        w.tensor("train", train)
        w.tensor("test", test)
        w.end()


def generate():
    w = Writer()
    w.line("# weft reference vectors for AUC, Precision, Recall, shuffle and train_test_split.")
    w.line("# Generated by: /usr/bin/python3 tests/reference/gen_metric_vectors.py")
    w.line(f"# with scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
           f"Python {sys.version.split()[0]}.")
    w.line("# Do not edit by hand; rerun the generator (it is deterministic; --check compares).")
    w.line("# Format: tests/reference_vectors.h. See the generator's docstring for each kind.")
    difference = classification_cases(w)
    print(f"largest |Keras ROC AUC - scikit-learn's| over the cases: {difference:.2e}")
    split_cases(w)
    return w.text()


if __name__ == "__main__":
    sys.exit(main(__doc__.splitlines()[0], DEFAULT_OUTPUT, generate))
