// The callbacks of callbacks.h as fit() runs them, with Keras's decisions and messages.
#include "weft/models/callbacks.h"

#include <fmt/args.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <string_view>

#include "weft/models/callback_list.h"
#include "weft/models/optimizers.h"
#include "weft/models/sequential.h"
#include "weft/runtime/error.h"
#include "weft/runtime/overloaded.h"

namespace weft {

namespace {

// A monitor ending in one of these improves upwards (mode "auto").
constexpr std::array<std::string_view, 5> kMaximized{"acc", "accuracy", "auc", "precision",
                                                     "recall"};

// The learning rate's key in the logs: Keras 2's (Keras 3 writes "learning_rate").
constexpr const char* kLearningRateKey = "lr";

}  // namespace

BestValue::BestValue(const std::string& callback, const std::string& monitor,
                     const std::string& mode) {
  WEFT_CHECK(mode == "auto" || mode == "min" || mode == "max",
             "{}: mode must be \"auto\", \"min\" or \"max\", got \"{}\"", callback, mode);
  const auto rises = [&](std::string_view suffix) { return monitor.ends_with(suffix); };
  maximize_ =
      mode == "max" || (mode == "auto" && std::any_of(kMaximized.begin(), kMaximized.end(), rises));
  best_ = maximize_ ? -std::numeric_limits<double>::infinity()
                    : std::numeric_limits<double>::infinity();
}

bool BestValue::improves(double current, double min_delta) const {
  return maximize_ ? current - min_delta > best_ : current + min_delta < best_;
}

EarlyStoppingMonitor::EarlyStoppingMonitor(const EarlyStopping& options)
    : options_(options), best_("EarlyStopping", options.monitor, options.mode) {
  WEFT_CHECK(options.patience >= 0, "EarlyStopping: patience must be >= 0, got {}",
             options.patience);
}

EarlyStoppingMonitor::Verdict EarlyStoppingMonitor::update(int epoch, const Logs& logs) {
  const double current = logs.at(options_.monitor);
  ++wait_;
  if (best_.improves(current, std::abs(options_.min_delta))) {
    best_.set(current);
    best_epoch_ = epoch;
    wait_ = 0;
    return Verdict::improved;
  }
  return wait_ >= options_.patience && epoch > 0 ? Verdict::stop : Verdict::waiting;
}

void EarlyStoppingMonitor::restore(double best, int best_epoch, int wait) {
  best_.set(best);
  best_epoch_ = best_epoch;
  wait_ = wait;
}

// ---- The runners --------------------------------------------------------------------------

namespace {

using Runner = CallbackList::Runner;

// `monitor` must be a key fit() logs.
void check_monitor(std::string_view callback, const std::string& monitor,
                   const TrainingContext& context) {
  const auto& logged = context.logged;
  WEFT_CHECK(std::find(logged.begin(), logged.end(), monitor) != logged.end(),
             "{}: monitor \"{}\" is not among the values fit() logs: {}{}", callback, monitor,
             fmt::join(logged, ", "),
             context.validating ? "" : " (val_ values need validation_split or validation_data)");
}

std::vector<Tensor> snapshot(const std::vector<Weight*>& weights) {
  std::vector<Tensor> values;
  for (const Weight* w : weights) values.push_back(w->value.copy());
  return values;
}

// A callback's state, as Runner::state() gives it.
Tensor number(double value) { return scalar(value, DType::f64); }

const Tensor& saved_value(const NamedTensors& saved, const std::string& name) {
  for (const auto& [key, value] : saved)
    if (key == name) return value;
  throw Error("the checkpoint holds no \"{}\"", name);
}

double saved_number(const NamedTensors& saved, const std::string& name) {
  return saved_value(saved, name).item();
}

// Where callbacks print their messages: stdout, but nowhere on the ranks after the first of a
// fit across ranks (TrainingContext::writes_files), so that a message is printed once.
std::ostream& messages(const TrainingContext& context) {
  static std::ostream nowhere(nullptr);
  return context.writes_files ? std::cout : nowhere;
}

class EarlyStopper final : public Runner {
 public:
  EarlyStopper(const EarlyStopping& options, const TrainingContext& context)
      : options_(options), monitor_(options), model_(context.model), out_(messages(context)) {
    check_monitor("EarlyStopping", options.monitor, context);
  }

