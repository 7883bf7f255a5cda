// compile, fit, evaluate and predict, with Keras's semantics and progress output.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <optional>
#include <string_view>

#include "weft/models/callback_list.h"
#include "weft/models/cluster.h"
#include "weft/models/losses.h"
#include "weft/models/metrics.h"
#include "weft/models/optimizers.h"
#include "weft/models/sequential.h"
#include "weft/models/training_state.h"
#include "weft/ops/ops.h"
#include "weft/runtime/op.h"

namespace weft {

// ---- Logs, History -----------------------------------------------------------------------

void Logs::set(const std::string& name, double value) {
  for (auto& [key, stored] : items_)
    if (key == name) {
      stored = value;
      return;
    }
  items_.emplace_back(name, value);
}

bool Logs::contains(const std::string& name) const {
  return std::any_of(items_.begin(), items_.end(),
                     [&](const auto& item) { return item.first == name; });
}

double Logs::at(const std::string& name) const {
  std::vector<std::string> keys;
  for (const auto& [key, value] : items_) {
    if (key == name) return value;
    keys.push_back(key);
  }
  throw Error("no \"{}\" in the logs; they hold: {}", name, fmt::join(keys, ", "));
}

const std::vector<double>& History::operator[](const std::string& name) const {
  const auto found = history.find(name);
  if (found != history.end()) return found->second;
  std::vector<std::string> keys;
  for (const auto& [key, values] : history) keys.push_back(key);
  throw Error("no \"{}\" in the history; it holds: {}", name, fmt::join(keys, ", "));
}

namespace {

using TrainingState = Sequential::TrainingState;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---- Progress output, as Keras's Progbar prints it at verbose=1 -----------------------------

// " 143ms/step", " 1s/step", " 850us/step"
std::string format_step_time(double seconds) {
  if (seconds >= 1 || seconds == 0) return fmt::format(" {:.0f}s/step", seconds);
  if (seconds >= 1e-3) return fmt::format(" {:.0f}ms/step", seconds * 1e3);
  return fmt::format(" {:.0f}us/step", seconds * 1e6);
}

std::string format_eta(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  if (seconds > 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60);
  if (seconds > 60) return fmt::format("{}:{:02}", s / 60, s % 60);
  return fmt::format("{}s", s);
}

std::string format_logs(const Logs& logs) {
  std::string text;
  for (const auto& [name, value] : logs.items())
    text += std::abs(value) > 1e-3 ? fmt::format(" - {}: {:.4f}", name, value)
                                   : fmt::format(" - {}: {:.4e}", name, value);
  return text;
}

// `313/313 [==============================] - 45s 143ms/step - loss: 0.4512 - ...`. On a
// terminal the line is redrawn in place (at most every 50 ms) while the epoch runs, with an ETA
// in place of the times; elsewhere only the finished line is printed, so logs stay readable.
class ProgressBar {
 public:
  explicit ProgressBar(int64_t steps)
      : steps_(steps), dynamic_(::isatty(STDOUT_FILENO) == 1), start_(Clock::now()) {}
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  // An epoch cut short by an error leaves the cursor at the start of a fresh line.
  ~ProgressBar() {
    if (width_ > 0) std::cout << '\n' << std::flush;
  }

  // After step `current` (from 1), with the running values.
  void update(int64_t current, const Logs& logs) {
    const double now = seconds_since(start_);
    if (current == 1) after_first_step_ = now;
    if (!dynamic_ || now - last_draw_ < 0.05) return;
    last_draw_ = now;
    draw(current, " - ETA: " + format_eta(step_time(current, now) * (steps_ - current)), logs,
         false);
  }

  // The epoch's final line, with its values (validation included).
  void finish(const Logs& logs) {
    const double now = seconds_since(start_);
    draw(steps_, fmt::format(" - {:.0f}s", now) + format_step_time(step_time(steps_, now)), logs,
         true);
  }

 private:
  // Seconds per step, leaving out the first step (it includes one-off setup) when there are
  // others.
  double step_time(int64_t current, double now) const {
    return current > 1 ? (now - after_first_step_) / static_cast<double>(current - 1) : now;
  }

