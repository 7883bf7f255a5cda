// Keras's losses, composed of ops so the tape differentiates them. Each returns the mean over
// the batch as a scalar. Labels are aligned as Keras's fit aligns them: labels of shape (B,)
// against predictions of shape (B, 1) are read as (B, 1); labels are cast to the predictions'
// dtype.
#pragma once

#include <string>

#include "weft/runtime/tensor.h"

namespace weft {

// Keras's epsilon(): predictions are clipped to [kEpsilon, 1 - kEpsilon] before a log.
inline constexpr double kEpsilon = 1e-7;

// -(y·log(p + ε) + (1 − y)·log(1 − p + ε)), p = clip(y_pred, ε, 1 − ε). Labels in [0, 1].
Tensor binary_crossentropy(const Tensor& y_true, const Tensor& y_pred);
// -Σ y·log(p) over the last axis, p = y_pred normalised to sum 1 then clipped to [ε, 1 − ε].
Tensor categorical_crossentropy(const Tensor& y_true, const Tensor& y_pred);
// Integer labels in [0, classes) of shape (B, ...) or (B, ..., 1) against y_pred
// (B, ..., classes): -log of the label's entry of the clipped, renormalised predictions.
Tensor sparse_categorical_crossentropy(const Tensor& y_true, const Tensor& y_pred);
Tensor mean_squared_error(const Tensor& y_true, const Tensor& y_pred);
Tensor mean_absolute_error(const Tensor& y_true, const Tensor& y_pred);

// A loss as fit() uses it: the labels are checked once for the whole data set (so an error
// names the sample's position in the user's array), then each batch's loss is computed without
// reading labels back on the host. The functions above do both.
struct Loss {
  std::string name;  // the canonical Keras name: "binary_crossentropy", "mse", ...
  // Throws weft::Error naming the loss, the bad value and its position, or shapes that do not
  // match. `prediction_shape` includes the batch axis; -1 matches any size.
  void (*check_labels)(const Tensor& y_true, const Shape& prediction_shape);
  Tensor (*compute)(const Tensor& y_true, const Tensor& y_pred);
};

// The labels as the losses and metrics read them: reshaped from (B, ...) to the predictions'
// (B, ..., 1) when that is the only difference, and cast to the predictions' dtype. No history.
Tensor aligned_labels(const Tensor& y_true, const Tensor& y_pred);

// By Keras name or alias ("mse", "mean_squared_error", ...); unknown names list the known ones.
const Loss& loss_by_name(const std::string& name);

}  // namespace weft