  void on_epoch_end(int epoch, Logs& logs) override {
    const auto verdict = monitor_.update(epoch, logs);
    // The first epoch's weights are kept even without an improvement, as Keras keeps them.
    if (options_.restore_best_weights &&
        (verdict == EarlyStoppingMonitor::Verdict::improved || best_weights_.empty()))
      best_weights_ = snapshot(model_.weights());
    if (verdict == EarlyStoppingMonitor::Verdict::stop) {
      stopped_epoch_ = epoch;
      model_.stop_training = true;
    }
  }

  void on_train_end() override {
    if (stopped_epoch_ >= 0 && options_.verbose > 0)
      out_ << fmt::format("Epoch {}: early stopping\n", stopped_epoch_ + 1);
    if (!options_.restore_best_weights || best_weights_.empty()) return;
    if (options_.verbose > 0)
      out_ << fmt::format("Restoring model weights from the end of the best epoch: {}.\n",
                          monitor_.best_epoch() + 1);
    const std::vector<Weight*> weights = model_.weights();
    for (size_t i = 0; i < weights.size(); ++i) weights[i]->value.assign_(best_weights_[i]);
  }

  NamedTensors state() const override {
    NamedTensors state{{"best", number(monitor_.best())},
                       {"best_epoch", number(monitor_.best_epoch())},
                       {"wait", number(monitor_.wait())},
                       {"stopped_epoch", number(stopped_epoch_)}};
    for (size_t i = 0; i < best_weights_.size(); ++i)
      state.emplace_back(fmt::format("best_weights/{}", i), best_weights_[i]);
    return state;
  }

  void set_state(const NamedTensors& saved) override {
    monitor_.restore(saved_number(saved, "best"),
                     static_cast<int>(saved_number(saved, "best_epoch")),
                     static_cast<int>(saved_number(saved, "wait")));
    stopped_epoch_ = static_cast<int>(saved_number(saved, "stopped_epoch"));
    best_weights_.clear();  // kept with restore_best_weights, in the model's order
    for (const auto& [name, value] : saved)
      if (name.starts_with("best_weights/")) best_weights_.push_back(value.copy());
  }

 private:
  EarlyStopping options_;
  EarlyStoppingMonitor monitor_;
  Sequential& model_;
  std::ostream& out_;
  std::vector<Tensor> best_weights_;
  int stopped_epoch_ = -1;
};

class LearningRateReducer final : public Runner {
 public:
  LearningRateReducer(const ReduceLROnPlateau& options, const TrainingContext& context)
      : options_(options),
        best_("ReduceLROnPlateau", options.monitor, options.mode),
        optimizer_(context.optimizer),
        out_(messages(context)) {
    WEFT_CHECK(options.factor >= 0 && options.factor < 1,
               "ReduceLROnPlateau: factor must be in [0, 1), got {}", options.factor);
    WEFT_CHECK(options.patience >= 0 && options.cooldown >= 0 && options.min_lr >= 0,
               "ReduceLROnPlateau: patience, cooldown and min_lr must be >= 0, got {}, {} and {}",
               options.patience, options.cooldown, options.min_lr);
    check_monitor("ReduceLROnPlateau", options.monitor, context);
  }

