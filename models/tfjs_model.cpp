#include "weft/models/tfjs_model.h"

#include <fmt/ranges.h>

#include <bit>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "weft/models/arrays.h"
#include "weft/models/core_layers.h"
#include "weft/models/datasets.h"
#include "weft/models/files.h"
#include "weft/models/keras_format.h"
#include "weft/models/recurrent.h"
#include "weft/ops/ops.h"

namespace weft {

static_assert(std::endian::native == std::endian::little,
              "TF.js weight shards are little-endian, read and written in the host's order");

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// TF.js's and tensorflowjs_converter's shard size.
constexpr size_t kShardBytes = size_t{4} << 20;
constexpr std::string_view kLayerClasses =
    "Embedding, SimpleRNN, LSTM, GRU, Bidirectional, Dense, Dropout";

// ---- Reading one layer's config -----------------------------------------------------------

// One layer's Keras config. Records the keys read, so that an option weft does not read (a
// regularizer, a constraint, time_major) is reported rather than silently dropped.
class LayerConfig {
 public:
  explicit LayerConfig(const json& config) : config_(config) {
    WEFT_CHECK(config.is_object(), "its \"config\" is not an object");
  }

  bool has(const std::string& key) const {
    return config_.contains(key) && !config_.at(key).is_null();
  }
  // Present, and null (Keras's None).
  bool is_none(const std::string& key) const {
    return config_.contains(key) && config_.at(key).is_null();
  }
  // `key` as a T, or `fallback` when it is absent or null.
  template <typename T>
  T get(const std::string& key, T fallback) {
    read_.insert(key);
    return has(key) ? as<T>(key) : fallback;
  }
  template <typename T>
  T required(const std::string& key) {
    read_.insert(key);
    WEFT_CHECK(has(key), "option \"{}\" is missing", key);
    return as<T>(key);
  }
  // A size (units, input_dim): each is a dimension of some weight, so it cannot exceed the
  // values the file's weights hold (the active WeightsFromFile's).
  int64_t size(const std::string& key) {
    const auto value = required<int64_t>(key);
    const WeightsFromFile* from_file = WeightsFromFile::active();
    WEFT_CHECK(from_file == nullptr || value <= from_file->elements(),
               "option \"{}\" = {} is larger than the {} values the model's weights hold in all",
               key, value, from_file == nullptr ? 0 : from_file->elements());
    return value;
  }
  const json& object(const std::string& key) {
    read_.insert(key);
    WEFT_CHECK(has(key) && config_.at(key).is_object(), "option \"{}\" is missing or not an object",
               key);
    return config_.at(key);
  }

  // Options that change nothing in a model whose weights are loaded (initialisers, unroll) are
  // passed over; any other option weft did not read must be off (null or false).
  void check_all_read() const {
    for (const auto& [key, value] : config_.items()) {
      if (read_.contains(key) || value.is_null() || value == false) continue;
      if (key.ends_with("_initializer") || key == "unroll" || key == "implementation" ||
          key == "seed" || key == "unit_forget_bias" || key == "module" || key == "registered_name")
        continue;
      throw Error("option \"{}\" = {} is not supported by weft", key, value.dump());
    }
  }

 private:
  template <typename T>
  T as(const std::string& key) const {
    const json& value = config_.at(key);
    bool fits = true;
    if constexpr (std::is_same_v<T, bool>)
      fits = value.is_boolean();
    else if constexpr (std::is_same_v<T, std::string>)
      fits = value.is_string();
    else if constexpr (std::is_integral_v<T>)
      fits = value.is_number_integer();
    else if constexpr (std::is_floating_point_v<T>)
      fits = value.is_number();
    WEFT_CHECK(fits, "option \"{}\" has the wrong type: {}", key, value.dump());
    return value.get<T>();
  }

