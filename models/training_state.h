// What compile() sets up for fit() and evaluate(); shared by models/fit.cpp and models/steps.cpp.
#pragma once

#include <optional>
#include <vector>

#include "weft/models/losses.h"
#include "weft/models/metrics.h"
#include "weft/models/optimizers.h"
#include "weft/models/sequential.h"

namespace weft {

struct Sequential::TrainingState {
  Optimizer optimizer;
  const Loss* loss = nullptr;
  std::vector<MetricSpec> metrics;  // made afresh for each epoch and each evaluation
  // Made by the first fit() (the model has its weights by then) and kept across fit() calls,
  // as Keras keeps its optimizer's slots.
  std::optional<OptimizerState> state;
};

}  // namespace weft
