// gradcheck for a whole layer or model: d output / d input and d output / d every weight,
// against central differences in float64.
#pragma once

#include "weft/autodiff/gradcheck.h"
#include "weft/models/layer.h"
#include "weft/models/sequential.h"

namespace weft {

struct LayerGradcheckOptions {
  bool training = false;      // training mode (dropout active)
  Tensor mask = {};           // (batch, timesteps) for recurrent layers
  uint64_t dropout_seed = 0;  // every evaluation draws the same dropout masks
  GradcheckOptions gradcheck = {};
};

// Builds the layer for x's shape if needed. Report inputs: 0 is x (when floating-point), then
// the weights in the order of layer.weights().
GradcheckReport gradcheck_layer(Layer& layer, const Tensor& x,
                                const LayerGradcheckOptions& options = {});

// d loss(y, model(x)) / d x (when floating-point) and / d every weight, report inputs numbered
// as for gradcheck_layer in the order of model.weights(). The layers are called in turn as
// Sequential::call calls them, with options.mask as the first layer's mask. `loss` is a Keras
// name, as compile() takes it. Builds the model for x's shape if needed.
GradcheckReport gradcheck_model(Sequential& model, const Tensor& x, const Tensor& y,
                                const std::string& loss, const LayerGradcheckOptions& options = {});

}  // namespace weft