  const json& config_;
  std::set<std::string> read_;
};

// A Keras batch shape, [batch, d1, ...] with null for unknown: the shape without the batch
// (unknown dimensions -1) and the batch size, if given.
std::pair<Shape, std::optional<int64_t>> batch_shape(const json& value) {
  WEFT_CHECK(value.is_array() && !value.empty(), "the batch input shape {} is not a list",
             value.dump());
  Shape shape;
  std::optional<int64_t> batch;
  for (size_t i = 0; i < value.size(); ++i) {
    const json& d = value[i];
    WEFT_CHECK(d.is_null() || (d.is_number_integer() && d.get<int64_t>() > 0),
               "the batch input shape {} holds {}, not a positive integer or null", value.dump(),
               d.dump());
    const int64_t size = d.is_null() ? -1 : d.get<int64_t>();
    if (i == 0 && size > 0) batch = size;
    if (i > 0) shape.push_back(size);
  }
  return {shape, batch};
}

// What a model's first layer declares: its input shape and batch size.
struct DeclaredInput {
  std::optional<Shape> shape;
  std::optional<int64_t> batch;

  // Keras's batch_input_shape (Keras 2, TF.js) or batch_shape (Keras 3).
  void read_from(LayerConfig& config) {
    for (const char* key : {"batch_input_shape", "batch_shape"})
      if (config.has(key)) std::tie(shape, batch) = batch_shape(config.required<json>(key));
    config.get<json>("batch_size", nullptr);  // only meaningful with a batch input shape
  }
};

// Keras writes a layer's dtype as a name (Keras 2, TF.js) or as a policy object (Keras 3).
void check_dtype(LayerConfig& config) {
  if (!config.has("dtype")) return;
  json dtype = config.required<json>("dtype");
  if (dtype.is_object() && dtype.contains("config")) dtype = dtype["config"].value("name", json());
  WEFT_CHECK(dtype == "float32", "dtype {} is not supported: weft loads float32 models",
             dtype.dump());
}

// The options every layer has: name, trainable, dtype.
template <typename L>
void read_common(L& layer, LayerConfig& config) {
  if (config.has("name")) layer.name(config.required<std::string>("name"));
  WEFT_CHECK(config.get("trainable", true),
             "trainable = false (a frozen layer) is not supported by weft");
  check_dtype(config);
}

template <typename L>
L read_recurrent(LayerConfig& config) {
  L layer(config.size("units"));
  layer.return_sequences(config.get("return_sequences", false))
      .return_state(config.get("return_state", false))
      .go_backwards(config.get("go_backwards", false))
      .stateful(config.get("stateful", false))
      .dropout(config.get("dropout", 0.0))
      .recurrent_dropout(config.get("recurrent_dropout", 0.0))
      .activation(config.get<std::string>("activation", "tanh"))
      .use_bias(config.get("use_bias", true));
  if constexpr (L::gated)
    layer.recurrent_activation(config.get<std::string>("recurrent_activation", "sigmoid"));
  if constexpr (std::is_same_v<L, LSTM>)
    layer.unit_forget_bias(config.get("unit_forget_bias", true));
  // Keras 2's default; TF.js writes false (it has no other GRU).
  if constexpr (std::is_same_v<L, GRU>) layer.reset_after(config.get("reset_after", true));
  read_common(layer, config);
  return layer;
}

// Calls f with the recurrent layer of a Keras config, as its concrete type.
template <typename F>
auto visit_recurrent(const std::string& class_name, LayerConfig& config, F&& f) {
  if (class_name == "SimpleRNN") return f(read_recurrent<SimpleRNN>(config));
  if (class_name == "LSTM") return f(read_recurrent<LSTM>(config));
  if (class_name == "GRU") return f(read_recurrent<GRU>(config));
  throw Error("weft has no layer class \"{}\" (it loads {})", class_name, kLayerClasses);
}

// "layer "lstm" (LSTM)", for messages.
std::string describe_layer(const json& layer) {
  const json* name = nullptr;
  if (layer.is_object() && layer.contains("config") && layer["config"].is_object() &&
      layer["config"].contains("name"))
    name = &layer["config"]["name"];
  const json class_name = layer.is_object() ? layer.value("class_name", json()) : json();
  return fmt::format("layer {} ({})", name != nullptr ? name->dump() : "without a name",
                     class_name.is_string() ? class_name.get<std::string>() : class_name.dump());
}

std::string class_name_of(const json& layer) {
  WEFT_CHECK(layer.is_object() && layer.contains("class_name") && layer["class_name"].is_string(),
             "it has no \"class_name\"");
  return layer["class_name"].get<std::string>();
}

Bidirectional read_bidirectional(LayerConfig& config) {
  const json& inner = config.object("layer");
  const std::string inner_class = class_name_of(inner);
  WEFT_CHECK(inner.contains("config"), "the wrapped {} has no \"config\"", describe_layer(inner));
  WEFT_CHECK(!config.is_none("merge_mode"),
             "merge_mode = null (the two outputs as a list) is not supported by weft");
  const auto merge_mode = config.get<std::string>("merge_mode", "concat");
  Bidirectional layer = [&] {
    try {
      LayerConfig inner_config(inner["config"]);
      Bidirectional wrapper = visit_recurrent(inner_class, inner_config, [&](const auto& rnn) {
        return Bidirectional(rnn, merge_mode);
      });
      inner_config.get<json>("batch_input_shape", nullptr);  // Keras takes the wrapper's
      inner_config.check_all_read();
      return wrapper;
    } catch (const Error& error) {
      throw Error("the wrapped {}: {}", describe_layer(inner), error.what());
    }
  }();
  read_common(layer, config);
  return layer;
}

// The layer of one entry of the model config's "layers", with the input shape the model
// declares when it is the first.
LayerRef read_layer(const json& entry, DeclaredInput& input, bool first) {
  const std::string class_name = class_name_of(entry);
  WEFT_CHECK(entry.contains("config"), "it has no \"config\"");
  LayerConfig config(entry["config"]);
  if (first) input.read_from(config);
  auto finish = [&](auto layer) -> LayerRef {
    if (first && input.shape) layer.input_shape(*input.shape);
    if (first && input.batch) layer.batch_size(*input.batch);
    config.get<json>("batch_input_shape", nullptr);  // Keras repeats it on later layers
    config.check_all_read();
    return layer;
  };
  if (class_name == "Dense") {
    Dense layer(config.size("units"));
    layer.activation(config.get<std::string>("activation", "linear"))
        .use_bias(config.get("use_bias", true));
    read_common(layer, config);
    return finish(layer);
  }
  if (class_name == "Embedding") {
    Embedding layer(config.size("input_dim"), config.size("output_dim"));
    layer.mask_zero(config.get("mask_zero", false));
    // TF.js may write input_length as a list of one.
    json length = config.get<json>("input_length", nullptr);
    if (length.is_array() && length.size() == 1) length = length[0];
    WEFT_CHECK(length.is_null() || length.is_number_integer(),
               "input_length {} is not an integer or null", length.dump());
    if (first && !input.shape && length.is_number_integer())
      layer.input_length(length.get<int64_t>());
    read_common(layer, config);
    return finish(layer);
  }
  if (class_name == "Dropout") {
    Dropout layer(config.required<double>("rate"));  // a noise_shape is an option weft lacks
    read_common(layer, config);
    return finish(layer);
  }
  if (class_name == "Bidirectional") return finish(read_bidirectional(config));
  return visit_recurrent(class_name, config, finish);
}

// ---- Reading the weights ------------------------------------------------------------------

struct ManifestWeight {
  std::string name;
  Shape shape;
  Tensor value;  // float32
  bool used = false;
};

// The weights of every group of a weights manifest, read from the shard files in `folder`.
std::vector<ManifestWeight> read_manifest(const json& manifest, const fs::path& folder,
                                          const std::string& file) {
  WEFT_CHECK(manifest.is_array(), "load_model: \"{}\": \"weightsManifest\" is not a list", file);
  std::vector<ManifestWeight> weights;
  for (size_t g = 0; g < manifest.size(); ++g) {
    const json& group = manifest[g];
    const std::string where = fmt::format("load_model: \"{}\": weights group {}", file, g + 1);
    WEFT_CHECK(group.is_object() && group.contains("paths") && group["paths"].is_array() &&
                   group.contains("weights") && group["weights"].is_array(),
               "{} needs \"paths\" and \"weights\" lists", where);
    // The shards of a group are one byte sequence, cut at the shard size.
    std::string bytes;
    std::vector<std::string> shards;
    for (const json& path : group["paths"]) {
      WEFT_CHECK(path.is_string(), "{}: shard path {} is not a string", where, path.dump());
      const std::string shard = (folder / path.get<std::string>()).string();
      WEFT_CHECK(fs::is_regular_file(shard),
                 "load_model: \"{}\" names the weight shard \"{}\", "
                 "which is missing",
                 file, shard);
      bytes += read_file(shard, "load_model");
      shards.push_back(shard);
    }
    const std::string shard_names = fmt::format("\"{}\"", fmt::join(shards, "\", \""));
    size_t at = 0;
    for (const json& spec : group["weights"]) {
      WEFT_CHECK(spec.is_object() && spec.contains("name") && spec["name"].is_string() &&
                     spec.contains("shape") && spec["shape"].is_array(),
                 "{}: the weight {} needs a \"name\" and a \"shape\"", where, spec.dump());
      ManifestWeight weight{.name = spec["name"].get<std::string>(), .shape = {}, .value = {}};
      const json dtype = spec.value("dtype", json("float32"));
      WEFT_CHECK(dtype == "float32",
                 "load_model: \"{}\": weight \"{}\" has dtype {}; weft reads float32 weights", file,
                 weight.name, dtype.dump());
      WEFT_CHECK(!spec.contains("quantization"),
                 "load_model: \"{}\": weight \"{}\" is quantized ({}); weft reads float32 weights",
                 file, weight.name, spec["quantization"].dump());
      // Sized against the bytes left before anything is allocated.
      const size_t left = bytes.size() - at;
      auto check_fits = [&](bool fits) {
        WEFT_CHECK(fits,
                   "load_model: {} is truncated: it ends in weight \"{}\" of shape {}, which "
                   "the manifest of \"{}\" places at byte {} ({} bytes in all)",
                   shard_names, weight.name, spec["shape"].dump(), file, at, bytes.size());
      };
      size_t size = sizeof(float);
      for (const json& d : spec["shape"]) {
        WEFT_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0, "{}: weight \"{}\" has shape {}",
                   where, weight.name, spec["shape"].dump());
        const auto n = d.get<uint64_t>();
        check_fits(n == 0 || size <= left / n);
        size *= n;
        weight.shape.push_back(static_cast<int64_t>(n));
      }
      check_fits(size <= left);
      weight.value = empty(weight.shape, {.dtype = DType::f32});
      std::memcpy(weight.value.raw_data(), bytes.data() + at, size);
      at += size;
      weights.push_back(std::move(weight));
    }
    WEFT_CHECK(at == bytes.size(),
               "load_model: the manifest of \"{}\" and its shards disagree: the weights of group "
               "{} take {} bytes, but {} hold {}",
               file, g + 1, at, shard_names, bytes.size());
  }
  return weights;
}

