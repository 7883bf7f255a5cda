#include "weft/models/layer_gradcheck.h"

#include "weft/models/losses.h"

namespace weft {

namespace {

// gradcheck of forward(x, context) with respect to x and `weights`. gradcheck varies its own
// float64 copies of the inputs, so the weights are swapped for those copies during each
// evaluation and restored afterwards, whatever happens.
GradcheckReport gradcheck_weights(
    const std::vector<Weight*>& weights, const Tensor& x, const LayerGradcheckOptions& options,
    const std::function<Tensor(const Tensor& x, CallContext& context)>& forward) {
  std::vector<Tensor> inputs{x};
  std::vector<Tensor> originals;
  for (Weight* w : weights) {
    inputs.push_back(w->value);
    originals.push_back(w->value);
  }
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
    return forward(xs[0], context);
  };
  return gradcheck(evaluate, inputs, options.gradcheck);
}

}  // namespace

GradcheckReport gradcheck_layer(Layer& layer, const Tensor& x,
                                const LayerGradcheckOptions& options) {
  if (!layer.built())
    layer.build_for(Shape(x.shape().begin() + 1, x.shape().end()), default_generator());
  return gradcheck_weights(
      layer.weights(), x, options,
      [&](const Tensor& input, CallContext& context) { return layer.call(input, context); });
}

GradcheckReport gradcheck_model(Sequential& model, const Tensor& x, const Tensor& y,
                                const std::string& loss, const LayerGradcheckOptions& options) {
  if (!model.built()) model.build(Shape(x.shape().begin() + 1, x.shape().end()));
  const Loss& loss_function = loss_by_name(loss);
  return gradcheck_weights(model.weights(), x, options,
                           [&](const Tensor& input, CallContext& context) {
                             Tensor output = input;
                             for (const auto& layer : model.layers())
                               output = layer->call(output, context);
                             return loss_function.compute(y, output);
                           });
}

}  // namespace weft