  // Keras's ReduceLROnPlateau.on_epoch_end, step for step.
  void on_epoch_end(int epoch, Logs& logs) override {
    const double learning_rate = optimizer_.learning_rate();
    logs.set(kLearningRateKey, learning_rate);
    const double current = logs.at(options_.monitor);
    if (cooldown_ > 0) {
      --cooldown_;
      wait_ = 0;
    }
    if (best_.improves(current, std::abs(options_.min_delta))) {
      best_.set(current);
      wait_ = 0;
      return;
    }
    if (cooldown_ > 0 || ++wait_ < options_.patience) return;
    // In float32, as Keras compares its rate variable: a rate at the floor stays there quietly.
    if (static_cast<float>(learning_rate) > static_cast<float>(options_.min_lr)) {
      const double reduced = std::max(learning_rate * options_.factor, options_.min_lr);
      optimizer_.set_learning_rate(reduced);
      if (options_.verbose > 0)
        out_ << fmt::format("\nEpoch {}: ReduceLROnPlateau reducing learning rate to {}.\n",
                            epoch + 1, reduced);
      cooldown_ = options_.cooldown;
      wait_ = 0;
    }
  }

  NamedTensors state() const override {
    return {
        {"best", number(best_.best())}, {"wait", number(wait_)}, {"cooldown", number(cooldown_)}};
  }

  void set_state(const NamedTensors& saved) override {
    const double best = saved_number(saved, "best");
    const double wait = saved_number(saved, "wait"), cooldown = saved_number(saved, "cooldown");
    best_.set(best);
    wait_ = static_cast<int>(wait);
    cooldown_ = static_cast<int>(cooldown);
  }

 private:
  ReduceLROnPlateau options_;
  BestValue best_;
  OptimizerState& optimizer_;
  std::ostream& out_;
  int wait_ = 0;
  int cooldown_ = 0;
};

class Scheduler final : public Runner {
 public:
  Scheduler(const LearningRateScheduler& options, const TrainingContext& context)
      : options_(options), optimizer_(context.optimizer), out_(messages(context)) {
    WEFT_CHECK(static_cast<bool>(options.schedule), "LearningRateScheduler: no schedule was given");
  }

  void on_epoch_begin(int epoch) override {
    const double learning_rate = options_.schedule(epoch, optimizer_.learning_rate());
    WEFT_CHECK(std::isfinite(learning_rate) && learning_rate >= 0,
               "LearningRateScheduler: the schedule gave {} for epoch {}; a learning rate must "
               "be a finite number >= 0",
               learning_rate, epoch);
    optimizer_.set_learning_rate(learning_rate);
    if (options_.verbose > 0)
      out_ << fmt::format("\nEpoch {}: LearningRateScheduler setting learning rate to {}.\n",
                          epoch + 1, learning_rate);
  }

  void on_epoch_end(int, Logs& logs) override {
    logs.set(kLearningRateKey, optimizer_.learning_rate());
  }