// Every weight of the model with its Keras name: "lstm/kernel",
// "bidirectional/forward_lstm/kernel" (a wrapper's weights are its copies').
std::vector<std::pair<std::string, Weight*>> keras_weights(const Sequential& model) {
  std::vector<std::pair<std::string, Weight*>> named;
  for (const auto& layer : model.layers()) {
    std::vector<std::pair<std::string, Layer*>> owners{{layer->name(), layer.get()}};
    if (auto* wrapper = dynamic_cast<Bidirectional*>(layer.get()))
      owners = {
          {layer->name() + "/" + wrapper->forward_layer().name(), &wrapper->forward_layer()},
          {layer->name() + "/" + wrapper->backward_layer().name(), &wrapper->backward_layer()}};
    for (const auto& [prefix, owner] : owners)
      for (Weight* weight : owner->weights())
        named.emplace_back(prefix + "/" + weight->name, weight);
  }
  return named;
}

// The manifest weight of a model weight's Keras name. Keras's converter writes the cell's name
// too ("lstm/lstm_cell/kernel"), and TF.js drops it when matching; so does weft.
ManifestWeight* find_weight(std::vector<ManifestWeight>& weights, const std::string& name) {
  ManifestWeight* found = nullptr;
  for (ManifestWeight& weight : weights) {
    std::string candidate = weight.name;
    if (candidate.ends_with(":0")) candidate.resize(candidate.size() - 2);
    if (candidate == name) return &weight;
    const size_t last = candidate.rfind('/');
    const size_t cell =
        last == std::string::npos || last == 0 ? std::string::npos : candidate.rfind('/', last - 1);
    if (found == nullptr && cell != std::string::npos &&
        candidate.substr(0, cell) + candidate.substr(last) == name)
      found = &weight;
  }
  return found;
}

