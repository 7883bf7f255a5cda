#include "weft/models/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <string_view>
#include <vector>

#include "weft/models/losses.h"
#include "weft/ops/ops.h"
#include "weft/runtime/op.h"

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

namespace {

using PerSample = Tensor (*)(const Tensor& y_true, const Tensor& y_pred);

// Keras's Mean over per-sample values.
class MeanMetric final : public Metric {
 public:
  MeanMetric(std::string name, PerSample values) : Metric(std::move(name)), values_(values) {}
  void update_state(const Tensor& y_true, const Tensor& y_pred) override {
    NoGrad no_grad;
    const Tensor values = values_(y_true, y_pred);
    total_ += sum(values).item();
    count_ += static_cast<double>(values.numel());
  }
  double result() const override { return count_ > 0 ? total_ / count_ : 0; }

 private:
  PerSample values_;
  double total_ = 0;
  double count_ = 0;
};

// tf.math.divide_no_nan: 0 where the denominator is 0.
double divide_no_nan(double numerator, double denominator) {
  return denominator == 0 ? 0 : numerator / denominator;
}

// True and false positives and negatives at ascending thresholds, over every prediction seen (the
// predictions and labels flattened, a nonzero label counting as positive). Kept as histograms: a
// prediction above k thresholds lands in bucket k, so a batch costs one binary search per value.
// Thresholds are float32 and compared with float32 predictions, as in Keras.
class ConfusionCounts {
 public:
  explicit ConfusionCounts(std::vector<float> thresholds)
      : thresholds_(std::move(thresholds)),
        positives_(thresholds_.size() + 1),
        negatives_(thresholds_.size() + 1) {}

  void update(std::string_view metric, const Tensor& y_true, const Tensor& y_pred) {
    NoGrad no_grad;
    const std::vector<double> labels = aligned_labels(y_true, y_pred).to_vector<double>();
    const std::vector<double> predictions = y_pred.to_vector<double>();
    for (size_t i = 0; i < predictions.size(); ++i) {
      const auto p = static_cast<float>(predictions[i]);
      WEFT_CHECK(p >= 0 && p <= 1,
                 "metric \"{}\": predictions must be probabilities in [0, 1], got {}; end the "
                 "model with a sigmoid or a softmax",
                 metric, predictions[i]);
      const auto above = std::lower_bound(thresholds_.begin(), thresholds_.end(), p);
      auto& histogram = labels[i] != 0 ? positives_ : negatives_;
      ++histogram[static_cast<size_t>(above - thresholds_.begin())];
    }
  }

  size_t size() const { return thresholds_.size(); }
  // Predictions above threshold t among the positive (negative) labels.
  std::vector<double> true_positives() const { return counts_above(positives_); }
  std::vector<double> false_positives() const { return counts_above(negatives_); }
  double positives() const { return std::accumulate(positives_.begin(), positives_.end(), 0.0); }
  double negatives() const { return std::accumulate(negatives_.begin(), negatives_.end(), 0.0); }

 private:
  std::vector<double> counts_above(const std::vector<double>& histogram) const {
    std::vector<double> counts(thresholds_.size());
    double above = histogram.back();
    for (size_t t = thresholds_.size(); t-- > 0;) {
      counts[t] = above;
      above += histogram[t];
    }
    return counts;
  }

  std::vector<float> thresholds_;
  std::vector<double> positives_;  // by the number of thresholds below the prediction
  std::vector<double> negatives_;
};

// Precision or Recall at one threshold.
class ThresholdMetric final : public Metric {
 public:
  enum class Ratio { precision, recall };
  ThresholdMetric(std::string name, Ratio ratio, double threshold)
      : Metric(std::move(name)), ratio_(ratio), counts_({static_cast<float>(threshold)}) {}
  void update_state(const Tensor& y_true, const Tensor& y_pred) override {
    counts_.update(name(), y_true, y_pred);
  }
  double result() const override {
    const double true_positives = counts_.true_positives()[0];
    return divide_no_nan(true_positives, ratio_ == Ratio::precision
                                             ? true_positives + counts_.false_positives()[0]
                                             : counts_.positives());
  }

 private:
  Ratio ratio_;
  ConfusionCounts counts_;
};

// Keras's AUC thresholds: evenly spaced, with the ends just outside [0, 1].
std::vector<float> auc_thresholds(int num_thresholds) {
  std::vector<float> thresholds{static_cast<float>(-kEpsilon)};
  for (int i = 1; i < num_thresholds - 1; ++i)
    thresholds.push_back(static_cast<float>(i / static_cast<double>(num_thresholds - 1)));
  thresholds.push_back(static_cast<float>(1 + kEpsilon));
  return thresholds;
}

class AucMetric final : public Metric {
 public:
  explicit AucMetric(const AUC& options)
      : Metric(options.name), options_(options), counts_(auc_thresholds(options.num_thresholds)) {}
  void update_state(const Tensor& y_true, const Tensor& y_pred) override {
    counts_.update(name(), y_true, y_pred);
  }

