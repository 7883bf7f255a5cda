// Stage "fuse": chains of elementwise ops over one shape become one loop that keeps intermediates
// in registers (writing in place of a read that dies there, or into a concat's region); view ops
// become strides, not copies; every other op is one kernel call from its lowering. Then the calls
// get their kernels (signature.h) and their repeated stretches (repetition.h).
#pragma once

#include "weft/compiler/plan.h"

namespace weft {

// Members a loop takes at most: beyond this a loop body gains little and LLVM's instruction
// scheduler (quadratic in a block's size) dominates compile time.
inline constexpr int kMaxLoopMembers = 24;

struct FuseOptions {
  // Whether a loop may write a stored value straight into its input (stored_in_place in
  // fuse.cpp); not when a finite-loss guard must run before the stores.
  bool stores_in_place = true;
};

Fusion fuse(const Graph& graph, const FuseOptions& options = {});

}  // namespace weft