// ---- Writing ------------------------------------------------------------------------------

json recurrent_config(const Recurrent& layer) {
  const RecurrentOptions& options = layer.options();
  json config = {{"units", layer.units()},
                 {"activation", options.activation},
                 {"use_bias", options.use_bias},
                 {"return_sequences", options.return_sequences},
                 {"return_state", options.return_state},
                 {"go_backwards", options.go_backwards},
                 {"stateful", options.stateful},
                 {"unroll", false},
                 {"dropout", options.dropout},
                 {"recurrent_dropout", options.recurrent_dropout}};
  if (const auto* lstm = dynamic_cast<const LSTM*>(&layer)) {
    config["recurrent_activation"] = options.recurrent_activation;
    config["unit_forget_bias"] = lstm->unit_forget_bias();
  }
  if (const auto* gru = dynamic_cast<const GRU*>(&layer)) {
    config["recurrent_activation"] = options.recurrent_activation;
    config["reset_after"] = gru->reset_after();
  }
  return config;
}

// {"class_name": ..., "config": ...} with Keras's argument names.
json layer_json(Layer& layer, const std::string& name) {
  json config;
  if (const auto* dense = dynamic_cast<const Dense*>(&layer)) {
    config = {{"units", dense->units()},
              {"activation", dense->activation()},
              {"use_bias", dense->use_bias()}};
  } else if (const auto* embedding = dynamic_cast<const Embedding*>(&layer)) {
    const int64_t length = embedding->input_shape()[0];
    config = {{"input_dim", embedding->input_dim()},
              {"output_dim", embedding->output_dim()},
              {"mask_zero", embedding->mask_zero()},
              {"input_length", length > 0 ? json(length) : json()}};
  } else if (const auto* dropout = dynamic_cast<const Dropout*>(&layer)) {
    config = {{"rate", dropout->rate()}};
  } else if (auto* wrapper = dynamic_cast<Bidirectional*>(&layer)) {
    // The wrapped layer under its own name: the forward copy's, less "forward_".
    Recurrent& inner = wrapper->forward_layer();
    config = {{"merge_mode", wrapper->merge_mode()},
              {"layer", layer_json(inner, inner.name().substr(std::string("forward_").size()))}};
  } else if (const auto* recurrent = dynamic_cast<const Recurrent*>(&layer)) {
    config = recurrent_config(*recurrent);
  } else {
    throw Error("save_model: layer \"{}\" ({}) has no TF.js Layers form", name, layer.type_name());
  }
  config["name"] = name;
  config["trainable"] = true;
  config["dtype"] = "float32";
  return {{"class_name", layer.type_name()}, {"config", config}};
}

}  // namespace