  void draw(int64_t current, const std::string& times, const Logs& logs, bool last) {
    const std::string count = std::to_string(steps_);
    const int64_t done = 30 * current / steps_;
    std::string bar = fmt::format("{:>{}}/{} [", current, count.size(), count);
    if (done > 0) bar += std::string(done - 1, '=') + (current < steps_ ? '>' : '=');
    bar += std::string(30 - done, '.') + "]";
    std::string line = bar + times + format_logs(logs);
    const size_t width = line.size();
    if (dynamic_) {
      if (width < width_) line += std::string(width_ - width, ' ');  // clears the longer line
      line.insert(line.begin(), '\r');
    }
    width_ = last ? 0 : width;
    std::cout << line << (last ? "\n" : "") << std::flush;
  }

  int64_t steps_;
  bool dynamic_;
  Clock::time_point start_;
  double after_first_step_ = 0;
  double last_draw_ = -1;
  size_t width_ = 0;  // of the unfinished line on screen
};

// ---- Running means --------------------------------------------------------------------------

// Keras's Mean: a running mean weighted by the number of samples behind each value.
struct Mean {
  double total = 0;
  double count = 0;
  void add(double sum, double n) {
    total += sum;
    count += n;
  }
  double result() const { return count > 0 ? total / count : 0; }
};

std::vector<std::unique_ptr<Metric>> make_metrics(const TrainingState& training) {
  std::vector<std::unique_ptr<Metric>> metrics;
  for (const MetricSpec& spec : training.metrics)
    metrics.push_back(make_metric(spec, training.loss->name));
  return metrics;
}

// The loss and each metric over the batches seen so far.
class Accumulator {
 public:
  explicit Accumulator(const TrainingState& training) : metrics_(make_metrics(training)) {}

  void add(double loss, const Tensor& y_true, const Tensor& y_pred) {
    const auto batch = static_cast<double>(y_pred.size(0));
    loss_.add(loss * batch, batch);
    for (const auto& metric : metrics_) metric->update_state(y_true, y_pred);
  }

  Logs logs(const std::string& prefix = "") const {
    Logs logs;
    logs.set(prefix + "loss", loss_.result());
    for (const auto& metric : metrics_) logs.set(prefix + metric->name(), metric->result());
    return logs;
  }

 private:
  Mean loss_;
  std::vector<std::unique_ptr<Metric>> metrics_;
};

// ---- Data -----------------------------------------------------------------------------------

void check_data(std::string_view what, const Tensor& x, const Tensor& y) {
  WEFT_CHECK(x.defined() && y.defined(), "{}: x and y must both be given", what);
  WEFT_CHECK(x.dim() >= 1 && y.dim() >= 1, "{}: x and y need a sample axis; got shapes {} and {}",
             what, shape_str(x.shape()), shape_str(y.shape()));
  WEFT_CHECK(x.size(0) > 0, "{}: x holds no samples (shape {})", what, shape_str(x.shape()));
  WEFT_CHECK(x.size(0) == y.size(0), "{}: x has {} samples but y has {}", what, x.size(0),
             y.size(0));
}

Shape with_batch(int64_t batch, const Shape& sample) {
  Shape shape{batch};
  shape.insert(shape.end(), sample.begin(), sample.end());
  return shape;
}

// A fresh permutation of 0..n-1 (Fisher-Yates), drawn from `generator` (the default one, so that
// manual_seed makes training repeat exactly).
Tensor permutation(int64_t n, Generator& generator) {
  const uint64_t first = generator.take(static_cast<uint64_t>(n));
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const double u = random_uniform(generator.seed(), first + static_cast<uint64_t>(i));
    const auto j = std::min(i, static_cast<int64_t>(u * static_cast<double>(i + 1)));
    std::swap(order[i], order[j]);
  }
  return from_vector(order, {n});
}

// Loss and metrics over (x, y) in batches, in inference mode. Across the ranks of `cluster`
// (fit()'s validation), each batch holds batch_size rows per rank, and each rank predicts its
// shard; the predictions are gathered, so every rank logs the same values.
Logs evaluate_in_batches(Sequential& model, const TrainingState& training, const Tensor& x,
                         const Tensor& y, int64_t batch_size, const std::string& prefix,
                         ProgressBar* bar, const Cluster& cluster) {
  NoGrad no_grad;
  Accumulator accumulator(training);
  const int64_t n = x.size(0);
  batch_size *= cluster.size();
  for (int64_t begin = 0, step = 1; begin < n; begin += batch_size, ++step) {
    const int64_t end = std::min(n, begin + batch_size);
    const Tensor y_batch = slice(y, 0, begin, end);
    const Shard shard = shard_of(end - begin, cluster.rank(), cluster.size());
    const Tensor y_pred = cluster.gather_rows(
        shard.rows > 0 ? model.predict_on_batch(
                             slice(x, 0, begin + shard.first, begin + shard.first + shard.rows))
                       : empty(with_batch(0, model.output_shape()),
                               {.dtype = model.weights().front()->value.dtype()}));
    accumulator.add(training.loss->compute(y_batch, y_pred).item(), y_batch, y_pred);
    if (bar != nullptr) bar->update(step, accumulator.logs(prefix));
  }
  return accumulator.logs(prefix);
}

// Before the first step across ranks: every rank must hold the same model, data sizes and
// options (else each throws, naming the first rank that differs and what), and then starts from
// rank 0's weights, optimizer state and random stream, so that every rank shuffles alike.
void join_ranks(const Cluster& cluster, Sequential& model, OptimizerState& optimizer,
                const Tensor& x_train, const Tensor& x_val, const FitOptions& options) {
  const std::string context = "fit";
  cluster.check_same(context, "the model", model.summary_string());
  cluster.check_same(context, "the shape of a sample",
                     shape_str(Shape(x_train.shape().begin() + 1, x_train.shape().end())));
  cluster.check_same(context, "the number of training samples", std::to_string(x_train.size(0)));
  cluster.check_same(context, "the number of validation samples",
                     std::to_string(x_val.defined() ? x_val.size(0) : 0));
  cluster.check_same(context, "batch_size", std::to_string(options.batch_size));
  cluster.check_same(context, "epochs", std::to_string(options.epochs));
  cluster.check_same(context, "shuffle", options.shuffle ? "true" : "false");
  const auto broadcast = [&](const Tensor& tensor) {
    WEFT_CHECK(tensor.is_contiguous(), "fit across ranks: a weight or slot is not contiguous");
    cluster.broadcast(std::span(static_cast<std::byte*>(tensor.raw_data()),
                                static_cast<size_t>(tensor.numel()) * dtype_size(tensor.dtype())));
    tensor.mark_modified();
  };
  for (Weight* weight : model.weights()) broadcast(weight->value);
  for (const auto& [name, variable] : optimizer.variables(model.trainable_weight_paths()))
    broadcast(variable);
  Generator& generator = default_generator();
  std::array<uint64_t, 2> stream = {generator.seed(), generator.offset()};
  cluster.broadcast(std::as_writable_bytes(std::span(stream)));
  generator = Generator(stream[0]);
  generator.take(stream[1]);
}

}  // namespace

