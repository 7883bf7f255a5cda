// Stage "place": every arena buffer gets an offset in one arena, reused once its last reader has
// run (a buffer lives from the call that writes it first to the call that reads it last,
// inclusive, so that no call's output overlaps its inputs; the activations kept for
// backpropagation through time live until their use). A chain's buffers (a time step's, one per
// repetition) are laid out at a fixed stride, so that each repetition's arguments are the previous
// one's moved by the same bytes and reroll can make the run a loop. Blocks are placed first fit.
#pragma once

#include "weft/compiler/plan.h"

namespace weft {

Placement place(Fusion fusion);

}  // namespace weft
