#include "weft/models/sequential.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>

#include "weft/models/keras_format.h"
#include "weft/runtime/op.h"

namespace weft {

Sequential::Sequential(std::initializer_list<LayerRef> layers, std::string name)
    : name_(std::move(name)) {
  for (const LayerRef& layer : layers) add(layer);
}

void Sequential::add(const LayerRef& layer) {
  std::unique_ptr<Layer> added = layer.instantiate();
  if (added->name().empty()) {
    int same_kind = 0;
    for (const auto& existing : layers_) same_kind += existing->base_name() == added->base_name();
    added->set_name(same_kind == 0 ? added->base_name()
                                   : fmt::format("{}_{}", added->base_name(), same_kind));
  }
  for (const auto& existing : layers_)
    WEFT_CHECK(existing->name() != added->name(),
               "model \"{}\": a layer named \"{}\" is already in the model", name_, added->name());
  layers_.push_back(std::move(added));
  // Steps compiled so far ran without this layer, and one without weights (Dropout) would not even
  // change their keys.
  compiled_.reset();
  Layer& last = *layers_.back();
  // Keras builds as soon as the input shape is known, so shape errors surface at construction.
  if (layers_.size() == 1 && last.declared_input_shape())
    last.build_for(*last.declared_input_shape(), default_generator());
  else if (layers_.size() > 1 && layers_[layers_.size() - 2]->built())
    last.build_for(layers_[layers_.size() - 2]->output_shape(), default_generator());
}

void Sequential::build(const Shape& input_shape) {
  WEFT_CHECK(!layers_.empty(), "model \"{}\" has no layers", name_);
  Shape shape = input_shape;
  for (const auto& layer : layers_) shape = layer->build_for(shape, default_generator());
}

bool Sequential::built() const { return !layers_.empty() && layers_.back()->built(); }

Layer& Sequential::layer(const std::string& layer_name) const {
  for (const auto& layer : layers_)
    if (layer->name() == layer_name) return *layer;
  throw Error("model \"{}\" has no layer named \"{}\"", name_, layer_name);
}

std::vector<Weight*> Sequential::weights() const {
  std::vector<Weight*> all;
  for (const auto& layer : layers_)
    for (Weight* w : layer->weights()) all.push_back(w);
  return all;
}

namespace {

// The nearest bfloat16 value to `value` (ties to even): 8 significant bits, float32's exponent
// range, and subnormal values down to 2^-133.
double bfloat16_value(double value) {
  if (!std::isfinite(value) || value == 0) return value;
  int exponent = 0;
  std::frexp(value, &exponent);  // |value| in [2^(exponent - 1), 2^exponent)
  const double quantum = std::ldexp(1.0, std::max(exponent - 8, -133));
  return std::nearbyint(value / quantum) * quantum;
}

struct QuantizeMode {
  const char* name;
  double largest;  // finite value
  double (*round)(double);
};

constexpr QuantizeMode quantize_modes[] = {
    {"float16", 65504,
     [](double value) { return static_cast<double>(static_cast<_Float16>(value)); }},
    {"bfloat16", 0x1.fep127, bfloat16_value},
};

}  // namespace

void Sequential::quantize(const std::string& mode_name) {
  const auto mode = std::ranges::find(quantize_modes, mode_name, &QuantizeMode::name);
  WEFT_CHECK(mode != std::end(quantize_modes),
             "quantize: mode \"{}\" is not one weft has; it has \"float16\" and \"bfloat16\"",
             mode_name);
  WEFT_CHECK(built(),
             "quantize: model \"{}\" has no weights yet; give the first layer an input_shape or "
             "call build() first",
             name_);
  std::vector<std::pair<Weight*, std::vector<double>>> rounded;
  // Every weight checked before any changes, so an error leaves the model as it was.
  for (const auto& layer : layers_)
    for (Weight* weight : layer->weights()) {
      if (!is_floating(weight->value.dtype())) continue;
      std::vector<double> values = weight->value.to_vector<double>();
      for (size_t i = 0; i < values.size(); ++i) {
        const double value = mode->round(values[i]);
        WEFT_CHECK(!std::isfinite(values[i]) || std::abs(value) <= mode->largest,
                   "quantize(\"{}\"): weight \"{}\" holds {} at flat index {}, beyond {}'s "
                   "largest value {}; no weight was changed",
                   mode->name, layer->weight_path(*weight), values[i], i, mode->name,
                   mode->largest);
        values[i] = value;
      }
      rounded.emplace_back(weight, std::move(values));
    }
  for (const auto& [weight, values] : rounded)
    weight->value.assign_(from_vector(values, weight->value.shape()));
}

std::vector<std::string> Sequential::trainable_weight_paths() const {
  std::vector<std::string> paths;
  for (const auto& layer : layers_)
    for (const Weight* weight : layer->weights())
      if (weight->trainable) paths.push_back(layer->weight_path(*weight));
  return paths;
}

int64_t Sequential::count_params() const {
  WEFT_CHECK(built(),
             "model \"{}\" has not been built yet: give the first layer an input_shape, call "
             "build(), or call the model on a batch",
             name_);
  int64_t total = 0;
  for (const auto& layer : layers_) total += layer->count_params();
  return total;
}

const Shape& Sequential::output_shape() const {
  WEFT_CHECK(built(), "model \"{}\" has not been built yet", name_);
  return layers_.back()->output_shape();
}

std::string Sequential::summary_string() const {
  const int64_t total = count_params();
  // Keras's layout: 65 columns, fields ending at columns 29, 55 and 65. A name wider than its
  // field is cut at 27 characters (Keras keeps two spaces before the next column) and wraps.
  const std::string rule(65, '_'), double_rule(65, '='), blank(65, ' ');
  auto row = [](const std::string& first, const std::string& second, const std::string& third) {
    // Like Keras: each field is padded up to its column's end, so a cut name (27 characters
    // and two spaces) takes its extra column from the next field.
    std::string line = " " + (first.size() <= 28 ? first : first.substr(0, 27) + "  ");
    line.resize(std::max<size_t>(line.size(), 29), ' ');
    line += second;
    line.resize(std::max<size_t>(line.size(), 55), ' ');
    line += third;
    line.resize(std::max<size_t>(line.size(), 65), ' ');
    std::string text = line + "\n";
    for (size_t at = 27; first.size() > 28 && at < first.size(); at += 27)
      text += fmt::format(" {:<64}\n", first.substr(at, 27));
    return text;
  };
  std::string text = fmt::format("Model: \"{}\"\n{}\n", name_, rule);
  text += row("Layer (type)", "Output Shape", "Param #");
  text += double_rule + "\n";
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& layer = *layers_[i];
    text += row(fmt::format("{} ({})", layer.name(), layer.type_name()),
                keras_shape(layer.output_shape()), std::to_string(layer.count_params()));
    text += blank + "\n";
  }
  text += double_rule + "\n";
  text += fmt::format("Total params: {}\nTrainable params: {}\nNon-trainable params: 0\n{}\n",
                      thousands(total), thousands(total), rule);
  return text;
}

