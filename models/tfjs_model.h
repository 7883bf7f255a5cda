// Models in the TensorFlow.js Layers format, the one Keras-family format with a reference
// implementation that runs here: a model.json whose "modelTopology" is Keras's model config
// (nested under "model_config" when tensorflowjs_converter wrote it from a Keras .h5 file) and
// whose "weightsManifest" names the binary shard files beside it and each weight's name, shape
// and dtype in order; the shards hold the values as little-endian float32.
//
//   Sequential model = load_model("out/model.json");  // or the folder "out"
//   model.save_model("tuned/");                        // tuned/model.json + group1-shard1of1.bin
//
// Sequential::save_model is declared in sequential.h and defined with the loader.
#pragma once

#include <string>

#include "weft/models/sequential.h"

namespace weft {

// Builds the model a TF.js Layers model.json describes, with the weights of its shards. `path`
// is the model.json or the folder holding it. Every layer and option weft has is read under its
// Keras name (a layer or option weft lacks is a weft::Error naming it and the layer), and every
// weight is matched by its Keras name and shape. Any fault in the files is a weft::Error naming
// the file and what is wrong; no partly loaded model is ever returned.
Sequential load_model(const std::string& path);

// The rows of a headerless numeric CSV file as one batch for `model`: one sample per row, its
// values the sample flattened (timesteps × features, or token ids for a model that starts with
// an Embedding). An unknown number of timesteps is taken from the row length.
Tensor read_csv_batch(const Sequential& model, const std::string& path);

}  // namespace weft
