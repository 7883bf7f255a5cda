#include "weft/models/metrics.h"

#include <fmt/format.h>

#include <array>
#include <string_view>

#include "weft/models/losses.h"
#include "weft/ops/ops.h"

namespace weft {

namespace {

// One value per sample: the last axis averaged, unless the predictions have no axis but the
// batch.
Tensor per_sample(const Tensor& values) { return values.dim() > 1 ? mean(values, {-1}) : values; }

// Integer labels of shape (B, ...) from (B, ...) or (B, ..., 1), against (B, ..., classes).
Tensor class_labels(const Tensor& y_true, const Tensor& y_pred) {
  Tensor labels = y_true.detach();
  if (labels.dim() == y_pred.dim()) labels = squeeze(labels, -1);
  return labels.dtype() == DType::i64 ? labels : cast(labels, DType::i64);
}

Tensor accuracy_by_shape(const Tensor& y_true, const Tensor& y_pred) {
  if (y_pred.shape().back() == 1) return binary_accuracy(y_true, y_pred);
  const bool sparse =
      y_true.dim() < y_pred.dim() || (y_true.dim() == y_pred.dim() && y_true.shape().back() == 1);
  return sparse ? sparse_categorical_accuracy(y_true, y_pred)
                : categorical_accuracy(y_true, y_pred);
}

}  // namespace

Tensor binary_accuracy(const Tensor& y_true, const Tensor& y_pred) {
  const Tensor predicted = cast(greater(y_pred, scalar(0.5, y_pred.dtype())), y_pred.dtype());
  return per_sample(equal(aligned_labels(y_true, y_pred), predicted));
}

Tensor categorical_accuracy(const Tensor& y_true, const Tensor& y_pred) {
  return cast(equal(argmax(y_true, -1), argmax(y_pred, -1)), y_pred.dtype());
}

Tensor sparse_categorical_accuracy(const Tensor& y_true, const Tensor& y_pred) {
  return cast(equal(class_labels(y_true, y_pred), argmax(y_pred, -1)), y_pred.dtype());
}

Tensor squared_error_per_sample(const Tensor& y_true, const Tensor& y_pred) {
  return per_sample(square(y_pred - aligned_labels(y_true, y_pred)));
}

Tensor absolute_error_per_sample(const Tensor& y_true, const Tensor& y_pred) {
  return per_sample(abs(y_pred - aligned_labels(y_true, y_pred)));
}

Metric metric_by_name(const std::string& name, const std::string& loss) {
  using Values = Tensor (*)(const Tensor&, const Tensor&);
  Values accuracy = accuracy_by_shape;
  if (loss_by_name(loss).name == "binary_crossentropy") accuracy = binary_accuracy;
  if (loss_by_name(loss).name == "sparse_categorical_crossentropy")
    accuracy = sparse_categorical_accuracy;
  const std::array<std::pair<std::string_view, Values>, 9> known{{
      {"accuracy", accuracy},
      {"acc", accuracy},
      {"binary_accuracy", binary_accuracy},
      {"categorical_accuracy", categorical_accuracy},
      {"sparse_categorical_accuracy", sparse_categorical_accuracy},
      {"mse", squared_error_per_sample},
      {"mean_squared_error", squared_error_per_sample},
      {"mae", absolute_error_per_sample},
      {"mean_absolute_error", absolute_error_per_sample},
  }};
  std::vector<std::string_view> names;
  for (const auto& [known_name, values] : known) {
    if (known_name == name) return {name, values};
    names.push_back(known_name);
  }
  throw Error("unknown metric \"{}\"; known metrics: {}", name, fmt::join(names, ", "));
}

}  // namespace weft