void Sequential::summary() const { std::cout << summary_string() << std::flush; }

void Sequential::build_for_batches(const Shape& batch_shape) {
  WEFT_CHECK(!layers_.empty(), "model \"{}\" has no layers", name_);
  WEFT_CHECK(!batch_shape.empty(), "model \"{}\": inputs need a batch axis, got a scalar", name_);
  const Shape sample(batch_shape.begin() + 1, batch_shape.end());
  if (!built()) build(sample);
  const Shape& expected = layers_.front()->input_shape();
  bool fits = sample.size() == expected.size();
  for (size_t d = 0; fits && d < sample.size(); ++d)
    fits = expected[d] < 0 || expected[d] == sample[d];
  WEFT_CHECK(fits,
             "Input 0 of layer \"{}\" is incompatible with the layer: expected shape={}, found "
             "shape={}",
             name_, keras_shape(expected), shape_str(batch_shape));
}

Tensor Sequential::call(const Tensor& x, bool training) {
  build_for_batches(x.shape());
  CallContext context{.training = training};
  Tensor y = x;
  for (const auto& layer : layers_) y = layer->call(y, context);
  // A captured step stores the stateful layers' new states into the kept ones (its inputs) as
  // it ends. Not assigned: the backward pass, recorded after this, reads the states the step
  // began from.
  if (Tracer* tracer = active_tracer())
    for (const StateUpdate& update : context.new_states)
      tracer->on_store_at_end(update.state, update.value);
  return y;
}

void Sequential::reset_states() {
  for (const auto& layer : layers_) layer->reset_states();
}

}  // namespace weft
