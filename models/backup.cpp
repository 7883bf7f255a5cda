// BackupAndRestore: a checkpoint of the whole training, written whole or not at all, and put
// back when fit() starts again. The checkpoint is a weight file of version 2
// (models/weights_file.h): the weights, then the state tensors (the optimizer's variables, the
// History, the callbacks' state) and JSON metadata (where fit() was, the generator, and what the
// checkpoint must agree with: the optimizer, the data's size, the logged keys).
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <system_error>

#include "weft/models/callback_list.h"
#include "weft/models/files.h"
#include "weft/models/optimizers.h"
#include "weft/models/weights_file.h"
#include "weft/runtime/error.h"

namespace weft {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr std::string_view kWhat = "BackupAndRestore";

// The hyperparameters a checkpoint's optimizer must share with the model's. The learning rate
// is not among them: the checkpoint's rate (perhaps reduced by a callback) is put back.
std::string describe(const Adam& o) {
  return fmt::format("Adam(beta_1={}, beta_2={}, epsilon={})", o.beta_1, o.beta_2, o.epsilon);
}
std::string describe(const SGD& o) {
  return fmt::format("SGD(momentum={}, nesterov={})", o.momentum, o.nesterov);
}
std::string describe(const RMSprop& o) {
  return fmt::format("RMSprop(rho={}, momentum={}, epsilon={})", o.rho, o.momentum, o.epsilon);
}
std::string describe(const Optimizer& optimizer) {
  return std::visit([](const auto& o) { return describe(o); }, optimizer);
}

json generator_json(const Generator& generator) {
  return {{"seed", generator.seed()}, {"offset", generator.offset()}};
}

Generator generator_from(const json& saved) {
  Generator generator(saved.at("seed").get<uint64_t>());
  generator.take(saved.at("offset").get<uint64_t>());
  return generator;
}

}  // namespace

CallbackList::Backup::Backup(const BackupAndRestore& options, const TrainingContext& context,
                             const CallbackList& list)
    : options_(options), context_(context), list_(list) {
  WEFT_CHECK(!options.backup_dir.empty(), "BackupAndRestore: no backup_dir was given");
  if (const auto* freq = std::get_if<std::string>(&options.save_freq))
    WEFT_CHECK(*freq == "epoch",
               "BackupAndRestore: save_freq must be \"epoch\" or a number of batches, got \"{}\"",
               *freq);
  else
    WEFT_CHECK(std::get<int64_t>(options.save_freq) > 0,
               "BackupAndRestore: save_freq must be \"epoch\" or a number of batches > 0, got {}",
               std::get<int64_t>(options.save_freq));
  const fs::path folder = options.backup_dir;
  std::error_code error;
  fs::create_directories(folder, error);
  WEFT_CHECK(!error, "BackupAndRestore: cannot make backup_dir \"{}\": {}", folder.string(),
             error.message());
  WEFT_CHECK(fs::is_directory(folder), "BackupAndRestore: backup_dir \"{}\" is not a folder",
             folder.string());
  WEFT_CHECK(::access(folder.c_str(), W_OK | X_OK) == 0,
             "BackupAndRestore: cannot write in backup_dir \"{}\": {}", folder.string(),
             std::strerror(errno));
  file_ = folder / "latest.weights";
}

