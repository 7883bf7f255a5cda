// Dense, Embedding and Dropout.
#pragma once

#include <string>

#include "weft/models/layer.h"

namespace weft {

// activation(x · kernel + bias) over the last axis.
class Dense : public LayerBase<Dense> {
 public:
  explicit Dense(int64_t units);
  Dense& activation(const std::string& name);  // "linear" (default), relu, sigmoid, tanh, softmax
  Dense& use_bias(bool on);                    // default true
  int64_t units() const { return units_; }
  const std::string& activation() const { return activation_; }
  bool use_bias() const { return use_bias_; }

  std::string type_name() const override { return "Dense"; }
  Shape build(const Shape& input_shape, Generator& generator) override;
  Tensor call(const Tensor& x, CallContext& context) override;

 private:
  int64_t units_;
  std::string activation_ = "linear";
  bool use_bias_ = true;
  Weight* kernel_ = nullptr;
  Weight* bias_ = nullptr;
};

// Integer indices (batch, timesteps) -> vectors (batch, timesteps, output_dim).
class Embedding : public LayerBase<Embedding> {
 public:
  Embedding(int64_t input_dim, int64_t output_dim);
  // Index 0 is padding: recurrent layers keep their state on those steps. Default false.
  Embedding& mask_zero(bool on);
  // Keras's input_length: fixes the number of timesteps, so the model builds at once.
  Embedding& input_length(int64_t timesteps);
  int64_t input_dim() const { return input_dim_; }
  int64_t output_dim() const { return output_dim_; }
  bool mask_zero() const { return mask_zero_; }

  std::string type_name() const override { return "Embedding"; }
  Shape build(const Shape& input_shape, Generator& generator) override;
  Tensor call(const Tensor& x, CallContext& context) override;

 private:
  int64_t input_dim_;
  int64_t output_dim_;
  bool mask_zero_ = false;
  Weight* embeddings_ = nullptr;
};

// Inverted dropout: zeroes a `rate` fraction of the inputs while training and scales the rest
// by 1 / (1 - rate); the identity at inference.
class Dropout : public LayerBase<Dropout> {
 public:
  explicit Dropout(double rate);
  double rate() const { return rate_; }

  std::string type_name() const override { return "Dropout"; }
  Shape build(const Shape& input_shape, Generator& generator) override;
  Tensor call(const Tensor& x, CallContext& context) override;

 private:
  double rate_;
};

}  // namespace weft