  // keras.metrics.AUC.result: the curve's points at every threshold, from the lowest threshold
  // (everything positive) to the highest, and the areas between neighbours.
  double result() const override {
    const std::vector<double> tp = counts_.true_positives(), fp = counts_.false_positives();
    const double positives = counts_.positives(), negatives = counts_.negatives();
    if (options_.curve == "PR" && options_.summation_method == "interpolation")
      return interpolated_pr_auc(tp, fp, positives);
    std::vector<double> x(tp.size()), y(tp.size());
    for (size_t t = 0; t < tp.size(); ++t) {
      const double recall = divide_no_nan(tp[t], positives);
      if (options_.curve == "ROC") {
        x[t] = divide_no_nan(fp[t], negatives);
        y[t] = recall;
      } else {
        x[t] = recall;
        y[t] = divide_no_nan(tp[t], tp[t] + fp[t]);
      }
    }
    double area = 0;
    for (size_t t = 0; t + 1 < tp.size(); ++t) {
      const double height = options_.summation_method == "interpolation" ? (y[t] + y[t + 1]) / 2
                            : options_.summation_method == "minoring"    ? std::min(y[t], y[t + 1])
                                                                         : std::max(y[t], y[t + 1]);
      area += (x[t] - x[t + 1]) * height;
    }
    return area;
  }

 private:
  // Keras's interpolate_pr_auc: precision interpolated between thresholds as Davis & Goadrich
  // propose, integrated in closed form.
  static double interpolated_pr_auc(const std::vector<double>& tp, const std::vector<double>& fp,
                                    double positives) {
    double area = 0;
    for (size_t t = 0; t + 1 < tp.size(); ++t) {
      const double predicted = tp[t] + fp[t], predicted_next = tp[t + 1] + fp[t + 1];
      const double dtp = tp[t] - tp[t + 1];
      const double slope = divide_no_nan(dtp, std::max(predicted - predicted_next, 0.0));
      const double intercept = tp[t + 1] - slope * predicted_next;
      const double ratio = predicted > 0 && predicted_next > 0
                               ? divide_no_nan(predicted, std::max(predicted_next, 0.0))
                               : 1;
      const double false_negatives_next = positives - tp[t + 1];
      area += divide_no_nan(slope * (dtp + intercept * std::log(ratio)),
                            std::max(tp[t + 1] + false_negatives_next, 0.0));
    }
    return area;
  }

  AUC options_;
  ConfusionCounts counts_;
};

// `value` must be one of `choices`.
void check_choice(std::string_view metric, std::string_view option, const std::string& value,
                  std::initializer_list<std::string_view> choices) {
  WEFT_CHECK(std::find(choices.begin(), choices.end(), value) != choices.end(),
             "{}: unknown {} \"{}\"; known: {}", metric, option, value, fmt::join(choices, ", "));
}

// AUC, Precision and Recall read probabilities of 0/1 labels.
void check_classification(std::string_view metric, const std::string& loss) {
  const std::string& canonical = loss_by_name(loss).name;
  WEFT_CHECK(canonical == "binary_crossentropy" || canonical == "categorical_crossentropy",
             "metric {} needs predicted probabilities of 0/1 labels, but loss \"{}\" is not a "
             "classifier's: compile with binary_crossentropy or categorical_crossentropy",
             metric, loss);
}

std::unique_ptr<Metric> make(const AUC& options, const std::string& loss) {
  check_classification("AUC", loss);
  WEFT_CHECK(options.num_thresholds > 1, "AUC: num_thresholds must be > 1, got {}",
             options.num_thresholds);
  check_choice("AUC", "curve", options.curve, {"ROC", "PR"});
  check_choice("AUC", "summation_method", options.summation_method,
               {"interpolation", "minoring", "majoring"});
  return std::make_unique<AucMetric>(options);
}

std::unique_ptr<Metric> make_threshold_metric(std::string_view kind, const std::string& name,
                                              ThresholdMetric::Ratio ratio, double threshold,
                                              const std::string& loss) {
  check_classification(kind, loss);
  WEFT_CHECK(threshold >= 0 && threshold <= 1, "{}: threshold must be in [0, 1], got {}", kind,
             threshold);
  return std::make_unique<ThresholdMetric>(name, ratio, threshold);
}

std::unique_ptr<Metric> make(const Precision& options, const std::string& loss) {
  return make_threshold_metric("Precision", options.name, ThresholdMetric::Ratio::precision,
                               options.threshold, loss);
}

std::unique_ptr<Metric> make(const Recall& options, const std::string& loss) {
  return make_threshold_metric("Recall", options.name, ThresholdMetric::Ratio::recall,
                               options.threshold, loss);
}

std::unique_ptr<Metric> make(const std::string& name, const std::string& loss) {
  if (name == "AUC") return make(AUC{}, loss);
  if (name == "Precision") return make(Precision{}, loss);
  if (name == "Recall") return make(Recall{}, loss);
  PerSample accuracy = accuracy_by_shape;
  if (loss_by_name(loss).name == "binary_crossentropy") accuracy = binary_accuracy;
  if (loss_by_name(loss).name == "sparse_categorical_crossentropy")
    accuracy = sparse_categorical_accuracy;
  const std::array<std::pair<std::string_view, PerSample>, 9> means{{
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
  for (const auto& [known_name, values] : means) {
    if (known_name == name) return std::make_unique<MeanMetric>(name, values);
    names.push_back(known_name);
  }
  names.insert(names.end(), {"AUC", "Precision", "Recall"});
  throw Error("unknown metric \"{}\"; known metrics: {}", name, fmt::join(names, ", "));
}

}  // namespace

std::unique_ptr<Metric> make_metric(const MetricSpec& spec, const std::string& loss) {
  return std::visit([&](const auto& metric) { return make(metric, loss); }, spec);
}

}  // namespace weft
