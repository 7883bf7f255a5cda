// The repeated stretches of a step's calls: the runs and chains of a Fusion (plan.h).
#pragma once

#include "weft/compiler/plan.h"

namespace weft {

// Fills `fusion.runs` and its chains from its calls, kernels and buffers' lifetimes: a run is a
// stretch of at least 3 repetitions of up to 64 calls with the same kernels, in which every
// argument stays in its buffer (at a fixed offset step) or moves along a chain of buffers, one
// per repetition. The stores form a range of their own.
void find_runs(Fusion& fusion);

}  // namespace weft
