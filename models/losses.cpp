#include "weft/models/losses.h"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <string_view>

#include "weft/ops/ops.h"

namespace weft {

namespace {

// "17" in a 1-D array, "(17, 0)" otherwise: the element's index as the user would write it.
std::string position_str(int64_t flat, const Shape& shape) {
  if (shape.size() <= 1) return std::to_string(flat);
  std::vector<int64_t> index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  return fmt::format("({})", fmt::join(index, ", "));
}

bool shapes_match(const Shape& labels, const Shape& predictions) {
  if (labels.size() != predictions.size()) return false;
  for (size_t d = 0; d < labels.size(); ++d)
    if (predictions[d] >= 0 && labels[d] != predictions[d]) return false;
  return true;
}

// Keras's fit expands rank-1 labels against rank-2 predictions; one rule for every shape.
Shape aligned_label_shape(const Shape& labels, const Shape& predictions) {
  if (labels.size() + 1 == predictions.size() && predictions.back() == 1) {
    Shape expanded = labels;
    expanded.push_back(1);
    return expanded;
  }
  return labels;
}

void check_same_shape(std::string_view loss, const Tensor& y_true, const Shape& predictions,
                      std::string_view hint = "") {
  WEFT_CHECK(shapes_match(aligned_label_shape(y_true.shape(), predictions), predictions),
             "{}: labels of shape {} do not match predictions of shape {}{}", loss,
             shape_str(y_true.shape()), shape_str(predictions), hint);
}

void check_unit_interval(std::string_view loss, const Tensor& y_true) {
  const std::vector<double> values = y_true.to_vector<double>();
  for (size_t i = 0; i < values.size(); ++i)
    WEFT_CHECK(values[i] >= 0 && values[i] <= 1, "{}: label {} at position {} is outside [0, 1]",
               loss, values[i], position_str(static_cast<int64_t>(i), y_true.shape()));
}

void check_binary(const Tensor& y_true, const Shape& predictions) {
  check_same_shape("binary_crossentropy", y_true, predictions);
  check_unit_interval("binary_crossentropy", y_true);
}

void check_categorical(const Tensor& y_true, const Shape& predictions) {
  check_same_shape("categorical_crossentropy", y_true, predictions,
                   y_true.dim() + 1 == static_cast<int64_t>(predictions.size())
                       ? "; integer class labels need sparse_categorical_crossentropy"
                       : "");
}

// Sparse labels: (B, ...) or (B, ..., 1) against predictions (B, ..., classes).
Shape sparse_label_shape(const Shape& labels, const Shape& predictions) {
  if (labels.size() == predictions.size() && !labels.empty() && labels.back() == 1)
    return Shape(labels.begin(), labels.end() - 1);
  return labels;
}

void check_sparse(const Tensor& y_true, const Shape& predictions) {
  constexpr std::string_view loss = "sparse_categorical_crossentropy";
  WEFT_CHECK(
      !predictions.empty() && shapes_match(sparse_label_shape(y_true.shape(), predictions),
                                           Shape(predictions.begin(), predictions.end() - 1)),
      "{}: labels of shape {} do not match predictions of shape {}; expected one integer "
      "class label per row of predictions",
      loss, shape_str(y_true.shape()), shape_str(predictions));
  const double classes = static_cast<double>(predictions.back());
  const std::vector<double> values = y_true.to_vector<double>();
  for (size_t i = 0; i < values.size(); ++i) {
    const double v = values[i];
    WEFT_CHECK(v >= 0 && (classes < 0 || v < classes) && v == std::floor(v),
               "{}: label {} at position {} is not a class index in [0, {})", loss, v,
               position_str(static_cast<int64_t>(i), y_true.shape()), predictions.back());
  }
}

Tensor compute_binary(const Tensor& y_true, const Tensor& y_pred) {
  const Tensor y = aligned_labels(y_true, y_pred);
  const Tensor p = clip(y_pred, kEpsilon, 1 - kEpsilon);
  return -mean(y * log(p + kEpsilon) + (1.0 - y) * log(1.0 - p + kEpsilon));
}

Tensor compute_categorical(const Tensor& y_true, const Tensor& y_pred) {
  const Tensor y = aligned_labels(y_true, y_pred);
  const Tensor p = clip(y_pred / sum(y_pred, {-1}, true), kEpsilon, 1 - kEpsilon);
  return -mean(sum(y * log(p), {-1}));
}

Tensor compute_sparse(const Tensor& y_true, const Tensor& y_pred) {
  const int64_t classes = y_pred.shape().back();
  Tensor labels = y_true.detach();
  labels = reshape(labels, sparse_label_shape(labels.shape(), y_pred.shape()));
  if (labels.dtype() != DType::i64) labels = cast(labels, DType::i64);
  const Tensor one_hot = cast(equal(unsqueeze(labels, -1), arange(classes)), y_pred.dtype());
  // Keras's form: the clipped probabilities as logits of a softmax cross-entropy.
  const Tensor log_p = log_softmax(log(clip(y_pred, kEpsilon, 1 - kEpsilon)), -1);
  return -mean(sum(one_hot * log_p, {-1}));
}

Tensor compute_mse(const Tensor& y_true, const Tensor& y_pred) {
  return mean(square(y_pred - aligned_labels(y_true, y_pred)));
}

Tensor compute_mae(const Tensor& y_true, const Tensor& y_pred) {
  return mean(abs(y_pred - aligned_labels(y_true, y_pred)));
}

const Loss kBinary{"binary_crossentropy", check_binary, compute_binary};
const Loss kCategorical{"categorical_crossentropy", check_categorical, compute_categorical};
const Loss kSparse{"sparse_categorical_crossentropy", check_sparse, compute_sparse};
const Loss kMse{"mse", [](const Tensor& y, const Shape& p) { check_same_shape("mse", y, p); },
                compute_mse};
const Loss kMae{"mae", [](const Tensor& y, const Shape& p) { check_same_shape("mae", y, p); },
                compute_mae};

Tensor checked(const Loss& loss, const Tensor& y_true, const Tensor& y_pred) {
  loss.check_labels(y_true, y_pred.shape());
  return loss.compute(y_true, y_pred);
}

}  // namespace

Tensor aligned_labels(const Tensor& y_true, const Tensor& y_pred) {
  Tensor y = y_true.detach();
  if (y.shape() != y_pred.shape()) y = reshape(y, aligned_label_shape(y.shape(), y_pred.shape()));
  return y.dtype() == y_pred.dtype() ? y : cast(y, y_pred.dtype());
}

Tensor binary_crossentropy(const Tensor& y_true, const Tensor& y_pred) {
  return checked(kBinary, y_true, y_pred);
}
Tensor categorical_crossentropy(const Tensor& y_true, const Tensor& y_pred) {
  return checked(kCategorical, y_true, y_pred);
}
Tensor sparse_categorical_crossentropy(const Tensor& y_true, const Tensor& y_pred) {
  return checked(kSparse, y_true, y_pred);
}
Tensor mean_squared_error(const Tensor& y_true, const Tensor& y_pred) {
  return checked(kMse, y_true, y_pred);
}
Tensor mean_absolute_error(const Tensor& y_true, const Tensor& y_pred) {
  return checked(kMae, y_true, y_pred);
}

const Loss& loss_by_name(const std::string& name) {
  static const std::array<std::pair<std::string_view, const Loss*>, 7> known{{
      {"binary_crossentropy", &kBinary},
      {"categorical_crossentropy", &kCategorical},
      {"sparse_categorical_crossentropy", &kSparse},
      {"mse", &kMse},
      {"mean_squared_error", &kMse},
      {"mae", &kMae},
      {"mean_absolute_error", &kMae},
  }};
  std::vector<std::string_view> names;
  for (const auto& [known_name, loss] : known) {
    if (known_name == name) return *loss;
    names.push_back(known_name);
  }
  throw Error("unknown loss \"{}\"; known losses: {}", name, fmt::join(names, ", "));
}

}  // namespace weft
