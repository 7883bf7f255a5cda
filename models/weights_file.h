// Weight files (models/weights_file.cpp), shared by save_weights and load_weights and by
// BackupAndRestore's checkpoints (models/backup.cpp). Used inside models/ only.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weft/models/sequential.h"

namespace weft {

// One tensor of a weight file: a weight (`group` is its layer's name) or, in a checkpoint, a
// value of the training state (`group` says whose: "optimizer", "history", a callback).
struct SavedTensor {
  std::string group;
  std::string name;
  Tensor value;
};

// A weight file's contents. Version 1 holds the weights; version 2 (written when there is a
// state or metadata) adds the training state and a text of metadata, which load_weights skips.
struct WeightFile {
  std::vector<SavedTensor> weights = {};
  std::vector<SavedTensor> state = {};
  std::string metadata = {};
};

// The model's weights, layer by layer, as a weight file holds them; `action` names the caller in
// the error an unbuilt model gives.
std::vector<SavedTensor> model_weights(const Sequential& model, std::string_view action);

std::string serialize_weight_file(const WeightFile& file);

// The contents of the weight file `data` read from `path`; a weft::Error starting with `action`
// names the file and what is wrong with it (truncated, corrupt, another version).
WeightFile parse_weight_file(std::string data, const std::string& path, std::string_view action);

// Each of the model's weights with its saved value, matched by layer name and then by order
// within the layer (a Bidirectional layer holds two weights of each name). Throws a weft::Error
// starting with `action` naming the layer, the weight and the shapes that differ, if they do.
std::vector<std::pair<Weight*, const Tensor*>> match_weights(const Sequential& model,
                                                             const std::vector<SavedTensor>& saved,
                                                             const std::string& path,
                                                             std::string_view action);

}  // namespace weft