// ---- compile --------------------------------------------------------------------------------

void Sequential::compile(Optimizer optimizer, const std::string& loss,
                         const std::vector<MetricSpec>& metrics) {
  OptimizerState(optimizer, {});  // checks the hyperparameters now rather than at fit()
  auto training = std::make_shared<TrainingState>();
  training->optimizer = optimizer;
  training->loss = &loss_by_name(loss);
  training->metrics = metrics;
  // Each metric is made once now, so an unknown name or a bad option fails here, not in fit().
  std::vector<std::string> names{"loss"};
  for (const auto& metric : make_metrics(*training)) {
    WEFT_CHECK(std::find(names.begin(), names.end(), metric->name()) == names.end(),
               "compile: two values would be logged as \"{}\"; give the metric another .name",
               metric->name());
    names.push_back(metric->name());
  }
  training_ = std::move(training);
  compiled_.reset();  // compiled training steps hold the old optimizer and loss
}

void Sequential::compile(const std::string& optimizer, const std::string& loss,
                         const std::vector<MetricSpec>& metrics) {
  compile(optimizer_by_name(optimizer), loss, metrics);
}

// ---- fit ------------------------------------------------------------------------------------

History Sequential::fit(const Tensor& x, const Tensor& y, const FitOptions& options) {
  WEFT_CHECK(training_ != nullptr,
             "fit: model \"{}\" must be compiled first: call compile(optimizer, loss)", name_);
  TrainingState& training = *training_;
  check_data("fit", x, y);
  WEFT_CHECK(options.batch_size > 0, "fit: batch_size must be positive, got {}",
             options.batch_size);
  WEFT_CHECK(options.epochs >= 0, "fit: epochs must be >= 0, got {}", options.epochs);
  WEFT_CHECK(options.validation_split >= 0 && options.validation_split < 1,
             "fit: validation_split must be in [0, 1), got {}", options.validation_split);
  WEFT_CHECK(options.verbose == 0 || options.verbose == 1, "fit: verbose must be 0 or 1, got {}",
             options.verbose);

  // Validation data: given, or the last fraction of x and y, cut before any shuffling.
  Tensor x_train = x, y_train = y, x_val, y_val;
  if (options.validation_data.given()) {
    x_val = options.validation_data.x;
    y_val = options.validation_data.y;
    check_data("fit: validation_data", x_val, y_val);
  } else if (options.validation_split > 0) {
    const int64_t n = x.size(0);
    const auto split_at =
        static_cast<int64_t>(std::floor(static_cast<double>(n) * (1 - options.validation_split)));
    WEFT_CHECK(split_at > 0 && split_at < n,
               "fit: {} samples are too few to split into training and validation sets with "
               "validation_split={}; give more data or another validation_split",
               n, options.validation_split);
    x_train = slice(x, 0, 0, split_at);
    y_train = slice(y, 0, 0, split_at);
    x_val = slice(x, 0, split_at, n);
    y_val = slice(y, 0, split_at, n);
  }
  const bool validate = x_val.defined();

  if (!built()) build(Shape(x.shape().begin() + 1, x.shape().end()));
  // Every label is checked once here, so an error names its position in the caller's array.
  training.loss->check_labels(y, with_batch(y.size(0), output_shape()));
  if (validate) {
    try {
      training.loss->check_labels(y_val, with_batch(y_val.size(0), output_shape()));
    } catch (const Error& error) {
      throw Error("fit: validation_data: {}", error.what());
    }
  }

  const std::vector<Weight*> model_weights = weights();
  if (!training.state) training.state.emplace(training.optimizer, model_weights);
  OptimizerState& optimizer = *training.state;
  optimizer.zero_grad();
  stop_training = false;
  // Under an MPI launcher the ranks train together: batch_size rows each per global batch, one
  // allreduce per step. Only rank 0 prints and writes files; every rank logs the same values.
  const Cluster& cluster = Cluster::world();
  if (!cluster.alone()) join_ranks(cluster, *this, optimizer, x_train, x_val, options);
  const bool first_rank = cluster.rank() == 0;
  const int verbose = first_rank ? options.verbose : 0;

  std::vector<std::string> keys{"loss"};
  for (const auto& metric : make_metrics(training)) keys.push_back(metric->name());
  if (validate)
    for (size_t i = 0, n = keys.size(); i < n; ++i) keys.push_back("val_" + keys[i]);

  const int64_t n = x_train.size(0);
  const int64_t batch_size = options.batch_size * cluster.size();  // the global batch
  const int64_t steps = (n + batch_size - 1) / batch_size;
  History history;
  TrainingProgress progress{.steps = steps, .samples = n, .history = history};
  // Every rank runs every callback (their states, which a checkpoint holds, stay alike); those
  // that write files or print do so on rank 0 only (TrainingContext::writes_files).
  CallbackList callbacks(options.callbacks,
                         {*this, optimizer, keys, validate, progress, batch_size, first_rank});
  // A BackupAndRestore checkpoint moves `progress` on; every rank reads it (backup_dir must be a
  // folder they share), rank 0 alone writes it.
  callbacks.on_train_begin();

  for (int epoch = progress.epoch; epoch < options.epochs && !stop_training; ++epoch) {
    const Clock::time_point epoch_start = Clock::now();
    // An epoch resumed midway has begun already: its callbacks ran, and its shuffle is drawn
    // again from the generator as it was then, leaving the default one as the checkpoint put it.
    const bool resumed = progress.batch > 0;
    if (!resumed) {
      callbacks.on_epoch_begin(epoch);
      progress.epoch_start = default_generator();
    }
    if (verbose == 1 && options.epochs > 1)
      std::cout << fmt::format("Epoch {}/{}\n", epoch + 1, options.epochs) << std::flush;
    std::optional<ProgressBar> bar;
    if (verbose == 1) bar.emplace(steps);
    Generator shuffler = progress.epoch_start;
    const Tensor order = options.shuffle ? permutation(n, shuffler) : Tensor();
    if (!resumed) default_generator() = shuffler;
    Accumulator accumulator(training);
    for (int64_t step = progress.batch; step < steps && !stop_training; ++step) {
      const int64_t begin = step * batch_size, end = std::min(n, begin + batch_size);
      // This rank's shard of the global batch [begin, end); the whole of it in one process.
      const Shard shard = shard_of(end - begin, cluster.rank(), cluster.size());
      const auto rows_of = [&](const Tensor& data, int64_t from, int64_t to) {
        return options.shuffle ? gather(data, 0, slice(order, 0, from, to))
                               : slice(data, 0, from, to);
      };
      const Tensor y_batch = rows_of(y_train, begin, end);
      const int64_t first = begin + shard.first, last = first + shard.rows;
      const auto check_loss = [&](double loss_value) {
        // With TerminateOnNaN the batch is logged and that callback ends training.
        WEFT_CHECK(std::isfinite(loss_value) || callbacks.terminates_on_nan(),
                   "fit: the loss became {} at epoch {}, batch {} of {}; lower the learning "
                   "rate, or look for nan or inf in the inputs (or pass TerminateOnNaN{{}} "
                   "to stop training instead)",
                   std::isnan(loss_value) ? "nan"
                   : loss_value > 0       ? "inf"
                                          : "-inf",
                   epoch + 1, step + 1, steps);
      };
      std::vector<Tensor> outputs =
          cluster.alone()
              ? run_step(StepKind::train, rows_of(x_train, begin, end), y_batch, check_loss)
              : train_share(rows_of(x_train, first, last), rows_of(y_train, first, last),
                            BatchRows{shard.first, shard.rows, end - begin}, cluster, check_loss);
      outputs[1] = cluster.gather_rows(outputs[1]);
      const double loss_value = outputs[0].item();
      const Tensor& y_pred = outputs[1];
      accumulator.add(loss_value, y_batch, y_pred);
      const Logs running = accumulator.logs();
      if (bar) bar->update(step + 1, running);
      progress.batch = step + 1;
      callbacks.on_train_batch_end(step, running);
    }

    Logs logs = accumulator.logs();
    if (validate) {
      const Logs validation = evaluate_in_batches(*this, training, x_val, y_val, options.batch_size,
                                                  "val_", nullptr, cluster);
      for (const auto& [key, value] : validation.items()) logs.set(key, value);
    }
    history.seconds_per_epoch.push_back(seconds_since(epoch_start));
    if (bar) bar->finish(logs);
    // Keras's order: the progress line, then the callbacks as listed, then the History, which
    // so sees what they add (the learning rate).
    callbacks.on_epoch_end(epoch, logs);
    for (const auto& [key, value] : logs.items()) history.history[key].push_back(value);
    history.epochs_run = epoch + 1;
    progress.epoch = epoch + 1;
    progress.batch = 0;
    callbacks.on_epoch_recorded();
  }
  callbacks.on_train_end();
  std::cout << std::flush;
  return history;
}