// ---- load_model ---------------------------------------------------------------------------

namespace {

Sequential load_model_json(const std::string& file) {
  json root;
  try {
    root = json::parse(read_file(file, "load_model"));
  } catch (const json::exception& error) {
    throw Error("load_model: \"{}\" is not valid JSON: {}", file, error.what());
  }
  WEFT_CHECK(root.is_object() && root.contains("modelTopology") && root.contains("weightsManifest"),
             "load_model: \"{}\" is not a TF.js Layers model: it needs \"modelTopology\" and "
             "\"weightsManifest\"",
             file);
  WEFT_CHECK(root.value("format", json("layers-model")) == "layers-model",
             "load_model: \"{}\" has format {}; weft reads TF.js Layers models (\"layers-model\")",
             file, root["format"].dump());
  const json* topology = &root["modelTopology"];
  if (topology->is_object() && topology->contains("model_config"))
    topology = &(*topology)["model_config"];
  const json class_name = topology->is_object() ? topology->value("class_name", json()) : json();
  WEFT_CHECK(class_name == "Sequential",
             "load_model: \"{}\" holds a {} model; weft loads Sequential models", file,
             class_name.dump());
  // Keras 2 writes {"name": ..., "layers": [...]}; Keras 1 the list alone.
  const json& config = topology->value("config", json());
  const json& layers = config.is_object() ? config.value("layers", json()) : config;
  WEFT_CHECK(layers.is_array() && !layers.empty(),
             "load_model: \"{}\": the Sequential model's config has no \"layers\" list", file);
  const json name =
      config.is_object() ? config.value("name", json("sequential")) : json("sequential");
  WEFT_CHECK(name.is_string(), "load_model: \"{}\": the model's name {} is not a string", file,
             name.dump());

  // The weights first: the layers are then built within the values they hold.
  std::vector<ManifestWeight> manifest =
      read_manifest(root["weightsManifest"], fs::path(file).parent_path(), file);
  int64_t values = 0;
  for (const ManifestWeight& weight : manifest) values += weight.value.numel();
  const WeightsFromFile from_file(values);

  Sequential model({}, name.get<std::string>());
  DeclaredInput input;
  bool first = true;
  for (const json& entry : layers) {
    try {
      if (class_name_of(entry) == "InputLayer") {
        WEFT_CHECK(first, "an InputLayer can only come first");
        WEFT_CHECK(entry.contains("config"), "it has no \"config\"");
        LayerConfig input_config(entry["config"]);
        input.read_from(input_config);
        continue;
      }
      model.add(read_layer(entry, input, first));
      first = false;
    } catch (const Error& error) {
      throw Error("load_model: \"{}\": {}: {}", file, describe_layer(entry), error.what());
    }
  }
  WEFT_CHECK(model.built(),
             "load_model: \"{}\": the model declares no input shape (batch_input_shape), so its "
             "weights cannot be placed",
             file);

  std::vector<std::pair<Weight*, const ManifestWeight*>> matched;
  for (const auto& [weight_name, weight] : keras_weights(model)) {
    ManifestWeight* found = find_weight(manifest, weight_name);
    WEFT_CHECK(found != nullptr, "load_model: \"{}\" has no weight \"{}\" in its manifest", file,
               weight_name);
    WEFT_CHECK(!found->used, "load_model: \"{}\": manifest weight \"{}\" matches two weights", file,
               found->name);
    WEFT_CHECK(found->shape == weight->value.shape(),
               "load_model: \"{}\": weight \"{}\" has shape {} in the manifest, but the layer as "
               "configured takes {}",
               file, found->name, shape_str(found->shape), shape_str(weight->value.shape()));
    found->used = true;
    matched.emplace_back(weight, found);
  }
  for (const ManifestWeight& weight : manifest)
    WEFT_CHECK(weight.used,
               "load_model: \"{}\": manifest weight \"{}\" belongs to no weight of the model", file,
               weight.name);
  for (const auto& [weight, value] : matched) weight->value.assign_(value->value);
  return model;
}

}  // namespace