void CallbackList::Backup::restore() {
  // A write cut short leaves its temporary file; the checkpoint beside it is whole.
  std::error_code ignored;
  if (context_.writes_files)
    for (const auto& entry : fs::directory_iterator(file_.parent_path(), ignored))
      if (entry.path().filename().string().starts_with(file_.filename().string() + ".tmp-"))
        fs::remove(entry.path(), ignored);
  if (!fs::exists(file_)) return;
  const std::string path = file_.string();
  const WeightFile saved = parse_weight_file(read_file(file_, kWhat), path, kWhat);
  WEFT_CHECK(!saved.metadata.empty(),
             "BackupAndRestore: \"{}\" holds weights only, not a checkpoint of a fit(); remove it "
             "or give another backup_dir",
             path);
  try {
    const json meta = json::parse(saved.metadata);
    // What the checkpoint must agree with, then the weights' layers and shapes, then the
    // optimizer's slots: all before anything changes.
    const std::string optimizer = describe(context_.optimizer.optimizer());
    WEFT_CHECK(meta.at("optimizer") == optimizer,
               "BackupAndRestore: \"{}\" was written with optimizer {}, but the model is compiled "
               "with {}",
               path, meta.at("optimizer").get<std::string>(), optimizer);
    const auto samples = meta.at("samples").get<int64_t>();
    const auto batch_size = meta.at("batch_size").get<int64_t>();
    WEFT_CHECK(samples == context_.progress.samples && batch_size == context_.batch_size,
               "BackupAndRestore: \"{}\" was written by a fit() on {} samples in batches of {}, "
               "but this fit() trains on {} samples in batches of {}",
               path, samples, batch_size, context_.progress.samples, context_.batch_size);
    const auto logged = meta.at("logged").get<std::vector<std::string>>();
    WEFT_CHECK(logged == context_.logged,
               "BackupAndRestore: \"{}\" was written by a fit() that logged {}, but this fit() "
               "logs {}",
               path, fmt::join(logged, ", "), fmt::join(context_.logged, ", "));
    const auto epoch = meta.at("epoch").get<int>();
    const auto batch = meta.at("batch").get<int64_t>();
    WEFT_CHECK(epoch >= 0 && batch >= 0 && batch < context_.progress.steps,
               "BackupAndRestore: \"{}\" is corrupt: it stopped at batch {} of epoch {}, but an "
               "epoch has {} batches",
               path, batch, epoch, context_.progress.steps);
    const auto weights = match_weights(context_.model, saved.weights, path, kWhat);

    const auto variables = context_.optimizer.variables(context_.model.trainable_weight_paths());
    std::vector<const SavedTensor*> slots;
    for (const SavedTensor& s : saved.state)
      if (s.group == "optimizer") slots.push_back(&s);
    WEFT_CHECK(slots.size() == variables.size(),
               "BackupAndRestore: \"{}\" holds {} optimizer variables, but the model's optimizer "
               "has {}",
               path, slots.size(), variables.size());
    for (size_t i = 0; i < variables.size(); ++i) {
      const auto& [name, value] = variables[i];
      WEFT_CHECK(slots[i]->name == name && slots[i]->value.shape() == value.shape(),
                 "BackupAndRestore: \"{}\": optimizer variable {} is \"{}\" of shape {} in the "
                 "checkpoint but \"{}\" of shape {} in the model",
                 path, i, slots[i]->name, shape_str(slots[i]->value.shape()), name,
                 shape_str(value.shape()));
    }

    // Everything agrees: put it back.
    for (const auto& [weight, value] : weights) weight->value.assign_(*value);
    for (size_t i = 0; i < variables.size(); ++i) variables[i].second.assign_(slots[i]->value);
    TrainingProgress& progress = context_.progress;
    History& history = progress.history;
    for (const SavedTensor& s : saved.state) {
      if (s.group == "history") history.history[s.name] = s.value.to_vector<double>();
      if (s.group == "fit" && s.name == "seconds_per_epoch")
        history.seconds_per_epoch = s.value.to_vector<double>();
    }
    history.epochs_run = meta.at("epochs_run").get<int>();
    progress.epoch = epoch;
    progress.batch = batch;
    progress.epoch_start = generator_from(meta.at("epoch_start"));
    default_generator() = generator_from(meta.at("generator"));
    context_.model.stop_training = meta.at("stop_training").get<bool>();
    for (size_t r = 0; r < list_.runners_.size(); ++r) {
      NamedTensors state;
      for (const SavedTensor& s : saved.state)
        if (s.group == list_.names_[r]) state.emplace_back(s.name, s.value);
      if (state.empty()) continue;  // a callback the checkpoint's fit() did not have
      try {
        list_.runners_[r]->set_state(state);
      } catch (const Error& error) {
        throw Error("BackupAndRestore: \"{}\" is corrupt: callback {}: {}", path, list_.names_[r],
                    error.what());
      }
    }
  } catch (const json::exception& error) {
    throw Error("BackupAndRestore: \"{}\" is corrupt: its metadata cannot be read ({})", path,
                error.what());
  }
}

void CallbackList::Backup::after_batch() {
  const auto* batches = std::get_if<int64_t>(&options_.save_freq);
  const TrainingProgress& progress = context_.progress;
  // One due at the epoch's last batch waits for the epoch's end (after_epoch).
  if (batches != nullptr && progress.batch < progress.steps &&
      (progress.epoch * progress.steps + progress.batch) % *batches == 0)
    save();
}

void CallbackList::Backup::after_epoch() {
  const auto* batches = std::get_if<int64_t>(&options_.save_freq);
  const TrainingProgress& progress = context_.progress;
  if (batches == nullptr || progress.epoch * progress.steps % *batches == 0) save();
}

void CallbackList::Backup::on_train_end() {
  if (!options_.delete_checkpoint || !context_.writes_files) return;
  std::error_code ignored;
  fs::remove(file_, ignored);
  fs::remove(file_.parent_path(), ignored);  // only if empty: the folder may hold the user's files
}

void CallbackList::Backup::save() const {
  if (!context_.writes_files) return;
  const TrainingProgress& progress = context_.progress;
  WeightFile file;
  file.weights = model_weights(context_.model, kWhat);
  for (const auto& [name, value] :
       context_.optimizer.variables(context_.model.trainable_weight_paths()))
    file.state.push_back({"optimizer", name, value});
  for (const auto& [key, values] : progress.history.history)
    file.state.push_back(
        {"history", key, from_vector(values, {static_cast<int64_t>(values.size())})});
  const std::vector<double>& seconds = progress.history.seconds_per_epoch;
  file.state.push_back(
      {"fit", "seconds_per_epoch", from_vector(seconds, {static_cast<int64_t>(seconds.size())})});
  for (size_t r = 0; r < list_.runners_.size(); ++r)
    for (auto& [name, value] : list_.runners_[r]->state())
      file.state.push_back({list_.names_[r], name, value});
  const json meta = {
      {"epoch", progress.epoch},
      {"batch", progress.batch},
      {"epochs_run", progress.history.epochs_run},
      {"stop_training", context_.model.stop_training},
      {"generator", generator_json(default_generator())},
      {"epoch_start", generator_json(progress.epoch_start)},
      {"optimizer", describe(context_.optimizer.optimizer())},
      {"samples", progress.samples},
      {"batch_size", context_.batch_size},
      {"logged", context_.logged},
  };
  file.metadata = meta.dump();
  write_file_atomically(file_, serialize_weight_file(file), kWhat);
}

}  // namespace weft
