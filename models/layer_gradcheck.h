// gradcheck for a whole layer: d output / d input and d output / d every weight, against
// central differences in float64.
#pragma once

#include "weft/autodiff/gradcheck.h"
#include "weft/models/layer.h"

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

}  // namespace weft
