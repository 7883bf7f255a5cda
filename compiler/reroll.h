// Stage "reroll": the calls of an unrolled time loop are the same kernels on buffers that move by
// a fixed stride each step (fuse found the runs, place laid their chains out). Each run becomes a
// loop over its period, so the step's code stays the size of one time step whatever the sequence
// length.
#pragma once

#include "weft/compiler/plan.h"

namespace weft {

Schedule reroll(Placement placement);

}  // namespace weft
