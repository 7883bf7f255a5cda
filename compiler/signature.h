// Kernel signatures: what a call's kernel does apart from the buffers it is given.
#pragma once

#include "weft/compiler/plan.h"

namespace weft {

// Sets `fusion.kernel_of` and `kernel_count`: calls with equal signatures (the same ops, attrs,
// layouts and dtypes, on other buffers, as in every time step of a recurrent layer) share one
// kernel, emitted once.
void assign_kernels(const Graph& graph, Fusion& fusion);

}  // namespace weft