Sequential load_model(const std::string& path) {
  const std::string file = fs::is_directory(path) ? (fs::path(path) / "model.json").string() : path;
  try {
    return load_model_json(file);
  } catch (const json::exception& error) {  // a value of an unexpected type, found by the library
    throw Error("load_model: \"{}\": {}", file, error.what());
  }
}

// ---- save_model ---------------------------------------------------------------------------

void Sequential::save_model(const std::string& path) const {
  WEFT_CHECK(built(), "save_model: model \"{}\" has not been built yet", name_);
  // PATH.json, or the folder PATH with model.json in it.
  fs::path file = path;
  if (file.extension() != ".json") {
    std::error_code error;
    fs::create_directories(file, error);
    WEFT_CHECK(!error, "save_model: cannot create the folder \"{}\": {}", path, error.message());
    file /= "model.json";
  }
  const std::string stem = file.stem() == "model" ? "" : file.stem().string() + "-";

  json layers = json::array();
  for (const auto& layer : layers_) {
    WEFT_CHECK(layer->dtype() == DType::f32,
               "save_model: layer \"{}\" has {} weights; the TF.js Layers format holds float32",
               layer->name(), dtype_name(layer->dtype()));
    layers.push_back(layer_json(*layer, layer->name()));
  }
  // The first layer declares the input shape (and batch size), as Keras writes it.
  const Layer& first = *layers_.front();
  json input =
      json::array({first.declared_batch_size() ? json(*first.declared_batch_size()) : json()});
  for (const int64_t d : first.input_shape()) input.push_back(d > 0 ? json(d) : json());
  layers[0]["config"]["batch_input_shape"] = input;

  std::string bytes;
  json specs = json::array();
  for (const auto& [name, weight] : keras_weights(*this)) {
    const Tensor value = weight->value.copy();  // contiguous
    bytes.append(static_cast<const char*>(value.raw_data()), value.numel() * sizeof(float));
    specs.push_back({{"name", name}, {"shape", value.shape()}, {"dtype", "float32"}});
  }
  const size_t count = std::max<size_t>(1, (bytes.size() + kShardBytes - 1) / kShardBytes);
  json paths = json::array();
  for (size_t i = 0; i < count; ++i) {
    const std::string shard = fmt::format("{}group1-shard{}of{}.bin", stem, i + 1, count);
    write_file_atomically((file.parent_path() / shard).string(),
                          std::string_view(bytes).substr(i * kShardBytes, kShardBytes),
                          "save_model");
    paths.push_back(shard);
  }
  const json root = {
      {"format", "layers-model"},
      {"generatedBy", "weft"},
      {"convertedBy", nullptr},
      {"modelTopology",
       {{"class_name", "Sequential"}, {"config", {{"name", name_}, {"layers", layers}}}}},
      {"weightsManifest", json::array({{{"paths", paths}, {"weights", specs}}})}};
  // The shards first: the model.json that names them appears only once they are complete.
  write_file_atomically(file.string(), root.dump(1) + "\n", "save_model");
}

// ---- Inputs from CSV ----------------------------------------------------------------------

Tensor read_csv_batch(const Sequential& model, const std::string& path) {
  WEFT_CHECK(model.built(), "read_csv_batch: model \"{}\" has not been built yet", model.name());
  const CsvTable table = read_csv(path, {.header = false});
  const Layer& first = *model.layers().front();
  Shape shape{table.values.rows};
  int64_t known = 1;
  for (const int64_t d : first.input_shape()) known *= d > 0 ? d : 1;
  for (const int64_t d : first.input_shape())
    shape.push_back(d > 0 ? d : table.values.cols / known);
  int64_t row = 1;
  for (size_t d = 1; d < shape.size(); ++d) row *= shape[d];
  WEFT_CHECK(row == table.values.cols,
             "read_csv_batch: \"{}\" has rows of {} values, but a sample of model \"{}\" takes "
             "{} (input shape {}, flattened)",
             path, table.values.cols, model.name(), row, keras_shape(first.input_shape()));
  // Token ids stay exact in float64; Embedding checks that they are whole numbers in range.
  const bool ids = dynamic_cast<const Embedding*>(&first) != nullptr;
  return reshape(to_tensor(table.values, ids ? DType::f64 : DType::f32), shape);
}

}  // namespace weft
