#include "weft/models/core_layers.h"

#include <cmath>

#include "weft/models/keras_format.h"
#include "weft/ops/ops.h"

namespace weft {

// ---- Dense --------------------------------------------------------------------------------

Dense::Dense(int64_t units) : units_(units) {
  WEFT_CHECK(units > 0, "Dense: units must be positive, got {}", units);
}

Dense& Dense::activation(const std::string& name) {
  activation_by_name(name);  // rejects unknown names now, not at the first call
  activation_ = name;
  return *this;
}

Dense& Dense::use_bias(bool on) {
  use_bias_ = on;
  return *this;
}

Shape Dense::build(const Shape& input_shape, Generator& generator) {
  WEFT_CHECK(!input_shape.empty() && input_shape.back() > 0,
             "Input 0 of layer \"{}\" is incompatible with the layer: expected min_ndim=2, "
             "found ndim={}. Full shape received: {}",
             name(), input_shape.size() + 1, keras_shape(input_shape));
  kernel_ = &add_weight("kernel", {input_shape.back(), units_}, glorot_uniform, generator);
  if (use_bias_) bias_ = &add_weight("bias", {units_}, zeros_initializer, generator);
  Shape output = input_shape;
  output.back() = units_;
  return output;
}

Tensor Dense::call(const Tensor& x, CallContext&) {
  const int64_t features = kernel_->value.shape()[0];
  WEFT_CHECK(x.dim() >= 2 && x.shape().back() == features,
             "layer \"{}\": expected inputs with {} features on the last axis, got {}", name(),
             features, shape_str(x.shape()));
  // (batch, ..., in) as one matrix: a single GEMM whatever the rank.
  Tensor y = matmul(reshape(x, {-1, features}), kernel_->value);
  if (bias_ != nullptr) y = y + bias_->value;
  Shape shape = x.shape();
  shape.back() = units_;
  return activation_by_name(activation_)(reshape(y, shape));
}

// ---- Embedding ----------------------------------------------------------------------------

Embedding::Embedding(int64_t input_dim, int64_t output_dim)
    : input_dim_(input_dim), output_dim_(output_dim) {
  WEFT_CHECK(input_dim > 0 && output_dim > 0,
             "Embedding: input_dim and output_dim must be positive, got {} and {}", input_dim,
             output_dim);
}

Embedding& Embedding::mask_zero(bool on) {
  mask_zero_ = on;
  return *this;
}

Embedding& Embedding::input_length(int64_t timesteps) {
  WEFT_CHECK(timesteps > 0, "Embedding: input_length must be positive, got {}", timesteps);
  declared_input_shape_ = Shape{timesteps};
  return *this;
}

Shape Embedding::build(const Shape& input_shape, Generator& generator) {
  expect_ndim(input_shape, 2);
  embeddings_ = &add_weight(
      "embeddings", {input_dim_, output_dim_},
      [](const Shape& shape, Generator& g) { return uniform_initializer(shape, -0.05, 0.05, g); },
      generator);
  return {input_shape[0], output_dim_};
}

Tensor Embedding::call(const Tensor& x, CallContext& context) {
  WEFT_CHECK(x.dim() == 2, "layer \"{}\": expected indices of shape (batch, timesteps), got {}",
             name(), shape_str(x.shape()));
  // Keras feeds float arrays of indices too; they must hold whole numbers. The checks read the
  // batch, a real input even in a captured step (a compiled gather checks later batches' range);
  // the conversion is an op, so a compiled step converts every batch rather than the first.
  for (const double index : x.to_vector<double>()) {
    WEFT_CHECK(index == std::floor(index), "layer \"{}\": indices must be whole numbers", name());
    WEFT_CHECK(0 <= index && index < static_cast<double>(input_dim_),
               "layer \"{}\": index {} is out of range for input_dim={} (valid: 0 to {})", name(),
               static_cast<int64_t>(index), input_dim_, input_dim_ - 1);
  }
  const Tensor indices = is_floating(x.dtype()) ? cast(x, DType::i64) : x;
  if (mask_zero_) context.mask = not_equal(indices, zeros({}, {.dtype = indices.dtype()}));
  Tensor output = gather(embeddings_->value, 0, indices);
  context.embedded = {.output = output, .ids = indices};
  return output;
}

// ---- Dropout ------------------------------------------------------------------------------

Dropout::Dropout(double rate) : rate_(rate) {
  WEFT_CHECK(0 <= rate && rate < 1, "Dropout: rate must be in [0, 1), got {}", rate);
}

Shape Dropout::build(const Shape& input_shape, Generator&) { return input_shape; }

Tensor Dropout::call(const Tensor& x, CallContext& context) {
  return dropout(x, rate_, context.training, *context.generator);
}

}  // namespace weft
