#include "weft/models/layer_gradcheck.h"

namespace weft {

GradcheckReport gradcheck_layer(Layer& layer, const Tensor& x,
                                const LayerGradcheckOptions& options) {
  if (!layer.built())
    layer.build_for(Shape(x.shape().begin() + 1, x.shape().end()), default_generator());
  const std::vector<Weight*> weights = layer.weights();
  std::vector<Tensor> inputs{x};
  std::vector<Tensor> originals;
  for (Weight* w : weights) {
    inputs.push_back(w->value);
    originals.push_back(w->value);
  }
  // gradcheck varies its own float64 copies of the inputs, so the weights are swapped for those
  // copies during each evaluation and restored afterwards, whatever happens.
  struct Restore {
    const std::vector<Weight*>& weights;
    const std::vector<Tensor>& originals;
    ~Restore() {
      for (size_t i = 0; i < weights.size(); ++i) weights[i]->value = originals[i];
    }
  } restore{weights, originals};
  auto evaluate = [&](const std::vector<Tensor>& xs) {
    for (size_t i = 0; i < weights.size(); ++i) weights[i]->value = xs[i + 1];
    Generator generator(options.dropout_seed);
    CallContext context{
        .training = options.training, .mask = options.mask, .generator = &generator};
    return layer.call(xs[0], context);
  };
  return gradcheck(evaluate, inputs, options.gradcheck);
}

}  // namespace weft
