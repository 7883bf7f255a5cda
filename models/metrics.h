// Keras's metrics as fit() and evaluate() report them. Each is a Metric object that is fed every
// batch of an epoch (update_state) and read at any point (result), as Keras's are:
// - mean metrics ("accuracy", "mae", "mse", ...) give one value per sample (the last axis
//   averaged) and report the mean over every sample seen, so a smaller last batch weighs less;
// - AUC, Precision and Recall count true and false positives and negatives at thresholds over
//   every prediction seen, and report a ratio of those counts (not a mean of batch values).
#pragma once

#include <memory>
#include <string>
#include <variant>

#include "weft/runtime/tensor.h"

namespace weft {

// 1 where the prediction, thresholded at 0.5, equals the label.
Tensor binary_accuracy(const Tensor& y_true, const Tensor& y_pred);
// 1 where the argmax of the one-hot labels equals the argmax of the predictions.
Tensor categorical_accuracy(const Tensor& y_true, const Tensor& y_pred);
// 1 where the integer label equals the argmax of the predictions.
Tensor sparse_categorical_accuracy(const Tensor& y_true, const Tensor& y_pred);
// Squared and absolute errors averaged over the last axis.
Tensor squared_error_per_sample(const Tensor& y_true, const Tensor& y_pred);
Tensor absolute_error_per_sample(const Tensor& y_true, const Tensor& y_pred);

// keras.metrics.AUC: the area under the ROC (or precision-recall) curve, approximated from the
// confusion counts at num_thresholds thresholds: 0 - 1e-7, then i / (num_thresholds - 1) for
// i = 1 .. num_thresholds - 2, then 1 + 1e-7; a prediction above a threshold counts as positive
// there. "interpolation" sums trapezoids (for "PR", Davis & Goadrich's interpolation, as Keras
// does); "minoring" and "majoring" sum the lower or upper rectangles.
struct AUC {
  int num_thresholds = 200;
  std::string curve = "ROC";                       // "ROC" or "PR"
  std::string summation_method = "interpolation";  // or "minoring", "majoring"
  std::string name = "auc";                        // the key in Logs and History
};

// keras.metrics.Precision: true positives / predicted positives, a prediction above `threshold`
// counting as positive (Keras's `thresholds`, one value); 0 while nothing was predicted positive.
struct Precision {
  double threshold = 0.5;
  std::string name = "precision";
};

// keras.metrics.Recall: true positives / actual positives, at `threshold` as Precision; 0 while
// no positive label was seen.
struct Recall {
  double threshold = 0.5;
  std::string name = "recall";
};

// One entry of compile()'s metrics: a Keras name ("accuracy", "mae", "AUC", ...) or a metric
// object with options.
using MetricSpec = std::variant<std::string, AUC, Precision, Recall>;

// A metric over the batches given to it so far.
class Metric {
 public:
  explicit Metric(std::string name) : name_(std::move(name)) {}
  Metric(const Metric&) = delete;
  Metric& operator=(const Metric&) = delete;
  virtual ~Metric() = default;

  const std::string& name() const { return name_; }  // the key in Logs and History
  virtual void update_state(const Tensor& y_true, const Tensor& y_pred) = 0;
  virtual double result() const = 0;

 private:
  std::string name_;
};

// A fresh metric for a model compiled with `loss`. "accuracy" (or "acc") is binary with
// binary_crossentropy, sparse with sparse_categorical_crossentropy, and otherwise chosen by shape
// as Keras does: binary for one output, sparse for labels with one axis fewer than the
// predictions, categorical else. "AUC", "Precision" and "Recall" are those objects with their
// defaults; they need probabilities against 0/1 labels, so a loss other than binary or
// categorical crossentropy is refused. Throws weft::Error for an unknown name (listing the known
// ones) or an option out of its range (naming it and its choices).
std::unique_ptr<Metric> make_metric(const MetricSpec& spec, const std::string& loss);

}  // namespace weft