 private:
  LearningRateScheduler options_;
  OptimizerState& optimizer_;
  std::ostream& out_;
};

// A number as Python's str() writes a float (what Keras's CSVLogger writes): the shortest text
// that reads back the same, with ".0" on whole numbers.
std::string python_float(double value) {
  std::string text = fmt::format("{}", value);
  if (std::isfinite(value) && text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

// On the ranks after the first (TrainingContext::writes_files false) it writes nothing.
class CsvWriter final : public Runner {
 public:
  CsvWriter(const CSVLogger& options, const TrainingContext& context)
      : options_(options), writes_(context.writes_files) {
    WEFT_CHECK(!options.filename.empty(), "CSVLogger: no filename was given");
    if (!writes_) return;
    namespace fs = std::filesystem;
    std::error_code error;
    write_header_ = !options.append || fs::file_size(options.filename, error) == 0 || error;
    file_.open(options.filename, options.append ? std::ios::app : std::ios::trunc);
    WEFT_CHECK(file_.is_open(), "CSVLogger: cannot open \"{}\" for writing: {}", options.filename,
               std::strerror(errno));
  }

  void on_epoch_end(int epoch, Logs& logs) override {
    if (!writes_) return;
    const char separator = options_.separator;
    if (keys_.empty()) {
      for (const auto& [key, value] : logs.items()) keys_.push_back(key);
      std::sort(keys_.begin(), keys_.end());
      if (write_header_) {
        file_ << "epoch";
        for (const std::string& key : keys_) file_ << separator << key;
        file_ << "\r\n";
      }
    }
    file_ << epoch;
    // A key missing from a later epoch's logs is written as Keras writes it, "NA".
    for (const std::string& key : keys_)
      file_ << separator << (logs.contains(key) ? python_float(logs.at(key)) : "NA");
    file_ << "\r\n" << std::flush;
    WEFT_CHECK(file_.good(), "CSVLogger: cannot write to \"{}\"", options_.filename);
  }

 private:
  CSVLogger options_;
  bool writes_;
  std::ofstream file_;
  bool write_header_ = false;
  std::vector<std::string> keys_;  // the first epoch's, sorted
};

// On the ranks after the first (TrainingContext::writes_files false) it follows the best value
// but saves nothing.
class Checkpointer final : public Runner {
 public:
  Checkpointer(const ModelCheckpoint& options, const TrainingContext& context)
      : options_(options),
        best_("ModelCheckpoint", options.monitor, options.mode),
        model_(context.model),
        writes_(context.writes_files),
        out_(messages(context)) {
    WEFT_CHECK(!options.filepath.empty(), "ModelCheckpoint: no filepath was given");
    if (options.save_best_only) check_monitor("ModelCheckpoint", options.monitor, context);
    // The template is tried on stand-in logs now, so a misspelt key fails before training.
    Logs stand_in;
    for (const std::string& key : context.logged) stand_in.set(key, 0);
    stand_in.set(kLearningRateKey, 0);
    filepath(0, stand_in);
  }

  void on_epoch_end(int epoch, Logs& logs) override {
    const std::string path = filepath(epoch, logs);
    const bool prints = options_.verbose > 0;
    if (!options_.save_best_only) {
      if (prints) out_ << fmt::format("\nEpoch {}: saving model to {}\n", epoch + 1, path);
      save(path);
      return;
    }
    const double current = logs.at(options_.monitor);
    if (!best_.improves(current)) {
      if (prints)
        out_ << fmt::format("\nEpoch {}: {} did not improve from {:.5f}\n", epoch + 1,
                            options_.monitor, best_.best());
      return;
    }
    if (prints)
      out_ << fmt::format("\nEpoch {}: {} improved from {:.5f} to {:.5f}, saving model to {}\n",
                          epoch + 1, options_.monitor, best_.best(), current, path);
    best_.set(current);
    save(path);
  }

  NamedTensors state() const override { return {{"best", number(best_.best())}}; }
  void set_state(const NamedTensors& saved) override { best_.set(saved_number(saved, "best")); }

 private:
  // filepath.format(epoch=epoch + 1, **logs), as Keras formats it.
  std::string filepath(int epoch, const Logs& logs) const {
    fmt::dynamic_format_arg_store<fmt::format_context> arguments;
    arguments.push_back(fmt::arg("epoch", epoch + 1));
    std::vector<std::string> keys{"epoch"};
    for (const auto& [key, value] : logs.items()) {
      arguments.push_back(fmt::arg(key.c_str(), value));
      keys.push_back(key);
    }
    try {
      return fmt::vformat(options_.filepath, arguments);
    } catch (const fmt::format_error& error) {
      throw Error("ModelCheckpoint: cannot format filepath \"{}\" ({}); it may name {}",
                  options_.filepath, error.what(), fmt::join(keys, ", "));
    }
  }

  void save(const std::string& path) const {
    if (!writes_) return;
    if (options_.save_weights_only)
      model_.save_weights(path);
    else
      model_.save_model(path);
  }

  ModelCheckpoint options_;
  BestValue best_;
  Sequential& model_;
  bool writes_;
  std::ostream& out_;
};

class NanTerminator final : public Runner {
 public:
  explicit NanTerminator(const TrainingContext& context)
      : model_(context.model), out_(messages(context)) {}

  void on_train_batch_end(int64_t batch, const Logs& logs) override {
    if (std::isfinite(logs.at("loss"))) return;
    out_ << fmt::format("Batch {}: Invalid loss, terminating training\n", batch) << std::flush;
    model_.stop_training = true;
  }

 private:
  Sequential& model_;
  std::ostream& out_;
};

class LambdaRunner final : public Runner {
 public:
  explicit LambdaRunner(const LambdaCallback& options) : options_(options) {}
  void on_train_batch_end(int64_t batch, const Logs& logs) override {
    if (options_.on_batch_end) options_.on_batch_end(batch, logs);
  }
  void on_epoch_end(int epoch, Logs& logs) override {
    if (options_.on_epoch_end) options_.on_epoch_end(epoch, logs);
  }

 private:
  LambdaCallback options_;
};

// Each option struct's runner.
std::unique_ptr<Runner> make_runner(const EarlyStopping& o, const TrainingContext& c) {
  return std::make_unique<EarlyStopper>(o, c);
}
std::unique_ptr<Runner> make_runner(const ReduceLROnPlateau& o, const TrainingContext& c) {
  return std::make_unique<LearningRateReducer>(o, c);
}
std::unique_ptr<Runner> make_runner(const LearningRateScheduler& o, const TrainingContext& c) {
  return std::make_unique<Scheduler>(o, c);
}
std::unique_ptr<Runner> make_runner(const CSVLogger& o, const TrainingContext& c) {
  return std::make_unique<CsvWriter>(o, c);
}
std::unique_ptr<Runner> make_runner(const ModelCheckpoint& o, const TrainingContext& c) {
  return std::make_unique<Checkpointer>(o, c);
}
std::unique_ptr<Runner> make_runner(const TerminateOnNaN&, const TrainingContext& c) {
  return std::make_unique<NanTerminator>(c);
}
std::unique_ptr<Runner> make_runner(const LambdaCallback& o, const TrainingContext&) {
  return std::make_unique<LambdaRunner>(o);
}

// The callbacks' kinds, as a checkpoint names their state.
constexpr std::array<std::string_view, std::variant_size_v<Callback>> kKinds{
    "EarlyStopping",   "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger",
    "ModelCheckpoint", "TerminateOnNaN",    "LambdaCallback",        "BackupAndRestore"};

}  // namespace

CallbackList::CallbackList(const std::vector<Callback>& callbacks, const TrainingContext& context) {
  for (size_t i = 0; i < callbacks.size(); ++i) {
    const Callback& callback = callbacks[i];
    std::visit(Overloaded{[&](const BackupAndRestore& options) {
                            WEFT_CHECK(backup_ == nullptr,
                                       "BackupAndRestore: fit() takes one, got two or more");
                            backup_ = std::make_unique<Backup>(options, context, *this);
                          },
                          [&](const auto& options) {
                            runners_.push_back(make_runner(options, context));
                            names_.push_back(fmt::format("{}:{}", i, kKinds[callback.index()]));
                          }},
               callback);
    terminates_on_nan_ = terminates_on_nan_ || std::holds_alternative<TerminateOnNaN>(callback);
  }
}

CallbackList::~CallbackList() = default;

void CallbackList::on_train_begin() {
  if (backup_) backup_->restore();
}

void CallbackList::on_epoch_begin(int epoch) {
  for (const auto& runner : runners_) runner->on_epoch_begin(epoch);
}

void CallbackList::on_train_batch_end(int64_t batch, const Logs& logs) {
  for (const auto& runner : runners_) runner->on_train_batch_end(batch, logs);
  if (backup_) backup_->after_batch();
}

void CallbackList::on_epoch_end(int epoch, Logs& logs) {
  for (const auto& runner : runners_) runner->on_epoch_end(epoch, logs);
}

void CallbackList::on_epoch_recorded() {
  if (backup_) backup_->after_epoch();
}

void CallbackList::on_train_end() {
  for (const auto& runner : runners_) runner->on_train_end();
  if (backup_) backup_->on_train_end();
}

}  // namespace weft
