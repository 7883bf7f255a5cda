// The running side of the optimizers in training.h: Keras's slot variables and update rules.
// Each update is written in ops under NoGrad and stored with assign_, so a compiled training
// step can capture it like the rest of the step.
#pragma once

#include <vector>

#include "weft/models/layer.h"
#include "weft/models/training.h"
#include "weft/runtime/tensor.h"

namespace weft {

class OptimizerState {
 public:
  // Slots for every trainable weight, zero-initialised as in Keras. Throws weft::Error for
  // hyperparameters outside their ranges.
  OptimizerState(const Optimizer& optimizer, std::vector<Weight*> weights);

  // One update of each trainable weight from its grad(); a weight that got no gradient is left
  // alone, slots included. Keras's rules, with t the 1-based step:
  //   Adam:    m = m + (g − m)(1 − β1); v = v + (g² − v)(1 − β2);
  //            w −= lr·sqrt(1 − β2^t)/(1 − β1^t) · m / (sqrt(v) + ε)
  //   SGD:     w −= lr·g; with momentum: u = μu − lr·g, w += u (nesterov: w += μu − lr·g)
  //   RMSprop: v = ρv + (1 − ρ)g²; d = lr·g / sqrt(v + ε); with momentum: u = μu + d, w −= u;
  //            else w −= d
  void step();
  // Clears every weight's grad().
  void zero_grad();
  const Optimizer& optimizer() const { return optimizer_; }
  int64_t iterations() const { return static_cast<int64_t>(iterations_.item()); }
  // The rate the updates use now: the optimizer's learning_rate until set (by
  // ReduceLROnPlateau or LearningRateScheduler). Throws weft::Error for a negative or non-finite
  // rate.
  double learning_rate() const { return learning_rate_.item(); }
  void set_learning_rate(double learning_rate);
  // The step counter, the learning rate and every slot, named "iterations", "learning_rate" and
  // "WEIGHT/m", "WEIGHT/v" after
  // `weight_names` (one per trainable weight, in order): a compiled step's inputs.
  std::vector<std::pair<std::string, Tensor>> variables(
      const std::vector<std::string>& weight_names) const;

 private:
  struct Slots {
    Weight* weight;
    Tensor first;   // Adam's m, the momentum buffers
    Tensor second;  // Adam's v, RMSprop's mean square
  };
  Optimizer optimizer_;
  std::vector<Slots> slots_;
  Tensor iterations_;  // float64 scalar: Adam's bias corrections are computed from it in ops
  // float64 scalar, an input of compiled steps like the slots, so changing it compiles nothing.
  Tensor learning_rate_;
};

}  // namespace weft