// ---- evaluate, predict ----------------------------------------------------------------------

Logs Sequential::evaluate(const Tensor& x, const Tensor& y, const EvaluateOptions& options) {
  WEFT_CHECK(training_ != nullptr,
             "evaluate: model \"{}\" must be compiled first: call compile(optimizer, loss)", name_);
  check_data("evaluate", x, y);
  WEFT_CHECK(options.batch_size > 0, "evaluate: batch_size must be positive, got {}",
             options.batch_size);
  WEFT_CHECK(options.verbose == 0 || options.verbose == 1,
             "evaluate: verbose must be 0 or 1, got {}", options.verbose);
  if (!built()) build(Shape(x.shape().begin() + 1, x.shape().end()));
  training_->loss->check_labels(y, with_batch(y.size(0), output_shape()));
  std::optional<ProgressBar> bar;
  if (options.verbose == 1) bar.emplace((x.size(0) + options.batch_size - 1) / options.batch_size);
  const Logs logs = evaluate_in_batches(*this, *training_, x, y, options.batch_size, "",
                                        bar ? &*bar : nullptr, Cluster::this_process());
  if (bar) bar->finish(logs);
  return logs;
}

Tensor Sequential::predict_on_batch(const Tensor& x) {
  NoGrad no_grad;
  return run_step(StepKind::infer, x, {})[0];
}

Tensor Sequential::predict(const Tensor& x, int64_t batch_size) {
  WEFT_CHECK(x.defined() && x.dim() >= 1 && x.size(0) > 0,
             "predict: x must hold at least one sample; got shape {}",
             x.defined() ? shape_str(x.shape()) : "undefined");
  WEFT_CHECK(batch_size > 0, "predict: batch_size must be positive, got {}", batch_size);
  NoGrad no_grad;
  std::vector<Tensor> outputs;
  for (int64_t begin = 0; begin < x.size(0); begin += batch_size)
    outputs.push_back(
        predict_on_batch(slice(x, 0, begin, std::min(x.size(0), begin + batch_size))));
  return outputs.size() == 1 ? outputs.front() : concat(outputs, 0);
}

}  // namespace weft
