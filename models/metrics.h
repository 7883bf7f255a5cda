// Keras's metrics as fit() and evaluate() report them. A metric gives one value per sample (the
// last axis averaged), and an epoch's value is the mean over every sample seen, so a smaller
// last batch weighs less, as in Keras.
#pragma once

#include <string>

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

struct Metric {
  std::string name;  // as the user wrote it: the key in Logs and History ("accuracy", "acc")
  Tensor (*values)(const Tensor& y_true, const Tensor& y_pred);  // per-sample values
};

// A metric by Keras name for a model compiled with `loss`. "accuracy" (or "acc") is binary
// with binary_crossentropy, sparse with sparse_categorical_crossentropy, and otherwise chosen
// by shape as Keras does: binary for one output, sparse for labels with one axis fewer than
// the predictions, categorical else. Unknown names list the known ones.
Metric metric_by_name(const std::string& name, const std::string& loss);

}  // namespace weft
